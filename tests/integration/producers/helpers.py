"""Read records back the way an outside consumer would: a plain confluent-kafka consumer and
confluent-kafka's own Avro deserializer with its schema-registry client (nothing of revstream)."""

from __future__ import annotations

import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import MessageField, SerializationContext, SerializationError

from schemas.models import UsageRecorded
from streams.settings import Settings


@dataclass(frozen=True)
class Read:
    topic: str
    partition: int
    offset: int
    key: str | None
    raw: bytes | None
    value: dict[str, Any] | None
    headers: dict[str, bytes]


def read_back(
    settings: Settings,
    topics: Sequence[str],
    until: Callable[[list[Read]], bool],
    timeout_s: float = 30.0,
    decode: bool = True,
) -> list[Read]:
    """Read ``topics`` from the beginning until ``until(records)`` holds (or fail after the timeout)."""
    registry = SchemaRegistryClient({"url": settings.registry.require_url()})
    deserializer = AvroDeserializer(registry)
    consumer = Consumer(
        {
            "bootstrap.servers": settings.kafka.require_bootstrap(),
            "group.id": f"readback-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
        }
    )
    try:
        partitions = []
        for topic in topics:
            metadata = consumer.list_topics(topic, timeout=10).topics[topic]
            partitions += [TopicPartition(topic, p, OFFSET_BEGINNING) for p in metadata.partitions]
        # assign() rather than subscribe(): no group join, so no coordinator round trips to wait for.
        consumer.assign(partitions)
        records: list[Read] = []
        deadline = time.monotonic() + timeout_s
        while not until(records):
            if time.monotonic() > deadline:
                pytest.fail(
                    f"read {len(records)} records from {list(topics)}; condition not met in {timeout_s}s"
                )
            message = consumer.poll(0.2)
            if message is None or message.error() is not None:
                continue
            raw = message.value()
            value = None
            if decode and raw is not None:
                try:
                    value = deserializer(raw, SerializationContext(message.topic() or "", MessageField.VALUE))
                except (SerializationError, SchemaRegistryError):
                    value = None  # not Avro, or a schema id the registry does not know: kept as bytes

            key = message.key()
            records.append(
                Read(
                    message.topic() or "",
                    message.partition() or 0,
                    message.offset() or 0,
                    key.decode() if isinstance(key, bytes) else None,
                    raw,
                    value,
                    {
                        str(name): data
                        for name, data in list(message.headers() or [])
                        if isinstance(data, bytes)
                    },
                )
            )
        return records
    finally:
        consumer.close()


def kcat_read(bootstrap: str, topic: str, count: int) -> str | None:
    """Return ``kcat -C`` output of ``count`` records, or None when kcat cannot talk to this broker."""
    if not shutil.which("kcat"):
        return None
    result = subprocess.run(
        [
            "kcat",
            "-b",
            bootstrap,
            "-C",
            "-t",
            topic,
            "-o",
            "beginning",
            "-c",
            str(count),
            "-e",
            "-f",
            "%k %h\\n",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if "ApiVersionRequest failed" in result.stderr and result.returncode != 0:
        # Debian's kcat bundles a librdkafka that cannot parse the embedded broker's ApiVersions v3
        # reply (see tests/integration/test_stack_cli.py); it works against Apache Kafka.
        return None
    assert result.returncode == 0, result.stderr
    return result.stdout


T0 = datetime(2026, 1, 5, 10, tzinfo=UTC)


def usage(event_id: str, customer_id: str = "CUST-1", quantity: int = 10) -> UsageRecorded:
    return UsageRecorded(
        event_id=event_id,
        occurred_at=T0,
        source="meter",
        customer_id=customer_id,
        legal_entity="LE-US",
        correlation_id="SUB-1",
        subscription_id="SUB-1",
        metric="api_calls",
        quantity=quantity,
        window_start=T0 - timedelta(days=1),
        window_end=T0,
    )
