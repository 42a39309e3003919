"""Patching a dead letter's value: validated by the model, identity fields kept (in-memory registry)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from connectors.dlq.entries import Entry, Lineage, Record
from connectors.dlq.errors import PatchError
from connectors.dlq.values import decode_value, event_id_of, patch_value
from schemas.loader import schema_for_model
from schemas.models import InvoicePosted
from streams.deadletter import Failure, SourceRecord, dead_letter_headers, parse_dead_letter
from streams.serde import AvroSerde
from streams.settings import RegistrySettings
from tests.unit.processors import factories as f

TOPIC = "ns.events.invoice_posted"


@pytest.fixture
def serde() -> AvroSerde:
    return AvroSerde.from_settings(RegistrySettings(url=f"mock://dlq-{uuid.uuid4().hex[:8]}"))


def entry_for(value: bytes | None) -> Entry:
    source = SourceRecord(TOPIC, 0, 1, b"C1", value)
    headers = dead_letter_headers(source, Failure("decode", "INVALID_RECORD", "E", "m"))
    record = Record("ns.dlq.decode", 0, 3, 0, b"C1", value, headers)
    return Entry("decode:0:3", "decode", record, parse_dead_letter(b"C1", value, headers), None, None)


def invalid_invoice(serde: AvroSerde, **fields: Any) -> bytes:
    # What a producer bypassing the model could send: fits the schema, breaks the model.
    record = {**f.invoice().to_avro(), **fields}
    return serde.serialize(TOPIC, record, schema=schema_for_model(InvoicePosted))


def test_a_patch_fixes_a_field_the_model_refused(serde: AvroSerde) -> None:
    entry = entry_for(invalid_invoice(serde, currency="eur"))
    assert event_id_of(serde, entry) == "E1"
    patched = patch_value(serde, entry, {"currency": "EUR"}, TOPIC)
    assert patched.changes == [{"field": "currency", "before": "eur", "after": "EUR"}]
    assert serde.decode_model(patched.value) == f.invoice()


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"currency": "euro"}, "field currency: String should match pattern"),
        ({"total_minor": "lots"}, "field total_minor: Input should be a valid integer"),
        ({"surprise": 1}, "field surprise: Extra inputs are not permitted"),
        ({"event_id": "E2"}, "field event_id: a replay cannot change it"),
        ({"customer_id": "C2"}, "field customer_id: a replay cannot change it"),
    ],
)
def test_an_invalid_result_is_refused_naming_the_field(
    serde: AvroSerde, patch: dict[str, Any], message: str
) -> None:
    entry = entry_for(serde.serialize(TOPIC, f.invoice()))
    with pytest.raises(PatchError, match=f"^patch refused for decode:0:3: {message}"):
        patch_value(serde, entry, patch, TOPIC)


def test_a_value_that_does_not_decode_cannot_be_patched(serde: AvroSerde) -> None:
    with pytest.raises(PatchError, match="its value does not decode"):
        patch_value(serde, entry_for(b"\x07junk"), {"currency": "EUR"}, TOPIC)
    assert decode_value(serde, None).error == "the record has no value (a tombstone)"
    assert event_id_of(serde, entry_for(b"\x07junk")) is None
    assert Lineage.from_headers([("revstream.replay.id", b"x"), ("revstream.replay.count", b"many")]) is None
