"""The hot codec: output schema ids resolved up front, then no registry call per record."""

from __future__ import annotations

from typing import Any

import pytest

from processors.engine.codec import HotCodec
from processors.rules.commands import invoice_posted_commands
from schemas.models import BusinessException, ErpCommand
from streams.errors import RecordEncodeError, RegistryUnavailableError
from streams.wire import unframe
from tests.unit.processors import factories as f


class CountingSerde:
    """Stands in for the serde: schema ids by subject, counting registry calls."""

    def __init__(self) -> None:
        self.calls = 0
        self.down = False

    def subject_for(self, topic: str, value: Any) -> str:
        return f"{topic}-{value.full_name}"

    def schema_id(self, subject: str, schema: Any) -> int:
        if self.down:
            raise RegistryUnavailableError("schema registry unreachable")
        self.calls += 1
        return 41 if "ErpCommand" in subject else 42


def test_prepared_schema_ids_are_used_without_asking_the_registry_again() -> None:
    serde = CountingSerde()
    codec = HotCodec(serde)  # type: ignore[arg-type]
    codec.prepare("ns.erp.commands", ErpCommand)
    codec.prepare("ns.exceptions", BusinessException)
    assert serde.calls == 2
    serde.down = True  # a registry outage after the start changes nothing for the batches
    for command in invoice_posted_commands(f.invoice()):
        schema_id, _ = unframe(codec.encode("ns.erp.commands", command))
        assert schema_id == 41
    assert serde.calls == 2


def test_an_unreachable_registry_fails_the_preparation_and_a_record_that_does_not_fit_is_its_fault() -> None:
    serde = CountingSerde()
    serde.down = True
    codec = HotCodec(serde)  # type: ignore[arg-type]
    with pytest.raises(RegistryUnavailableError):
        codec.prepare("ns.erp.commands", ErpCommand)
    serde.down = False
    command = invoice_posted_commands(f.invoice())[0]
    too_big = command.model_copy(
        update={"payload": command.payload.model_copy(update={"total_minor": 2**64})}
    )
    with pytest.raises(RecordEncodeError):
        codec.encode("ns.erp.commands", too_big)
