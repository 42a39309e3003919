"""What every command shares: loading settings and the errors shown to users as one line."""

from __future__ import annotations

import json
from typing import Any

import click

from connectors.errors import ConnectorError
from processors.errors import ProcessingError
from schemas.errors import SchemaError
from streams.errors import PlatformError
from streams.secrets import install
from streams.settings import Settings, load_settings

__all__ = ["USER_ERRORS", "settings_for_cli", "echo_json"]

# The root error of each package whose messages are written for users.
USER_ERRORS: tuple[type[Exception], ...] = (PlatformError, ConnectorError, SchemaError, ProcessingError)


def settings_for_cli(resolve_endpoints: bool = True) -> Settings:
    """Load settings (and mask their secrets in this process' output); fill embedded endpoints.

    Raises:
        SettingsError: when a variable is invalid.
        StackError: when the embedded stack is needed but not running.
    """
    settings = load_settings()
    install(settings)  # from here on no log record or error line of this process shows a secret
    settings = settings.with_embedded_endpoints() if resolve_endpoints else settings
    install(settings)  # the embedded stack's database URL holds a password too
    return settings


def echo_json(payload: Any) -> None:
    """Print ``payload`` as indented JSON for scripts."""
    click.echo(json.dumps(payload, indent=2, sort_keys=True, default=str))
