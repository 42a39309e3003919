"""The SQL the ledger writer sends, composed once per table.

Batches are bound set-based: ``COPY`` for append-only tables and the applied-command stage, one
``INSERT .. SELECT FROM unnest(arrays)`` per versioned table. "Newer wins" is decided in SQL by the
same total order as :mod:`connectors.ledger.rows`, so a version that loses to the one stored is a
no-op, whatever order the versions arrive in.
"""

from __future__ import annotations

import logging
from functools import cache

from psycopg import sql

from connectors.ledger.rows import COLUMNS

__all__ = [
    "APPLIED_STAGE",
    "ARRAY_TYPES",
    "copy_statement",
    "create_applied_stage",
    "insert_applied",
    "insert_applied_from_stage",
    "stage_copy_statement",
    "upsert_statement",
]

logger = logging.getLogger(__name__)

APPLIED_STAGE = "applied_commands_stage"
"""Per-session temporary table a batch's applied-command rows are copied into."""

# The key of each versioned table, and the SQL that ranks two versions exactly like rows.py does.
# COLLATE "C" compares text by code point, as Python does, so both sides agree on ties.
_UPSERT_KEY = {
    "subscriptions": "subscription_id",
    "collections_cases": "case_id",
    "revenue_schedules": "schedule_id",
}
_UPSERT_NEWER = {
    "subscriptions": '(EXCLUDED.version, EXCLUDED.command_id COLLATE "C") > '
    '(t.version, t.command_id COLLATE "C")',
    "collections_cases": '(EXCLUDED.attempt, EXCLUDED.status_rank, EXCLUDED.command_id COLLATE "C") > '
    '(t.attempt, t.status_rank, t.command_id COLLATE "C")',
    "revenue_schedules": '(EXCLUDED.issued_at, EXCLUDED.command_id COLLATE "C") > '
    '(t.issued_at, t.command_id COLLATE "C")',
}
# Element types of the arrays a table's rows are bound as, in COLUMNS order. char(3) columns
# travel as text: the insert's assignment cast still enforces their length.
ARRAY_TYPES = {
    "applied_commands": (
        "text", "text", "text", "text", "text", "text", "timestamptz", "text", "int4", "int8",
    ),
    "subscriptions": (
        "text", "text", "text", "text", "text", "text", "date", "date", "int8", "text", "text", "text",
    ),
    "collections_cases": (
        "text", "text", "text", "text", "text", "text", "int4", "int4", "int8", "text", "text", "text",
        "text", "text",
    ),
    "revenue_schedules": (
        "text", "text", "text", "text", "text", "text", "text", "int8", "timestamptz", "text", "text",
        "text",
    ),
}  # fmt: skip


def _columns(table: str) -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Identifier, COLUMNS[table]))


def _arrays(table: str) -> sql.Composable:
    return sql.SQL(", ").join(
        sql.SQL("{}::{}[]").format(sql.Placeholder(), sql.SQL(kind)) for kind in ARRAY_TYPES[table]
    )


@cache
def copy_statement(table: str) -> sql.Composed:
    """Return ``COPY table (columns) FROM STDIN`` with the columns in :data:`COLUMNS` order."""
    return sql.SQL("COPY {} ({}) FROM STDIN").format(sql.Identifier(table), _columns(table))


@cache
def create_applied_stage() -> sql.Composed:
    """Return the statement that creates this session's applied-command stage (if absent).

    Emptied by every commit, and a rollback discards what a batch copied; run it outside any batch
    transaction (autocommit), so a rolled-back batch cannot undo it.
    """
    return sql.SQL(
        "CREATE TEMPORARY TABLE IF NOT EXISTS {} (LIKE applied_commands INCLUDING DEFAULTS) "
        "ON COMMIT DELETE ROWS"
    ).format(sql.Identifier(APPLIED_STAGE))


@cache
def stage_copy_statement() -> sql.Composed:
    """Return the ``COPY`` of applied-command rows into the stage."""
    return sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.Identifier(APPLIED_STAGE), _columns("applied_commands")
    )


@cache
def insert_applied_from_stage() -> sql.Composed:
    """Return the insert of the staged applied-command rows, returning the ids that were new."""
    return sql.SQL(
        "INSERT INTO applied_commands ({columns}) SELECT {columns} FROM {stage} "
        "ON CONFLICT (command_id) DO NOTHING RETURNING command_id"
    ).format(columns=_columns("applied_commands"), stage=sql.Identifier(APPLIED_STAGE))


@cache
def insert_applied() -> sql.Composed:
    """Return the insert of applied-command rows bound as arrays, returning the ids that were new."""
    return sql.SQL(
        "INSERT INTO applied_commands ({columns}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT (command_id) DO NOTHING RETURNING command_id"
    ).format(columns=_columns("applied_commands"), arrays=_arrays("applied_commands"))


@cache
def upsert_statement(table: str) -> sql.Composed:
    """Return the upsert of versioned ``table``, its rows bound as one array per column.

    ON CONFLICT may touch a row only once per statement: bind at most one row per key.
    """
    columns = COLUMNS[table]
    key = _UPSERT_KEY[table]
    return sql.SQL(
        "INSERT INTO {table} AS t ({columns}) SELECT * FROM unnest({arrays}) "
        "ON CONFLICT ({key}) DO UPDATE SET {sets} WHERE {newer}"
    ).format(
        table=sql.Identifier(table),
        columns=_columns(table),
        arrays=_arrays(table),
        key=sql.Identifier(key),
        sets=sql.SQL(", ").join(
            sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in columns if c != key
        ),
        newer=sql.SQL(_UPSERT_NEWER[table]),
    )
