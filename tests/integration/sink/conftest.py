"""Fixtures of the ledger and sink tests: a database of each test module's own on the shared server."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterator

import pytest

from connectors.errors import ConnectorError
from connectors.ledger.database import connect, create_database, drop_database
from connectors.ledger.migrate import migrate
from connectors.ledger.writer import LedgerWriter
from streams.serde import AvroSerde
from streams.settings import Settings
from tests.integration.sink.helpers import truncate_all


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


@pytest.fixture(scope="module")
def serde(stack_settings: Settings) -> AvroSerde:
    """The Avro serde over the session's schema registry."""
    if not stack_settings.registry.url:
        pytest.skip("the sink decodes through the schema registry, which this stack does not run")
    return AvroSerde.from_settings(stack_settings.registry)


@pytest.fixture
def writer(ledger_db: str) -> Iterator[LedgerWriter]:
    """A writer on the module's ledger, emptied first, through an autocommit connection."""
    truncate_all(ledger_db)
    connection = connect(ledger_db, autocommit=True)
    yield LedgerWriter(connection)
    connection.close()
