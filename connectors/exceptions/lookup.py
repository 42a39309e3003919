"""Find an exception's source event on its canonical topic, for ``exceptions show``.

The queue keeps which event broke the rule (its id and type), not where that event lies: it is
looked up on ``<ns>.events.<event_type>``, first in the partition the exception was read from (the
worker keys both by customer, so on co-partitioned topics it is the same one), then in the others,
reading from the beginning and decoding through the registry, within a time limit.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from schemas.names import EVENT_TYPES
from streams.clients import consumer as make_consumer
from streams.errors import RegistryUnavailableError, SerdeError
from streams.serde import AvroSerde
from streams.settings import Settings
from streams.topics import TopicCatalog

__all__ = ["SourceEvent", "find_source_event"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SourceEvent:
    """The event that raised an exception, decoded, and where it was found."""

    topic: str
    partition: int
    offset: int
    record: dict[str, Any]


def find_source_event(
    settings: Settings,
    catalog: TopicCatalog,
    event_type: str,
    event_id: str,
    partition_hint: int,
    timeout_s: float = 10.0,
) -> SourceEvent | None:
    """Return the event ``event_id`` of ``event_type``, or ``None`` when not found within ``timeout_s``.

    Raises:
        RegistryUnavailableError: when the registry cannot be reached to decode it.
    """
    if event_type not in EVENT_TYPES:
        return None
    topic = catalog.event_topic(event_type)
    consumer = make_consumer(
        settings.kafka, f"revstream-exceptions-show-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True}
    )
    serde = AvroSerde.from_settings(settings.registry)
    deadline = time.monotonic() + timeout_s
    try:
        metadata = consumer.list_topics(topic, timeout=timeout_s).topics.get(topic)
        if metadata is None or metadata.error is not None:
            return None
        partitions = sorted(metadata.partitions, key=lambda p: (p != partition_hint, p))
        for partition in partitions:
            found = _scan(consumer, serde, topic, partition, event_id, deadline)
            if found is not None or time.monotonic() >= deadline:
                return found
        return None
    finally:
        consumer.close()


def _scan(
    consumer: Any, serde: AvroSerde, topic: str, partition: int, event_id: str, deadline: float
) -> SourceEvent | None:
    consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
    while time.monotonic() < deadline:
        for message in consumer.consume(500, timeout=0.2):
            error = message.error()
            if error is not None:
                if error.code() == KafkaError._PARTITION_EOF:
                    return None
                continue
            try:
                _, record = serde.decode(message.value() or b"")
            except RegistryUnavailableError:
                raise
            except SerdeError:
                continue  # a corrupt record of the topic: the decode stage dead-lettered it
            if record.get("event_id") == event_id:
                return SourceEvent(topic, partition, int(message.offset() or 0), record)
    return None
