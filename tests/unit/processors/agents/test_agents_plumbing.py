"""The worker's plumbing as pure logic: dead-letter reasons, the state overlay, delivery, metrics."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from processors.engine.failures import record_fault, systemic_failure
from processors.engine.outputs import OutputProducer
from processors.engine.state import StateBatch
from processors.errors import (
    InvalidPeriodError,
    MissingAmountError,
    OutputDeliveryError,
    RuleInputError,
    UnbalancedEntryError,
    UnpostableLineError,
)
from processors.metrics import BatchTally, ProcessorMetrics
from processors.stages.decode import CORRUPT_RECORD, INVALID_RECORD, UNKNOWN_SCHEMA_ID, decode_reason
from processors.stages.master import MasterLookup
from streams.errors import CorruptRecordError, InvalidRecordError, RecordEncodeError, UnknownSchemaIdError
from streams.settings import KafkaSettings
from tests.unit.processors import factories as f


def test_the_records_faults_map_to_dead_letter_reasons_and_nothing_else_does():
    assert record_fault(UnbalancedEntryError("JE1", "EUR", 10, 9)) == "UNBALANCED_ENTRY"
    assert record_fault(InvalidPeriodError("2024-02-01", "2024-01-01")) == "INVALID_PERIOD"
    assert record_fault(MissingAmountError("no amount")) == "MISSING_AMOUNT"
    assert record_fault(UnpostableLineError("UNKNOWN line")) == "UNPOSTABLE_LINE"
    assert record_fault(RuleInputError("bad")) == "INVALID_RULE_INPUT"
    assert record_fault(RecordEncodeError("long out of range")) == "UNENCODABLE_OUTPUT"
    assert record_fault(OverflowError("date value out of range")) == "INVALID_RULE_INPUT"
    # A defect, a broken store, undelivered outputs: not the record's fault, never a dead letter.
    assert record_fault(KeyError("a bug")) is None
    assert record_fault(OSError("rocksdb: IO error")) is None
    assert record_fault(OutputDeliveryError("broker down")) is None


def test_a_systemic_failure_needs_both_the_share_and_the_count():
    assert systemic_failure({("decode", "CORRUPT_RECORD"): 60}, 100, 0.5, 50) is not None
    assert systemic_failure({("decode", "CORRUPT_RECORD"): 40}, 60, 0.5, 50) is None  # too few
    assert systemic_failure({("decode", "CORRUPT_RECORD"): 60}, 200, 0.5, 50) is None  # small share
    # A master-data outage dead-letters many records by design: not a reason to stop.
    assert systemic_failure({("enrich", "MASTER_DATA_MISSING"): 900}, 1000, 0.5, 50) is None


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
    table = FakeTable("ledger", {(0, b"k"): b"stored"})
    previous = StateBatch([table])
    previous.put("ledger", 0, b"k", b"previous")
    previous.put("ledger", 0, b"gone", None)
    batch = StateBatch([table], beneath=previous)
    assert batch.get("ledger", 0, b"k") == b"previous"
    assert batch.get("ledger", 0, b"gone") is None
    batch.put("ledger", 0, b"k", b"mine")
    assert batch.get("ledger", 0, b"k") == b"mine"
    batch.detach()
    assert batch.get("ledger", 0, b"other") is None and len(batch) == 1


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


class FakeSerde:
    def decode_model(self, raw: bytes, model: Any, topic: str | None = None) -> Any:
        return f.customer(raw.decode())


def test_the_customer_cache_is_bounded_and_a_miss_reads_the_table_again() -> None:
    table = {f"C{i}".encode(): f"C{i}".encode() for i in range(5)}
    lookup: MasterLookup[Any] = MasterLookup("customer", table, FakeSerde(), cache_max=2)  # type: ignore[arg-type]
    for i in range(5):
        assert lookup.get(f"C{i}").customer_id == f"C{i}"
    assert len(lookup._cache) == 2
    assert lookup.get("C0").customer_id == "C0"  # evicted, read from the table again
    # Reference data has no table behind its cache: nothing is evicted there.
    products: MasterLookup[Any] = MasterLookup("product", None, FakeSerde(), cache_max=1)  # type: ignore[arg-type]
    for i in range(3):
        products._remember(f"P{i}", f.product(f"P{i}"))
    assert len(products._cache) == 3
