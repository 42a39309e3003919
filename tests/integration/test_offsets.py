"""``streams.offsets.true_end_offsets``: real end offsets, whatever the broker's ListOffsets says."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import NamedTuple

from confluent_kafka import Producer, TopicPartition

from streams.clients import consumer as make_consumer
from streams.clients import producer as make_producer
from streams.offsets import true_end_offsets
from streams.settings import Settings


class TP(NamedTuple):
    topic: str
    partition: int


def true_end(settings: Settings, topic: str) -> int:
    consumer = make_consumer(settings.kafka, f"offsets-{uuid.uuid4().hex[:6]}")
    try:
        _, reported = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        consumer.close()
    return true_end_offsets(settings.kafka, {TP(topic, 0): int(reported)})[TP(topic, 0)]


def test_end_offsets_after_batched_produce_count_every_record(
    stack_settings: Settings, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("offsets")
    producer = make_producer(stack_settings.kafka, **{"linger.ms": 100})
    for batch in (5, 1, 3):  # batches of 5, 1 and 3 records (ARCHITECTURE.md's measurement)
        for number in range(batch):
            producer.produce(topic, b"v%d" % number, partition=0)
        assert producer.flush(30) == 0
    assert true_end(stack_settings, topic) == 9


def test_a_partition_ending_in_a_transaction_marker_has_its_end_found(
    stack_settings: Settings, topic_factory: Callable[..., str]
) -> None:
    topic = topic_factory("offsets-tx")
    config = {**stack_settings.kafka.producer_config(), "transactional.id": topic, "enable.idempotence": True}
    config.pop("max.in.flight.requests.per.connection", None)
    producer = Producer(config)
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, b"a", partition=0)
    producer.produce(topic, b"b", partition=0)
    producer.commit_transaction(30)
    # Two records and the commit marker: the last offset holds no record a consumer is given.
    assert true_end(stack_settings, topic) == 3
