# Image of revstream's own services for the production-like docker-compose profile.
FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY schemas schemas
COPY streams streams
COPY processors processors
COPY connectors connectors
COPY revstream revstream
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT []
