"""Fixtures of the ledger and sink tests: a database of each test module's own on the shared server."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from connectors.errors import ConnectorError
from connectors.ledger.database import create_database, drop_database
from connectors.ledger.migrate import migrate
from streams.settings import Settings


@pytest.fixture(scope="module")
def ledger_db(stack_settings: Settings) -> Iterator[str]:
    """Conninfo of a freshly migrated ledger database that only this test module uses."""
    server = stack_settings.database.conninfo()
    name = f"ledger_{uuid.uuid4().hex[:12]}"
    conninfo = create_database(server, name)
    migrate(conninfo)
    yield conninfo
    # The databases live in the session stack's temporary data directory anyway.
    with contextlib.suppress(ConnectorError):
        drop_database(server, name)
