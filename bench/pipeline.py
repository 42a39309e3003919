"""The full revstream pipeline as the benchmarks run it: a namespace, workers, a sink, their figures.

Each run gets a topic namespace (and, when the sink runs, a ledger database) of its own, so runs
never share dedupe state, offsets or outputs. Workers and the sink run as ``python -m revstream …``
children exactly as a user starts them; their CPU time and peak RSS are read from ``/proc`` (via
psutil) of their own process, never the harness's.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import time
import urllib.request
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from prometheus_client.parser import text_string_to_metric_families

from connectors.ledger.database import create_database, drop_database
from connectors.ledger.migrate import migrate
from revstream.demo.services import ChildService
from schemas.loader import SCHEMA_DIR
from schemas.names import STAGES
from streams.clients import admin_client, consumer
from streams.governance import bind_subjects, register_subject
from streams.provisioning import ensure_topics
from streams.settings import Settings
from streams.stack import free_port
from streams.topics import TopicCatalog

__all__ = [
    "Namespace",
    "ProcessSampler",
    "Samples",
    "consumed",
    "first_output_time",
    "last_output_time",
    "namespace",
    "output_topics",
    "scrape",
    "settled",
    "start_sink",
    "start_workers",
    "stop_all",
    "total",
]

logger = logging.getLogger(__name__)

RECORDS = "revstream_processor_records_total"


@dataclass(frozen=True)
class Namespace:
    """One run's topics (and ledger database, when the sink runs)."""

    catalog: TopicCatalog
    ledger: str | None
    ledger_name: str | None


@contextlib.contextmanager
def namespace(settings: Settings, ledger: bool = False) -> Iterator[Namespace]:
    """Provision a fresh namespace (topics, subjects, optionally a migrated ledger); drop the ledger after."""
    token = uuid.uuid4().hex[:8]
    catalog = TopicCatalog(f"bench-{token}", settings.topics.partitions, 1)
    ensure_topics(admin_client(settings.kafka), catalog.specs())
    client = SchemaRegistryClient(settings.registry.client_config())
    for binding in bind_subjects(catalog, SCHEMA_DIR):
        register_subject(client, binding)
    server = settings.database.conninfo()
    name = f"bench_ledger_{token}" if ledger else None
    conninfo = None
    if name is not None:
        conninfo = create_database(server, name)
        migrate(conninfo)
    try:
        yield Namespace(catalog, conninfo, name)
    finally:
        if name is not None:
            drop_database(server, name)


def child_env(settings: Settings, ns: Namespace) -> dict[str, str]:
    """The environment of a worker or sink child: explicit endpoints, the run's namespace and ledger."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSTREAM_") and k != "DATABASE_URL"}
    env.update(
        REVSTREAM_PROFILE="embedded" if settings.embedded else "external",
        REVSTREAM_HOME=str(settings.home),
        REVSTREAM_KAFKA_BOOTSTRAP_SERVERS=settings.kafka.require_bootstrap(),
        REVSTREAM_KAFKA_SESSION_TIMEOUT_MS=str(settings.kafka.session_timeout_ms or 6000),
        REVSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS=str(settings.kafka.heartbeat_interval_ms or 1000),
        REVSTREAM_REGISTRY_URL=settings.registry.require_url(),
        REVSTREAM_DATABASE_URL=ns.ledger or settings.database.conninfo(),
        REVSTREAM_TOPICS_NAMESPACE=ns.catalog.namespace,
        REVSTREAM_TOPICS_PARTITIONS=str(ns.catalog.partitions),
        # The simulated company's late master data arrives within seconds: short retries keep the
        # parked tail of a run short (it is not part of the throughput span anyway).
        REVSTREAM_WORKER_MASTER_RETRY_ATTEMPTS="8",
        REVSTREAM_WORKER_MASTER_RETRY_BACKOFF="0.2",
        REVSTREAM_WORKER_MASTER_RETRY_BACKOFF_MAX="1",
        REVSTREAM_LOGLEVEL="warning",
    )
    return env


def start_workers(settings: Settings, ns: Namespace, count: int, logs: Path) -> list[ChildService]:
    """Start ``count`` workers of the namespace at once (they join one consumer group)."""
    env = child_env(settings, ns)
    workers = []
    for index in range(count):
        port = free_port()
        worker_env = {
            **env,
            "REVSTREAM_WORKER_DATA_DIR": str(logs / f"{ns.catalog.namespace}-worker-{index}"),
            "REVSTREAM_WORKER_WEB_PORT": str(port),
        }
        log = logs / f"{ns.catalog.namespace}-worker-{index}.log"
        workers.append(ChildService(f"worker-{index}", ["worker"], worker_env, log, port))
    for worker in workers:
        worker.start()
    return workers


def start_sink(settings: Settings, ns: Namespace, logs: Path) -> ChildService:
    """Start one ERP sink of the namespace, writing to its ledger."""
    port = free_port()
    group = f"{ns.catalog.namespace}-sink"
    args = ["sink", "--group", group, "--metrics-port", str(port)]
    log = logs / f"{ns.catalog.namespace}-sink.log"
    return ChildService("sink", args, child_env(settings, ns), log, port).start()


def stop_all(services: Sequence[ChildService]) -> None:
    """Stop every child (SIGTERM, then SIGKILL after a grace period)."""
    for service in services:
        service.stop(timeout_s=20)


def check_running(services: Sequence[ChildService]) -> None:
    """Raise with the child's log tail when one of them has exited.

    Raises:
        RuntimeError: naming the child and its log.
    """
    for service in services:
        if not service.running():
            raise RuntimeError(f"{service.name} exited; its log ({service.log}) ends:\n{service.log_tail()}")


Samples = list[tuple[str, dict[str, str], float]]
"""(sample name, labels, value) of one /metrics page."""


def scrape(service: ChildService) -> Samples:
    """Every sample on a child's /metrics page (none when it does not answer yet)."""
    try:
        url = f"http://127.0.0.1:{service.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return []
    return [
        (sample.name, sample.labels, sample.value)
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    ]


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples of ``name`` whose labels include ``labels``."""
    return sum(
        value
        for sample, have, value in samples
        if sample == name and all(have.get(k) == v for k, v in labels.items())
    )


def consumed(samples: Samples) -> float:
    """Canonical records taken through the first pass: each is counted once, at dedupe or decode."""
    return total(samples, RECORDS, stage="dedupe") + total(
        samples, RECORDS, stage="decode", outcome="dead_lettered"
    )


def settled(samples: Samples) -> float:
    """Canonical records at their final outcome: outputs emitted, dropped as a repeat, or dead-lettered.

    A parked record is not settled until a retry emits its outputs or dead-letters it.
    """
    return (
        total(samples, RECORDS, stage="recognise", outcome="passed")
        + total(samples, RECORDS, stage="recognise", outcome="exception")
        + total(samples, RECORDS, outcome="dropped")
        + total(samples, RECORDS, outcome="dead_lettered")
    )


def output_topics(catalog: TopicCatalog) -> list[str]:
    """Every topic a worker writes a record's outcome to."""
    return [
        catalog.commands_topic,
        catalog.exceptions_topic,
        catalog.retry_topic,
        *(catalog.deadletter_topic(stage) for stage in STAGES),
    ]


def _non_empty(reader: Consumer, topics: Sequence[str], *, from_end: bool) -> list[TopicPartition]:
    """The partitions of ``topics`` holding records, positioned at their start or last reported record."""
    metadata = reader.list_topics(timeout=10)
    wanted: list[TopicPartition] = []
    for topic in topics:
        described = metadata.topics.get(topic)
        for partition in described.partitions if described is not None else ():
            low, high = reader.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high > low:
                wanted.append(TopicPartition(topic, partition, high - 1 if from_end else OFFSET_BEGINNING))
    return wanted


def last_output_time(settings: Settings, topics: Sequence[str]) -> float | None:
    """The latest produce timestamp (epoch seconds) among the records of ``topics``.

    Reads each partition from one record before its reported end to its true end: Apache Kafka
    reports the end right, the embedded broker reports the first offset of the last record batch
    + 1 (ARCHITECTURE.md), so the read covers that whole batch.
    """
    reader = consumer(settings.kafka, f"bench-last-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True})
    try:
        wanted = _non_empty(reader, topics, from_end=True)
        if not wanted:
            return None
        reader.assign(wanted)
        pending = {(tp.topic, tp.partition) for tp in wanted}
        latest: float | None = None
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            for message in reader.consume(500, timeout=0.5):
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard((message.topic(), message.partition()))
                    continue
                moment = message.timestamp()[1] / 1000
                latest = moment if latest is None else max(latest, moment)
        return latest
    finally:
        reader.close()


def first_output_time(settings: Settings, topics: Sequence[str]) -> float | None:
    """The earliest produce timestamp (epoch seconds) among the first records of ``topics``."""
    reader = consumer(settings.kafka, f"bench-first-{uuid.uuid4().hex[:8]}")
    try:
        wanted = _non_empty(reader, topics, from_end=False)
        if not wanted:
            return None
        reader.assign(wanted)
        pending = {(tp.topic, tp.partition) for tp in wanted}
        earliest: float | None = None
        deadline = time.monotonic() + 30
        while pending and time.monotonic() < deadline:
            for message in reader.consume(500, timeout=0.5):
                coordinates = (message.topic(), message.partition())
                if message.error() is not None or coordinates not in pending:
                    continue
                pending.discard(coordinates)
                _, stamp = message.timestamp()
                moment = stamp / 1000
                earliest = moment if earliest is None else min(earliest, moment)
        return earliest
    finally:
        reader.close()


@dataclass
class ProcessSampler:
    """CPU-time samples of child processes, to read the CPU spent between two wall-clock moments."""

    pids: list[int]
    samples: list[tuple[float, float]] = field(default_factory=list)
    """(epoch seconds, total CPU seconds of all pids)."""
    peak_rss_mb: dict[int, float] = field(default_factory=dict)

    def sample(self) -> None:
        """Record the children's CPU time now, and their peak RSS so far."""
        total = 0.0
        now = time.time()
        for pid in self.pids:
            try:
                process = psutil.Process(pid)
                times = process.cpu_times()
                total += times.user + times.system
                self.peak_rss_mb[pid] = max(self.peak_rss_mb.get(pid, 0.0), _peak_rss_mb(process))
            except psutil.Error:
                continue
        self.samples.append((now, total))

    def cpu_between(self, start: float, end: float) -> float:
        """CPU seconds spent between ``start`` and ``end``, interpolated between samples."""
        return max(self._cpu_at(end) - self._cpu_at(start), 0.0)

    def _cpu_at(self, moment: float) -> float:
        samples = self.samples
        if not samples:
            return 0.0
        if moment <= samples[0][0]:
            return samples[0][1]
        for (t0, c0), (t1, c1) in itertools.pairwise(samples):
            if t0 <= moment <= t1:
                return c0 + (c1 - c0) * ((moment - t0) / (t1 - t0) if t1 > t0 else 0.0)
        return samples[-1][1]

    def figures(self) -> dict[str, Any]:
        """Peak RSS per child (MB), in pid order."""
        return {"peak_rss_mb": [round(self.peak_rss_mb.get(pid, 0.0), 1) for pid in self.pids]}


def _peak_rss_mb(process: psutil.Process) -> float:
    # VmHWM is the kernel's own high-water mark: a peak between two samples is not missed.
    with contextlib.suppress(OSError):
        for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float(process.memory_info().rss) / (1024 * 1024)
