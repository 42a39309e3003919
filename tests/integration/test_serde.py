"""The serde against the real registry (over HTTP) and the real broker, interoperating with
confluent-kafka's own Avro serializer and deserializer.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from schemas.loader import MODELS_BY_STEM, schema_by_stem, schema_for_event
from schemas.models import AvroRecord, UsageRecorded
from schemas.names import EVENT_TYPES
from streams.clients import consumer, producer
from streams.errors import (
    CorruptRecordError,
    RegistryUnavailableError,
    SchemaRegistrationError,
    UnknownSchemaIdError,
)
from streams.serde import AvroSerde
from streams.settings import RegistrySettings, Settings
from streams.wire import frame, unframe
from tests.conftest import wait_for
from tests.unit.schemas.strategies import sample

# The registry id space is 31-bit on Confluent's side; an id this high is never handed out here.
UNKNOWN_ID = 2**31 - 7


@pytest.fixture
def registry(stack_settings: Settings) -> RegistrySettings:
    if stack_settings.registry.url is None:
        pytest.skip(
            "no schema registry: the embedded registry service (streams/registry) is not installed "
            "yet; set REVSTREAM_PROFILE=external and REVSTREAM_REGISTRY_URL to run against one"
        )
    return stack_settings.registry


def produce(settings: Settings, topic: str, values: list[bytes]) -> None:
    client = producer(settings.kafka)
    for value in values:
        client.produce(topic, key=b"cust-1", value=value)
    assert client.flush(30) == 0, "records were not delivered"


def consume(settings: Settings, topics: list[str], count: int) -> list[Message]:
    """Read ``count`` records from partition 0 of ``topics`` (assigned, so no group join)."""
    reader = consumer(settings.kafka, group_id=f"serde-{topics[0]}")
    reader.assign([TopicPartition(topic, 0, OFFSET_BEGINNING) for topic in topics])
    messages: list[Message] = []

    def enough() -> bool:
        message = reader.poll(0.2)
        if message is not None and message.error() is None:
            messages.append(message)
        return len(messages) >= count

    try:
        wait_for(enough, 30, f"{count} records on {topics}")
    finally:
        reader.close()
    return messages


def test_confluent_serializer_writes_what_revstream_reads(
    stack_settings: Settings, registry: RegistrySettings, topic_factory: Callable[..., str]
) -> None:
    client = SchemaRegistryClient(registry.client_config())
    topics: dict[str, AvroRecord] = {}
    for stem, model in MODELS_BY_STEM.items():
        topic = topic_factory(f"serde-{stem}")
        serializer = AvroSerializer(
            client, schema_by_stem(stem).canonical_json, to_dict=lambda obj, ctx: obj.to_avro()
        )
        event = sample(model)
        data = serializer(event, SerializationContext(topic, MessageField.VALUE))
        assert data is not None
        produce(stack_settings, topic, [data])
        topics[topic] = event
    assert set(EVENT_TYPES) <= set(MODELS_BY_STEM)

    serde = AvroSerde.from_settings(registry)
    for message in consume(stack_settings, list(topics), len(topics)):
        value = message.value()
        assert value is not None
        decoded = serde.decode_model(value, topic=message.topic(), offset=message.offset())
        assert decoded == topics[message.topic() or ""]


def test_revstream_writes_what_confluent_deserializer_reads(
    stack_settings: Settings, registry: RegistrySettings, topic_factory: Callable[..., str]
) -> None:
    # Several record types on one topic: the record-name strategy gives each its own subject.
    serde = AvroSerde.from_settings(registry, subject_strategy="record")
    topic = topic_factory("serde-out")
    events = [
        sample(model) for model in MODELS_BY_STEM.values() if model.avro_namespace == "io.revstream.events"
    ]
    produce(stack_settings, topic, [serde.serialize(topic, event) for event in events])
    subjects = SchemaRegistryClient(registry.client_config()).get_subjects()
    assert {type(event).avro_full_name() for event in events} <= set(subjects)
    deserializer = AvroDeserializer(SchemaRegistryClient(registry.client_config()))
    received = consume(stack_settings, [topic], len(events))
    for message, event in zip(received, events, strict=True):
        record: Any = deserializer(message.value(), SerializationContext(topic, MessageField.VALUE))
        assert type(event).from_avro(record) == event


def test_old_writer_data_reads_with_the_shipped_model(
    stack_settings: Settings, registry: RegistrySettings, topic_factory: Callable[..., str]
) -> None:
    # v1 lacks schema_version; v2 (shipped) adds it with a default, which the registry's default
    # BACKWARD compatibility accepts under the same subject.
    v1 = json.loads(json.dumps(schema_for_event("usage_recorded").definition))
    v1["fields"] = [f for f in v1["fields"] if f["name"] != "schema_version"]
    topic = topic_factory("serde-evolve")
    writer = AvroSerde.from_settings(registry)
    old = {k: v for k, v in sample(UsageRecorded).to_avro().items() if k != "schema_version"}
    new = sample(UsageRecorded, event_id="evt-new", schema_version=2)
    values = [writer.encode(f"{topic}-value", old, schema=v1), writer.serialize(topic, new)]
    assert unframe(values[0])[0] != unframe(values[1])[0]
    produce(stack_settings, topic, values)

    reader = AvroSerde.from_settings(registry)
    first, second = (reader.decode_model(m.value() or b"") for m in consume(stack_settings, [topic], 2))
    assert first == sample(UsageRecorded, schema_version=1)
    assert second == new


def test_unknown_ids_and_corrupt_bytes_raise_typed_errors_with_coordinates(
    stack_settings: Settings, registry: RegistrySettings, topic_factory: Callable[..., str]
) -> None:
    serde = AvroSerde.from_settings(registry)
    topic = topic_factory("serde-bad")
    valid = serde.serialize(topic, sample(UsageRecorded))
    produce(stack_settings, topic, [frame(UNKNOWN_ID, b"\x02x"), b"not avro at all", valid[:-4]])
    unknown, garbage, truncated = consume(stack_settings, [topic], 3)

    fresh = AvroSerde.from_settings(registry)
    with pytest.raises(UnknownSchemaIdError) as caught:
        fresh.decode_model(unknown.value() or b"", topic=topic, partition=0, offset=unknown.offset())
    assert caught.value.schema_id == UNKNOWN_ID
    assert (caught.value.topic, caught.value.offset) == (topic, unknown.offset())
    with pytest.raises(CorruptRecordError, match="magic byte"):
        fresh.decode_model(garbage.value() or b"", topic=topic, partition=0, offset=garbage.offset())
    with pytest.raises(CorruptRecordError, match="does not decode") as corrupt:
        fresh.decode_model(truncated.value() or b"", topic=topic, partition=0, offset=truncated.offset())
    assert str(corrupt.value).endswith(f"({topic}[0]@{truncated.offset()})")


def test_a_governed_registry_refuses_unregistered_schemas(
    registry: RegistrySettings, unique: Callable[[str], str]
) -> None:
    topic = unique("serde-governed")
    governed = AvroSerde.from_settings(registry, auto_register=False)
    with pytest.raises(SchemaRegistrationError, match=f"under subject {topic}-value"):
        governed.serialize(topic, sample(UsageRecorded))
    AvroSerde.from_settings(registry).serialize(topic, sample(UsageRecorded))
    assert governed.decode_model(governed.serialize(topic, sample(UsageRecorded))) == sample(UsageRecorded)


def test_an_unreachable_registry_is_retryable_not_corrupt() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now; no client retries so the test is quick.
    serde = AvroSerde(SchemaRegistryClient({"url": f"http://127.0.0.1:{port}", "max.retries": 0}))
    with pytest.raises(RegistryUnavailableError, match="unreachable"):
        serde.serialize("any-topic", sample(UsageRecorded))
    with pytest.raises(RegistryUnavailableError, match="unreachable"):
        serde.decode(frame(1, b""))
