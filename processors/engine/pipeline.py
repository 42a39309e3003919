"""One record through the stages: decode → dedupe → enrich → policy → reconcile → recognise.

Synchronous and pure apart from two effects it is handed: the batch's :class:`StateBatch` (reads
see earlier records of the batch) and the :class:`OutputProducer` (records queued, delivered by
the caller per batch). A record's outputs are collected and encoded first, and queued with its
state updates only when every stage and every encoding succeeded. When the failure is the
record's fault (:func:`processors.engine.failures.record_fault`) the original record goes to its
stage's dead-letter topic instead, with the error, and nothing else of it is emitted; any other
error propagates to :class:`processors.engine.batches.EventAgent`, which retries the batch and
then stops the worker: a broken store or a defect never dead-letters good records.

Where a record that leaves the sequence goes (the retry topic, a dead-letter topic) and what is
written there is :mod:`processors.engine.diversions`.

Reconciliation mismatches are reported by :meth:`Pipeline.finish`, once per key the batch
touched, after every record of the batch was counted (``processors/stages/mismatches.py``).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Final

from processors.engine.context import (
    BatchContext,
    Headers,
    epoch_millis_of,
    header_tuple,
    source_position,
    source_record,
)
from processors.engine.diversions import Diversions
from processors.engine.failures import record_fault
from processors.engine.outputs import OutputProducer
from processors.errors import DuplicateIdConflictError, MasterKeyError
from processors.rules import policy
from processors.rules.dedupe import fingerprint
from processors.rules.enrich import missing_master_data
from processors.rules.recognition import product_accounts
from processors.stages.accounting import (
    RECON,
    Transition,
    count_usage_and_billing,
    missing_dependencies,
    recognise,
    recon_key,
)
from processors.stages.decode import Decoded, DecodeFailure, EventDecoder
from processors.stages.dedupe import DEDUPE, DedupeEntry, Verdict, judge
from processors.stages.holds import HoldOutcome, Holds
from processors.stages.master import MasterData
from processors.stages.mismatches import report_batch
from processors.stages.retry import Parked
from schemas.models import EventEnvelope
from streams.deadletter import RECORD_TOO_LARGE, SourceRecord, oversized
from streams.errors import RegistryUnavailableError, SerdeError
from streams.queue_settings import load_queue_settings
from streams.serde import AvroSerde
from streams.settings import WorkerSettings
from streams.topics import TopicCatalog

__all__ = ["BatchContext", "Pipeline"]

logger = logging.getLogger(__name__)

DUPLICATE_ID_CONFLICT: Final = "DUPLICATE_ID_CONFLICT"
UNREADABLE_MASTER_DATA: Final = "UNREADABLE_MASTER_DATA"
INVALID_MASTER_KEY: Final = "INVALID_MASTER_KEY"


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
        self.diversions = Diversions(catalog=catalog, worker=worker, group_id=group_id, outputs=outputs)
        self._accounts_of = product_accounts(master.view.product)

    # -- entry points ---------------------------------------------------------------------------

    def process(self, message: Any, ctx: BatchContext) -> None:
        """Run one record read from a canonical topic through every stage."""
        topic, partition, offset = message.topic, message.partition, message.offset
        source = source_record(message)
        if (too_large := oversized(source)) is not None:  # it could be neither parked nor kept whole
            self.diversions.dead_letter(ctx, source, "decode", RECORD_TOO_LARGE, too_large)
            return
        decoded = self.decoder.decode(message.value, topic, partition, offset)
        if isinstance(decoded, DecodeFailure):
            self.diversions.dead_letter(ctx, source, "decode", decoded.reason, decoded.error)
            return
        now_ms = epoch_millis_of(message.timestamp)
        digest = fingerprint(decoded.record)
        raw = ctx.state.get(DEDUPE, partition, decoded.event.event_id.encode())
        entry = DedupeEntry.decode(raw) if raw is not None else None
        verdict, remember = judge(
            entry, digest, now_ms, self.worker.dedupe_horizon, (topic, partition, offset)
        )
        if verdict is Verdict.DROP:
            ctx.tally.processed["dedupe", "dropped"] += 1
            return
        if verdict is Verdict.CONFLICT:
            conflict = DuplicateIdConflictError(
                f"event id {decoded.event.event_id} was seen with another payload; the first one stands"
            )
            self.diversions.dead_letter(ctx, source, "dedupe", DUPLICATE_ID_CONFLICT, conflict)
            return
        ctx.tally.processed["dedupe", "redelivered" if verdict is Verdict.REDELIVERED else "passed"] += 1
        if remember is not None:
            ctx.state.put(DEDUPE, partition, decoded.event.event_id.encode(), remember.encode())
        self._after_dedupe(decoded, message, source, None, now_ms, ctx)

    def process_master(self, message: Any, ctx: BatchContext) -> None:
        """Apply one master-data record (newer wins); an unreadable one is dead-lettered at decode.

        Reference data (products, legal entities) is applied by every worker's own reader; read
        through the group it is only checked, so that an unreadable record is dead-lettered once.
        """
        source = source_record(message)
        if (too_large := oversized(source)) is not None:  # its changelog record could not be written
            self.diversions.dead_letter(ctx, source, "decode", RECORD_TOO_LARGE, too_large)
            return
        reference = message.topic in self.master.reference_topics
        try:
            if reference:
                self.master.check_reference(message)
                applied = True
            else:
                applied = self.master.apply(message, ctx.state)
        except RegistryUnavailableError:
            raise  # not the record's fault
        except (SerdeError, MasterKeyError) as exc:
            reason = INVALID_MASTER_KEY if isinstance(exc, MasterKeyError) else UNREADABLE_MASTER_DATA
            self.diversions.dead_letter(ctx, source, "decode", reason, exc)
            return
        outcome = "checked" if reference else ("applied" if applied else "older")
        ctx.tally.processed["master", outcome] += 1

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
            header_tuple(original_headers),
        )
        if (too_large := oversized(source)) is not None:  # parking it again would fail
            self.diversions.dead_letter(ctx, source, "enrich", RECORD_TOO_LARGE, too_large, parked)
            return
        decoded = self.decoder.decode(message.value, parked.topic, parked.partition, parked.offset)
        if isinstance(decoded, DecodeFailure):
            self.diversions.dead_letter(ctx, source, "decode", decoded.reason, decoded.error)
            return
        ctx.tally.processed["retry", "attempted"] += 1
        self._after_dedupe(decoded, message, source, parked, int(time.time() * 1000), ctx)

    def dead_letter_invalid(self, message: Any, exc: BaseException, reason: str, ctx: BatchContext) -> None:
        """Dead-letter a retry-topic record that cannot be retried (stage ``enrich``)."""
        self.diversions.dead_letter(ctx, source_record(message), "enrich", reason, exc)

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
                self.diversions.park(message, source, event, parked, missing, ctx)
                return
            if not out.exceptions and not held.done:
                position, retried = source_position(source), parked is not None
                tolerance = self.worker.reconciliation_tolerance
                self._stage(
                    "reconcile",
                    lambda: count_usage_and_billing(event, read, position, retried, tolerance, out),
                )
                self._stage("recognise", lambda: recognise(event, read, out, self._accounts_of))
            encoded = self._stage("recognise", lambda: self._encode(event, out))
        except _StageFailedError as failed:
            self.diversions.forget(event, source, ctx)
            self.diversions.dead_letter(ctx, source, failed.stage, failed.reason, failed.cause, parked)
            return
        self._emit(event, message, source, out, encoded, ctx)
        self.holds.deliver(held, ctx.tally)

    @staticmethod
    def _stage(stage: str, run: Any) -> Any:
        try:
            return run()
        except Exception as exc:
            reason = record_fault(exc)
            if reason is None:
                raise  # not the record's fault: the agent retries the batch, then stops the worker
            raise _StageFailedError(stage, reason, exc) from exc

    def _encode(self, event: EventEnvelope, out: Transition) -> list[tuple[str, bytes]]:
        # Every output of the record is encoded before any is queued: one that does not fit its
        # schema dead-letters the record whole, never half of its outputs.
        encode = self.codec.encode
        exceptions_topic, commands_topic = self.catalog.exceptions_topic, self.catalog.commands_topic
        return [
            *((exceptions_topic, encode(exceptions_topic, exception)) for exception in out.exceptions),
            *((commands_topic, encode(commands_topic, command)) for command in out.commands),
        ]

    def _emit(
        self,
        event: EventEnvelope,
        message: Any,
        source: SourceRecord,
        out: Transition,
        encoded: list[tuple[str, bytes]],
        ctx: BatchContext,
    ) -> None:
        key = event.customer_id.encode()
        partition = message.partition
        produce = self.outputs.produce
        for topic, value in encoded:
            produce(topic, key, value)
        for exception in out.exceptions:
            ctx.tally.exceptions[exception.reason_code.value] += 1
        for command in out.commands:
            ctx.tally.commands[command.command_type.value] += 1
        if out.touched:
            ctx.triggers[event.event_id] = source
        for table, state_key, value in out.updates:
            ctx.state.put(table, partition, state_key, value)
        for touched_key, departed in out.touched:
            earlier = ctx.touched.get((partition, touched_key))
            ctx.touched[partition, touched_key] = (event, departed or (earlier is not None and earlier[1]))
        outcome = "exception" if out.exceptions and not out.commands else "passed"
        ctx.tally.processed["recognise", outcome] += 1
        ctx.event_times.append(event.occurred_at.timestamp())
        ctx.ingest_times.append(message.timestamp or time.time())

    def finish(self, ctx: BatchContext) -> None:
        """Report each reconciliation key the batch touched once (before its outputs are awaited).

        A key whose report fails for its record's fault (an amount out of range, an exception that
        does not fit its schema) dead-letters the record that last changed it, at ``reconcile``:
        its revision is neither raised nor stored; the other keys report as usual.
        """
        topic, tolerance = self.catalog.exceptions_topic, self.worker.reconciliation_tolerance
        for where, touched in ctx.touched.items():
            partition, key = where
            before = ctx.state.get(RECON, partition, recon_key(key))
            try:
                raised = report_batch({where: touched}, ctx.state, tolerance)
                encoded = [(exception, self.codec.encode(topic, exception)) for exception in raised]
            except Exception as exc:
                reason = record_fault(exc)
                source = ctx.triggers.get(touched[0].event_id)
                if reason is None or source is None:
                    raise
                ctx.state.put(RECON, partition, recon_key(key), before)  # the revision was not raised
                self.diversions.dead_letter(ctx, source, "reconcile", reason, exc)
                continue
            for exception, value in encoded:
                self.outputs.produce(topic, exception.customer_id.encode(), value)
                ctx.tally.exceptions[exception.reason_code.value] += 1
        ctx.touched.clear()
        ctx.triggers.clear()
