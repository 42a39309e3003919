"""The serde's hot path: schema ids resolved up front, then no registry call per record.

The worker, the sink and the SDK share this path (it replaced the worker's own codec), so what the
worker relies on is proven here against the serde itself.
"""

from __future__ import annotations

from typing import Any

import pytest
from confluent_kafka.schema_registry.error import SchemaRegistryError

from processors.rules.commands import invoice_posted_commands
from schemas.loader import schema_for_model
from schemas.models import BusinessException, ErpCommand
from streams.errors import RecordEncodeError, RegistryUnavailableError
from streams.serde import AvroSerde
from streams.settings import RegistrySettings
from streams.wire import unframe
from tests.unit.processors import factories as f


class CountingRegistry:
    """Wraps the in-memory registry: counts calls, and can be switched off (an outage)."""

    def __init__(self) -> None:
        serde = AvroSerde.from_settings(RegistrySettings(url="mock://hot-path"))
        self.inner = serde._registry
        self.calls = 0
        self.down = False

    def _call(self, name: str, *args: Any) -> Any:
        if self.down:
            raise SchemaRegistryError(503, 50301, "schema registry unavailable")
        self.calls += 1
        return getattr(self.inner, name)(*args)

    def register_schema(self, *args: Any) -> Any:
        return self._call("register_schema", *args)

    def lookup_schema(self, *args: Any) -> Any:
        return self._call("lookup_schema", *args)

    def get_schema(self, *args: Any) -> Any:
        return self._call("get_schema", *args)


def test_prepared_schema_ids_are_used_without_asking_the_registry_again() -> None:
    registry = CountingRegistry()
    serde = AvroSerde(registry)  # type: ignore[arg-type]
    serde.prepare("ns.erp.commands", ErpCommand)
    serde.prepare("ns.exceptions", BusinessException)
    assert registry.calls == 2
    expected = serde.schema_id("ns.erp.commands-value", schema_for_model(ErpCommand))
    registry.down = True  # a registry outage after the start changes nothing for the batches
    for command in invoice_posted_commands(f.invoice()):
        data = serde.serialize("ns.erp.commands", command)
        schema_id, _ = unframe(data)
        assert schema_id == expected
        assert serde.decode_model(data) == command
    assert registry.calls == 2


def test_an_unreachable_registry_fails_the_preparation_and_a_record_that_does_not_fit_is_its_fault() -> None:
    registry = CountingRegistry()
    registry.down = True
    serde = AvroSerde(registry)  # type: ignore[arg-type]
    with pytest.raises(RegistryUnavailableError):
        serde.prepare("ns.erp.commands", ErpCommand)
    registry.down = False
    command = invoice_posted_commands(f.invoice())[0]
    too_big = command.model_copy(
        update={"payload": command.payload.model_copy(update={"total_minor": 2**64})}
    )
    with pytest.raises(RecordEncodeError, match=r"ns\.erp\.commands"):
        serde.serialize("ns.erp.commands", too_big)


def test_a_model_encodes_byte_for_byte_as_its_to_avro_dict() -> None:
    # The model path hands fastavro the model's own values; the dict path takes to_avro(): one result.
    serde = AvroSerde.from_settings(RegistrySettings(url="mock://hot-path-bytes"))
    schema = schema_for_model(ErpCommand)
    for command in invoice_posted_commands(f.invoice()):
        assert serde.serialize("t", command) == serde.serialize("t", command.to_avro(), schema)
