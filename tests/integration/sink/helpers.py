"""Helpers of the ledger and sink tests: extra ledger databases, snapshots and counts."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg

from connectors.ledger.database import create_database
from connectors.ledger.migrate import migrate
from connectors.ledger.rows import COLUMNS
from streams.settings import Settings

# Columns that record when or through which group a row was written, not what the ledger says.
VOLATILE = {"applied_at", "updated_at", "consumer_group"}
LEDGER_TABLES = (*COLUMNS, "sink_offsets")


def new_ledger(stack_settings: Settings) -> str:
    """Create and migrate a ledger database of its own; return its conninfo."""
    conninfo = create_database(stack_settings.database.conninfo(), f"ledger_{uuid.uuid4().hex[:12]}")
    migrate(conninfo)
    return conninfo


def snapshot(conninfo: str, tables: tuple[str, ...] = LEDGER_TABLES) -> dict[str, list[tuple[Any, ...]]]:
    """Every ledger table's rows, sorted, without the columns that record time of writing."""
    result = {}
    with psycopg.connect(conninfo) as connection:
        for table in tables:
            columns = [
                str(row[0])
                for row in connection.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                    "ORDER BY ordinal_position",
                    (table,),
                ).fetchall()
                if row[0] not in VOLATILE
            ]
            rows = connection.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            result[table] = sorted(rows, key=repr)
    return result


def count(conninfo: str, table: str, where: str = "true") -> int:
    with psycopg.connect(conninfo) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()
    assert row is not None
    return int(row[0])


def truncate_all(conninfo: str) -> None:
    with psycopg.connect(conninfo) as connection:
        connection.execute(f"TRUNCATE {', '.join(LEDGER_TABLES)}")
