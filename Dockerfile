# Image of revstream's own services for the production-like docker-compose profile
# (`docker compose --profile app up`): every service runs `revstream <command>` from it.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY streams streams
COPY processors processors
COPY connectors connectors
COPY revstream revstream
RUN pip install --no-cache-dir . \
    # A named volume mounted here starts with this directory's owner, so workers can write state.
    && mkdir -p /data/worker && chown nobody:nogroup /data/worker
USER nobody
ENTRYPOINT []
