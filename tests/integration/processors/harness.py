"""Harness of the processors' integration tests: publish events, run workers, read outputs back.

Workers run as ``python -m revstream worker`` subprocesses (as a user runs them), pointed at the
session's embedded stack and a topic namespace of the test's own. Outputs are read back with a
plain confluent-kafka consumer and the serde, from the beginning of each topic.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition

from schemas.models import AvroRecord, BusinessException, ErpCommand, EventEnvelope, MasterRecord
from streams.clients import consumer as make_consumer
from streams.clients import producer as make_producer
from streams.deadletter import DeadLetter, parse_dead_letter
from streams.serde import AvroSerde
from streams.settings import Settings
from streams.stack import free_port
from streams.topics import TopicCatalog

MASTER_KEY = {"customer": "customer_id", "product": "product_id", "legal_entity": "legal_entity_id"}
MASTER_KIND = {"Customer": "customer", "Product": "product", "LegalEntity": "legal_entity"}


def read_topic(settings: Settings, topic: str, timeout_s: float = 10.0) -> list[Message]:
    """Every record of ``topic`` from the beginning up to its current end, in partition order."""
    consumer = make_consumer(
        settings.kafka, f"reader-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending = set(partitions)
        messages: list[Message] = []
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.2):
                error = message.error()
                if error is None:
                    messages.append(message)
                elif error.code() == error._PARTITION_EOF:
                    pending.discard(message.partition())
        assert not pending, f"could not read {topic} to its end within {timeout_s}s"
        return messages
    finally:
        consumer.close()


def headers_of(message: Message) -> list[tuple[str, bytes]]:
    raw: Any = message.headers() or []
    return [(str(k), v if isinstance(v, bytes) else (v or "").encode()) for k, v in raw]


@dataclass
class Harness:
    """Publishing to and reading from one test namespace."""

    settings: Settings
    catalog: TopicCatalog
    serde: AvroSerde
    producer: Any = field(init=False)

    def __post_init__(self) -> None:
        self.producer = make_producer(self.settings.kafka)

    # -- publishing -----------------------------------------------------------------------------

    def publish(self, *events: EventEnvelope, topic: str | None = None) -> None:
        for event in events:
            target = topic or self.catalog.event_topic(event.event_type)
            value = self.serde.serialize(target, event)
            self.producer.produce(target, key=event.customer_id.encode(), value=value)
        assert self.producer.flush(30) == 0

    def publish_master(self, *records: MasterRecord) -> None:
        for record in records:
            kind = MASTER_KIND[type(record).__name__]
            topic = self.catalog.master_topic(kind)
            key = str(getattr(record, MASTER_KEY[kind]))
            self.producer.produce(topic, key=key.encode(), value=self.serde.serialize(topic, record))
        assert self.producer.flush(30) == 0

    def publish_raw(self, topic: str, key: bytes | None, value: bytes | None, headers: Any = None) -> None:
        self.producer.produce(topic, key=key, value=value, headers=headers)
        assert self.producer.flush(30) == 0

    # -- reading back ---------------------------------------------------------------------------

    def read(self, topic: str) -> list[Message]:
        return read_topic(self.settings, topic)

    def decoded(self, topic: str, model: type[AvroRecord]) -> list[Any]:
        return [self.serde.decode_model(m.value() or b"", model) for m in self.read(topic)]

    def commands(self) -> list[ErpCommand]:
        return self.decoded(self.catalog.commands_topic, ErpCommand)

    def exceptions(self) -> list[BusinessException]:
        return self.decoded(self.catalog.exceptions_topic, BusinessException)

    def dead_letters(self, stage: str) -> list[DeadLetter]:
        return [
            parse_dead_letter(m.key(), m.value(), headers_of(m))
            for m in self.read(self.catalog.deadletter_topic(stage))
        ]


def wait_until(
    condition: Callable[[], Any], timeout_s: float, what: str, worker: WorkerProcess | None = None
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` (and the worker's log)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        if worker is not None and worker.process is not None and worker.process.poll() is not None:
            raise AssertionError(
                f"the worker exited ({worker.process.returncode}) waiting for {what}:\n{worker.log_tail()}"
            )
        time.sleep(0.2)
    tail = f"\nworker log:\n{worker.log_tail()}" if worker is not None else ""
    raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}{tail}")


@dataclass
class WorkerProcess:
    """One ``revstream worker`` subprocess of a test namespace."""

    settings: Settings
    namespace: str
    data_dir: Path
    log_path: Path
    env_overrides: dict[str, str] = field(default_factory=dict)
    web_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    argv: tuple[str, ...] = ("-m", "revstream", "worker")
    """What the interpreter runs (a test hook module instead of the CLI, for instance)."""

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REVSTREAM_") and k != "DATABASE_URL"}
        env.update(
            REVSTREAM_PROFILE="embedded" if self.settings.embedded else "external",
            REVSTREAM_KAFKA_BOOTSTRAP_SERVERS=self.settings.kafka.require_bootstrap(),
            REVSTREAM_KAFKA_SESSION_TIMEOUT_MS=str(self.settings.kafka.session_timeout_ms or 6000),
            REVSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS=str(self.settings.kafka.heartbeat_interval_ms or 1000),
            REVSTREAM_REGISTRY_URL=self.settings.registry.require_url(),
            REVSTREAM_DATABASE_URL=self.settings.database.conninfo(),
            REVSTREAM_TOPICS_NAMESPACE=self.namespace,
            REVSTREAM_TOPICS_PARTITIONS="3",
            REVSTREAM_WORKER_DATA_DIR=str(self.data_dir),
            REVSTREAM_WORKER_WEB_PORT=str(self.web_port),
            REVSTREAM_WORKER_MASTER_RETRY_BACKOFF="0.3",
            REVSTREAM_WORKER_MASTER_RETRY_BACKOFF_MAX="2",
            REVSTREAM_LOGLEVEL="info",
        )
        env.update(self.env_overrides)
        return env

    def start(self) -> WorkerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, *self.argv],
            env=self.env(),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return self

    def metrics(self) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.web_port}/metrics", timeout=2) as response:
                return str(response.read().decode())
        except OSError:
            return None

    def metric(self, name: str, labels: dict[str, str] | None = None) -> float:
        """The value of one sample on the worker's /metrics (0 when absent)."""
        text = self.metrics() or ""
        wanted = name + (
            "{" + ",".join(f'{k}="{v}"' for k, v in sorted((labels or {}).items())) + "}" if labels else ""
        )
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            sample, _, value = line.rpartition(" ")
            if _normalise(sample) == wanted:
                return float(value)
        return 0.0

    def wait_ready(self, timeout_s: float = 60.0) -> WorkerProcess:
        wait_until(lambda: self.metrics() is not None, timeout_s, "the worker's /metrics", self)
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except FileNotFoundError:
            return "(no log)"


def _normalise(sample: str) -> str:
    if "{" not in sample:
        return sample
    name, _, rest = sample.partition("{")
    labels = sorted(part for part in rest.rstrip("}").split(",") if part)
    return name + "{" + ",".join(labels) + "}"


def ids(records: Iterable[Any], attribute: str) -> list[str]:
    return [getattr(record, attribute) for record in records]
