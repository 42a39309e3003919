"""The serde's model encoding (publisher and worker outputs) writes exactly what ``to_avro()`` would."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from schemas.loader import MODELS_BY_STEM, schema_for_model
from schemas.models import AvroRecord, InvoicePosted, UsageRecorded
from streams.encoding import compile_record
from streams.serde import encode_unregistered
from tests.unit.schemas.strategies import model_strategy, sample

MODELS: list[type[AvroRecord]] = list(MODELS_BY_STEM.values())


def reference_bytes(record: AvroRecord) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, schema_for_model(type(record)).parsed, record.to_avro())
    return buffer.getvalue()


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_fast_path_bytes_equal_to_avro_bytes(model: type[AvroRecord], data: st.DataObject) -> None:
    record = data.draw(model_strategy(model))
    fast = encode_unregistered(7, record)
    assert fast == b"\x00\x00\x00\x00\x07" + reference_bytes(record)


def test_flat_record_without_logical_types_is_passed_through_unchanged() -> None:
    parsed = fastavro.parse_schema(
        {"type": "record", "name": "X", "fields": [{"name": "a", "type": "string"}]}
    )
    assert isinstance(parsed, dict)
    record = sample(UsageRecorded)
    assert compile_record(parsed)(record) is record.__dict__


def test_pre_epoch_instants_floor_like_fastavro() -> None:
    record = sample(UsageRecorded, window_start=datetime(1969, 12, 31, 23, 59, 59, 999_000, tzinfo=UTC))
    parsed = schema_for_model(UsageRecorded).parsed
    assert compile_record(parsed)(record)["window_start"] == -1
    assert encode_unregistered(7, record) == b"\x00\x00\x00\x00\x07" + reference_bytes(record)


def test_nested_lines_with_dates_are_converted() -> None:
    invoice = sample(InvoicePosted)
    converted = compile_record(schema_for_model(InvoicePosted).parsed)(invoice)
    line = converted["lines"][0]
    assert isinstance(line, dict)
    assert line["period_start"] == (invoice.lines[0].period_start - datetime(1970, 1, 1).date()).days
    # The model itself is left alone: conversion works on copies.
    assert isinstance(invoice.lines[0].period_start, type(invoice.issued_on))
