"""Faust's consumer with a batch path for the hot topics, and true end offsets on the embedded broker.

Faust delivers every record through ``wait_first(callback(message), ...)``, a topic-conductor
lock, a channel queue and a stream iterator: measured here, that caps a worker at about 10 k
records/s before any processing, while the fetch itself runs at 100 k+. :class:`BatchConsumer`
keeps Faust's fetcher, group membership, partition assignment, offset bookkeeping, commits and
table recovery, and changes one thing: records of the topics registered as *batch topics* are
collected per fetch and handed to one coroutine as ``{TP: [messages]}``; that coroutine acknowledges
them (``Consumer.ack``) once their outputs are delivered, and Faust commits what is acknowledged.
Records of every other topic (table changelogs during recovery, agents' topics) take Faust's
ordinary path unchanged. Offsets are tracked exactly as Faust's own drain loop does (read offset,
gaps from compaction or transaction markers).

On the embedded broker (Tansu) ``ListOffsets`` under-reports a partition's end whenever producers
batch (ARCHITECTURE.md), so Faust's table recovery would stop early (memory store: updates lost)
or refuse to start (RocksDB store: ``ConsistencyError``). :func:`streams.offsets.true_end_offsets`
asks the broker for the record batch the reported end points into and reads the high watermark of
that fetch response, which is right; :class:`BatchConsumer` applies it to ``highwaters`` when enabled.

A committed offset never passes a record that is not acknowledged. Faust's ``_new_offset``
commits the end of the first consecutive run of acknowledged offsets, and lets that run begin one
offset after the committed one (or anywhere when nothing was committed yet). Records of one
partition are not always acknowledged in offset order here: a parked record waits on the retry
topic until it is due while later ones that are due sooner finish first. Faust would commit past
the waiting record, and a crash or a rebalance before it is due would lose it. So a partition's
offset advances only over a run that starts at its committed offset (or, with none, at the first
offset read since its assignment), and after a seek a jump in offsets counts as a gap from the
position sought, not from one past it. Acknowledgements below the committed offset (made under an
earlier assignment, before another owner committed past them) are dropped rather than committed
back to.

This module depends on faust-streaming internals of the pinned version (0.15.3): the drain loop it
replaces is ``faust.transport.consumer.Consumer._drain_messages``; it also overrides
``_new_offset`` and ``perform_seek`` and reads ``_acked``, ``_gap`` and ``_committed_offset``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from typing import Any, Final

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from processors.errors import WorkerConfigError
from streams.errors import BrokerUnreachableError
from streams.offsets import true_end_offsets
from streams.settings import KafkaSettings

__all__ = [
    "BatchConsumer",
    "BatchConsumerThread",
    "BatchHandler",
    "BatchRoute",
    "BatchTransport",
    "FAUST_VERSION",
    "acknowledged_from",
    "check_faust_version",
]

logger = logging.getLogger(__name__)

FAUST_VERSION: Final = "0.15.3"
_SETTLE_S: Final = 1.0

BatchHandler = Callable[[Mapping[TP, list[Any]]], Awaitable[None]]
"""Processes ``{TP: [faust Message]}`` and acknowledges what it finished."""


class BatchRoute:
    """Which topics take the batch path, and the coroutine that processes their records."""

    def __init__(self) -> None:
        self.topics: frozenset[str] = frozenset()
        self.handler: BatchHandler | None = None
        self.kafka_for_probe: KafkaSettings | None = None
        self.fetch_max_wait_ms: int | None = None

    def route(self, topics: frozenset[str], handler: BatchHandler) -> None:
        """Send the records of ``topics`` to ``handler`` in batches."""
        self.topics = topics
        self.handler = handler


class BatchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread, with the fetch wait of the :class:`BatchRoute` if it sets one."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        route: BatchRoute | None = getattr(self.app, "batch_route", None)
        if route is not None and route.fetch_max_wait_ms is not None:
            # Faust hard-codes 1,500 ms. The embedded broker answers a fetch only when that wait
            # expires, even when records arrived meanwhile (measured: a record waited 382 ms of a
            # 1,500 ms wait, 10 ms of a 100 ms one); a broker that long-polls returns at once anyway.
            consumer._fetch_max_wait_ms = route.fetch_max_wait_ms
        return consumer


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer with the batch path and the end-offset correction (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_seen: dict[TP, tuple[int | None, float]] = {}
        # The first offset read since the partition was assigned or sought, and the partitions whose
        # read offset is a position sought (the next record to read), not a record read.
        self._first_read: dict[TP, int] = {}
        self._sought: set[TP] = set()

    def _new_offset(self, tp: TP) -> int | None:
        committed = self._committed_offset.get(tp)
        acked = self._acked.get(tp)
        if committed is not None and acked and min(acked) < committed:
            # Acknowledged under an earlier assignment, then committed by another owner: Faust would
            # commit back to them, and then wait for ever for offsets that come no more.
            stale = {offset for offset in acked if offset < committed}
            acked[:] = [offset for offset in acked if offset >= committed]
            self._acked_index[tp].difference_update(stale)
        base = committed if committed is not None else self._first_read.get(tp)
        if not acknowledged_from(base, acked or (), self._gap.get(tp, ())):
            return None
        offset: int | None = super()._new_offset(tp)
        return offset

    async def perform_seek(self) -> None:
        """Seek the partitions to their committed offsets, and start their first-read bookkeeping anew."""
        await super().perform_seek()
        # A partition with nothing committed keeps its position (and its first offset read); one
        # with a committed offset reads from there again.
        self._sought = {tp for tp, offset in self._read_offset.items() if offset is not None}
        for tp in self._sought:
            self._first_read.pop(tp, None)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Forget the bookkeeping of revoked partitions, then let Faust handle the revocation."""
        for tp in revoked:
            self._first_read.pop(tp, None)
            self._sought.discard(tp)
        await super().on_partitions_revoked(revoked)

    def _new_consumer_thread(self) -> BatchConsumerThread:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def highwaters(self, *partitions: TP) -> Mapping[TP, int]:
        """Return the partitions' end offsets, corrected on brokers that under-report them."""
        reported = await super().highwaters(*partitions)
        route = self._route()
        if route is None or route.kafka_for_probe is None:
            return reported
        kafka = route.kafka_for_probe
        try:
            return await asyncio.get_running_loop().run_in_executor(None, true_end_offsets, kafka, reported)
        except BrokerUnreachableError as exc:
            raise WorkerConfigError(f"{exc}, then start the worker again") from exc

    async def lagging(self, topics: frozenset[str]) -> dict[TP, int]:
        """Return the assigned partitions of ``topics`` that have records not read yet, and how many.

        A partition whose end is not known yet (no fetch answered since the assignment) is lagging
        by an unknown number, ``-1``. One whose last read offset trails its end while the fetch
        position has reached it, and stays so for ``_SETTLE_S``, ends in records no consumer gets
        (transaction markers) and counts as caught up.
        """
        behind: dict[TP, int] = {}
        now = time.monotonic()
        for tp in self.assignment():
            if tp.topic not in topics:
                continue
            end = self.highwater(tp)
            if end is None or end < 0:
                behind[tp] = -1
                continue
            read = self._read_offset.get(tp)
            if end == 0 or (read is not None and read + 1 >= end):
                continue
            lag = end - (read + 1 if read is not None else 0)
            seen = self._read_seen.get(tp)
            if seen is None or seen[0] != read:
                self._read_seen[tp] = (read, now)
                behind[tp] = lag
                continue
            position = await self.position(tp)
            if position is None or position < end or now - seen[1] < _SETTLE_S:
                behind[tp] = lag
        return behind

    def _route(self) -> BatchRoute | None:
        route: BatchRoute | None = getattr(self.app, "batch_route", None)
        return route

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - exercised end to end
        # A copy of Faust 0.15.3's loop (offset tracking, gaps, flow control, shutdown), except that
        # records of batch topics are collected and processed per fetch instead of one by one.
        route = self._route()
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        first_read = self._first_read
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                batch_topics = route.topics if route is not None else frozenset()
                handler = route.handler if route is not None else None
                batches: dict[TP, list[Any]] = {}
                self.diag.set_flag("FETCHING")
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    sought = self._sought
                    async for tp, message in ait:
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is not None and offset < r_offset:
                            continue
                        if tp in sought:
                            # The read offset is the position sought: records from there up to
                            # this one are gone (compaction, retention), the first is not read.
                            sought.discard(tp)
                            if r_offset is not None and offset > r_offset and acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset, offset)
                        elif r_offset and offset - r_offset > 1 and acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        first_read.setdefault(tp, offset)
                        if handler is not None and tp.topic in batch_topics:
                            batches.setdefault(tp, []).append(message)
                        else:
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                        set_read_offset(tp, offset)
                self.diag.unset_flag("FETCHING")
                if batches and handler is not None:
                    await handler(batches)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag("FETCHING")


class BatchTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport whose consumer is a :class:`BatchConsumer`."""

    Consumer = BatchConsumer


def acknowledged_from(base: int | None, acked: Collection[int], gaps: Iterable[Any]) -> bool:
    """Whether the acknowledged offsets (``acked``, plus ``gaps``: intervals of offsets that hold no
    record) begin at ``base``, the partition's committed offset or first offset read; ``False`` when
    ``base`` is not known (a partition revoked since: its acknowledgements wait for its next owner).
    """
    if base is None:
        return False
    return base in acked or any(gap.begin <= base < gap.end for gap in gaps)


def check_faust_version() -> None:
    """Refuse to run on another faust-streaming than the one the batch path was written against.

    Raises:
        WorkerConfigError: when the installed version differs from :data:`FAUST_VERSION`.
    """
    if faust.__version__ != FAUST_VERSION:
        raise WorkerConfigError(
            f"faust-streaming {faust.__version__} is installed, revstream's worker needs {FAUST_VERSION}; "
            f"install faust-streaming=={FAUST_VERSION}"
        )
