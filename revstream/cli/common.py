"""What every command shares: loading settings and the errors shown to users as one line."""

from __future__ import annotations

import json
from typing import Any

import click

from connectors.errors import ConnectorError
from processors.errors import ProcessingError
from schemas.errors import SchemaError
from streams.errors import PlatformError
from streams.settings import Settings, load_settings

__all__ = ["USER_ERRORS", "settings_for_cli", "echo_json"]

# The root error of each package whose messages are written for users.
USER_ERRORS: tuple[type[Exception], ...] = (PlatformError, ConnectorError, SchemaError, ProcessingError)


def settings_for_cli(resolve_endpoints: bool = True) -> Settings:
    """Load settings; with the embedded profile, fill endpoints from the running stack.

    Raises:
        SettingsError: when a variable is invalid.
        StackError: when the embedded stack is needed but not running.
    """
    settings = load_settings()
    return settings.with_embedded_endpoints() if resolve_endpoints else settings


def echo_json(payload: Any) -> None:
    """Print ``payload`` as indented JSON for scripts."""
    click.echo(json.dumps(payload, indent=2, sort_keys=True, default=str))
