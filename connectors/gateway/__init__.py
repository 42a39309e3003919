"""The HTTP ingest gateway (FastAPI): webhooks in, acknowledged Avro records on the canonical topics out."""

from connectors.gateway.app import create_app

__all__ = ["create_app"]
