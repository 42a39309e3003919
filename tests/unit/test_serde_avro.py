"""The Avro serde against confluent-kafka's in-memory registry client (``mock://``): no network.

The real registry over HTTP is exercised by tests/integration/test_serde.py.
"""

from __future__ import annotations

import io
import json
import re
from typing import Any

import fastavro
import pytest
from confluent_kafka.serialization import MessageField, SerializationContext
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.loader import MODELS_BY_STEM, schema_by_stem, schema_for_event
from schemas.models import AvroRecord, OrderAccepted, PaymentReceived, UsageRecorded
from streams import resolver as resolver_module
from streams.errors import (
    CorruptRecordError,
    InvalidRecordError,
    RecordEncodeError,
    SchemaRegistrationError,
    UnknownSchemaIdError,
)
from streams.faust_codec import AvroCodec
from streams.serde import AvroSerde
from streams.serializers import AvroModelDeserializer, AvroModelSerializer
from streams.settings import RegistrySettings
from streams.wire import frame, unframe
from tests.unit.schemas.strategies import model_strategy, sample

TOPIC = "rs.events.test"


def new_serde(**options: Any) -> AvroSerde:
    return AvroSerde.from_settings(RegistrySettings(url="mock://unit"), **options)


def usage_v1() -> dict[str, Any]:
    """UsageRecorded as it was before ``schema_version`` was added (it has a default now)."""
    definition = json.loads(json.dumps(schema_for_event("usage_recorded").definition))
    definition["fields"] = [f for f in definition["fields"] if f["name"] != "schema_version"]
    return definition


SAMPLE_V1: dict[str, Any] = {
    "type": "record",
    "name": "Sample",
    "namespace": "io.revstream.test",
    "doc": "v1",
    "fields": [{"name": "id", "type": "string", "doc": "id"}],
}
SAMPLE_V2: dict[str, Any] = {
    **SAMPLE_V1,
    "doc": "v2",
    "fields": [*SAMPLE_V1["fields"], {"name": "note", "type": "string", "doc": "new", "default": "n/a"}],
}


@pytest.mark.parametrize("stem", sorted(MODELS_BY_STEM))
def test_every_record_type_round_trips_through_a_fresh_reader(stem: str) -> None:
    writer = new_serde()
    model = MODELS_BY_STEM[stem]

    @settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(model_strategy(model))
    def round_trip(instance: AvroRecord) -> None:
        data = writer.serialize(TOPIC, instance)
        # A reader with empty caches has to fetch the writer schema by id from the registry.
        reader = AvroSerde(writer._registry)
        assert reader.decode_model(data) == instance
        schema_id, record = reader.decode(data)
        assert schema_id == unframe(data)[0]
        assert model.from_avro(record) == instance

    round_trip()


def test_schema_is_registered_once_under_the_topic_subject() -> None:
    serde = new_serde()
    first = serde.serialize(TOPIC, sample(PaymentReceived))
    second = serde.serialize(TOPIC, sample(PaymentReceived, payment_id="pay-2"))
    assert unframe(first)[0] == unframe(second)[0]
    assert serde._registry.get_subjects() == [f"{TOPIC}-value"]
    assert serde.subject_for(TOPIC, sample(PaymentReceived)) == f"{TOPIC}-value"


def test_record_name_strategy_names_the_subject_after_the_record() -> None:
    serde = new_serde(subject_strategy="record")
    serde.serialize(TOPIC, sample(OrderAccepted))
    assert serde._registry.get_subjects() == ["io.revstream.events.OrderAccepted"]


def test_old_writer_data_reads_with_the_new_model() -> None:
    serde = new_serde()
    old = {**sample(UsageRecorded).to_avro()}
    del old["schema_version"]
    data = serde.encode(f"{TOPIC}-value", old, schema=usage_v1())
    event = AvroSerde(serde._registry).decode_model(data)
    assert isinstance(event, UsageRecorded)
    assert event.schema_version == 1
    assert event.metric == old["metric"]


def test_reader_schema_fills_added_fields_and_rejects_incompatible_ones() -> None:
    serde = new_serde()
    data = serde.encode("sample-value", {"id": "a"}, schema=SAMPLE_V1)
    assert serde.decode(data)[1] == {"id": "a"}
    assert serde.decode(data, reader_schema=SAMPLE_V2)[1] == {"id": "a", "note": "n/a"}
    added = {"name": "note", "type": "string", "doc": "x"}
    no_default = {**SAMPLE_V2, "fields": [*SAMPLE_V1["fields"], added]}
    with pytest.raises(InvalidRecordError, match=re.escape("cannot be read as io.revstream.test.Sample")):
        serde.decode(data, reader_schema=no_default)


def test_a_record_without_a_model_is_invalid_for_decode_model() -> None:
    serde = new_serde()
    data = serde.encode("sample-value", {"id": "a"}, schema=SAMPLE_V1)
    with pytest.raises(InvalidRecordError, match=re.escape("no model for record 'io.revstream.test.Sample'")):
        serde.decode_model(data, topic="t", partition=0, offset=3)


def test_schema_valid_but_model_invalid_records_are_invalid() -> None:
    serde = new_serde()
    record = {**sample(PaymentReceived).to_avro(), "currency": "usd"}
    data = serde.encode(f"{TOPIC}-value", record, schema=schema_by_stem("payment_received"))
    assert serde.decode(data)[1]["currency"] == "usd"
    with pytest.raises(InvalidRecordError, match="currency") as caught:
        serde.decode_model(data, topic=TOPIC, partition=1, offset=9)
    assert (caught.value.topic, caught.value.partition, caught.value.offset) == (TOPIC, 1, 9)


def test_unknown_schema_id_raises_with_the_id_and_coordinates() -> None:
    serde = new_serde()
    with pytest.raises(UnknownSchemaIdError, match="schema id 4242 is not in the registry") as caught:
        serde.decode_model(frame(4242, b"\x02a"), topic=TOPIC, partition=0, offset=17)
    assert caught.value.schema_id == 4242
    assert str(caught.value).endswith(f"({TOPIC}[0]@17)")


def test_an_unknown_schema_id_is_asked_again_only_after_the_ttl(monkeypatch: pytest.MonkeyPatch) -> None:
    serde = new_serde()
    asked: list[int] = []
    lookup = serde._registry.get_schema

    def counting(schema_id: int, *args: Any, **kwargs: Any) -> Any:
        asked.append(schema_id)
        return lookup(schema_id, *args, **kwargs)

    monkeypatch.setattr(serde._registry, "get_schema", counting)
    now = [1000.0]
    monkeypatch.setattr(resolver_module.time, "monotonic", lambda: now[0])
    for offset in range(3):
        with pytest.raises(UnknownSchemaIdError, match="schema id 4242 is not in the registry"):
            serde.decode_model(frame(4242, b"\x02a"), topic=TOPIC, partition=0, offset=offset)
    assert asked == [4242]
    now[0] += resolver_module.UNKNOWN_ID_TTL_S + 0.1
    with pytest.raises(UnknownSchemaIdError):
        serde.decode_model(frame(4242, b"\x02a"), topic=TOPIC, partition=0, offset=3)
    assert asked == [4242, 4242]


def _valid_frame(serde: AvroSerde) -> bytes:
    return serde.serialize(TOPIC, sample(OrderAccepted))


def test_truncated_and_padded_bodies_are_corrupt() -> None:
    serde = new_serde()
    data = _valid_frame(serde)
    with pytest.raises(CorruptRecordError, match="does not decode"):
        serde.decode(data[:-3])
    with pytest.raises(CorruptRecordError, match="bytes left over"):
        serde.decode(data + b"\x00\x00")
    with pytest.raises(CorruptRecordError, match="magic byte"):
        serde.decode_model(b"\x01" + data[1:])
    with pytest.raises(CorruptRecordError, match="shorter"):
        serde.decode_model(b"\x00\x00")


SERDE = new_serde()
VALID = _valid_frame(SERDE)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_body_either_decodes_or_is_corrupt(body: bytes) -> None:
    # Fuzz: whatever follows a known schema id, the serde raises only its typed errors.
    data = VALID[:5] + body
    try:
        SERDE.decode_model(data)
    except (CorruptRecordError, InvalidRecordError):
        pass


def test_encode_errors_are_typed() -> None:
    serde = new_serde()
    with pytest.raises(RecordEncodeError, match="needs its schema"):
        serde.serialize(TOPIC, {"id": "a"})
    with pytest.raises(RecordEncodeError, match=re.escape("does not fit io.revstream.test.Sample")):
        serde.encode("sample-value", {"id": 1}, schema=SAMPLE_V1)
    with pytest.raises(RecordEncodeError, match="does not fit"):
        serde.encode("sample-value", {"id": "a", "extra": 1}, schema=SAMPLE_V1)
    with pytest.raises(RecordEncodeError, match="not a valid Avro schema"):
        serde.encode("sample-value", {"id": "a"}, schema={"type": "record", "name": "X", "fields": [{}]})


def test_without_auto_register_the_schema_must_already_be_registered() -> None:
    governed = new_serde(auto_register=False)
    with pytest.raises(SchemaRegistrationError, match=f"would not find .* under subject {TOPIC}-value"):
        governed.serialize(TOPIC, sample(PaymentReceived))
    AvroSerde(governed._registry).serialize(TOPIC, sample(PaymentReceived))
    data = governed.serialize(TOPIC, sample(PaymentReceived))
    assert governed.decode_model(data) == sample(PaymentReceived)


def test_confluent_serializer_protocol_adapters() -> None:
    serde = new_serde()
    value_ctx = SerializationContext(TOPIC, MessageField.VALUE)
    serializer = AvroModelSerializer(serde)
    deserializer = AvroModelDeserializer(serde, OrderAccepted)
    data = serializer(sample(OrderAccepted), value_ctx)
    assert data is not None
    assert deserializer(data, value_ctx) == sample(OrderAccepted)
    assert serializer(None, value_ctx) is None and deserializer(None, value_ctx) is None
    serializer(sample(OrderAccepted), SerializationContext(TOPIC, MessageField.KEY))
    assert sorted(serde._registry.get_subjects()) == [f"{TOPIC}-key", f"{TOPIC}-value"]
    with pytest.raises(RecordEncodeError, match="SerializationContext"):
        serializer(sample(OrderAccepted))


def test_faust_codec_round_trip_and_clone() -> None:
    serde = new_serde()
    codec = AvroCodec(serde=serde, topic=TOPIC)
    event = sample(OrderAccepted)
    data = codec.dumps(event)
    assert codec.loads(data) == event
    assert codec.dumps(data) == data, "already framed bytes must not be wrapped twice"
    as_dict = AvroCodec(serde=serde, topic=TOPIC, as_model=False)
    assert as_dict.loads(data)["order_id"] == event.order_id
    assert codec.clone().loads(data) == event
    with pytest.raises(CorruptRecordError):
        codec.loads(b"not avro")


def test_encoded_bytes_are_plain_avro_after_the_header() -> None:
    # Interoperability: any Avro reader with the writer schema decodes the body.
    serde = new_serde()
    event = sample(PaymentReceived)
    schema_id, body = unframe(serde.serialize(TOPIC, event))
    parsed = schema_by_stem("payment_received").parsed
    record = fastavro.schemaless_reader(io.BytesIO(body), parsed, None)
    assert isinstance(record, dict)
    assert PaymentReceived.from_avro(record) == event
    assert schema_id >= 1
