"""The pipeline's failure policy, record by record, with in-memory state and a fake codec.

The record's fault dead-letters that record whole (none of its outputs, none of its state); any
other failure propagates to the agent, which retries the batch and then stops the worker.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from processors.engine.context import BatchContext
from processors.engine.outputs import OutputProducer
from processors.engine.pipeline import Pipeline
from processors.rules.enrich import MasterView
from processors.stages.accounting import CONTRACTS
from processors.stages.decode import Decoded
from schemas.models import AvroRecord, BusinessException, ErpCommand, EventEnvelope
from streams.deadletter import parse_dead_letter
from streams.errors import RecordEncodeError
from streams.settings import KafkaSettings, WorkerSettings
from streams.topics import TopicCatalog
from tests.unit.processors import factories as f
from tests.unit.processors.engine.fakes import FakeProducer

CATALOG = TopicCatalog("ns", 3, 1)


@dataclass
class Message:
    topic: str
    partition: int
    offset: int
    value: bytes
    key: bytes = b"C1"
    timestamp: float = 1_700_000_000.0
    headers: tuple[tuple[str, bytes], ...] = ()


class FakeCodec:
    def __init__(self, refuse: type[AvroRecord] | None = None) -> None:
        self.refuse = refuse

    def encode(self, topic: str, record: AvroRecord) -> bytes:
        if self.refuse is not None and isinstance(record, self.refuse):
            raise RecordEncodeError("value does not fit: long out of range", topic=topic)
        return type(record).__name__.encode()


@dataclass
class FakeDecoder:
    """Looks the event up by the record value (its event id)."""

    events: dict[bytes, EventEnvelope]
    codec: FakeCodec = field(default_factory=FakeCodec)

    def decode(self, value: bytes, topic: str, partition: int, offset: int) -> Decoded:
        event = self.events[value]
        return Decoded(event, event.model_dump())


class Store:
    """The batch state: a dict, optionally broken."""

    def __init__(self, broken: bool = False) -> None:
        self.data: dict[tuple[str, int, bytes], bytes | None] = {}
        self.broken = broken

    def get(self, table: str, partition: int, key: bytes) -> bytes | None:
        if self.broken:
            raise OSError("rocksdb: IO error")
        return self.data.get((table, partition, key))

    def put(self, table: str, partition: int, key: bytes, value: bytes | None) -> None:
        self.data[table, partition, key] = value


def make(*events: EventEnvelope, codec: FakeCodec | None = None) -> tuple[Pipeline, FakeProducer]:
    producer = FakeProducer()
    outputs = OutputProducer(KafkaSettings(), producer=producer)  # type: ignore[arg-type]
    producer.on_delivery = outputs.on_delivery
    view = MasterView(
        customers={"C1": f.customer()},
        products={"P1": f.product("P1")},
        legal_entities={"LE-DE": f.legal_entity()},
    )
    master = type("Master", (), {"view": view, "kind_of_topic": {}, "reference_topics": {}})()
    decoder = FakeDecoder({event.event_id.encode(): event for event in events}, codec or FakeCodec())
    pipeline = Pipeline(
        catalog=CATALOG,
        worker=WorkerSettings(),
        group_id="ns-processors",
        decoder=decoder,  # type: ignore[arg-type]
        serde=None,  # type: ignore[arg-type]
        master=master,
        outputs=outputs,
    )
    return pipeline, producer


def message(event: EventEnvelope, offset: int = 0) -> Message:
    return Message(CATALOG.event_topic(event.event_type), 0, offset, event.event_id.encode())


def topics(producer: FakeProducer) -> list[str]:
    return [topic for topic, _, _, _ in producer.sent]


def test_a_good_record_emits_its_commands_and_keeps_its_state() -> None:
    invoice = f.invoice()
    pipeline, producer = make(invoice)
    ctx = BatchContext(state=Store())
    pipeline.process(message(invoice), ctx)
    pipeline.finish(ctx)
    assert set(topics(producer)) == {CATALOG.commands_topic}
    assert any(table == CONTRACTS for table, _, _ in ctx.state.data)


def test_a_rules_refusal_dead_letters_the_record_whole() -> None:
    # A milestone with neither an amount nor an order line: nothing tells what to recognise.
    milestone = f.activation(milestone_amount_minor=None, line_id=None)
    pipeline, producer = make(milestone)
    ctx = BatchContext(state=Store())
    pipeline.process(message(milestone), ctx)
    assert topics(producer) == [CATALOG.deadletter_topic("recognise")]
    _, key, value, kwargs = producer.sent[0]
    letter = parse_dead_letter(key, value, kwargs["headers"])
    assert (
        letter.failure.reason_code == "MISSING_AMOUNT" and letter.source.value == milestone.event_id.encode()
    )
    # Its dedupe entry is gone with it, so a replay from the dead-letter topic is processed.
    assert all(value is None for (table, _, _), value in ctx.state.data.items() if table == "dedupe")
    assert not any(table == CONTRACTS for table, _, _ in ctx.state.data)


def test_an_output_that_does_not_encode_dead_letters_the_record_without_any_of_its_outputs() -> None:
    invoice = f.invoice()
    pipeline, producer = make(invoice, codec=FakeCodec(refuse=ErpCommand))
    ctx = BatchContext(state=Store())
    pipeline.process(message(invoice), ctx)
    assert topics(producer) == [CATALOG.deadletter_topic("recognise")]
    letter = parse_dead_letter(producer.sent[0][1], producer.sent[0][2], producer.sent[0][3]["headers"])
    assert letter.failure.reason_code == "UNENCODABLE_OUTPUT"
    assert not any(table == CONTRACTS for table, _, _ in ctx.state.data)


def test_a_broken_store_is_not_the_records_fault_and_propagates() -> None:
    invoice = f.invoice()
    pipeline, producer = make(invoice)
    with pytest.raises(OSError, match="rocksdb"):
        pipeline.process(message(invoice), BatchContext(state=Store(broken=True)))
    assert producer.sent == []


def test_a_defect_in_a_rule_propagates_instead_of_dead_lettering_a_good_record(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    invoice = f.invoice()
    pipeline, producer = make(invoice)

    def defect(*args: Any) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr("processors.engine.pipeline.recognise", defect)
    with pytest.raises(KeyError):
        pipeline.process(message(invoice), BatchContext(state=Store()))
    assert producer.sent == []


def test_a_mismatch_report_that_fails_dead_letters_its_trigger_and_keeps_the_revision_unraised() -> None:
    usage = f.usage("U1", quantity=100)
    invoice = f.invoice(lines=(f.usage_line(quantity=90),), envelope={"event_id": "INV-E"})
    pipeline, producer = make(usage, invoice)
    ctx = BatchContext(state=Store())
    pipeline.process(message(usage, 0), ctx)
    pipeline.process(message(invoice, 1), ctx)
    before = dict(ctx.state.data)
    pipeline.codec.refuse = BusinessException  # type: ignore[attr-defined]
    pipeline.finish(ctx)
    assert topics(producer)[-1] == CATALOG.deadletter_topic("reconcile")
    letter = parse_dead_letter(producer.sent[-1][1], producer.sent[-1][2], producer.sent[-1][3]["headers"])
    assert letter.failure.reason_code == "UNENCODABLE_OUTPUT" and letter.source.offset == 1
    assert CATALOG.exceptions_topic not in topics(producer)
    assert ctx.state.data == before  # the revision was not stored either
