"""The sink's Prometheus metrics, in one container built per sink on a registry of its own.

Labels are bounded: command type, dead-letter reason, topic and partition. Never command ids,
customer ids or keys. Durations are in seconds.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["SinkMetrics"]

logger = logging.getLogger(__name__)

_BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Event time to ledger: seconds on a live feed, days or months for a backfill or a replayed history.
_EVENT_BUCKETS = (
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    3600.0,
    86_400.0,
    604_800.0,
    2_592_000.0,
)


@dataclass(frozen=True)
class SinkMetrics:
    """Counters, histograms and gauges of one sink instance."""

    registry: CollectorRegistry
    applied: Counter
    duplicates: Counter
    dead_lettered: Counter
    rows_written: Counter
    batch_size: Histogram
    apply_seconds: Histogram
    db_retries: Counter
    db_up: Gauge
    committed_offset: Gauge
    latency_event_time: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> SinkMetrics:
        """Register the sink's metrics on ``registry`` (a fresh one by default)."""
        registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        return cls(
            registry=registry,
            applied=Counter(
                "revstream_sink_commands_applied", "ERP commands applied to the ledger.", ["command_type"],
                registry=registry,
            ),
            duplicates=Counter(
                "revstream_sink_commands_duplicate", "Commands skipped because their id was already applied.",
                registry=registry,
            ),
            dead_lettered=Counter(
                "revstream_sink_commands_dead_lettered", "Records sent to the sink's dead-letter topic.",
                ["reason"], registry=registry,
            ),
            rows_written=Counter(
                "revstream_sink_ledger_rows_written", "Ledger rows written (all tables).", registry=registry
            ),
            batch_size=Histogram(
                "revstream_sink_batch_size_records", "Records per applied batch.", buckets=_BATCH_BUCKETS,
                registry=registry,
            ),
            apply_seconds=Histogram(
                "revstream_sink_apply_seconds", "Time to apply one batch in one database transaction.",
                buckets=_LATENCY_BUCKETS, registry=registry,
            ),
            db_retries=Counter(
                "revstream_sink_db_retries", "Batch attempts that failed because a service was unreachable.",
                registry=registry,
            ),
            db_up=Gauge(
                "revstream_sink_db_up", "1 while the ledger database answers, 0 during an outage.",
                registry=registry,
            ),
            committed_offset=Gauge(
                "revstream_sink_committed_offset", "Next offset stored in the ledger, per partition.",
                ["topic", "partition"], registry=registry,
            ),
            latency_event_time=Histogram(
                "revstream_sink_latency_event_time_seconds",
                "From a command's event time (its source event's occurred_at) to its ledger commit: "
                "the pipeline's end-to-end latency.",
                buckets=_EVENT_BUCKETS, registry=registry,
            ),
        )  # fmt: skip
