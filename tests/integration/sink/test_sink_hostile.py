"""The sink against hostile command records: oversized garbage, and an event that cannot land whole."""

from __future__ import annotations

import hashlib
from datetime import date

from streams.clients import producer as make_producer
from streams.deadletter import VALUE_PREFIX_BYTES
from streams.serde import AvroSerde
from streams.settings import Settings
from tests.integration.sink.helpers import (
    count,
    dead_letter,
    metric,
    new_ledger,
    produce_commands,
    read_all,
    run_sink,
)
from tests.unit.ledger import commands_factory as f


def test_an_oversized_record_is_dead_lettered_cut_and_the_sink_goes_on(
    stack_settings: Settings, serde: AvroSerde, topic_factory, unique
) -> None:
    topic = topic_factory("erp", partitions=1)
    ledger = new_ledger(stack_settings)
    value = b"\x00" + bytes(range(256)) * 8192  # 2 MiB of garbage behind the wire format's magic byte
    producer = make_producer(stack_settings.kafka, **{"message.max.bytes": 8 * 1024 * 1024})
    producer.produce(topic, key=b"C1", value=value)
    assert producer.flush(30) == 0
    produce_commands(stack_settings, serde, topic, f.mixed_commands(3, prefix="after"))

    sink = run_sink(stack_settings, ledger, topic, unique("g"))

    assert sink.stats.applied == 3 and sink.stats.dead_lettered == 1
    [letter] = read_all(stack_settings, f"{topic}.dlq", 1)
    parsed = dead_letter(letter)
    assert parsed.failure.reason_code == "RECORD_TOO_LARGE" and parsed.source.offset == 0
    assert letter.value() == value[:VALUE_PREFIX_BYTES]
    headers = dict(letter.headers() or [])
    assert headers["revstream.dlq.value_sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert headers["revstream.dlq.original_reason"] == b"UNKNOWN_SCHEMA_ID"  # 0x00010203: no such id
    assert metric(sink, "revstream_sink_commands_dead_lettered_total", {"reason": "RECORD_TOO_LARGE"}) == 1


def test_an_event_whose_invoice_the_ledger_refuses_is_dead_lettered_whole(
    stack_settings: Settings, serde: AvroSerde, topic_factory, unique
) -> None:
    topic = topic_factory("erp", partitions=1)
    ledger = new_ledger(stack_settings)
    invoice = f.invoice("inv-bad", 10_000)
    line = invoice.lines[0].model_copy(
        update={"period_start": date(2026, 2, 1), "period_end": date(2026, 1, 1)}
    )
    reversed_invoice = invoice.model_copy(update={"lines": (line, *invoice.lines[1:])})
    event = [
        f.command("c-je", f.journal_entry("je-bad", 11_000, "1200", "2400"), source_event_id="evt-bad"),
        f.command("c-inv", reversed_invoice, source_event_id="evt-bad"),
    ]
    produce_commands(stack_settings, serde, topic, [*event, *f.mixed_commands(3, prefix="ok")])

    sink = run_sink(stack_settings, ledger, topic, unique("g"))

    assert sink.stats.applied == 3 and sink.stats.dead_lettered == 2
    letters = sorted(
        (dead_letter(m) for m in read_all(stack_settings, f"{topic}.dlq", 2)), key=lambda d: d.source.offset
    )
    assert [(d.source.offset, d.failure.reason_code) for d in letters] == [
        (0, "SOURCE_EVENT_REJECTED"),
        (1, "CONSTRAINT_VIOLATION"),
    ]
    assert count(ledger, "journal_entries", "entry_id = 'je-bad'") == 0
    assert count(ledger, "invoices", "invoice_id = 'inv-bad'") == 0
