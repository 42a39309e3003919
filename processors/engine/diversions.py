"""Records that leave the stage sequence: parked on the retry topic, or dead-lettered whole.

:class:`processors.engine.pipeline.Pipeline` decides *that* a record goes here; this module builds
what is written: the parked copy (original key, value and headers plus ``revstream.retry.*``, to
the same partition number of the co-partitioned retry topic, so the record comes back to the
worker that owns its customer then) or the dead letter (original record plus the failure's
headers, ``streams/deadletter.py``), and counts it in the batch's tally. A record dead-lettered
after dedupe has its dedupe entry removed (:meth:`Diversions.forget`), so that replaying it from the
dead-letter topic is processed rather than dropped as a duplicate.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from processors.engine.context import BatchContext, source_position
from processors.engine.outputs import OutputProducer
from processors.errors import DependencyMissingError
from processors.stages.accounting import dependency_reason
from processors.stages.dedupe import DEDUPE, DedupeEntry
from processors.stages.master import REFERENCE_KINDS
from processors.stages.mismatches import track_parked_usage
from processors.stages.retry import Parked, next_attempt, park_headers
from schemas.models import EventEnvelope
from streams.deadletter import Failure, SourceRecord, dead_letter_record
from streams.settings import WorkerSettings
from streams.topics import TopicCatalog

__all__ = ["MASTER_DATA_MISSING", "REFERENCE_FIRST_RETRY", "Diversions"]

logger = logging.getLogger(__name__)

MASTER_DATA_MISSING: Final = "MASTER_DATA_MISSING"
REFERENCE_FIRST_RETRY: Final = timedelta(milliseconds=200)


class Diversions:
    """Parking and dead-lettering for the stages of one worker."""

    def __init__(
        self, *, catalog: TopicCatalog, worker: WorkerSettings, group_id: str, outputs: OutputProducer
    ) -> None:
        self._catalog = catalog
        self._worker = worker
        self._group_id = group_id
        self._outputs = outputs
        self._dlq = {stage: catalog.deadletter_topic(stage) for stage in ("decode", "dedupe", "enrich")}

    def park(
        self,
        message: Any,
        source: SourceRecord,
        event: EventEnvelope,
        parked: Parked | None,
        missing: Sequence[str],
        ctx: BatchContext,
    ) -> None:
        """Park ``message`` on the retry topic for what is ``missing``; dead-letter it after the last try."""
        now_ms = int(time.time() * 1000)
        reasons = [dependency_reason(item) for item in missing]
        master_missing = MASTER_DATA_MISSING in reasons
        reason = MASTER_DATA_MISSING if master_missing else reasons[0]
        upcoming = next_attempt(
            parked,
            missing=missing,
            reason=reason,
            now_ms=now_ms,
            origin=(source.topic, source.partition, source.offset),
            max_attempts=self._worker.master_retry_attempts,
            base=self._worker.master_retry_backoff,
            cap=self._worker.master_retry_backoff_max,
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
            self.forget(event, source, ctx)
            track_parked_usage(ctx.state, event, source_position(source), dead_lettered=True)
            stage = "enrich" if master_missing else "recognise"
            self.dead_letter(ctx, source, stage, reason, exc, parked, attempts=attempts)
            return
        headers = park_headers(source.headers, upcoming)
        # The same partition number: the retry topic is co-partitioned, so the record comes back to
        # whichever worker owns this customer's state then.
        self._outputs.produce(
            self._catalog.retry_topic, message.key, message.value, headers, source.partition
        )
        ctx.tally.processed["enrich", "parked"] += 1
        if parked is None:
            # Its copy counts when it comes back only while registered (processors/stages/mismatches.py).
            track_parked_usage(ctx.state, event, source_position(source), dead_lettered=False)

    def forget(self, event: EventEnvelope, source: SourceRecord, ctx: BatchContext) -> None:
        """Remove the dedupe entry this very record left, so that a replay of it is processed."""
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

    def dead_letter(
        self,
        ctx: BatchContext,
        source: SourceRecord,
        stage: str,
        reason: str,
        exc: BaseException,
        parked: Parked | None = None,
        attempts: int | None = None,
    ) -> None:
        """Queue ``source`` whole to the dead-letter topic of ``stage``, the failure in its headers."""
        first = None
        if parked is not None:
            first = datetime.fromtimestamp(parked.first_failure_ms / 1000, UTC)
        failure = Failure.from_exception(
            stage,
            reason,
            exc,
            consumer_group=self._group_id,
            attempt=attempts if attempts is not None else (parked.attempt + 1 if parked else 1),
            first_failure_at=first,
        )
        topic = self._dlq.get(stage) or self._catalog.deadletter_topic(stage)
        letter = dead_letter_record(source, failure)
        self._outputs.produce(topic, letter.key, letter.value, letter.headers)
        ctx.tally.dead_letters[stage, letter.reason_code] += 1
        ctx.tally.processed[stage, "dead_lettered"] += 1
        logger.debug("dead letter %s/%s: %s", stage, reason, exc)


def _is_reference(missing: str) -> bool:
    return missing.split(":", 1)[0] in REFERENCE_KINDS
