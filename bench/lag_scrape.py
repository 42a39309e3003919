"""``python -m bench --lag-scrape``: what one poll and one scrape of the lag exporter cost at scale.

Sets up ``groups`` consumer groups, each with offsets committed on every partition of a topic of
its own with ``partitions`` partitions (50 x 60 = 3,000 group partitions and 3,000 log ends by
default), then measures, on the same collector:

- the first (cold) poll: metadata, earliest and latest offsets, and a fetch per partition for the
  true log end;
- warm polls with nothing appended (log ends unchanged: no fetch needed);
- warm polls after a record was appended to every partition (every true end fetched again);
- rendering ``/metrics`` from the newest poll (what a Prometheus scrape waits for), and its size;
- the groups' committed offsets fetched all in flight at once (as the collector does) against one
  group after the other.

Results go to ``bench/results/lag_scrape.json`` and are printed.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
from prometheus_client import generate_latest

from streams.clients import admin_client, consumer, producer
from streams.lag.collector import LagCollector, LagConfig
from streams.lag.metrics import LagMetrics
from streams.lag.model import GroupFilter
from streams.provisioning import ensure_topics
from streams.settings import Settings
from streams.topics import TopicSpec

__all__ = ["run"]

logger = logging.getLogger(__name__)


def _timed(action: Callable[[], Any], repeat: int) -> list[float]:
    spent = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        spent.append(time.perf_counter() - started)
    return spent


def _figures(spent: list[float]) -> dict[str, float]:
    return {
        "median_s": round(statistics.median(spent), 4),
        "min_s": round(min(spent), 4),
        "max_s": round(max(spent), 4),
    }


def _setup(settings: Settings, prefix: str, groups: int, partitions: int) -> list[tuple[str, str]]:
    pairs = [(f"{prefix}-t{i:02d}", f"{prefix}-g{i:02d}") for i in range(groups)]
    admin = admin_client(settings.kafka)
    ensure_topics(admin, [TopicSpec(topic, "canonical", partitions, 1, key="bench") for topic, _ in pairs])
    out = producer(settings.kafka, **{"linger.ms": 20})
    for topic, _ in pairs:
        for partition in range(partitions):
            for index in range(4):
                out.produce(topic, value=b"x" * 50, partition=partition, key=str(index).encode())
        out.poll(0)
    out.flush(60)
    for topic, group in pairs:
        # Committing without joining: a group's offsets, as any consumer commits them.
        committer = consumer(settings.kafka, group)
        committer.commit(
            offsets=[TopicPartition(topic, p, 1 + p % 3) for p in range(partitions)], asynchronous=False
        )
        committer.close()
    return pairs


def _append_everywhere(settings: Settings, pairs: list[tuple[str, str]], partitions: int) -> None:
    out = producer(settings.kafka, **{"linger.ms": 20})
    for topic, _ in pairs:
        for partition in range(partitions):
            out.produce(topic, value=b"y" * 50, partition=partition)
        out.poll(0)
    out.flush(60)


def run(settings: Settings, groups: int = 50, partitions: int = 60, repeat: int = 5) -> dict[str, Any]:
    """Set up the groups, measure, and return the figures."""
    prefix = f"lagbench-{uuid.uuid4().hex[:6]}"
    started = time.perf_counter()
    pairs = _setup(settings, prefix, groups, partitions)
    setup_s = time.perf_counter() - started
    collector = LagCollector(settings.kafka, LagConfig(groups=GroupFilter(allow=f"{prefix}-g.*")))
    metrics = LagMetrics.create()
    try:
        cold = _timed(collector.poll, 1)
        snapshot = collector.poll()
        measured = sum(len(g.partitions) for g in snapshot.groups)
        assert len(snapshot.groups) == groups and measured == groups * partitions, (
            len(snapshot.groups),
            measured,
        )
        warm = _timed(collector.poll, repeat)
        appended: list[float] = []
        for _ in range(repeat):
            _append_everywhere(settings, pairs, partitions)
            appended += _timed(collector.poll, 1)
        metrics.publish(collector.poll())
        page = generate_latest(metrics.registry)
        scrape = _timed(lambda: generate_latest(metrics.registry), repeat)
        admin = admin_client(settings.kafka)
        names = [group for _, group in pairs]

        def all_in_flight() -> None:
            futures = [admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)]) for g in names]
            for future in futures:
                for result in future.values():
                    result.result(timeout=30)

        def one_after_another() -> None:
            for g in names:
                for result in admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(g)]).values():
                    result.result(timeout=30)

        concurrent = _timed(all_in_flight, repeat)
        serial = _timed(one_after_another, repeat)
    finally:
        collector.close()
    return {
        "groups": groups,
        "partitions_per_group": partitions,
        "group_partitions": groups * partitions,
        "setup_s": round(setup_s, 2),
        "poll_cold": _figures(cold),
        "poll_warm_unchanged_ends": _figures(warm),
        "poll_warm_every_end_moved": _figures(appended),
        "scrape_render": _figures(scrape),
        "scrape_bytes": len(page),
        "scrape_series": sum(1 for line in page.decode().splitlines() if line and not line.startswith("#")),
        "offsets_all_in_flight": _figures(concurrent),
        "offsets_one_group_at_a_time": _figures(serial),
        "repeat": repeat,
    }


def save(figures: dict[str, Any], out: Path) -> Path:
    """Write the figures to ``out/lag_scrape.json``."""
    out.mkdir(parents=True, exist_ok=True)
    path = out / "lag_scrape.json"
    path.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return path
