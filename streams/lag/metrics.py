"""The lag exporter's Prometheus metrics, one container per process on a registry of its own.

The lag series are rendered from the newest poll at scrape time (a custom collector), so a group or
partition that went away disappears from the next scrape instead of leaving a stale value. Names
and labels follow kafka-lag-exporter (``cluster_name``, ``group``, ``topic``, ``partition``) so its
dashboards work; the member labels it adds (``member_host``, ``consumer_id``, ``client_id``) are
left out because every rebalance would start new series. A lag in seconds that cannot be estimated
yet is NaN. Statuses carry Burrow's code as the value and the name as the ``status`` label.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from streams.lag.model import Snapshot

__all__ = ["LagMetrics"]

logger = logging.getLogger(__name__)

_POLL_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
_GROUP = ["cluster_name", "group"]
_PARTITION = ["cluster_name", "group", "topic", "partition"]


class _SnapshotCollector(Collector):
    """Yields the lag families of the newest snapshot."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshot: Snapshot | None = None

    def set(self, snapshot: Snapshot) -> None:
        with self._lock:
            self._snapshot = snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            snapshot = self._snapshot
        families = {
            "offset": GaugeMetricFamily(
                "kafka_consumergroup_group_offset",
                "Last group consumed offset of a partition",
                labels=_PARTITION,
            ),
            "lag": GaugeMetricFamily(
                "kafka_consumergroup_group_lag",
                "Group offset lag of a partition (records)",
                labels=_PARTITION,
            ),
            "lag_seconds": GaugeMetricFamily(
                "kafka_consumergroup_group_lag_seconds",
                "Group time lag of a partition in seconds (NaN until it can be estimated)",
                labels=_PARTITION,
            ),
            "max_lag": GaugeMetricFamily(
                "kafka_consumergroup_group_max_lag", "Max group offset lag (records)", labels=_GROUP
            ),
            "max_lag_seconds": GaugeMetricFamily(
                "kafka_consumergroup_group_max_lag_seconds", "Max group time lag in seconds", labels=_GROUP
            ),
            "sum_lag": GaugeMetricFamily(
                "kafka_consumergroup_group_sum_lag", "Sum of group offset lag (records)", labels=_GROUP
            ),
            "topic_sum_lag": GaugeMetricFamily(
                "kafka_consumergroup_group_topic_sum_lag",
                "Sum of group offset lag per topic (records)",
                labels=[*_GROUP, "topic"],
            ),
            "latest": GaugeMetricFamily(
                "kafka_partition_latest_offset",
                "Latest offset of a partition (high watermark)",
                labels=["cluster_name", "topic", "partition"],
            ),
            "earliest": GaugeMetricFamily(
                "kafka_partition_earliest_offset",
                "Earliest offset of a partition",
                labels=["cluster_name", "topic", "partition"],
            ),
            "status": GaugeMetricFamily(
                "revstream_consumergroup_status",
                "Burrow-style group status: 1 OK, 2 WARN, 3 ERR, 4 STOP, 5 STALL, 6 REWIND "
                "(the name in label status)",
                labels=[*_GROUP, "status"],
            ),
            "partition_status": GaugeMetricFamily(
                "revstream_consumergroup_partition_status",
                "Burrow-style partition status, coded like revstream_consumergroup_status",
                labels=[*_PARTITION, "status"],
            ),
            "members": GaugeMetricFamily(
                "revstream_consumergroup_members", "Members of the group at the last poll", labels=_GROUP
            ),
        }
        if snapshot is not None:
            cluster = snapshot.cluster
            for group in snapshot.groups:
                g = [cluster, group.group]
                families["max_lag"].add_metric(g, group.max_lag)
                families["max_lag_seconds"].add_metric(g, group.max_lag_seconds)
                families["sum_lag"].add_metric(g, group.sum_lag)
                families["status"].add_metric([*g, group.status.name], group.status.value)
                families["members"].add_metric(g, group.members)
                for topic, total in sorted(group.topic_sum_lag().items()):
                    families["topic_sum_lag"].add_metric([*g, topic], total)
                for p in group.partitions:
                    labels = [*g, p.topic, str(p.partition)]
                    families["offset"].add_metric(labels, p.committed)
                    families["lag"].add_metric(labels, p.lag)
                    families["lag_seconds"].add_metric(labels, p.lag_seconds)
                    families["partition_status"].add_metric([*labels, p.status.name], p.status.value)
            for (topic, partition), (earliest, latest) in sorted(snapshot.offsets.items()):
                families["latest"].add_metric([cluster, topic, str(partition)], latest)
                families["earliest"].add_metric([cluster, topic, str(partition)], earliest)
        yield from families.values()


@dataclass(frozen=True)
class LagMetrics:
    """Every metric the lag exporter serves."""

    registry: CollectorRegistry
    polls: Counter
    poll_seconds: Histogram
    last_poll: Gauge
    groups: Gauge
    registry_up: Gauge
    snapshot: _SnapshotCollector

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> LagMetrics:
        """Register the exporter's metrics on ``registry`` (a fresh one by default)."""
        registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        snapshot = _SnapshotCollector()
        registry.register(snapshot)
        return cls(
            registry=registry,
            polls=Counter(
                "revstream_lag_polls", "Polls of the groups' offsets, by outcome (ok, failed).", ["outcome"],
                registry=registry,
            ),
            poll_seconds=Histogram(
                "revstream_lag_poll_seconds", "Time one poll of every group's offsets took.",
                buckets=_POLL_BUCKETS, registry=registry,
            ),
            last_poll=Gauge(
                "revstream_lag_last_poll_timestamp_seconds",
                "When the last successful poll finished (Unix time).",
                registry=registry,
            ),
            groups=Gauge(
                "revstream_lag_groups", "Consumer groups measured at the last poll.", registry=registry
            ),
            registry_up=Gauge(
                "revstream_registry_up",
                "1 while the schema registry answers GET /subjects at each poll, 0 when it does not.",
                registry=registry,
            ),
            snapshot=snapshot,
        )  # fmt: skip

    def publish(self, snapshot: Snapshot) -> None:
        """Make ``snapshot`` what the next scrape shows."""
        self.snapshot.set(snapshot)
        self.polls.labels("ok").inc()
        self.poll_seconds.observe(snapshot.poll_seconds)
        self.last_poll.set(snapshot.taken_at)
        self.groups.set(len(snapshot.groups))

    def failed(self) -> None:
        """Count a poll that did not reach the cluster (the previous snapshot stays)."""
        self.polls.labels("failed").inc()
