"""One poll of every measured consumer group: committed offsets, log ends, lag, status.

Per poll, in this order (the committed offsets are read *before* the log ends, so an end is never
older than the commit it is compared with):

1. the group list (filtered) and, concurrently, each group's state and members and each group's
   committed offsets: the admin client sends all the requests at once and the poll waits for them
   together, so 50 groups cost about one round trip, not fifty;
2. the partition count of every consumed topic, from cluster metadata cached for
   ``metadata_ttl_s`` (refreshed at once when a new topic shows up);
3. the earliest and the latest offset of each of those partitions with two ``ListOffsets`` calls;
   then the true log end (``streams.offsets.true_end_offsets``: the high watermark of a fetch
   response), asked only for partitions whose reported end changed since the last poll, since an
   unchanged report means nothing was appended;
4. a point (end, now) into each partition's lookup table, then each group partition's lag, lag in
   seconds and status.

Partitions a group has never committed on are not measured (no committed offset, nothing to
compare); ``revstream lag`` and the metrics show the committed ones.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from streams.clients import admin_client
from streams.errors import BrokerUnreachableError
from streams.lag.model import GroupFilter, GroupLag, PartitionLag, Snapshot
from streams.lag.status import CommitWindow, Status, evaluate
from streams.lag.table import LookupTable, Point
from streams.offsets import true_end_offsets
from streams.settings import KafkaSettings, LagSettings

__all__ = ["LagCollector", "LagConfig"]

logger = logging.getLogger(__name__)

_ACTIVE_STATES: Final = frozenset({"STABLE", "PREPARING_REBALANCE", "COMPLETING_REBALANCE"})
_PROBE_GROUP_PREFIX: Final = "revstream-end-offset-probe-"


class TP(NamedTuple):
    """A topic partition, hashable and ordered."""

    topic: str
    partition: int


@dataclass(frozen=True)
class LagConfig:
    """How the collector polls (from ``LagSettings``, or built directly in tests and benchmarks)."""

    cluster_name: str = "revstream"
    groups: GroupFilter = field(default_factory=GroupFilter)
    window: int = 10
    lookup_table_size: int = 60
    metadata_ttl_s: float = 60.0
    timeout_s: float = 10.0

    @classmethod
    def from_settings(cls, lag: LagSettings) -> LagConfig:
        """Build the collector's configuration from the process settings."""
        return cls(
            cluster_name=lag.cluster_name,
            groups=GroupFilter(lag.group_allow, lag.group_deny),
            window=lag.window,
            lookup_table_size=lag.lookup_table_size,
        )


class LagCollector:
    """Polls the cluster and keeps the per-partition history the lag in seconds and statuses need."""

    def __init__(
        self, kafka: KafkaSettings, config: LagConfig | None = None, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config or LagConfig()
        self._clock = clock
        self._kafka = kafka
        self._admin: AdminClient = admin_client(kafka)
        self._tables: dict[TP, LookupTable] = {}
        self._windows: dict[tuple[str, TP], CommitWindow] = {}
        self._reported: dict[TP, tuple[int, int]] = {}
        """Partition → (end ListOffsets reported, true end) at the last poll."""
        self._partitions: dict[str, int] = {}
        self._metadata_at = -float("inf")

    def close(self) -> None:
        """Drop the history; the probing consumers live only within a poll, so nothing stays open."""
        self._tables.clear()
        self._windows.clear()
        self._reported.clear()

    def poll(self) -> Snapshot:
        """Measure every group once.

        Raises:
            BrokerUnreachableError: when the cluster does not answer within the timeout.
        """
        started = time.monotonic()
        try:
            groups = self._list_groups()
            states = self._describe(groups)
            committed, errors = self._committed(groups)
            topics = {tp.topic for offsets in committed.values() for tp in offsets}
            self._refresh_metadata(topics)
            partitions = [TP(t, p) for t in sorted(topics) for p in range(self._partitions.get(t, 0))]
            earliest, ends = self._log_offsets(partitions)
        except (KafkaException, TimeoutError) as exc:
            reason = (
                _reason(exc)
                if isinstance(exc, KafkaException)
                else f"no answer in {self.config.timeout_s:g}s"
            )
            raise BrokerUnreachableError(
                f"the cluster at {self._kafka.bootstrap_servers} did not give the groups' offsets "
                f"({reason}); check REVSTREAM_KAFKA_BOOTSTRAP_SERVERS"
            ) from exc
        now = self._clock()
        for tp, end in ends.items():
            self._tables.setdefault(tp, LookupTable(self.config.lookup_table_size)).add(Point(end, now))
        measured = []
        for group in groups:
            state, members = states.get(group, ("UNKNOWN", 0))
            rows = [
                self._partition(group, tp, offset, earliest, ends, now, state in _ACTIVE_STATES)
                for tp, offset in sorted(committed.get(group, {}).items())
                if tp in ends
            ]
            measured.append(GroupLag(group, state, members, tuple(rows), errors.get(group)))
        self._forget(set(groups), set(ends))
        offsets = {(tp.topic, tp.partition): (earliest.get(tp, 0), end) for tp, end in ends.items()}
        return Snapshot(self.config.cluster_name, now, time.monotonic() - started, tuple(measured), offsets)

    def _partition(
        self, group: str, tp: TP, committed: int, earliest: dict[TP, int], ends: dict[TP, int], now: float,
        active: bool,
    ) -> PartitionLag:  # fmt: skip
        end, start = ends[tp], earliest.get(tp, 0)
        lag = max(0, end - committed)
        window = self._windows.setdefault((group, tp), CommitWindow(self.config.window))
        window.observe(committed, lag, now, active)
        if committed > end or committed < start:
            # Beyond the log: deleted before it was read, or an offset this log never had.
            status = Status.ERR
        else:
            status = evaluate(window, lag, now)
        seconds = 0.0 if lag == 0 else self._tables[tp].lag_seconds(committed, now)
        return PartitionLag(tp.topic, tp.partition, committed, end, start, lag, seconds, status)

    def _list_groups(self) -> list[str]:
        listed = self._admin.list_consumer_groups(request_timeout=self.config.timeout_s).result(
            timeout=self.config.timeout_s
        )
        return sorted(
            g.group_id
            for g in listed.valid
            if not g.group_id.startswith(_PROBE_GROUP_PREFIX) and self.config.groups.wants(g.group_id)
        )

    def _describe(self, groups: list[str]) -> dict[str, tuple[str, int]]:
        if not groups:
            return {}
        futures = self._admin.describe_consumer_groups(groups, request_timeout=self.config.timeout_s)
        described: dict[str, tuple[str, int]] = {}
        for group, future in futures.items():
            try:
                result = future.result(timeout=self.config.timeout_s)
            except KafkaException as exc:
                logger.warning("describing group %s failed: %s", group, _reason(exc))
                continue
            described[group] = (str(result.state.name), len(result.members))
        return described

    def _committed(self, groups: list[str]) -> tuple[dict[str, dict[TP, int]], dict[str, str]]:
        # One request per group (the client's limit), all in flight at once.
        futures: dict[str, Any] = {}
        for group in groups:
            futures.update(
                self._admin.list_consumer_group_offsets(
                    [ConsumerGroupTopicPartitions(group)], request_timeout=self.config.timeout_s
                )
            )
        committed: dict[str, dict[TP, int]] = {}
        errors: dict[str, str] = {}
        for group, future in futures.items():
            try:
                result = future.result(timeout=self.config.timeout_s)
            except KafkaException as exc:
                errors[group] = f"offsets could not be read: {_reason(exc)}"
                continue
            committed[group] = {
                TP(tp.topic, tp.partition): tp.offset
                for tp in result.topic_partitions
                if tp.offset >= 0 and tp.error is None
            }
        return committed, errors

    def _refresh_metadata(self, topics: set[str]) -> None:
        stale = time.monotonic() - self._metadata_at > self.config.metadata_ttl_s
        if not stale and topics <= set(self._partitions):
            return
        metadata = self._admin.list_topics(timeout=self.config.timeout_s)
        self._partitions = {name: len(t.partitions) for name, t in metadata.topics.items() if t.error is None}
        self._metadata_at = time.monotonic()

    def _log_offsets(self, partitions: list[TP]) -> tuple[dict[TP, int], dict[TP, int]]:
        if not partitions:
            return {}, {}
        # Both requests in flight together; then the waits.
        earliest_futures = self._list_offsets(partitions, OffsetSpec.earliest())
        latest_futures = self._list_offsets(partitions, OffsetSpec.latest())
        earliest, reported = self._results(earliest_futures), self._results(latest_futures)
        ends: dict[TP, int] = {}
        changed: dict[TP, int] = {}
        for tp, end in reported.items():
            last = self._reported.get(tp)
            if last is not None and last[0] == end:
                ends[tp] = last[1]
            else:
                changed[tp] = end
        ends.update(true_end_offsets(self._kafka, changed, self.config.timeout_s))
        for tp, end in ends.items():
            self._reported[tp] = (reported[tp], end)
        return earliest, ends

    def _list_offsets(self, partitions: list[TP], spec: OffsetSpec) -> dict[TopicPartition, Any]:
        return dict(
            self._admin.list_offsets(
                {TopicPartition(tp.topic, tp.partition): spec for tp in partitions},
                request_timeout=self.config.timeout_s,
            )
        )

    def _results(self, futures: dict[TopicPartition, Any]) -> dict[TP, int]:
        return {
            TP(key.topic, key.partition): int(future.result(timeout=self.config.timeout_s).offset)
            for key, future in futures.items()
        }

    def _forget(self, groups: set[str], partitions: set[TP]) -> None:
        # Groups and partitions that went away take their history with them (no stale series).
        for key in [k for k in self._windows if k[0] not in groups or k[1] not in partitions]:
            del self._windows[key]
        for tp in [tp for tp in self._tables if tp not in partitions]:
            del self._tables[tp]
            self._reported.pop(tp, None)


def _reason(exc: KafkaException) -> str:
    error = exc.args[0] if exc.args else None
    return str(error.str()) if error is not None and hasattr(error, "str") else str(exc)
