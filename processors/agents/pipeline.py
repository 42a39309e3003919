"""One record through the stages: decode → dedupe → enrich → policy → reconcile → recognise.

Synchronous and pure apart from two effects it is handed: the batch's :class:`StateBatch` (reads
see earlier records of the batch) and the :class:`OutputProducer` (records queued, delivered by
the caller per batch). A record's outputs and state updates are collected first and applied only
when every stage succeeded; a stage that fails sends the original record to *its* dead-letter
topic instead, with the error, and nothing else of that record is emitted. An unexpected error
is a dead letter of its stage too (reason ``PROCESSING_ERROR``): a poison record never blocks its
partition and never stops the worker.

A record that passed dedupe and is then dead-lettered has its dedupe entry removed, so that
replaying it from the dead-letter topic is processed rather than dropped as a duplicate.

Reconciliation mismatches are reported by :meth:`Pipeline.finish`, once per key the batch
touched, after every record of the batch was counted (``processors/agents/recon.py``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from processors.agents.decode import Decoded, DecodeFailure, EventDecoder
from processors.agents.dedupe import DEDUPE, DedupeEntry, Verdict, judge
from processors.agents.holds import HoldOutcome, Holds
from processors.agents.ledger import Transition, missing_dependencies, recognise, reconcile
from processors.agents.master import REFERENCE_KINDS, MasterData
from processors.agents.recon import report_batch, track_parked_usage
from processors.agents.retry import Parked, next_attempt, park_headers
from processors.errors import (
    DependencyMissingError,
    DuplicateIdConflictError,
    InvalidPeriodError,
    MasterKeyError,
    MissingAmountError,
    ProcessingError,
    RuleInputError,
    UnbalancedEntryError,
    UnpostableLineError,
)
from processors.metrics import BatchTally
from processors.outputs import OutputProducer
from processors.rules import policy
from processors.rules.dedupe import fingerprint
from processors.rules.enrich import missing_master_data
from processors.rules.reconcile import ReconKey, SourcePosition
from schemas.models import AvroRecord, EventEnvelope
from streams.deadletter import RECORD_TOO_LARGE, Failure, SourceRecord, dead_letter_record, oversized
from streams.errors import SerdeError
from streams.queue_settings import load_queue_settings
from streams.serde import AvroSerde
from streams.settings import WorkerSettings
from streams.topics import TopicCatalog

__all__ = ["BatchContext", "Pipeline"]

logger = logging.getLogger(__name__)

DUPLICATE_ID_CONFLICT: Final = "DUPLICATE_ID_CONFLICT"
MASTER_DATA_MISSING: Final = "MASTER_DATA_MISSING"
INVOICE_NOT_FOUND: Final = "INVOICE_NOT_FOUND"
PROCESSING_ERROR: Final = "PROCESSING_ERROR"
REFERENCE_FIRST_RETRY: Final = timedelta(milliseconds=200)
UNREADABLE_MASTER_DATA: Final = "UNREADABLE_MASTER_DATA"
INVALID_MASTER_KEY: Final = "INVALID_MASTER_KEY"

_RULE_REASONS: Final[tuple[tuple[type[ProcessingError], str], ...]] = (
    (UnbalancedEntryError, "UNBALANCED_ENTRY"),
    (InvalidPeriodError, "INVALID_PERIOD"),
    (MissingAmountError, "MISSING_AMOUNT"),
    (UnpostableLineError, "UNPOSTABLE_LINE"),
    (RuleInputError, "INVALID_RULE_INPUT"),
)

Headers = Sequence[tuple[str, bytes | None]]


def rule_reason(exc: BaseException) -> str:
    """Return the dead-letter reason of an error a rule raised (``PROCESSING_ERROR`` when unexpected)."""
    for error_type, reason in _RULE_REASONS:
        if isinstance(exc, error_type):
            return reason
    return PROCESSING_ERROR


@dataclass
class BatchContext:
    """What one batch accumulates besides its outputs: counts and per-record latencies."""

    state: Any
    """The batch's :class:`processors.state.StateBatch`."""
    tally: BatchTally = field(default_factory=BatchTally.empty)
    event_times: list[float] = field(default_factory=list)
    """Event times (epoch seconds) of records that produced outputs or finished."""
    ingest_times: list[float] = field(default_factory=list)
    """Kafka timestamps (epoch seconds) of the same records."""
    touched: dict[tuple[int, ReconKey], tuple[EventEnvelope, bool]] = field(default_factory=dict)
    """(partition, reconciliation key) → the last event of the batch that changed it, and whether
    its difference departed from the reported one at any point of the batch."""


class _StageFailedError(Exception):
    def __init__(self, stage: str, reason: str, cause: BaseException) -> None:
        super().__init__(f"{stage}: {reason}")
        self.stage = stage
        self.reason = reason
        self.cause = cause


class Pipeline:
    """The stages of one worker, bound to its catalog, master data, serde and producer."""

    def __init__(
        self,
        *,
        catalog: TopicCatalog,
        worker: WorkerSettings,
        group_id: str,
        decoder: EventDecoder,
        serde: AvroSerde,
        master: MasterData,
        outputs: OutputProducer,
        holds: Holds | None = None,
    ) -> None:
        self.catalog = catalog
        self.worker = worker
        self.group_id = group_id
        self.decoder = decoder
        self.serde = serde
        self.codec = decoder.codec
        self.master = master
        self.outputs = outputs
        self.holds = holds or Holds(load_queue_settings().approval_levels, catalog, self.codec, outputs)
        self._dlq = {stage: catalog.deadletter_topic(stage) for stage in ("decode", "dedupe", "enrich")}

    # -- entry points ---------------------------------------------------------------------------

    def process(self, message: Any, ctx: BatchContext) -> None:
        """Run one record read from a canonical topic through every stage."""
        topic, partition, offset = message.topic, message.partition, message.offset
        source = _source(message)
        if (too_large := oversized(source)) is not None:  # it could be neither parked nor kept whole
            self._dead_letter(ctx, source, "decode", RECORD_TOO_LARGE, too_large)
            return
        decoded = self.decoder.decode(message.value, topic, partition, offset)
        if isinstance(decoded, DecodeFailure):
            self._dead_letter(ctx, source, "decode", decoded.reason, decoded.error)
            return
        now_ms = _millis(message.timestamp)
        try:
            digest = fingerprint(decoded.record)
            raw = ctx.state.get(DEDUPE, partition, decoded.event.event_id.encode())
            entry = DedupeEntry.decode(raw) if raw is not None else None
            verdict, remember = judge(
                entry, digest, now_ms, self.worker.dedupe_horizon, (topic, partition, offset)
            )
        except Exception as exc:
            self._dead_letter(ctx, source, "dedupe", PROCESSING_ERROR, exc)
            return
        if verdict is Verdict.DROP:
            ctx.tally.processed["dedupe", "dropped"] += 1
            return
        if verdict is Verdict.CONFLICT:
            conflict = DuplicateIdConflictError(
                f"event id {decoded.event.event_id} was seen with another payload; the first one stands"
            )
            self._dead_letter(ctx, source, "dedupe", DUPLICATE_ID_CONFLICT, conflict)
            return
        ctx.tally.processed["dedupe", "redelivered" if verdict is Verdict.REDELIVERED else "passed"] += 1
        if remember is not None:
            ctx.state.put(DEDUPE, partition, decoded.event.event_id.encode(), remember.encode())
        self._after_dedupe(decoded, message, source, None, now_ms, ctx)

    def process_master(self, message: Any, ctx: BatchContext) -> None:
        """Apply one master-data record (newer wins); an unreadable one is dead-lettered at decode."""
        source = _source(message)
        if (too_large := oversized(source)) is not None:  # its changelog record could not be written
            self._dead_letter(ctx, source, "decode", RECORD_TOO_LARGE, too_large)
            return
        try:
            applied = self.master.apply(message, ctx.state)
        except (SerdeError, MasterKeyError) as exc:
            reason = INVALID_MASTER_KEY if isinstance(exc, MasterKeyError) else UNREADABLE_MASTER_DATA
            self._dead_letter(ctx, source, "decode", reason, exc)
            return
        ctx.tally.processed["master", "applied" if applied else "older"] += 1

    def process_parked(
        self, message: Any, parked: Parked, original_headers: Headers, ctx: BatchContext
    ) -> None:
        """Try a parked record again (it is due): enrich and the stages after it."""
        source = SourceRecord(
            parked.topic,
            parked.partition,
            parked.offset,
            message.key,
            message.value,
            _headers(original_headers),
        )
        if (too_large := oversized(source)) is not None:  # parking it again would fail
            self._dead_letter(ctx, source, "enrich", RECORD_TOO_LARGE, too_large, parked)
            return
        decoded = self.decoder.decode(message.value, parked.topic, parked.partition, parked.offset)
        if isinstance(decoded, DecodeFailure):
            self._dead_letter(ctx, source, "decode", decoded.reason, decoded.error)
            return
        ctx.tally.processed["retry", "attempted"] += 1
        self._after_dedupe(decoded, message, source, parked, int(time.time() * 1000), ctx)

    def dead_letter_invalid(self, message: Any, exc: BaseException, reason: str, ctx: BatchContext) -> None:
        """Dead-letter a retry-topic record that cannot be retried (stage ``enrich``)."""
        self._dead_letter(ctx, _source(message), "enrich", reason, exc)

    # -- the stages after dedupe ------------------------------------------------------------------

    def _after_dedupe(
        self,
        decoded: Decoded,
        message: Any,
        source: SourceRecord,
        parked: Parked | None,
        now_ms: int,
        ctx: BatchContext,
    ) -> None:
        event = decoded.event
        partition = message.partition

        def read(table: str, key: bytes) -> bytes | None:
            value: bytes | None = ctx.state.get(table, partition, key)
            return value

        out = Transition()
        held = HoldOutcome()
        try:
            missing = self._stage("enrich", lambda: missing_master_data(event, self.master.view))
            if not missing:
                out.exceptions = self._stage("policy", lambda: policy.check(event, self.master.view))
                held = self._stage("policy", lambda: self.holds.apply(event, read, source, out))
            if not missing and not out.exceptions and not held.done:
                missing = self._stage("recognise", lambda: missing_dependencies(event, read))
            if missing:
                self._park(message, source, event, parked, missing, ctx)
                return
            if not out.exceptions and not held.done:
                position, retried = _position(source), parked is not None
                tolerance = self.worker.reconciliation_tolerance
                self._stage("reconcile", lambda: reconcile(event, read, position, retried, tolerance, out))
                self._stage("recognise", lambda: recognise(event, read, out))
        except _StageFailedError as failed:
            self._forget(event, source, ctx)
            self._dead_letter(ctx, source, failed.stage, failed.reason, failed.cause, parked)
            return
        self._emit(event, message, out, ctx)
        self.holds.deliver(held, ctx.tally)

    @staticmethod
    def _stage(stage: str, run: Any) -> Any:
        try:
            return run()
        except Exception as exc:
            raise _StageFailedError(stage, rule_reason(exc), exc) from exc

    def _emit(self, event: EventEnvelope, message: Any, out: Transition, ctx: BatchContext) -> None:
        key = event.customer_id.encode()
        partition = message.partition
        for exception in out.exceptions:
            self._produce_model(self.catalog.exceptions_topic, key, exception)
            ctx.tally.exceptions[exception.reason_code.value] += 1
        for command in out.commands:
            self._produce_model(self.catalog.commands_topic, key, command)
            ctx.tally.commands[command.command_type.value] += 1
        for table, state_key, value in out.updates:
            ctx.state.put(table, partition, state_key, value)
        for recon, departed in out.touched:
            earlier = ctx.touched.get((partition, recon))
            ctx.touched[partition, recon] = (event, departed or (earlier is not None and earlier[1]))
        outcome = "exception" if out.exceptions and not out.commands else "passed"
        ctx.tally.processed["recognise", outcome] += 1
        ctx.event_times.append(event.occurred_at.timestamp())
        ctx.ingest_times.append(message.timestamp or time.time())

    def finish(self, ctx: BatchContext) -> None:
        """Report each reconciliation key the batch touched once (before its outputs are awaited)."""
        for exception in report_batch(ctx.touched, ctx.state, self.worker.reconciliation_tolerance):
            self._produce_model(self.catalog.exceptions_topic, exception.customer_id.encode(), exception)
            ctx.tally.exceptions[exception.reason_code.value] += 1
        ctx.touched.clear()

    def _produce_model(self, topic: str, key: bytes, record: AvroRecord) -> None:
        self.outputs.produce(topic, key, self.codec.encode(topic, record))

    # -- parking and dead letters -----------------------------------------------------------------

    def _park(
        self,
        message: Any,
        source: SourceRecord,
        event: EventEnvelope,
        parked: Parked | None,
        missing: Sequence[str],
        ctx: BatchContext,
    ) -> None:
        now_ms = int(time.time() * 1000)
        master_missing = any(not item.startswith("invoice") for item in missing)
        reason = MASTER_DATA_MISSING if master_missing else INVOICE_NOT_FOUND
        upcoming = next_attempt(
            parked,
            missing=missing,
            reason=reason,
            now_ms=now_ms,
            origin=(source.topic, source.partition, source.offset),
            max_attempts=self.worker.master_retry_attempts,
            base=self.worker.master_retry_backoff,
            cap=self.worker.master_retry_backoff_max,
            # Reference data has its own reader, which may be one fetch behind an event published
            # right after the product it names: look again soon before backing off.
            first_delay=REFERENCE_FIRST_RETRY if all(_is_reference(item) for item in missing) else None,
        )
        if upcoming is None:
            attempts = 1 if parked is None else parked.attempt + 1
            exc = DependencyMissingError(
                f"still missing after {attempts} attempts: {', '.join(missing)}; publish it, then "
                f"`revstream dlq replay --reason {reason}`"
            )
            self._forget(event, source, ctx)
            track_parked_usage(ctx.state, event, _position(source), dead_lettered=True)
            stage = "enrich" if master_missing else "recognise"
            self._dead_letter(ctx, source, stage, reason, exc, parked, attempts=attempts)
            return
        headers = park_headers(source.headers, upcoming)
        # The same partition number: the retry topic is co-partitioned, so the record comes back to
        # whichever worker owns this customer's state then.
        self.outputs.produce(self.catalog.retry_topic, message.key, message.value, headers, source.partition)
        ctx.tally.processed["enrich", "parked"] += 1
        if parked is None:
            # Its copy counts when it comes back only while registered (processors/agents/recon.py).
            track_parked_usage(ctx.state, event, _position(source), dead_lettered=False)

    def _forget(self, event: EventEnvelope, source: SourceRecord, ctx: BatchContext) -> None:
        key = event.event_id.encode()
        raw = ctx.state.get(DEDUPE, source.partition, key)
        if raw is None:
            return
        try:
            entry = DedupeEntry.decode(raw)
        except Exception:  # an unreadable entry is replaced by the next sighting anyway
            return
        if entry.same_record(source.topic, source.partition, source.offset):
            ctx.state.put(DEDUPE, source.partition, key, None)

    def _dead_letter(
        self,
        ctx: BatchContext,
        source: SourceRecord,
        stage: str,
        reason: str,
        exc: BaseException,
        parked: Parked | None = None,
        attempts: int | None = None,
    ) -> None:
        first = None
        if parked is not None:
            first = datetime.fromtimestamp(parked.first_failure_ms / 1000, UTC)
        failure = Failure.from_exception(
            stage,
            reason,
            exc,
            consumer_group=self.group_id,
            attempt=attempts if attempts is not None else (parked.attempt + 1 if parked else 1),
            first_failure_at=first,
        )
        topic = self._dlq.get(stage) or self.catalog.deadletter_topic(stage)
        letter = dead_letter_record(source, failure)
        self.outputs.produce(topic, letter.key, letter.value, letter.headers)
        ctx.tally.dead_letters[stage, letter.reason_code] += 1
        ctx.tally.processed[stage, "dead_lettered"] += 1
        if reason != PROCESSING_ERROR:
            logger.debug("dead letter %s/%s: %s", stage, reason, exc)
        else:
            logger.warning(
                "record %s[%d]@%d failed in %s and was dead-lettered: %r",
                source.topic,
                source.partition,
                source.offset,
                stage,
                exc,
            )


def _is_reference(missing: str) -> bool:
    return missing.split(":", 1)[0] in REFERENCE_KINDS


def _source(message: Any) -> SourceRecord:
    return SourceRecord(
        message.topic,
        message.partition,
        message.offset,
        message.key,
        message.value,
        _headers(message.headers),
    )


def _position(source: SourceRecord) -> SourcePosition:
    # Where the record was first read: a retried record's origin, from its retry headers.
    return SourcePosition(source.topic, source.partition, source.offset)


def _headers(headers: Headers | None) -> tuple[tuple[str, bytes | None], ...]:
    # A null header value stays null in the dead letter: a replay gives back the record as read.
    return tuple(headers or ())


def _millis(timestamp_s: float | None) -> int:
    if timestamp_s is None or timestamp_s <= 0:
        return int(time.time() * 1000)
    return int(timestamp_s * 1000)
