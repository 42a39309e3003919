"""The audit trail of ``revstream dlq``: one ``dlq_audit`` row per replay or purge, in the ledger database.

While a replay or purge runs it holds a PostgreSQL advisory lock of its namespace, so that two
cannot run at once. A row is written *before* anything is sent (so a run that cannot be audited
does nothing) with outcome ``running``, and finished with its outcome and counts at the end; a
killed run keeps ``running``. The table comes with the ledger's migrations (``revstream ledger migrate``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from connectors.dlq.errors import DlqError
from connectors.errors import LedgerUnavailableError
from connectors.ledger.database import connect
from connectors.ledger.migrate import ensure_current

__all__ = ["AuditLog", "AuditRow"]

logger = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every revstream dlq process ("dlq").
_LOCK_CLASS = 0x646C71

_COLUMNS = (
    "audit_id, action, actor, started_at, finished_at, command_line, filter, target, record_ids, "
    "record_count, outcome, counts, patch, diff"
)


@dataclass(frozen=True)
class AuditRow:
    """One audited run."""

    audit_id: int
    action: str
    actor: str
    started_at: datetime
    finished_at: datetime | None
    command_line: str
    filter: dict[str, Any]
    target: str | None
    record_ids: list[str]
    record_count: int
    outcome: str
    counts: dict[str, Any]
    patch: Any
    diff: Any

    def as_dict(self) -> dict[str, Any]:
        """Return the row as JSON data."""
        return {
            **self.__dict__,
            "started_at": self.started_at.isoformat(),
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
        }


class AuditLog:
    """Writes and reads the ``dlq_audit`` rows of one topic namespace."""

    def __init__(self, conninfo: str, namespace: str) -> None:
        """Audit into the database of ``conninfo``, rows of ``namespace``.

        Raises:
            LedgerUnavailableError: when the database does not answer.
            SchemaNotCurrentError: when the audit table's migration was not applied.
        """
        self.namespace = namespace
        self._connection = connect(conninfo, autocommit=True)
        try:
            ensure_current(self._connection)
        except Exception:
            self._connection.close()
            raise

    def exclusive(self) -> None:
        """Hold this namespace's dlq lock for as long as the connection lives (released if killed).

        Two replays of one namespace at once would each see the other's records as not yet sent.

        Raises:
            DlqError: when another replay or purge of the namespace holds it.
        """
        row = self._execute(
            "SELECT pg_try_advisory_lock(%s, hashtext(%s))", (_LOCK_CLASS, self.namespace)
        ).fetchone()
        if not row or not row[0]:
            raise DlqError(
                f"another `revstream dlq replay` or `purge` is running on namespace {self.namespace}; "
                "wait for it to finish (`revstream dlq audit` shows it as running)"
            )

    def close(self) -> None:
        """Close the database connection."""
        self._connection.close()

    def __enter__(self) -> AuditLog:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def start(
        self,
        action: str,
        actor: str,
        command_line: str,
        selection: dict[str, Any],
        record_ids: Sequence[str],
        target: str | None = None,
        patch: Any = None,
        diff: Any = None,
    ) -> int:
        """Insert the row of a run about to start (outcome ``running``); return its id."""
        row = self._execute(
            "INSERT INTO dlq_audit (namespace, action, actor, command_line, filter, target, record_ids, "
            "record_count, outcome, patch, diff) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, 'running', %s, %s) "
            "RETURNING audit_id",
            (
                self.namespace, action, actor, command_line, Jsonb(selection), target, list(record_ids),
                len(record_ids), _json(patch), _json(diff),
            ),
        ).fetchone()  # fmt: skip
        assert row is not None
        return int(str(row[0]))

    def finish(self, audit_id: int, outcome: str, counts: dict[str, Any]) -> None:
        """Record how run ``audit_id`` ended."""
        self._execute(
            "UPDATE dlq_audit SET outcome = %s, counts = %s, finished_at = now() WHERE audit_id = %s",
            (outcome, Jsonb(counts), audit_id),
        )

    def rows(self, record_id: str | None = None, limit: int = 100) -> list[AuditRow]:
        """Return the newest ``limit`` rows of the namespace (those naming ``record_id``), oldest first."""
        where, args = "namespace = %s", [self.namespace]
        if record_id is not None:
            where += " AND %s = ANY(record_ids)"
            args.append(record_id)
        found = self._execute(
            f"SELECT {_COLUMNS} FROM dlq_audit WHERE {where} ORDER BY audit_id DESC LIMIT %s",  # noqa: S608 - constant
            (*args, limit),
        ).fetchall()
        return [AuditRow(*row) for row in reversed(found)]  # type: ignore[arg-type]

    def _execute(self, query: str, args: Sequence[Any]) -> psycopg.Cursor[tuple[object, ...]]:
        try:
            return self._connection.execute(query.encode(), args)
        except psycopg.OperationalError as exc:
            raise LedgerUnavailableError(
                f"the audit database went away ({str(exc).strip().splitlines()[0]}); the run was not recorded"
            ) from exc


def _json(value: Any) -> Jsonb | None:
    return None if value is None else Jsonb(value)
