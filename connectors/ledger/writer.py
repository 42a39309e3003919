"""Apply a batch of ERP commands to the ledger in one transaction, together with the consumed offsets.

Exactly once comes from the database, not from Kafka: each command's id goes into
``applied_commands`` (``ON CONFLICT DO NOTHING``) in the same transaction as its ledger rows and
the consumer offsets, and only ids that were new have their payload applied. A replayed,
re-delivered or concurrently applied command is a no-op, whatever Kafka's committed offsets say.

Fast path: one ``INSERT .. RETURNING`` for the ids, ``COPY`` for append-only tables, one set-based
upsert per versioned table, deferred constraints checked before commit. If the
database rejects anything, the batch is rolled back and re-applied on the slow path: one savepoint
per source event, so only the offending events' commands are rejected (and dead-lettered by the
caller) while the rest of the batch lands.

**A source event's commands land together or not at all** (within a batch). The worker builds all
of an event's commands from one record and produces them one after the other to one partition;
when the ledger refuses one of them (a constraint, bad data, a type it cannot apply), every other
command of that event in the batch is rejected with it, reason ``SOURCE_EVENT_REJECTED``, naming the
command that failed. So an invoice is never half posted (its journal entry applied, its invoice
refused). A command applied before (a duplicate) stays applied. The sink cuts batches by count and
time, not by event, so an event whose commands straddle two batches is atomic per batch only; the
worker's policy refuses what the ledger would (reversed periods, figures beyond a ``bigint``) before
any command is built, which is the guarantee that holds whole.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import psycopg

from connectors.errors import CommandRejectedError, LedgerUnavailableError
from connectors.ledger.commands import CommandDict, record_of
from connectors.ledger.database import is_connection_error
from connectors.ledger.rejections import (
    by_source_event,
    is_rejection,
    reason_for,
    rejection_of,
    sibling_rejection,
    source_event_of,
)
from connectors.ledger.rows import (
    INSERT_TABLES,
    UPSERT_ORDER,
    UPSERT_TABLES,
    LedgerRows,
    Row,
    add_rows,
    applied_row,
    customer_row,
    first_per_key,
    newest_per_key,
    rows_for,
    unsupported,
)
from connectors.ledger.statements import (
    copy_statement,
    create_applied_stage,
    insert_applied,
    insert_applied_from_stage,
    stage_copy_statement,
    upsert_statement,
)
from schemas.models.erp import ErpCommand

__all__ = [
    "ApplyOutcome",
    "CommandRecord",
    "LedgerWriter",
    "PreparedBatch",
    "prepare",
    "reason_for",
    "store_offsets",
]

logger = logging.getLogger(__name__)

Connection = psycopg.Connection[tuple[object, ...]]
TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """A decoded, checked command (as fastavro reads it) and where it was read."""

    command: CommandDict
    topic: str
    partition: int
    offset: int

    @classmethod
    def of(cls, command: ErpCommand, topic: str, partition: int, offset: int) -> CommandRecord:
        """Return the record of a command model (tests, tools): the same dict the decoder gives."""
        return cls(record_of(command), topic, partition, offset)

    @property
    def command_id(self) -> str:
        """The command's id: exactly once is keyed on it."""
        return str(self.command["command_id"])

    @property
    def command_type(self) -> str:
        """The command type's symbol, e.g. ``JOURNAL_ENTRY``."""
        return str(self.command["command_type"])


@dataclass
class ApplyOutcome:
    """What one batch did: commands applied, found already applied, and rejected by the ledger."""

    applied: list[CommandRecord] = field(default_factory=list)
    duplicates: list[CommandRecord] = field(default_factory=list)
    rejected: list[tuple[CommandRecord, CommandRejectedError]] = field(default_factory=list)
    rows_written: int = 0
    slow_path: bool = False


@dataclass
class PreparedBatch:
    """A batch's rows, built before its transaction, as if every command in it were new.

    The sink prepares the next batch while the previous one is being applied; the writer uses the
    rows as they are when the database takes every command as new (the usual case), else it builds
    them again for the new ones.
    """

    records: list[CommandRecord]
    """The first record of each command id, in order, of a type the ledger can apply."""
    duplicates: list[CommandRecord]
    """Records repeating a command id earlier in the batch."""
    rejected: list[tuple[CommandRecord, CommandRejectedError]]
    """Records of a type the ledger cannot apply (``UNKNOWN``)."""
    applied_rows: list[Row]
    rows: LedgerRows


def prepare(records: Sequence[CommandRecord]) -> PreparedBatch:
    """Return ``records`` sorted out and turned into rows (pure: no database)."""
    firsts = first_per_key(records, key=lambda r: r.command_id)
    first_ids = {id(r) for r in firsts}
    batch = PreparedBatch([], [r for r in records if id(r) not in first_ids], [], [], LedgerRows())
    refused: dict[str, tuple[str, CommandRejectedError]] = {}
    for record in firsts:
        rejection = unsupported(record.command)
        if rejection is not None:
            refused.setdefault(source_event_of(record), (record.command_id, rejection))
    for record in firsts:
        # What cannot be applied at all is refused before anything is written, with its event.
        rejection = unsupported(record.command)
        if rejection is None and source_event_of(record) in refused:
            failed_id, failed = refused[source_event_of(record)]
            rejection = sibling_rejection(record, failed, failed_id)
        if rejection is None:
            batch.records.append(record)
            batch.applied_rows.append(
                applied_row(record.command, record.topic, record.partition, record.offset)
            )
            add_rows(record.command, batch.rows)
        else:
            rejection.topic, rejection.partition = record.topic, record.partition
            rejection.offset = record.offset
            batch.rejected.append((record, rejection))
    return batch


class LedgerWriter:
    """Writes batches of commands and the sink's offsets through one connection (autocommit mode)."""

    def __init__(self, connection: Connection) -> None:
        """Write through ``connection``, which must be in autocommit mode (transactions are explicit)."""
        self.connection = connection
        self._staged = False

    def stored_offsets(self, group: str, topic: str) -> dict[int, int]:
        """Return ``partition -> next offset`` stored for ``group`` on ``topic``.

        Raises:
            LedgerUnavailableError: when the database went away.
        """
        try:
            rows = self.connection.execute(
                "SELECT kafka_partition, next_offset FROM sink_offsets "
                "WHERE consumer_group = %s AND topic = %s",
                (group, topic),
            ).fetchall()
        except psycopg.Error as exc:
            raise _unavailable(exc) from exc
        return {int(str(partition)): int(str(offset)) for partition, offset in rows}

    def apply(
        self,
        records: Sequence[CommandRecord] | PreparedBatch,
        offsets: Mapping[TopicPartition, int],
        group: str,
        before_commit: Callable[[ApplyOutcome], None] | None = None,
        before_checks: Callable[[], None] | None = None,
    ) -> ApplyOutcome:
        """Apply ``records`` and store ``offsets`` (next offset per partition) in one transaction.

        ``records`` may come :func:`prepare`-d already (off the thread that applies them).

        ``before_commit`` runs inside the transaction once the outcome is known; the sink
        dead-letters the rejected records there, so the offsets never move past a rejected record
        whose dead letter was not delivered. ``before_checks`` runs once every row was sent, when only
        the database's work is left (the deferred checks and the commit).

        Raises:
            LedgerUnavailableError: when the database went away; nothing was committed.
        """
        batch = records if isinstance(records, PreparedBatch) else prepare(records)
        outcome = ApplyOutcome(duplicates=list(batch.duplicates), rejected=list(batch.rejected))
        try:
            self._ensure_stage()
            try:
                return self._fast(batch, offsets, group, outcome, before_commit, before_checks)
            except psycopg.Error as exc:
                if not is_rejection(exc):
                    raise
                logger.info(
                    "batch rejected by the ledger (%s); re-applying command by command", exc.diag.sqlstate
                )
            return self._slow(batch.records, offsets, group, outcome, before_commit)
        except psycopg.Error as exc:
            if is_connection_error(exc):
                raise _unavailable(exc) from exc
            raise

    # -- the two paths -----------------------------------------------------------------------

    def _fast(
        self,
        batch: PreparedBatch,
        offsets: Mapping[TopicPartition, int],
        group: str,
        base: ApplyOutcome,
        before_commit: Callable[[ApplyOutcome], None] | None,
        before_checks: Callable[[], None] | None,
    ) -> ApplyOutcome:
        outcome = ApplyOutcome(duplicates=list(base.duplicates), rejected=list(base.rejected))
        with self.connection.transaction():
            new_ids = self._insert_applied(batch.records, staged=True, rows=batch.applied_rows)
            batch_rows = batch.rows
            if len(new_ids) == len(batch.records):
                outcome.applied.extend(batch.records)
            else:
                # Rows only for the commands the database took as new.
                batch_rows = LedgerRows()
                for record in batch.records:
                    if record.command_id in new_ids:
                        outcome.applied.append(record)
                        add_rows(record.command, batch_rows)
                    else:
                        outcome.duplicates.append(record)
            written = self._write(batch_rows, [r.command for r in outcome.applied])
            self._store_offsets(offsets, group)
            if before_checks is not None:
                before_checks()
            # Fire the deferred balance checks now, so a violation is a statement error here
            # (and the batch goes to the slow path) rather than a failed COMMIT.
            self.connection.execute("SET CONSTRAINTS ALL IMMEDIATE")
            outcome.rows_written = written + len(outcome.applied)
            if before_commit is not None:
                before_commit(outcome)
        return outcome

    def _slow(
        self,
        prepared: list[CommandRecord],
        offsets: Mapping[TopicPartition, int],
        group: str,
        base: ApplyOutcome,
        before_commit: Callable[[ApplyOutcome], None] | None,
    ) -> ApplyOutcome:
        outcome = ApplyOutcome(duplicates=list(base.duplicates), rejected=list(base.rejected), slow_path=True)
        with self.connection.transaction():
            for event in by_source_event(prepared):
                self._apply_event(event, outcome)
            self._store_offsets(offsets, group)
            if before_commit is not None:
                before_commit(outcome)
        return outcome

    def _apply_event(self, event: list[CommandRecord], outcome: ApplyOutcome) -> None:
        """Apply one source event's commands under one savepoint: all of them, or none."""
        applied: list[CommandRecord] = []
        duplicates: list[CommandRecord] = []
        written = 0
        try:
            with self.connection.transaction():
                for record in event:
                    try:
                        # A savepoint per command too, so the rejection names the command that failed.
                        with self.connection.transaction():
                            # A savepoint rollback may leave the constraint mode as the failed
                            # command set it; every command starts deferred again.
                            self.connection.execute("SET CONSTRAINTS ALL DEFERRED")
                            if not self._insert_applied([record]):
                                duplicates.append(record)
                                continue
                            written += self._write(rows_for(record.command), [record.command]) + 1
                            self.connection.execute("SET CONSTRAINTS ALL IMMEDIATE")
                    except psycopg.Error as exc:
                        if not is_rejection(exc):
                            raise
                        raise _EventRejectedError(record, rejection_of(exc, record)) from exc
                    applied.append(record)
        except _EventRejectedError as failed:
            logger.warning("%s", failed.rejection)
            outcome.duplicates.extend(duplicates)
            for record in event:
                if record is failed.record:
                    outcome.rejected.append((record, failed.rejection))
                elif all(record is not duplicate for duplicate in duplicates):
                    rejection = sibling_rejection(record, failed.rejection, failed.record.command_id)
                    outcome.rejected.append((record, rejection))
            return
        outcome.applied.extend(applied)
        outcome.duplicates.extend(duplicates)
        outcome.rows_written += written

    # -- statements --------------------------------------------------------------------------

    def _insert_applied(
        self, records: Sequence[CommandRecord], staged: bool = False, rows: list[Row] | None = None
    ) -> set[str]:
        """Record the commands' ids as applied; return the ids that were new.

        ``staged`` (once per transaction, the fast path): the rows are copied, because binding a
        batch as arrays costs more client time than all the rows of the batch cost to ``COPY``
        (measured with py-spy). Usually every command is new, and they are copied straight into the
        log (as cheap as the baseline's COPY; through a stage and ``ON CONFLICT`` cost the sink
        0.2 s per 50,000 commands). A command already applied (a replay, two sinks overlapping in a
        rebalance) fails that copy on the primary key, and the rows go through a temporary table
        with ``ON CONFLICT DO NOTHING``, which tells which ones were new.
        """
        if rows is None:
            rows = [applied_row(r.command, r.topic, r.partition, r.offset) for r in records]
        if not rows:
            return set()
        if staged:
            try:
                with (
                    self.connection.transaction(),
                    self.connection.cursor().copy(copy_statement("applied_commands")) as copy,
                ):
                    for row in rows:
                        copy.write_row(row)
                return {str(row[0]) for row in rows}
            except psycopg.errors.UniqueViolation:
                logger.debug("some commands of the batch were applied before; finding out which")
            with self.connection.cursor().copy(stage_copy_statement()) as copy:
                for row in rows:
                    copy.write_row(row)
            return {str(row[0]) for row in self.connection.execute(insert_applied_from_stage()).fetchall()}
        arrays = [list(values) for values in zip(*rows, strict=True)]
        return {str(row[0]) for row in self.connection.execute(insert_applied(), arrays).fetchall()}

    def _ensure_stage(self) -> None:
        if self._staged:
            return
        self.connection.execute(create_applied_stage())
        self._staged = True

    def _write(self, rows: LedgerRows, commands: Sequence[CommandDict]) -> int:
        """Write ``rows`` and the commands' customers; return how many rows were inserted or updated."""
        written = 0
        cursor = self.connection.cursor()
        customers = first_per_key((customer_row(c) for c in commands), key=lambda row: row[0])
        if customers:
            cursor.execute(
                "INSERT INTO customers (customer_id, legal_entity, first_command_id) "
                "SELECT * FROM unnest(%s::text[], %s::text[], %s::text[]) "
                "ON CONFLICT (customer_id) DO NOTHING",
                [list(column) for column in zip(*customers, strict=True)],
            )
            written += max(cursor.rowcount, 0)
        for table in INSERT_TABLES:
            table_rows = rows.get(table)
            if not table_rows:
                continue
            with cursor.copy(copy_statement(table)) as copy:
                for row in table_rows:
                    copy.write_row(row)
            written += len(table_rows)
        for table in UPSERT_TABLES:
            table_rows = rows.get(table)
            if table_rows:
                # One statement per table, not per row: psycopg's executemany machinery cost the
                # sink more client time than the rows themselves (py-spy). One row per key, as an
                # upsert may touch a row only once per statement.
                newest = newest_per_key(table_rows, key=lambda row: row[0], order=UPSERT_ORDER[table])
                cursor.execute(
                    upsert_statement(table), [list(column) for column in zip(*newest, strict=True)]
                )
                # Counts only versions that won: an older one is a no-op, not a row written.
                written += max(cursor.rowcount, 0)
        return written

    def _store_offsets(self, offsets: Mapping[TopicPartition, int], group: str) -> None:
        store_offsets(self.connection, offsets, group)


def store_offsets(connection: Connection, offsets: Mapping[TopicPartition, int], group: str) -> None:
    """Store ``group``'s next offset per partition (inside the caller's transaction)."""
    if not offsets:
        return
    # GREATEST: a consumer that lost its partition in a rebalance must not move it backwards.
    connection.cursor().executemany(
        "INSERT INTO sink_offsets (consumer_group, topic, kafka_partition, next_offset) "
        "VALUES (%s, %s, %s, %s) ON CONFLICT (consumer_group, topic, kafka_partition) DO UPDATE "
        "SET next_offset = GREATEST(sink_offsets.next_offset, EXCLUDED.next_offset), updated_at = now()",
        [(group, topic, partition, offset) for (topic, partition), offset in offsets.items()],
    )


class _EventRejectedError(Exception):
    """One command of a source event was rejected: the event's savepoint is rolled back."""

    def __init__(self, record: CommandRecord, rejection: CommandRejectedError) -> None:
        super().__init__(str(rejection))
        self.record = record
        self.rejection = rejection


def _unavailable(exc: psycopg.Error) -> LedgerUnavailableError:
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return LedgerUnavailableError(f"the ledger database went away ({first})")
