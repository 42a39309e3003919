"""In what order fetched events are processed: timestamp-synchronised per partition number.

A customer's events travel on ten topics, one partition each (co-partitioned by customer id).
Kafka orders a partition, never two topics; a worker catching up on a backlog fetches, say, a
year of invoices in one fetch and the first week of usage in the same one, and processing them as
fetched would count every later usage record as "late", re-opening its reconciliation each time,
and park payments whose invoice comes in a later fetch. So, like a Kafka Streams task, the records
of one partition number are released in timestamp order, and a record only once every input
partition of its number that still has a backlog (``min_lag`` unread records or more) has buffered
one at least as late (its "stream time" has passed the record). A partition with a smaller lag
holds nothing back: its few records are in flight and waiting for them would only cost latency
(measured: p99 from event to command 1 s instead of 0.14 s at 1,000 events/s). A backlogged
partition with nothing fetched yet holds the others back for ``max_idle_s`` of fetching time at
most. Master data comes first: while one of this worker's customer partitions still has unread
records, the events of that partition number wait (a customer's record and its events share a key
and a partition count, so they share a partition number); while the reference data (products,
legal entities, read whole by every worker) is still being read, every event waits. Both holds
are bounded by ``max_held``. Holding only the lagging partition number matters at a steady load,
where some customer partition is one fetch behind at almost every batch: holding every event then
made every other batch wait a fetch and the next one carry twice the records.
"""

from __future__ import annotations

import heapq
import logging
import math
import time
from collections.abc import Collection, Mapping
from typing import Any

__all__ = ["InputBuffer"]

logger = logging.getLogger(__name__)


def _timestamp(message: Any) -> float:
    return float(message.timestamp or 0.0)


class InputBuffer:
    """Fetched event records waiting for their turn (see the module docstring)."""

    def __init__(self, max_held: int = 200_000, max_idle_s: float = 2.0, min_lag: int = 1000) -> None:
        self.max_held = max_held
        self.max_idle_s = max_idle_s
        self.min_lag = min_lag
        self._held: dict[Any, list[Any]] = {}
        self._empty_since: dict[Any, float] = {}

    def __len__(self) -> int:
        return sum(len(messages) for messages in self._held.values())

    def add(self, tp: Any, messages: list[Any]) -> None:
        """Buffer records fetched from ``tp`` (in offset order)."""
        if messages:
            self._held.setdefault(tp, []).extend(messages)
            self._empty_since.pop(tp, None)

    def drop(self, tps: Collection[Any]) -> None:
        """Forget the records of partitions no longer assigned (their new owner reads them again)."""
        for tp in tps:
            self._held.pop(tp, None)
            self._empty_since.pop(tp, None)

    def release(
        self,
        lagging: Mapping[Any, int],
        master_lagging: bool,
        now: float | None = None,
        master_partitions: Collection[int] = (),
    ) -> list[Any]:
        """Take out the records whose turn has come, in processing order.

        ``lagging`` maps the assigned input partitions that still have unread records to how many
        (``-1``: not known yet). Only a backlog of ``min_lag`` records or more holds others back (a
        few records in flight are the next fetch's; waiting for them costs latency, not order). A
        lagging partition with nothing buffered holds its partition number back for ``max_idle_s``
        of fetching time at most. ``master_lagging`` holds every record (reference data still
        being read); ``master_partitions`` holds the partition numbers whose master data has
        unread records.
        """
        if not self._held:
            return []
        now = time.monotonic() if now is None else now
        within_bound = len(self) < self.max_held
        if master_lagging and within_bound:
            return []
        waiting_for_master = frozenset(master_partitions) if within_bound else frozenset()
        boundary: dict[int, float] = {}
        for tp, lag in lagging.items():
            if 0 <= lag < self.min_lag:
                continue
            messages = self._held.get(tp)
            if messages:
                last = _timestamp(messages[-1])
            elif now - self._empty_since.setdefault(tp, now) < self.max_idle_s:
                last = -math.inf
            else:
                continue
            boundary[tp.partition] = min(boundary.get(tp.partition, math.inf), last)
        released: list[list[Any]] = []
        for tp, messages in list(self._held.items()):
            if tp.partition in waiting_for_master:
                continue
            limit = boundary.get(tp.partition, math.inf)
            cut = 0
            while cut < len(messages) and _timestamp(messages[cut]) <= limit:
                cut += 1
            if not cut:
                continue
            released.append(messages[:cut])
            if cut < len(messages):
                self._held[tp] = messages[cut:]
            else:
                del self._held[tp]
                self._empty_since[tp] = now
        if len(released) == 1:
            return released[0]
        return list(heapq.merge(*released, key=_timestamp))

    def rearm(self, now: float | None = None) -> None:
        """Restart the idle clocks: call when the fetcher is free again after a batch.

        A partition only counts as idle for the time the fetcher could have fetched it, not for
        the time a batch took to process (the fetch loop waits for it).
        """
        now = time.monotonic() if now is None else now
        for tp in self._empty_since:
            self._empty_since[tp] = now

    def held_per_partition(self) -> dict[Any, int]:
        """How many records each partition has buffered."""
        return {tp: len(messages) for tp, messages in self._held.items()}

    def partitions_waiting(self) -> set[Any]:
        """The partitions that have buffered records."""
        return set(self._held)
