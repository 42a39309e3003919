"""``revstream registry serve``: the Confluent-compatible schema registry service."""

from __future__ import annotations

import click

from streams.secrets import install
from streams.settings import load_settings

__all__ = ["registry"]


@click.group(short_help="Serve the Confluent-compatible schema registry.")
def registry() -> None:
    """Run the Confluent-compatible schema registry (its state lives in PostgreSQL)."""


@registry.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
@click.option("--port", default=8081, show_default=True, type=click.IntRange(1, 65535), help="TCP port.")
def serve(host: str, port: int) -> None:
    """Serve the registry's REST API until interrupted.

    The store is the database at REVSTREAM_DATABASE_URL (or the running embedded stack's);
    REVSTREAM_REGISTRY_SERVER_USERS=user:password[,...] turns on HTTP basic auth.
    """
    # Imported here: FastAPI, uvicorn and Avro would slow down every other revstream command.
    from streams.registry.server import serve as serve_registry

    settings = load_settings()
    install(settings)
    if settings.database.url is None and settings.embedded:
        settings = settings.with_embedded_endpoints()
        install(settings)
    serve_registry(settings, host, port)
