"""The stack's registry driven by confluent-kafka's stock ``SchemaRegistryClient``, as producers do."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streams.settings import Settings
from tests.integration.registry.conftest import record


@dataclass(frozen=True)
class Invoice:
    """Three versions of one record, in a namespace of the test's own (ids are global)."""

    v1: str
    v2: str  # adds amount_minor with a default
    v2_no_default: str  # adds amount_minor without one


@pytest.fixture
def invoice() -> Invoice:
    namespace = f"revstream.test.n{uuid.uuid4().hex[:12]}"
    key = {"name": "invoice_id", "type": "string"}
    return Invoice(
        record("Invoice", [key], namespace),
        record("Invoice", [key, {"name": "amount_minor", "type": "long", "default": 0}], namespace),
        record("Invoice", [key, {"name": "amount_minor", "type": "long"}], namespace),
    )


@pytest.fixture
def new_client(stack_settings: Settings) -> Callable[[], SchemaRegistryClient]:
    # Fresh clients: the client's caches must not hide what the registry answers.
    return lambda: SchemaRegistryClient(stack_settings.registry.client_config())


@pytest.fixture
def client(new_client: Callable[[], SchemaRegistryClient]) -> SchemaRegistryClient:
    return new_client()


def test_register_is_idempotent_and_ids_are_global(
    invoice: Invoice,
    client: SchemaRegistryClient,
    new_client: Callable[[], SchemaRegistryClient],
    unique: Callable[[str], str],
) -> None:
    first, second = unique("a") + "-value", unique("b") + "-value"
    schema_id = client.register_schema(first, Schema(invoice.v1, "AVRO"))

    # Same schema, other whitespace and key order: same id, in the same and in another subject.
    reformatted = json.dumps(json.loads(invoice.v1), indent=4, sort_keys=True)
    assert client.register_schema(first, Schema(reformatted, "AVRO")) == schema_id
    assert new_client().register_schema(second, Schema(invoice.v1, "AVRO")) == schema_id
    assert client.get_versions(first) == [1]
    assert client.get_versions(second) == [1]
    assert {first, second} <= set(client.get_subjects())

    evolved = client.register_schema(first, Schema(invoice.v2, "AVRO"))
    assert evolved != schema_id
    assert client.get_versions(first) == [1, 2]


def test_lookup_versions_and_get_by_id(invoice: Invoice, client: SchemaRegistryClient, subject: str) -> None:
    v1_id = client.register_schema(subject, Schema(invoice.v1, "AVRO"))
    v2_id = client.register_schema(subject, Schema(invoice.v2, "AVRO"))

    found = client.lookup_schema(subject, Schema(invoice.v2, "AVRO"))
    assert (found.schema_id, found.version, found.subject) == (v2_id, 2, subject)

    latest = client.get_latest_version(subject)
    assert (latest.schema_id, latest.version) == (v2_id, 2)
    assert json.loads(latest.schema.schema_str or "") == json.loads(invoice.v2)
    assert client.get_version(subject, 1).schema_id == v1_id

    by_id = client.get_schema(v1_id)
    assert by_id.schema_type == "AVRO"
    assert json.loads(by_id.schema_str or "") == json.loads(invoice.v1)
    assert client.get_subjects_by_schema_id(v1_id) == [subject]
    assert [(v.subject, v.version) for v in client.get_schema_versions(v2_id)] == [(subject, 2)]
    assert client.get_schema_types() == ["AVRO"]

    with pytest.raises(SchemaRegistryError) as missing:
        client.lookup_schema(subject, Schema(invoice.v2_no_default, "AVRO"))
    assert (missing.value.http_status_code, missing.value.error_code) == (404, 40403)


def test_compatibility_and_config(invoice: Invoice, client: SchemaRegistryClient, subject: str) -> None:
    client.register_schema(subject, Schema(invoice.v1, "AVRO"))
    assert client.test_compatibility(subject, Schema(invoice.v2, "AVRO")) is True
    assert client.test_compatibility(subject, Schema(invoice.v2_no_default, "AVRO")) is False

    with pytest.raises(SchemaRegistryError) as rejected:
        client.register_schema(subject, Schema(invoice.v2_no_default, "AVRO"))
    assert (rejected.value.http_status_code, rejected.value.error_code) == (409, 409)
    assert "amount_minor" in rejected.value.error_message
    assert "against version 1" in rejected.value.error_message

    assert client.set_compatibility(subject, "FORWARD") == {"compatibility": "FORWARD"}
    assert client.get_compatibility(subject) == "FORWARD"
    assert client.get_config(subject).compatibility_level == "FORWARD"
    # FORWARD: version 1 ignores the new field, so the schema the level BACKWARD refused is fine.
    assert client.test_compatibility(subject, Schema(invoice.v2_no_default, "AVRO")) is True
    assert client.register_schema(subject, Schema(invoice.v2_no_default, "AVRO")) > 0

    removed = client.delete_config(subject)
    assert removed.compatibility_level == "FORWARD"
    with pytest.raises(SchemaRegistryError) as unset:
        client.get_compatibility(subject)
    assert unset.value.error_code == 40408


def test_soft_then_permanent_delete(
    invoice: Invoice,
    client: SchemaRegistryClient,
    new_client: Callable[[], SchemaRegistryClient],
    subject: str,
) -> None:
    schema_id = client.register_schema(subject, Schema(invoice.v1, "AVRO"))
    client.register_schema(subject, Schema(invoice.v2, "AVRO"))

    assert client.delete_version(subject, 2) == 2
    assert client.get_versions(subject) == [1]
    assert client.get_versions(subject, deleted=True) == [1, 2]

    with pytest.raises(SchemaRegistryError) as not_soft:
        client.delete_subject(subject, permanent=True)
    assert not_soft.value.error_code == 40405

    assert client.delete_subject(subject) == [1]
    assert subject not in client.get_subjects()
    assert subject in client.get_subjects(deleted=True)
    # Soft-deleted schemas still decode old records: the id resolves.
    assert json.loads(new_client().get_schema(schema_id).schema_str or "") == json.loads(invoice.v1)

    assert client.delete_subject(subject, permanent=True) == [1, 2]
    assert subject not in client.get_subjects(deleted=True)
    with pytest.raises(SchemaRegistryError) as gone:
        client.get_versions(subject, deleted=True)
    assert gone.value.error_code == 40401

    # A permanently deleted subject starts over at version 1, and the schema keeps its id.
    again = new_client()
    assert again.register_schema(subject, Schema(invoice.v1, "AVRO")) == schema_id
    assert again.get_versions(subject) == [1]


def test_subject_mode(
    invoice: Invoice,
    client: SchemaRegistryClient,
    new_client: Callable[[], SchemaRegistryClient],
    subject: str,
) -> None:
    client.register_schema(subject, Schema(invoice.v1, "AVRO"))
    assert client.update_mode(subject, "READONLY") == "READONLY"
    assert client.get_mode(subject) == "READONLY"

    with pytest.raises(SchemaRegistryError) as read_only:
        client.register_schema(subject, Schema(invoice.v2, "AVRO"))
    assert (read_only.value.http_status_code, read_only.value.error_code) == (422, 42205)
    # Registering what is already there still answers: auto-registering producers keep working.
    assert new_client().register_schema(subject, Schema(invoice.v1, "AVRO")) > 0

    assert client.delete_mode(subject) == "READONLY"
    assert client.register_schema(subject, Schema(invoice.v2, "AVRO")) > 0
