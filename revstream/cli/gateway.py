"""``revstream gateway``: serve the HTTP ingest gateway with uvicorn."""

from __future__ import annotations

import logging

import click
import uvicorn

from connectors.gateway import create_app
from revstream.cli.common import settings_for_cli

__all__ = ["gateway"]

logger = logging.getLogger(__name__)


@click.command("gateway", short_help="Serve the HTTP ingest gateway.")
@click.option(
    "--host", default=None, help="Interface to listen on. Default: REVSTREAM_GATEWAY_HOST (127.0.0.1)."
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=None,
    help="Port. Default: REVSTREAM_GATEWAY_PORT (8088).",
)
def gateway(host: str | None, port: int | None) -> None:
    """Serve the HTTP ingest gateway: POST /v1/events/{event_type}[:batch], /docs, /healthz, /metrics.

    Tokens come from REVSTREAM_GATEWAY_TOKENS, JSON like
    {"<token>": {"source": "billing", "event_types": ["invoice_posted"]}}.
    """
    settings = settings_for_cli()
    app = create_app(settings)
    config = settings.gateway
    uvicorn.run(
        app,
        host=host or config.host,
        port=config.port if port is None else port,
        log_level=settings.loglevel,
        access_log=settings.loglevel == "debug",
    )
