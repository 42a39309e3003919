"""Looking up the shipped schemas and models, and the errors for files that do not parse."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schemas.errors import SchemaNotFoundError, SchemaParseError
from schemas.loader import (
    EVENT_MODELS,
    EVENT_SCHEMAS,
    all_schemas,
    load_directory,
    load_schema_file,
    model_for_record,
    schema_by_stem,
    schema_for_event,
    schema_for_model,
    schema_for_record,
)
from schemas.models import ErpCommand, InvoiceLine, OrderAccepted
from schemas.names import EVENT_TYPES


def test_lookups_agree() -> None:
    by_event = schema_for_event("order_accepted")
    assert by_event is schema_by_stem("order_accepted")
    assert by_event is schema_for_record("io.revstream.events.OrderAccepted")
    assert by_event is schema_for_record("OrderAccepted")
    assert by_event is schema_for_model(OrderAccepted)
    assert by_event is EVENT_SCHEMAS["order_accepted"]
    assert model_for_record(by_event.full_name) is OrderAccepted
    assert model_for_record("io.revstream.erp.ErpCommand") is ErpCommand
    assert (by_event.name, by_event.namespace) == ("OrderAccepted", "io.revstream.events")


def test_event_mappings_cover_every_event_type() -> None:
    assert list(EVENT_SCHEMAS) == list(EVENT_TYPES) == list(EVENT_MODELS)
    assert {schema.namespace for schema in EVENT_SCHEMAS.values()} == {"io.revstream.events"}
    assert len(all_schemas()) == 16


def test_canonical_json_is_compact_and_keeps_docs_and_defaults() -> None:
    schema = schema_by_stem("usage_recorded")
    text = schema.canonical_json
    assert json.loads(text) == schema.definition
    assert "\n" not in text and '": ' not in text
    assert '"doc":' in text and '"default":1' in text
    assert text == schema_by_stem("usage_recorded").canonical_json


def test_unknown_names_raise_with_what_is_known() -> None:
    with pytest.raises(SchemaNotFoundError, match="use one of quote_approved"):
        schema_for_event("order_shipped")
    with pytest.raises(SchemaNotFoundError, match="known: "):
        schema_for_record("io.revstream.events.Nope")
    with pytest.raises(SchemaNotFoundError, match=r"no schema file nope\.avsc"):
        schema_by_stem("nope")
    with pytest.raises(SchemaNotFoundError):
        schema_for_model(InvoiceLine)
    with pytest.raises(SchemaNotFoundError):
        model_for_record("InvoiceLine")
    with pytest.raises(KeyError):
        EVENT_SCHEMAS["customer"]


def test_broken_files_raise_parse_errors(tmp_path: Path) -> None:
    (tmp_path / "a_bad_json.avsc").write_text("{ not json")
    with pytest.raises(SchemaParseError, match="not valid JSON"):
        load_schema_file(tmp_path / "a_bad_json.avsc")
    (tmp_path / "b_bad_type.avsc").write_text(
        json.dumps({"type": "record", "name": "X", "fields": [{"name": "f", "type": "nope"}]})
    )
    with pytest.raises(SchemaParseError, match="not a valid Avro schema"):
        load_schema_file(tmp_path / "b_bad_type.avsc")
    (tmp_path / "c_not_record.avsc").write_text(json.dumps({"type": "enum", "name": "E", "symbols": ["A"]}))
    with pytest.raises(SchemaParseError, match="one Avro record"):
        load_schema_file(tmp_path / "c_not_record.avsc")
    with pytest.raises(SchemaParseError, match="a_bad_json"):
        load_directory(tmp_path)
