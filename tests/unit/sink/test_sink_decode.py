"""Decoding consumed records into ERP commands, against confluent's in-memory registry (no network)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import NoReturn

import pytest

from connectors.ledger.commands import record_of
from connectors.sink.decode import decode_batch, reason_for_serde_error
from schemas.models.events import PaymentFailed
from streams.errors import (
    CorruptRecordError,
    InvalidRecordError,
    RegistryUnavailableError,
    SerdeError,
    UnknownSchemaIdError,
)
from streams.serde import AvroSerde
from streams.settings import RegistrySettings
from streams.wire import frame
from tests.unit.ledger import commands_factory as f

TOPIC = "erp"


@dataclass
class FakeMessage:
    """What decode_batch reads of a confluent-kafka Message."""

    _value: bytes | None
    _offset: int
    _partition: int = 0

    def value(self) -> bytes | None:
        return self._value

    def topic(self) -> str:
        return TOPIC

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset


@pytest.fixture
def serde() -> AvroSerde:
    return AvroSerde.from_settings(RegistrySettings(url=f"mock://{uuid.uuid4().hex}"))


def test_commands_decode_and_failures_are_set_aside_in_order(serde: AvroSerde) -> None:
    good = [f.command(f"c-{i}", f.journal_entry(f"je-{i}", 100 + i)) for i in range(3)]
    event = PaymentFailed(
        event_id="e1", event_type="payment_failed", occurred_at=f.BASE_TIME, source="gw", customer_id="C1",
        legal_entity="LE-US", correlation_id="k", payment_id="p", invoice_id="i", amount_minor=5,
        currency="USD", failure_reason="declined", attempt=1,
    )  # fmt: skip
    messages = [
        FakeMessage(serde.serialize(TOPIC, good[0]), 0),
        FakeMessage(b"\x01garbage", 1),
        FakeMessage(serde.serialize(TOPIC, good[1]), 2),
        FakeMessage(None, 3),
        FakeMessage(frame(424_242, b"\x00"), 4),
        FakeMessage(serde.serialize("other", event), 5),  # a valid Avro record, but not a command
        FakeMessage(serde.serialize(TOPIC, good[2]), 6),
    ]
    records, failures = decode_batch(serde, messages)  # type: ignore[arg-type]
    assert [r.command for r in records] == [record_of(command) for command in good]
    assert [r.command_id for r in records] == [command.command_id for command in good]
    assert [r.offset for r in records] == [0, 2, 6]
    assert [(fail.message.offset(), fail.reason_code) for fail in failures] == [
        (1, "CORRUPT_RECORD"),
        (3, "EMPTY_RECORD"),
        (4, "UNKNOWN_SCHEMA_ID"),
        (5, "INVALID_COMMAND"),
    ]
    assert "erp[0]@1" in str(failures[0].error)


def test_an_unreachable_registry_is_not_the_records_fault() -> None:
    class Down(AvroSerde):
        def decode(self, *args: object, **kwargs: object) -> NoReturn:
            raise RegistryUnavailableError("schema registry unreachable")

        decode_model = decode

    down = Down.__new__(Down)
    with pytest.raises(RegistryUnavailableError):
        decode_batch(down, [FakeMessage(b"\x00\x00\x00\x00\x01", 0)])  # type: ignore[list-item]


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (UnknownSchemaIdError("x", 7), "UNKNOWN_SCHEMA_ID"),
        (CorruptRecordError("x"), "CORRUPT_RECORD"),
        (InvalidRecordError("x"), "INVALID_COMMAND"),
        (SerdeError("x"), "DECODE_FAILED"),
    ],
)
def test_reason_codes_of_decoding_failures(error: SerdeError, reason: str) -> None:
    assert reason_for_serde_error(error) == reason
