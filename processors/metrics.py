"""The processors' Prometheus metrics, in one container built per worker on a registry of its own.

Labels are bounded: stage, outcome, reason code, event type, command type. Never event ids,
customer ids or keys. Durations are in seconds. The hot path counts per batch and adds the totals
once (a labelled ``inc`` per record would cost more than some stages); latencies are observed per
record because a histogram of batch averages would hide the tail.
"""

from __future__ import annotations

import logging
from collections import Counter as Tally
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["BatchTally", "ProcessorMetrics"]

logger = logging.getLogger(__name__)

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
_BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2000, 5000, 10000, 50000)
_STAGE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@dataclass
class BatchTally:
    """What one batch did, counted locally and added to the metrics in one go."""

    processed: Tally[tuple[str, str]]
    """(stage, outcome) → records."""
    dead_letters: Tally[tuple[str, str]]
    """(stage, reason) → records."""
    exceptions: Tally[str]
    """reason code → business exceptions."""
    commands: Tally[str]
    """command type → ERP commands."""

    @classmethod
    def empty(cls) -> BatchTally:
        """Return a tally with nothing counted."""
        return cls(Tally(), Tally(), Tally(), Tally())


@dataclass(frozen=True)
class ProcessorMetrics:
    """Counters and histograms of one worker."""

    registry: CollectorRegistry
    processed: Counter
    duplicates: Counter
    exceptions: Counter
    dead_letters: Counter
    commands: Counter
    parked: Counter
    latency_event_time: Histogram
    latency_ingest_time: Histogram
    batch_size: Histogram
    batch_seconds: Histogram
    parked_in_memory: Gauge
    assigned_partitions: Gauge
    paused_partitions: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> ProcessorMetrics:
        """Register the processors' metrics on ``registry`` (a fresh one by default)."""
        registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        return cls(
            registry=registry,
            processed=Counter(
                "revstream_processor_records", "Records through each stage, by outcome "
                "(passed, dropped, parked, dead_lettered, exception, redelivered).",
                ["stage", "outcome"], registry=registry,
            ),
            duplicates=Counter(
                "revstream_processor_duplicates_dropped", "Exact repeats of an event id dropped by dedupe.",
                registry=registry,
            ),
            exceptions=Counter(
                "revstream_processor_business_exceptions", "Business exceptions raised, by reason code.",
                ["reason"], registry=registry,
            ),
            dead_letters=Counter(
                "revstream_processor_dead_letters", "Records sent to a dead-letter topic, by stage, reason.",
                ["stage", "reason"], registry=registry,
            ),
            commands=Counter(
                "revstream_processor_erp_commands", "ERP commands emitted, by command type.",
                ["command_type"], registry=registry,
            ),
            parked=Counter(
                "revstream_processor_parked", "Records parked on the retry topic for missing master data.",
                registry=registry,
            ),
            latency_event_time=Histogram(
                "revstream_processor_latency_event_time_seconds",
                "From an event's occurred_at to its outputs being delivered.",
                buckets=_LATENCY_BUCKETS, registry=registry,
            ),
            latency_ingest_time=Histogram(
                "revstream_processor_latency_ingest_seconds",
                "From a record's Kafka timestamp (ingest) to its outputs being delivered.",
                buckets=_LATENCY_BUCKETS, registry=registry,
            ),
            batch_size=Histogram(
                "revstream_processor_batch_size_records", "Records per processed batch.",
                buckets=_BATCH_BUCKETS, registry=registry,
            ),
            batch_seconds=Histogram(
                "revstream_processor_batch_seconds",
                "Time to process one batch: compute, deliver outputs, write state.",
                buckets=_STAGE_BUCKETS, registry=registry,
            ),
            parked_in_memory=Gauge(
                "revstream_processor_retry_waiting", "Parked records read back and waiting to be due.",
                registry=registry,
            ),
            assigned_partitions=Gauge(
                "revstream_processor_assigned_partitions",
                "Partitions of canonical and retry topics this worker owns (0 until it joined).",
                registry=registry,
            ),
            paused_partitions=Gauge(
                "revstream_processor_paused_partitions",
                "Partitions paused because their records wait in memory (buffer limits reached).",
                registry=registry,
            ),
        )  # fmt: skip

    def add(self, tally: BatchTally) -> None:
        """Add one batch's counts."""
        for (stage, outcome), count in tally.processed.items():
            self.processed.labels(stage, outcome).inc(count)
        for (stage, reason), count in tally.dead_letters.items():
            self.dead_letters.labels(stage, reason).inc(count)
        for reason, count in tally.exceptions.items():
            self.exceptions.labels(reason).inc(count)
        for command_type, count in tally.commands.items():
            self.commands.labels(command_type).inc(count)
        duplicates = tally.processed.get(("dedupe", "dropped"), 0)
        if duplicates:
            self.duplicates.inc(duplicates)
        parked = tally.processed.get(("enrich", "parked"), 0)
        if parked:
            self.parked.inc(parked)
