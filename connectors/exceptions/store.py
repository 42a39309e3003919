"""The queue in the ledger database: rows, their audit trail, and the consumer's offsets.

Every change is written with its audit row in one transaction, and a consumed batch with its
offsets as well (``sink_offsets``, under the queue consumer's own group), so a batch is applied
exactly once whatever Kafka's committed offsets say, as the ERP sink does. Rows are locked while a
change is computed from them: a person assigning a row while the pipeline revises it waits, and
neither change is lost.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timedelta

import psycopg
from psycopg import sql

from connectors.errors import ConnectorError, LedgerUnavailableError
from connectors.exceptions.queue import CLOSED, HELD, Change, ExceptionRecord, QueueRow, Status, fold
from connectors.ledger.database import is_connection_error
from connectors.ledger.writer import store_offsets
from streams.queue_settings import ExceptionQueueSettings

__all__ = [
    "AuditEntry",
    "ExceptionNotFoundError",
    "Filters",
    "Hold",
    "QueueStore",
]

logger = logging.getLogger(__name__)

Connection = psycopg.Connection[tuple[object, ...]]

_COLUMNS = tuple(f.name for f in fields(QueueRow))
_SELECT = sql.SQL("SELECT {} FROM exceptions").format(sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)))
_UPSERT = sql.SQL(
    "INSERT INTO exceptions ({cols}) VALUES ({vals}) ON CONFLICT (exception_key) DO UPDATE SET {set}"
).format(
    cols=sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)),
    vals=sql.SQL(", ").join(sql.Placeholder() * len(_COLUMNS)),
    set=sql.SQL(", ").join(
        sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c)) for c in _COLUMNS if c != "exception_key"
    ),
)


class ExceptionNotFoundError(ConnectorError):
    """Raised when an exception id or key names no row of the queue."""


@dataclass(frozen=True)
class AuditEntry:
    """One change of a row: who, when, what, and the note they left."""

    at: datetime
    actor: str
    action: str
    from_status: str | None
    to_status: str
    note: str | None
    exception_id: str | None


@dataclass(frozen=True)
class Hold:
    """A record waiting on an exception (an order held for its quote's discount approval)."""

    exception_key: str
    source_event_id: str
    event_type: str
    subscription_id: str | None
    amount_minor: int | None
    currency: str | None
    reason: str
    held_at: datetime
    released_at: datetime | None


@dataclass(frozen=True)
class Filters:
    """What ``exceptions list`` narrows the queue to (``None``: any)."""

    team: str | None = None
    reason: str | None = None
    status: str | None = None
    customer: str | None = None
    older_than: timedelta | None = None


def _row(values: Sequence[object]) -> QueueRow:
    return QueueRow(**dict(zip(_COLUMNS, values, strict=True)))  # type: ignore[arg-type]


def _unavailable(exc: psycopg.Error) -> LedgerUnavailableError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return LedgerUnavailableError(f"the ledger database went away ({first}); try again")


class QueueStore:
    """Reads and changes the queue through one connection in autocommit mode."""

    def __init__(self, connection: Connection, settings: ExceptionQueueSettings) -> None:
        """Work through ``connection`` (autocommit; transactions are explicit)."""
        self.connection = connection
        self.settings = settings

    # -- the consumer's side ----------------------------------------------------------------------

    def apply(
        self, records: Sequence[ExceptionRecord], offsets: Mapping[tuple[str, int], int], group: str
    ) -> list[Change]:
        """Apply ``records`` and store ``offsets`` (next offset per partition) in one transaction.

        Raises:
            LedgerUnavailableError: when the database went away; nothing was committed.
        """
        try:
            with self.connection.transaction():
                stored = self._locked({record.key for record in records})
                changes = fold(stored, records, self.settings)
                self._write(changes)
                self._write_holds(records, changes)
                store_offsets(self.connection, offsets, group)
            return changes
        except psycopg.Error as exc:
            if is_connection_error(exc):
                raise _unavailable(exc) from exc
            raise

    def _locked(self, keys: set[str]) -> dict[str, QueueRow]:
        if not keys:
            return {}
        query = _SELECT + sql.SQL(" WHERE exception_key = ANY(%s) FOR UPDATE")
        return {row.exception_key: row for row in map(_row, self.connection.execute(query, [list(keys)]))}

    def _write(self, changes: Sequence[Change]) -> None:
        if not changes:
            return
        last = {change.row.exception_key: change.row for change in changes}
        cursor = self.connection.cursor()
        cursor.executemany(_UPSERT, [tuple(asdict(row).values()) for row in last.values()])
        cursor.executemany(
            "INSERT INTO exception_audit (exception_key, at, actor, action, from_status, to_status, note,"
            " exception_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            [
                (
                    c.row.exception_key,
                    c.row.last_seen,
                    c.actor,
                    c.action,
                    c.from_status,
                    c.row.status,
                    c.note,
                    c.row.exception_id,
                )
                for c in changes
            ],
        )

    def _write_holds(self, records: Sequence[ExceptionRecord], changes: Sequence[Change]) -> None:
        notices = [r for r in records if r.is_hold_notice and r.exception.get("resolution") == HELD]
        releases = [
            (r.seen_at, r.key, r.exception["source_event_id"])
            for r in records
            if r.is_hold_notice and r.exception.get("resolution") != HELD
        ]
        cursor = self.connection.cursor()
        if notices:
            # A notice delivered twice (at least once) is the same hold: the first one stands.
            cursor.executemany(
                "INSERT INTO exception_holds (exception_key, source_event_id, event_type, subscription_id,"
                " amount_minor, currency, reason, held_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
                " ON CONFLICT (exception_key, source_event_id) DO NOTHING",
                [
                    (
                        r.key,
                        r.exception["source_event_id"],
                        r.exception["event_type"],
                        r.exception.get("subscription_id"),
                        r.exception.get("amount_difference_minor"),
                        r.exception.get("currency"),
                        r.exception["detail"],
                        r.seen_at,
                    )
                    for r in notices
                ],
            )
        if releases:
            cursor.executemany(
                "UPDATE exception_holds SET released_at = %s"
                " WHERE exception_key = %s AND source_event_id = %s AND released_at IS NULL",
                releases,
            )
        approved = [(c.row.last_seen, c.row.exception_key) for c in changes if c.row.status == "approved"]
        if approved:
            cursor.executemany(
                "UPDATE exception_holds SET released_at = %s"
                " WHERE exception_key = %s AND released_at IS NULL",
                approved,
            )

    def holds(self, key: str | None = None, waiting_only: bool = False) -> list[Hold]:
        """Return the records held on row ``key`` (on every row when ``None``), oldest first."""
        clauses: list[sql.Composable] = [sql.SQL("true")]
        params: list[object] = []
        if key is not None:
            clauses.append(sql.SQL("exception_key = %s"))
            params.append(key)
        if waiting_only:
            clauses.append(sql.SQL("released_at IS NULL"))
        query = sql.SQL(
            "SELECT exception_key, source_event_id, event_type, subscription_id, amount_minor, currency,"
            " reason, held_at, released_at FROM exception_holds WHERE {} ORDER BY held_at, source_event_id"
        ).format(sql.SQL(" AND ").join(clauses))
        rows = self.connection.execute(query, params).fetchall()
        return [Hold(*row) for row in rows]  # type: ignore[arg-type]

    # -- people's side ----------------------------------------------------------------------------

    def change(
        self,
        ident: str,
        actor: str,
        action: str,
        now: datetime,
        *,
        status: Status | None = None,
        assignee: str | None = None,
        note: str | None = None,
    ) -> QueueRow:
        """Change the row ``ident`` names on behalf of ``actor`` and audit it, in one transaction.

        Raises:
            ExceptionNotFoundError: when ``ident`` names no row.
            ConnectorError: when the row is closed already.
            LedgerUnavailableError: when the database went away.
        """
        try:
            with self.connection.transaction():
                current = self._find(ident, lock=True)
                if not current.is_open:
                    raise ConnectorError(
                        f"exception {current.exception_key} is {current.status} already; nothing changed"
                    )
                new_status: Status = status or ("assigned" if assignee else current.status)
                row = replace(
                    current,
                    status=new_status,
                    assignee=assignee if assignee is not None else current.assignee,
                    closed_at=now if new_status in CLOSED else None,
                )
                self.connection.execute(_UPSERT, tuple(asdict(row).values()))
                self.connection.execute(
                    "INSERT INTO exception_audit (exception_key, at, actor, action, from_status, to_status,"
                    " note, exception_id) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        row.exception_key,
                        now,
                        actor,
                        action,
                        current.status,
                        new_status,
                        note,
                        row.exception_id,
                    ),
                )
            return row
        except psycopg.Error as exc:
            if is_connection_error(exc):
                raise _unavailable(exc) from exc
            raise

    # -- reading ----------------------------------------------------------------------------------

    def find(self, ident: str) -> QueueRow:
        """Return the row whose key or latest exception id is ``ident``.

        Raises:
            ExceptionNotFoundError: when there is none.
        """
        return self._find(ident, lock=False)

    def _find(self, ident: str, lock: bool) -> QueueRow:
        query = _SELECT + sql.SQL(
            " WHERE exception_key = %s OR exception_id = %s ORDER BY exception_key LIMIT 1"
        )
        if lock:
            query += sql.SQL(" FOR UPDATE")
        found = self.connection.execute(query, (ident, ident)).fetchone()
        if found is None:
            raise ExceptionNotFoundError(
                f"no exception {ident!r} in the queue; see `revstream exceptions list`"
            )
        return _row(found)

    def history(self, key: str) -> list[AuditEntry]:
        """Return the audit trail of row ``key``, oldest first."""
        rows = self.connection.execute(
            "SELECT at, actor, action, from_status, to_status, note, exception_id FROM exception_audit"
            " WHERE exception_key = %s ORDER BY audit_id",
            (key,),
        ).fetchall()
        return [AuditEntry(*row) for row in rows]  # type: ignore[arg-type]

    def rows(self, filters: Filters, now: datetime) -> list[QueueRow]:
        """Return the rows ``filters`` select, oldest first."""
        clauses: list[sql.Composable] = []
        params: list[object] = []
        for column, value in (
            ("team", filters.team),
            ("reason_code", filters.reason),
            ("status", filters.status),
            ("customer_id", filters.customer),
        ):
            if value is not None:
                clauses.append(sql.SQL("{} = %s").format(sql.Identifier(column)))
                params.append(value)
        if filters.older_than is not None:
            clauses.append(sql.SQL("first_seen < %s"))
            params.append(now - filters.older_than)
        query = _SELECT
        if clauses:
            query += sql.SQL(" WHERE ") + sql.SQL(" AND ").join(clauses)
        query += sql.SQL(" ORDER BY first_seen, exception_key")
        return [_row(values) for values in self.connection.execute(query, params)]
