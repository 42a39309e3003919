"""Reference data read whole by every worker: all partitions, newest version per id, then live."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Producer

from connectors.producers.publisher import Publisher
from processors.errors import WorkerConfigError
from processors.stages.master import MasterLookup
from processors.stages.reference import ReferenceFeed
from schemas.models import Product
from streams.clients import producer as make_producer
from streams.serde import AvroSerde
from streams.settings import Settings
from streams.topics import TopicCatalog
from tests.conftest import wait_for
from tests.unit.schemas.strategies import sample

START = datetime(2026, 1, 1, tzinfo=UTC)


def product(product_id: str, version: int) -> Product:
    return sample(Product).model_copy(
        update={"product_id": product_id, "version": version, "updated_at": START + timedelta(days=version)}
    )


def test_every_partition_is_read_newest_version_wins_and_later_records_arrive(
    stack_settings: Settings,
    catalog: TopicCatalog,
    serde: AvroSerde,
) -> None:
    topic = catalog.master_topic("product")
    with Publisher(stack_settings, catalog=catalog) as publisher:
        stored = [publisher.publish_master(product(f"P{index}", 1)) for index in range(30)]
        publisher.publish_master(product("P0", 3))
        publisher.publish_master(product("P0", 2))  # older: must not replace version 3
    partitions = {future.result(timeout=30).partition for future in stored}
    assert len(partitions) == catalog.partitions, "the products should be spread over every partition"
    tombstones: Producer = make_producer(stack_settings.kafka)
    tombstones.produce(topic, key=b"P1", value=None, partition=stored[1].result().partition)
    assert tombstones.flush(10) == 0

    lookup: MasterLookup[Product] = MasterLookup("product", None, serde)
    feed = ReferenceFeed(stack_settings.kafka, {topic: lookup})
    feed.start()
    try:
        assert feed.wait_caught_up(30), "the feed did not reach the end of every partition"
        assert lookup.get("P0") is not None and lookup["P0"].version == 3
        assert lookup.get("P1") is None
        assert sorted(lookup) == sorted(f"P{index}" for index in range(30) if index != 1)
        assert feed.records == 33 and feed.errors == 0

        with Publisher(stack_settings, catalog=catalog) as publisher:
            publisher.publish_master(product("P-late", 1))
        wait_for(lambda: lookup.get("P-late") is not None, 15, "a product published after the first read")
    finally:
        feed.stop()


def test_a_missing_topic_is_refused_in_one_line(stack_settings: Settings, serde: AvroSerde) -> None:
    lookup: MasterLookup[Product] = MasterLookup("product", None, serde)
    feed = ReferenceFeed(stack_settings.kafka, {"no-such-reference-topic": lookup})
    with pytest.raises(WorkerConfigError, match="no-such-reference-topic does not exist"):
        feed.start()
