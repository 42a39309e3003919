"""The state overlay: read-your-writes in a batch, then changelog, local write and persisted offset."""

from __future__ import annotations

import asyncio

from processors.engine.outputs import OutputProducer
from processors.engine.state import StateBatch
from streams.settings import KafkaSettings
from tests.unit.processors.engine.fakes import FakeProducer, FakeTable


def test_the_overlay_reads_its_own_writes_and_writes_each_partition_once():
    table = FakeTable("dedupe", {(0, b"a"): b"stored"})
    batch = StateBatch([table])
    assert batch.get("dedupe", 0, b"a") == b"stored"
    batch.put("dedupe", 0, b"a", b"new")
    batch.put("dedupe", 0, b"b", b"one")
    batch.put("dedupe", 1, b"a", None)
    assert batch.get("dedupe", 0, b"a") == b"new"
    assert batch.get("dedupe", 1, b"a") is None
    assert len(batch) == 3

    producer = FakeProducer()
    outputs = OutputProducer(KafkaSettings(), watch_topics=[table.changelog_topic], producer=producer)
    producer.on_delivery = outputs.on_delivery
    batch.changelog(outputs)
    # The local store is written only once the changelog records are delivered (they could be lost).
    assert table.written == []
    delivered = asyncio.run(outputs.delivered())
    batch.write()
    batch.persist(delivered)

    assert table.written == [(0, {b"a": b"new", b"b": b"one"}), (1, {b"a": None})]
    assert [(t, k, v, kw["partition"]) for t, k, v, kw in producer.sent] == [
        ("app-dedupe-changelog", b"a", b"new", 0),
        ("app-dedupe-changelog", b"b", b"one", 0),
        ("app-dedupe-changelog", b"a", None, 1),
    ]
    assert table.persisted == {0: 1, 1: 0}


def test_a_batch_reads_through_the_previous_batch_until_that_one_is_written():
    table = FakeTable("contracts", {(0, b"k"): b"stored"})
    previous = StateBatch([table])
    previous.put("contracts", 0, b"k", b"previous")
    previous.put("contracts", 0, b"gone", None)
    batch = StateBatch([table], beneath=previous)
    assert batch.get("contracts", 0, b"k") == b"previous"
    assert batch.get("contracts", 0, b"gone") is None
    batch.put("contracts", 0, b"k", b"mine")
    assert batch.get("contracts", 0, b"k") == b"mine"
    batch.detach()
    assert batch.get("contracts", 0, b"other") is None and len(batch) == 1
