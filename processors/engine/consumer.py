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

The Faust internals this needs (the drain loop it replaces and the commit bookkeeping among them)
are behind :mod:`processors.engine.faust_internals`; :func:`acknowledged_from` is the rule.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Collection, Iterable, Mapping
from typing import Any, Final

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from processors.engine.faust_internals import BatchHandler, DrainLoopConsumer
from processors.errors import WorkerConfigError
from streams.errors import BrokerUnreachableError
from streams.offsets import true_end_offsets
from streams.settings import KafkaSettings

__all__ = ["BatchConsumer", "BatchRoute", "BatchTransport", "acknowledged_from"]

logger = logging.getLogger(__name__)

_SETTLE_S: Final = 1.0


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


class BatchConsumer(DrainLoopConsumer):
    """Faust's aiokafka consumer with the batch path and the end-offset correction (module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._read_seen: dict[TP, tuple[int | None, float]] = {}

    def batch_path(self) -> tuple[frozenset[str], BatchHandler | None]:
        """Return the topics the :class:`BatchRoute` sends to its handler, and that handler."""
        route = self._route()
        if route is None:
            return frozenset(), None
        return route.topics, route.handler

    def fetch_max_wait_ms(self) -> int | None:
        """Return the fetch wait the :class:`BatchRoute` sets, if it sets one."""
        route = self._route()
        # Faust hard-codes 1,500 ms. The embedded broker answers a fetch only when that wait
        # expires, even when records arrived meanwhile (measured: a record waited 382 ms of a
        # 1,500 ms wait, 10 ms of a 100 ms one); a broker that long-polls returns at once anyway.
        return route.fetch_max_wait_ms if route is not None else None

    def commit_may_advance(self, base: int | None, acked: Collection[int], gaps: Iterable[Any]) -> bool:
        """Whether the committed offset may advance: only over acknowledgements from its start."""
        return acknowledged_from(base, acked, gaps)

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
            read = self.read_offset(tp)
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
