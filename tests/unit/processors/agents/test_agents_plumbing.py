"""The worker's plumbing as pure logic: dead-letter reasons, the state overlay, delivery, metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from processors.agents.decode import CORRUPT_RECORD, INVALID_RECORD, UNKNOWN_SCHEMA_ID, decode_reason
from processors.agents.pipeline import PROCESSING_ERROR, rule_reason
from processors.errors import (
    InvalidPeriodError,
    MissingAmountError,
    OutputDeliveryError,
    RuleInputError,
    UnbalancedEntryError,
    UnpostableLineError,
)
from processors.metrics import BatchTally, ProcessorMetrics
from processors.outputs import OutputProducer
from processors.state import StateBatch
from streams.errors import CorruptRecordError, InvalidRecordError, UnknownSchemaIdError
from streams.settings import KafkaSettings


def test_rule_errors_map_to_their_dead_letter_reasons():
    assert rule_reason(UnbalancedEntryError("JE1", "EUR", 10, 9)) == "UNBALANCED_ENTRY"
    assert rule_reason(InvalidPeriodError("2024-02-01", "2024-01-01")) == "INVALID_PERIOD"
    assert rule_reason(MissingAmountError("no amount")) == "MISSING_AMOUNT"
    assert rule_reason(UnpostableLineError("UNKNOWN line")) == "UNPOSTABLE_LINE"
    assert rule_reason(RuleInputError("bad")) == "INVALID_RULE_INPUT"
    assert rule_reason(KeyError("a bug")) == PROCESSING_ERROR


def test_decode_errors_map_to_their_dead_letter_reasons():
    assert decode_reason(UnknownSchemaIdError("unknown", 7)) == UNKNOWN_SCHEMA_ID
    assert decode_reason(CorruptRecordError("bad magic")) == CORRUPT_RECORD
    assert decode_reason(InvalidRecordError("not an event")) == INVALID_RECORD


class FakeTable:
    def __init__(self, name: str, stored: dict[tuple[int, bytes], bytes]) -> None:
        self.name = name
        self.stored = stored
        self.written: list[tuple[int, dict[bytes, bytes | None]]] = []
        self.persisted: dict[int, int] = {}

    @property
    def changelog_topic(self) -> str:
        return f"app-{self.name}-changelog"

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self.stored.get((partition, key))

    def write(self, partition: int, items: dict[bytes, bytes | None]) -> None:
        self.written.append((partition, dict(items)))

    def persist_offset(self, partition: int, offset: int) -> None:
        self.persisted[partition] = offset


class FakeProducer:
    """Stands in for confluent-kafka's Producer: delivery reports are served on poll."""

    def __init__(self, fail_topics: frozenset[str] = frozenset()) -> None:
        self.on_delivery: Any = None
        self.fail_topics = fail_topics
        self.pending: list[tuple[Any, Any]] = []
        self.sent: list[tuple[str, bytes | None, bytes | None, dict[str, Any]]] = []
        self.offsets: dict[tuple[str, int], int] = {}

    def produce(self, topic: str, value: bytes | None, key: bytes | None, **kwargs: Any) -> None:
        partition = kwargs.get("partition", 0)
        offset = self.offsets.get((topic, partition), -1) + 1
        self.offsets[topic, partition] = offset
        self.sent.append((topic, key, value, kwargs))
        self.pending.append((self.on_delivery, FakeMessage(topic, partition, offset)))

    def poll(self, timeout: float = 0) -> int:
        served, self.pending = self.pending, []
        for callback, message in served:
            error = FakeError() if message.topic() in self.fail_topics else None
            callback(error, message)
        return len(served)

    def flush(self, timeout: float = 0) -> int:
        self.poll()
        return 0


class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._where = (topic, partition, offset)

    def topic(self) -> str:
        return self._where[0]

    def partition(self) -> int:
        return self._where[1]

    def offset(self) -> int:
        return self._where[2]


class FakeError:
    def str(self) -> str:
        return "Broker: not enough replicas"


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
    batch.write(outputs)
    batch.persist(asyncio.run(outputs.delivered()))

    assert table.written == [(0, {b"a": b"new", b"b": b"one"}), (1, {b"a": None})]
    assert [(t, k, v, kw["partition"]) for t, k, v, kw in producer.sent] == [
        ("app-dedupe-changelog", b"a", b"new", 0),
        ("app-dedupe-changelog", b"b", b"one", 0),
        ("app-dedupe-changelog", b"a", None, 1),
    ]
    assert table.persisted == {0: 1, 1: 0}


def test_a_failed_delivery_surfaces_and_stops_further_output():
    producer = FakeProducer(fail_topics=frozenset({"ns.erp.commands"}))
    outputs = OutputProducer(KafkaSettings(), producer=producer)
    producer.on_delivery = outputs.on_delivery
    outputs.produce("ns.erp.commands", b"C1", b"value")
    with pytest.raises(OutputDeliveryError, match="not enough replicas"):
        asyncio.run(outputs.delivered())
    with pytest.raises(OutputDeliveryError):
        outputs.produce("ns.erp.commands", b"C1", b"again")


def test_a_batch_tally_lands_in_the_metrics_with_bounded_labels():
    metrics = ProcessorMetrics.create(CollectorRegistry())
    tally = BatchTally.empty()
    tally.processed["dedupe", "dropped"] += 2
    tally.processed["enrich", "parked"] += 1
    tally.dead_letters["decode", "CORRUPT_RECORD"] += 1
    tally.exceptions["USAGE_BILLING_MISMATCH"] += 3
    tally.commands["JOURNAL_ENTRY"] += 5
    metrics.add(tally)

    value = metrics.registry.get_sample_value
    assert value("revstream_processor_duplicates_dropped_total") == 2
    assert value("revstream_processor_parked_total") == 1
    assert (
        value("revstream_processor_dead_letters_total", {"stage": "decode", "reason": "CORRUPT_RECORD"}) == 1
    )
    assert value("revstream_processor_business_exceptions_total", {"reason": "USAGE_BILLING_MISMATCH"}) == 3
    assert value("revstream_processor_erp_commands_total", {"command_type": "JOURNAL_ENTRY"}) == 5
