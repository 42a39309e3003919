"""The event agent: batches from the canonical and retry topics through the pipeline, then commit.

One batch at a time (an ``asyncio.Lock``), in four steps whose order is the delivery guarantee:

1. every record of the batch is run through the stages; outputs are queued, state updates kept in
   the batch's overlay (which reads through the previous batch's, not yet in the local stores);
   then each reconciliation key the batch touched reports its final standing difference once (at
   most one mismatch revision per key and batch);
2. wait until every output (commands, exceptions, dead letters, parked records) is acknowledged;
3. queue the state's changelog records (the overlay stays in memory);
4. once those changelog records are acknowledged, write the state to the local stores, then
   acknowledge the batch's source records to Faust, which commits them with its next commit.

Step 4 does not wait on its own: the next batch's step 2 waits for everything produced so far,
the previous batch's changelog records included, so a batch costs one round trip to the brokers
instead of two (at a paced load, where batches are small, that wait was up to a third of a
batch). When no batch follows, the timer (or a revocation) waits for them instead.

A crash before 4 means the records are read again: outputs repeat with the same ids, and state is
either absent (recomputed from the same inputs: the same outputs) or already in the changelog
(the outputs it implies were delivered in step 2; Faust's recovery copies it into the store).
The local store never holds an update its changelog lacks, so a partition restored elsewhere
ends the same as the store it came from. A crash after 4 loses nothing.

Parked records read back from the retry topic before they are due wait here, unacknowledged (so
a crash re-reads them), and a timer runs them through the same lane when due; nothing waits in a
source partition, and no partition's fetching stops for them.

Fetched events wait in an :class:`processors.engine.ordering.InputBuffer` (unacknowledged) until
their turn: master data first, then timestamp order per partition number across the topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, NoReturn

from processors.engine.context import BatchContext
from processors.engine.failures import (
    FAILURE_BACKOFF,
    FAILURE_BACKOFF_MAX,
    WorkerStoppedError,
    systemic_failure,
)
from processors.engine.ordering import InputBuffer
from processors.engine.outputs import OutputProducer, PartitionOffsets
from processors.engine.pipeline import Pipeline
from processors.engine.state import PartitionedTable, StateBatch
from processors.engine.work import BufferLimits, FailurePolicy, Unacknowledged, Waiting, Work
from processors.errors import InvalidRetryRecordError, OutputDeliveryError
from processors.metrics import ProcessorMetrics
from processors.stages.retry import backoff, read_parked

__all__ = ["BufferLimits", "EventAgent", "FailurePolicy"]

logger = logging.getLogger(__name__)


class EventAgent:
    """Processes batches handed over by :class:`processors.engine.consumer.BatchConsumer`."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        tables: Sequence[PartitionedTable],
        outputs: OutputProducer,
        metrics: ProcessorMetrics,
        retry_topic: str,
        ack: Any,
        lagging: Any = None,
        batch_size: int = 5000,
        policy: FailurePolicy | None = None,
        prepare: Callable[[], None] | None = None,
        on_fatal: Callable[[str], None] | None = None,
        limits: BufferLimits | None = None,
        pause: Callable[[set[Any]], None] | None = None,
        resume: Callable[[set[Any]], None] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.policy = policy or FailurePolicy()
        self.limits = limits or BufferLimits()
        self._pause = pause
        self._resume = resume
        self._paused: set[Any] = set()
        self._retry_partitions: set[Any] = set()
        self._prepare = prepare
        self._on_fatal = on_fatal
        self.tables = list(tables)
        self.outputs = outputs
        self.metrics = metrics
        self.retry_topic = retry_topic
        self._ack = ack
        self._lane = asyncio.Lock()
        # Held by a release and the batches it releases: a release by the timer must not overtake
        # the later chunks of an earlier release, since a partition's records are processed in offset
        # order (reconciliation counts usage by offset watermark, processors/rules/reconcile.py).
        self._in_order = asyncio.Lock()
        self._waiting: list[Waiting] = []
        self._sequence = 0
        self._lagging: Callable[[], Awaitable[dict[Any, int]]] = lagging or _nothing_lagging
        self._input = InputBuffer()
        self._unacknowledged: Unacknowledged | None = None
        self.batch_size = batch_size
        # Revocations so far, and the partitions each took: records taken before one (a later chunk
        # of a release, due records popped by the timer) must not run once their partition is gone.
        self._generation = 0
        self._revocations: list[tuple[int, set[tuple[str, int]]]] = []

    async def on_batch(self, batches: Mapping[Any, list[Any]]) -> None:
        """Process one fetch's records (``{TP: [message]}``) and acknowledge them.

        Raises:
            WorkerStoppedError: when the worker must stop (after ``on_fatal`` was called).
        """
        async with self._fatal_on_escape("processing a fetch"):
            await self._on_batch(batches)

    @contextlib.asynccontextmanager
    async def _fatal_on_escape(self, doing: str) -> AsyncIterator[None]:
        # An exception escaping into Faust's fetch loop or timer would leave a worker that runs but
        # no longer fetches (or no longer retries): stop it instead, in one line.
        try:
            yield
        except WorkerStoppedError:
            raise
        except Exception as exc:
            self._stop(f"{doing} failed with {type(exc).__name__}: {exc}")

    async def _on_batch(self, batches: Mapping[Any, list[Any]]) -> None:
        work = Work(generation=self._generation)
        now_ms = int(time.time() * 1000)
        master = self.pipeline.master
        for tp, messages in batches.items():
            if tp.topic in master.kind_of_topic or tp.topic in master.reference_topics:
                work.master.extend(messages)
            elif tp.topic != self.retry_topic:
                self._input.add(tp, messages)
        async with self._in_order:
            work.fresh = await self._release()
            self._take_retry_records(batches, work, now_ms)
            self._apply_back_pressure()
            await self._run_in_chunks(work)
        self._apply_back_pressure()

    def _take_retry_records(self, batches: Mapping[Any, list[Any]], work: Work, now_ms: int) -> None:
        latest_ms = now_ms + self.limits.longest_wait_ms
        for tp, messages in batches.items():
            if tp.topic != self.retry_topic:
                continue
            self._retry_partitions.add(tp)
            for message in messages:
                headers, parked = read_parked(message.headers)
                if parked is None:
                    work.invalid.append(message)
                    continue
                # No back-off is longer than the configured maximum: a due time further ahead was
                # not written by a worker and would hold the record in memory for good.
                due_ms = min(parked.not_before_ms, latest_ms)
                waiting = Waiting(due_ms, self._next(), message, parked, headers)
                if due_ms <= now_ms:
                    work.due.append(waiting)
                else:
                    heapq.heappush(self._waiting, waiting)
        self.metrics.parked_in_memory.set(len(self._waiting))

    async def _run_in_chunks(self, work: Work) -> None:
        # Events held back while master data caught up come out at once: run them in batches of
        # the configured size, so that no single batch holds the whole backlog.
        size = self.batch_size
        first = Work(
            master=work.master,
            fresh=work.fresh[:size],
            due=work.due,
            invalid=work.invalid,
            generation=work.generation,
        )
        if first:
            await self._run(first)
        for start in range(size, len(work.fresh), size):
            await self._run(Work(fresh=work.fresh[start : start + size], generation=work.generation))

    async def _release(self) -> list[Any]:
        if not len(self._input):
            return []
        behind = await self._lagging()
        master_topics = self.pipeline.master.kind_of_topic
        reference_behind = not self.pipeline.master.feed.caught_up
        master_behind = {tp.partition for tp in behind if tp.topic in master_topics}
        events_behind = {tp: lag for tp, lag in behind.items() if tp.topic not in master_topics}
        return self._input.release(events_behind, reference_behind, master_partitions=master_behind)

    async def run_due(self) -> None:
        """Run held-back events once master data caught up, and parked records that are due (a timer).

        Also finishes the last batch when no other followed it (its step 4).

        Raises:
            WorkerStoppedError: when the worker must stop (after ``on_fatal`` was called).
        """
        async with self._fatal_on_escape("running due records"):
            await self._run_due()
            self._apply_back_pressure()

    async def _run_due(self) -> None:
        if self._unacknowledged is not None and not self._lane.locked():
            async with self._lane:
                self._acknowledge(await self._delivered())
        async with self._in_order:
            generation = self._generation
            released = await self._release()
            if released:
                await self._run_in_chunks(Work(fresh=released, generation=generation))
        now_ms = int(time.time() * 1000)
        if not self._waiting or self._waiting[0].not_before_ms > now_ms:
            return
        work = Work(generation=self._generation)
        while self._waiting and self._waiting[0].not_before_ms <= now_ms:
            work.due.append(heapq.heappop(self._waiting))
        self.metrics.parked_in_memory.set(len(self._waiting))
        await self._run(work)

    async def on_revoked(self, revoked: set[Any]) -> None:
        """Finish the batch in progress and forget parked records of partitions no longer ours.

        Records of those partitions taken before (later chunks of a release in progress, due
        records the timer popped) are dropped when their turn comes (:meth:`_run`), unacknowledged:
        the partition's next owner reads them from the committed offset.
        """
        async with self._lane:
            self._generation += 1
            self._paused -= revoked
            self._retry_partitions -= revoked
            self._revocations = [*self._revocations[-15:], (self._generation, _pairs(revoked))]
            self._input.drop(revoked)
            kept = [w for w in self._waiting if (w.message.topic, w.message.partition) not in _pairs(revoked)]
            self._waiting = kept
            heapq.heapify(self._waiting)
            self.metrics.parked_in_memory.set(len(self._waiting))
            # Nothing of a revoked partition may reach a changelog after its new owner restored it.
            self._acknowledge(await self._delivered())

    def _apply_back_pressure(self) -> None:
        """Pause the partitions whose records pile up in memory; resume them once they drained."""
        if self._pause is None or self._resume is None:
            return
        limits = self.limits
        over = {tp for tp, held in self._input.held_per_partition().items() if held >= limits.per_partition}
        if len(self._waiting) >= limits.parked:
            over |= self._retry_partitions
        pause, resume = over - self._paused, self._paused - over
        if pause:
            logger.info("pausing %d partition(s) whose records wait in memory", len(pause))
            self._pause(pause)
        if resume:
            self._resume(resume)
        self._paused = over
        self.metrics.paused_partitions.set(len(over))

    def _next(self) -> int:
        self._sequence += 1
        return self._sequence

    def _still_ours(self, work: Work) -> Work:
        if work.generation == self._generation:
            return work
        revoked: set[tuple[str, int]] = set()
        for generation, pairs in self._revocations:
            if generation > work.generation:
                revoked |= pairs
        return work.without(revoked)

    async def _run(self, work: Work) -> None:
        async with self._lane:
            work = self._still_ours(work)
            if not work:
                return
            attempts = self.policy.attempts
            for attempt in range(1, attempts + 1):
                try:
                    if self._prepare is not None:
                        # Output schema ids, resolved before the first batch: no batch needs the
                        # registry half-way through (a retry would produce its outputs again).
                        self._prepare()
                        self._prepare = None
                    await self._run_once(work)
                    self._input.rearm()
                    return
                except WorkerStoppedError:
                    raise
                except OutputDeliveryError as exc:
                    # librdkafka already retried these for message.timeout.ms: nothing to gain here.
                    self._stop(str(exc))
                except Exception as exc:
                    # Not a record's fault (those are dead letters, processors/engine/failures.py):
                    # the store, the broker, the registry or the worker itself.
                    if attempt == attempts:
                        self._stop(f"a batch failed {attempts} times, last with {type(exc).__name__}: {exc}")
                    delay = backoff(attempt, FAILURE_BACKOFF, FAILURE_BACKOFF_MAX).total_seconds()
                    logger.warning(
                        "batch of %d records failed (%s: %s); attempt %d of %d in %gs",
                        len(work.messages),
                        type(exc).__name__,
                        exc,
                        attempt + 1,
                        attempts,
                        delay,
                    )
                    await asyncio.sleep(delay)

    def _stop(self, reason: str) -> NoReturn:
        """Stop the worker (one line, non-zero exit) through ``on_fatal``; raise if it returns."""
        one_line = " ".join(reason.split())
        logger.error("worker stops: %s", one_line)
        if self._on_fatal is not None:
            self._on_fatal(one_line)
        raise WorkerStoppedError(one_line)

    async def _delivered(self) -> PartitionOffsets:
        try:
            return await self.outputs.delivered()
        except OutputDeliveryError as exc:
            self._stop(str(exc))

    async def _run_once(self, work: Work) -> None:
        started = time.perf_counter()
        pipeline = self.pipeline
        pipeline.decoder.prefetch(message.value for message in [*work.fresh, *(w.message for w in work.due)])
        previous = self._unacknowledged
        ctx = BatchContext(state=StateBatch(self.tables, beneath=previous.state if previous else None))
        for message in work.master:
            pipeline.process_master(message, ctx)
        for message in work.fresh:
            pipeline.process(message, ctx)
        for waiting in work.due:
            pipeline.process_parked(waiting.message, waiting.parked, waiting.headers, ctx)
        for message in work.invalid:
            exc = InvalidRetryRecordError(
                "record on the retry topic has no complete revstream.retry.* headers; it was not parked by "
                "a revstream worker"
            )
            pipeline.dead_letter_invalid(message, exc, "INVALID_RETRY_RECORD", ctx)
        # Mismatches once per touched key, part of this batch's outputs and state (steps 2 and 3).
        pipeline.finish(ctx)
        policy = self.policy
        systemic = systemic_failure(
            ctx.tally.dead_letters, len(work.messages), policy.share_max, policy.min_records
        )
        if systemic is not None:
            self._stop(systemic)
        # This batch's outputs, and the previous batch's changelog records (its step 4).
        self._acknowledge(await self.outputs.delivered())
        ctx.state.detach()
        if len(ctx.state):
            ctx.state.changelog(self.outputs)
        self._unacknowledged = Unacknowledged(ctx.state, work.messages)
        self._observe(ctx, len(work.messages), time.perf_counter() - started)

    def _acknowledge(self, delivered: PartitionOffsets) -> None:
        """Step 4 of the batch waiting for it: everything produced so far is ``delivered``."""
        waiting, self._unacknowledged = self._unacknowledged, None
        if waiting is None:
            return
        # Its changelog records are delivered: only now may the local stores hold the updates.
        waiting.state.write()
        waiting.state.persist(delivered)
        for message in waiting.messages:
            self._ack(message)

    def _observe(self, ctx: BatchContext, records: int, seconds: float) -> None:
        metrics = self.metrics
        metrics.add(ctx.tally)
        metrics.batch_size.observe(records)
        metrics.batch_seconds.observe(seconds)
        now = time.time()
        event_latency = metrics.latency_event_time.observe
        for moment in ctx.event_times:
            event_latency(max(now - moment, 0.0))
        ingest_latency = metrics.latency_ingest_time.observe
        for moment in ctx.ingest_times:
            ingest_latency(max(now - moment, 0.0))


async def _nothing_lagging() -> dict[Any, int]:
    return {}


def _timestamp(message: Any) -> float:
    return float(message.timestamp or 0.0)


def _pairs(tps: set[Any]) -> set[tuple[str, int]]:
    return {(tp.topic, tp.partition) for tp in tps}
