"""The topic catalog: completeness, co-partitioning and layout rules."""

from __future__ import annotations

from schemas.names import EVENT_TYPES, MASTER_DATA_KINDS, STAGES
from streams.settings import load_settings
from streams.topics import TopicCatalog, catalog_for


def test_catalog_lists_every_topic_once() -> None:
    catalog = TopicCatalog("rs", partitions=6, replication_factor=3)
    names = [spec.name for spec in catalog.specs()]
    assert len(names) == len(set(names))
    for event_type in EVENT_TYPES:
        assert catalog.event_topic(event_type) in names
    for kind in MASTER_DATA_KINDS:
        assert catalog.master_topic(kind) in names
    for stage in STAGES:
        assert catalog.deadletter_topic(stage) in names
    for name in (
        catalog.enriched_topic,
        catalog.exceptions_topic,
        catalog.commands_topic,
        catalog.retry_topic,
    ):
        assert name in names


def test_canonical_topics_are_co_partitioned_by_customer() -> None:
    catalog = TopicCatalog("rs", partitions=12, replication_factor=3)
    canonical = [s for s in catalog.specs() if s.kind in ("canonical", "enriched", "commands", "retry")]
    assert {s.partitions for s in canonical} == {12}
    assert {s.key for s in canonical} == {"customer_id"}


def test_master_data_is_compacted_and_keyed_by_id() -> None:
    catalog = TopicCatalog("rs", partitions=6, replication_factor=1)
    masters = [s for s in catalog.specs() if s.kind == "master"]
    assert len(masters) == len(MASTER_DATA_KINDS)
    for spec in masters:
        assert spec.config["cleanup.policy"] == "compact"
        assert "retention.ms" not in spec.config
        assert spec.key.endswith("_id")


def test_replication_defaults_follow_the_profile() -> None:
    assert catalog_for(load_settings(profile="embedded")).replication_factor == 1
    external = load_settings(profile="external", kafka={"bootstrap_servers": "k:9092"})
    assert catalog_for(external).replication_factor == 3
    explicit = load_settings(profile="external", topics={"replication_factor": 2})
    assert catalog_for(explicit).replication_factor == 2
