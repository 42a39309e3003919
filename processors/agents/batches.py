"""The event agent: batches from the canonical and retry topics through the pipeline, then commit.

One batch at a time (an ``asyncio.Lock``), in four steps whose order is the delivery guarantee:

1. every record of the batch is run through the stages; outputs are queued, state updates kept in
   the batch's overlay; then each reconciliation key the batch touched reports its final standing
   difference once (at most one mismatch revision per key and batch);
2. wait until every output (commands, exceptions, dead letters, parked records) is acknowledged;
3. write the state to the local stores and queue its changelog records;
4. once those changelog records are acknowledged, acknowledge the batch's source records to Faust,
   which commits them with its next commit.

Step 4 does not wait on its own: the next batch's step 2 waits for everything produced so far,
the previous batch's changelog records included, so a batch costs one round trip to the brokers
instead of two (at a paced load, where batches are small, that wait was up to a third of a
batch). When no batch follows, the timer (or a revocation) waits for them instead.

A crash before 4 means the records are read again: outputs repeat with the same ids, and state is
either absent (recomputed from the same inputs: the same outputs) or already there (the outputs it
implies were delivered in step 2). A crash after 4 loses nothing.

Parked records read back from the retry topic before they are due wait here, unacknowledged (so
a crash re-reads them), and a timer runs them through the same lane when due; nothing waits in a
source partition, and no partition's fetching stops for them.

Fetched events wait in an :class:`processors.agents.ordering.InputBuffer` (unacknowledged) until
their turn: master data first, then timestamp order per partition number across the topics.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from processors.agents.ordering import InputBuffer
from processors.agents.pipeline import BatchContext, Pipeline
from processors.agents.retry import Parked, read_parked
from processors.errors import InvalidRetryRecordError
from processors.metrics import ProcessorMetrics
from processors.outputs import OutputProducer, PartitionOffsets
from processors.state import PartitionedTable, StateBatch
from streams.errors import RegistryUnavailableError

__all__ = ["EventAgent"]

logger = logging.getLogger(__name__)

_REGISTRY_BACKOFF_S: Final = (0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass(order=True)
class _Waiting:
    not_before_ms: int
    sequence: int
    message: Any = field(compare=False)
    parked: Parked = field(compare=False)
    headers: Sequence[tuple[str, bytes | None]] = field(compare=False)


@dataclass
class _Unacknowledged:
    """A batch whose state is written and whose changelog records may still be in flight."""

    state: StateBatch
    messages: list[Any]


@dataclass
class _Work:
    master: list[Any] = field(default_factory=list)
    fresh: list[Any] = field(default_factory=list)
    due: list[_Waiting] = field(default_factory=list)
    invalid: list[Any] = field(default_factory=list)

    @property
    def messages(self) -> list[Any]:
        return [*self.master, *self.fresh, *(w.message for w in self.due), *self.invalid]

    def __bool__(self) -> bool:
        return bool(self.master or self.fresh or self.due or self.invalid)


class EventAgent:
    """Processes batches handed over by :class:`processors.consumer.BatchConsumer`."""

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
    ) -> None:
        self.pipeline = pipeline
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
        self._waiting: list[_Waiting] = []
        self._sequence = 0
        self._lagging: Callable[[], Awaitable[dict[Any, int]]] = lagging or _nothing_lagging
        self._input = InputBuffer()
        self._unacknowledged: _Unacknowledged | None = None
        self.batch_size = batch_size

    async def on_batch(self, batches: Mapping[Any, list[Any]]) -> None:
        """Process one fetch's records (``{TP: [message]}``) and acknowledge them."""
        work = _Work()
        now_ms = int(time.time() * 1000)
        master_topics = self.pipeline.master.kind_of_topic
        for tp, messages in batches.items():
            if tp.topic in master_topics:
                work.master.extend(messages)
            elif tp.topic != self.retry_topic:
                self._input.add(tp, messages)
        async with self._in_order:
            work.fresh = await self._release()
            self._take_retry_records(batches, work, now_ms)
            await self._run_in_chunks(work)

    def _take_retry_records(self, batches: Mapping[Any, list[Any]], work: _Work, now_ms: int) -> None:
        for tp, messages in batches.items():
            if tp.topic != self.retry_topic:
                continue
            for message in messages:
                headers, parked = read_parked(message.headers)
                if parked is None:
                    work.invalid.append(message)
                    continue
                waiting = _Waiting(parked.not_before_ms, self._next(), message, parked, headers)
                if parked.not_before_ms <= now_ms:
                    work.due.append(waiting)
                else:
                    heapq.heappush(self._waiting, waiting)
        self.metrics.parked_in_memory.set(len(self._waiting))

    async def _run_in_chunks(self, work: _Work) -> None:
        # Events held back while master data caught up come out at once: run them in batches of
        # the configured size, so that no single batch holds the whole backlog.
        size = self.batch_size
        first = _Work(master=work.master, fresh=work.fresh[:size], due=work.due, invalid=work.invalid)
        if first:
            await self._run(first)
        for start in range(size, len(work.fresh), size):
            await self._run(_Work(fresh=work.fresh[start : start + size]))

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
        """
        if self._unacknowledged is not None and not self._lane.locked():
            async with self._lane:
                self._acknowledge(await self.outputs.delivered())
        async with self._in_order:
            released = await self._release()
            if released:
                await self._run_in_chunks(_Work(fresh=released))
        now_ms = int(time.time() * 1000)
        if not self._waiting or self._waiting[0].not_before_ms > now_ms:
            return
        work = _Work()
        while self._waiting and self._waiting[0].not_before_ms <= now_ms:
            work.due.append(heapq.heappop(self._waiting))
        self.metrics.parked_in_memory.set(len(self._waiting))
        await self._run(work)

    async def on_revoked(self, revoked: set[Any]) -> None:
        """Finish the batch in progress and forget parked records of partitions no longer ours."""
        async with self._lane:
            self._input.drop(revoked)
            kept = [w for w in self._waiting if (w.message.topic, w.message.partition) not in _pairs(revoked)]
            self._waiting = kept
            heapq.heapify(self._waiting)
            self.metrics.parked_in_memory.set(len(self._waiting))
            # Nothing of a revoked partition may reach a changelog after its new owner restored it.
            self._acknowledge(await self.outputs.delivered())

    def _next(self) -> int:
        self._sequence += 1
        return self._sequence

    async def _run(self, work: _Work) -> None:
        async with self._lane:
            for attempt in range(len(_REGISTRY_BACKOFF_S) + 1):
                try:
                    await self._run_once(work)
                    self._input.rearm()
                    return
                except RegistryUnavailableError as exc:
                    if attempt == len(_REGISTRY_BACKOFF_S):
                        raise
                    delay = _REGISTRY_BACKOFF_S[attempt]
                    logger.warning("schema registry unavailable (%s); retrying the batch in %gs", exc, delay)
                    await asyncio.sleep(delay)

    async def _run_once(self, work: _Work) -> None:
        started = time.perf_counter()
        pipeline = self.pipeline
        pipeline.decoder.prefetch(message.value for message in [*work.fresh, *(w.message for w in work.due)])
        ctx = BatchContext(state=StateBatch(self.tables))
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
        # This batch's outputs, and the previous batch's changelog records (its step 4).
        self._acknowledge(await self.outputs.delivered())
        if len(ctx.state):
            ctx.state.write(self.outputs)
        self._unacknowledged = _Unacknowledged(ctx.state, work.messages)
        self._observe(ctx, len(work.messages), time.perf_counter() - started)

    def _acknowledge(self, delivered: PartitionOffsets) -> None:
        """Step 4 of the batch waiting for it: everything produced so far is ``delivered``."""
        waiting, self._unacknowledged = self._unacknowledged, None
        if waiting is None:
            return
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
