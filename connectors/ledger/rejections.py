"""What the ledger refuses and why; a source event's commands land together or not at all.

The worker builds every command of a source event from one record (an invoice gives its invoice,
journal entry and revenue schedules); the ledger must never hold part of them. See
:mod:`connectors.ledger.writer` for how a batch applies them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

import psycopg

from connectors.errors import CommandRejectedError
from connectors.ledger.database import is_connection_error

if TYPE_CHECKING:
    from connectors.ledger.writer import CommandRecord

__all__ = [
    "SOURCE_EVENT_REJECTED",
    "by_source_event",
    "is_rejection",
    "reason_for",
    "rejection_of",
    "sibling_rejection",
    "source_event_of",
]

SOURCE_EVENT_REJECTED: Final = "SOURCE_EVENT_REJECTED"
"""The reason of a command rejected because another command of its source event was."""


def source_event_of(record: CommandRecord) -> str:
    """The id of the event whose commands must land together with ``record``."""
    return str(record.command["source_event_id"])


def sibling_rejection(
    record: CommandRecord, failed: CommandRejectedError, failed_id: str
) -> CommandRejectedError:
    """Return the rejection of ``record`` because command ``failed_id`` of its source event was rejected."""
    return CommandRejectedError(
        f"command {record.command_id} was not applied: command {failed_id} of the same source event"
        f" {source_event_of(record)} was rejected ({failed.reason_code}), and a source event's commands"
        " land together or not at all; fix that event and replay its dead letters together",
        reason_code=SOURCE_EVENT_REJECTED,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
    )


def by_source_event(records: Sequence[CommandRecord]) -> list[list[CommandRecord]]:
    """Group ``records`` by source event, in the order each event first appears."""
    events: dict[str, list[CommandRecord]] = {}
    for record in records:
        events.setdefault(source_event_of(record), []).append(record)
    return list(events.values())


def reason_for(sqlstate: str | None, constraint: str | None) -> str:
    """Return the dead-letter reason code for a database rejection."""
    if constraint == "journal_entry_balanced":
        return "UNBALANCED_ENTRY"
    codes = {"23505": "DUPLICATE_KEY", "23503": "MISSING_REFERENCE", "23502": "MISSING_VALUE"}
    if sqlstate in codes:
        return codes[sqlstate]
    if sqlstate == "23514":
        return "CONSTRAINT_VIOLATION"
    if sqlstate and sqlstate.startswith("22"):
        return "BAD_DATA"
    return "REJECTED_BY_DATABASE"


def rejection_of(exc: psycopg.Error, record: CommandRecord) -> CommandRejectedError:
    """Return the rejection of ``record`` the database's error ``exc`` stands for."""
    diag = exc.diag
    detail = (diag.message_primary or str(exc)).strip().splitlines()[0]
    if diag.constraint_name:
        detail += f" (constraint {diag.constraint_name})"
    return CommandRejectedError(
        f"the ledger rejected command {record.command_id}: {detail}",
        reason_code=reason_for(diag.sqlstate, diag.constraint_name),
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
    )


def is_rejection(exc: psycopg.Error) -> bool:
    """Whether ``exc`` refuses the command (constraint, bad data) rather than says the database is gone."""
    return isinstance(exc, psycopg.IntegrityError | psycopg.DataError) and not is_connection_error(exc)
