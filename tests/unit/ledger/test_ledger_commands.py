"""The sink's model-free check of decoded ERP commands agrees with the pydantic model, both ways."""

from __future__ import annotations

import copy
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from connectors.ledger.commands import check_command, record_of
from schemas.loader import schema_for_model
from schemas.models.enums import CollectionsCaseStatus, CommandType
from schemas.models.erp import ErpCommand
from streams.serde import AvroSerde
from streams.settings import RegistrySettings
from tests.unit.ledger import commands_factory as f

SAMPLES = [
    *f.mixed_commands(6),
    f.command("c-case", f.case("case-1", 1, CollectionsCaseStatus.OPEN)),
]


def pydantic_accepts(record: dict[str, Any]) -> bool:
    try:
        ErpCommand.from_avro(record)
    except ValidationError:
        return False
    return True


def test_decoded_records_equal_the_models_record_and_pass() -> None:
    serde = AvroSerde.from_settings(RegistrySettings(url=f"mock://{uuid.uuid4().hex}"))
    reader = schema_for_model(ErpCommand)
    for command in SAMPLES:
        _, decoded = serde.decode(serde.serialize("erp", command), reader_schema=reader)
        assert decoded == record_of(command)
        assert check_command(decoded) is None
        assert ErpCommand.from_avro(decoded) == command


def _with(command: ErpCommand, *path: str | int, value: Any) -> dict[str, Any]:
    record = copy.deepcopy(record_of(command))
    target: Any = record
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return record


@pytest.mark.parametrize(
    ("sample", "path", "value", "problem"),
    [
        (0, ("command_id",), "", "command_id"),
        (0, ("customer_id",), "", "customer_id"),
        (0, ("command_type",), "NOT_A_TYPE", "command_type"),
        (0, ("command_type",), "JOURNAL_ENTRY", "not a JournalEntry"),  # an invoice payload
        (0, ("payload", "currency"), "usd", "currency"),
        (0, ("payload", "lines", 1, "line_id"), "", "lines"),
        (0, ("payload", "lines", 0, "product_id"), "", "lines"),
        (0, ("payload", "lines", 0, "kind"), "FREE", "lines"),
        (1, ("payload", "entry_id"), "", "entry_id"),
        (2, ("payload", "currency"), "EURO", "currency"),
        (3, ("payload", "entries", 2, "month"), "2026-13", "entries"),
        (3, ("payload", "invoice_id"), "", "invoice_id"),
        (4, ("payload", "status"), "PAUSED", "status"),
        (6, ("payload", "status"), "CLOSED", "status"),
    ],
)
def test_what_the_model_refuses_the_check_refuses(
    sample: int, path: tuple[str | int, ...], value: Any, problem: str
) -> None:
    record = _with(SAMPLES[sample], *path, value=value)
    found = check_command(record)
    assert found is not None and problem in found
    assert not pydantic_accepts(record)


def _string_paths(value: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _string_paths(v, (*prefix, k))]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _string_paths(v, (*prefix, i))]
    return [prefix] if isinstance(value, str) and prefix != ("command_type",) else []


@settings(max_examples=300, deadline=None)
@given(
    sample=st.sampled_from(SAMPLES),
    choice=st.integers(min_value=0),
    value=st.sampled_from(["", "USD", "usd", "EU", "2026-01", "2026-13", "x", "ACTIVE", "OPEN", "TAX"]),
    command_type=st.sampled_from([t.value for t in CommandType if t is not CommandType.UNKNOWN]),
)
def test_the_check_and_the_model_agree_on_mutated_records(
    sample: ErpCommand, choice: int, value: str, command_type: str
) -> None:
    paths = _string_paths(record_of(sample))
    record = _with(sample, *paths[choice % len(paths)], value=value)
    if choice % 5 == 0:
        record["command_type"] = command_type
    assert (check_command(record) is None) == pydantic_accepts(record)
