"""Every model mirrors its .avsc record exactly, and survives an Avro round trip unchanged.

The equivalence is derived by walking each schema next to its model's type hints, so a field added
to one side only, reordered, retyped or made optional on one side only fails here.
"""

from __future__ import annotations

import io
import typing
from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal, get_args, get_origin, get_type_hints

import fastavro
import pytest
from hypothesis import given, settings

from schemas.loader import EVENT_MODELS, MODELS_BY_STEM, SCHEMA_DIR, all_schemas, schema_by_stem
from schemas.models import AvroRecord
from schemas.models.base import AvroPrimitive
from schemas.names import EVENT_TYPES
from tests.unit.schemas.strategies import model_strategy, sample, split_annotated, union_members

STEMS = sorted(MODELS_BY_STEM)
PRIMITIVES = {"string", "int", "long", "bytes", "boolean", "float", "double", "null"}


# -- walking a schema next to a model -----------------------------------------------------------


class Walker:
    """Compares one schema with its model; named types are resolved within the schema file."""

    def __init__(self) -> None:
        self.named: dict[str, Any] = {}

    def record(self, node: dict[str, Any], model: type[AvroRecord], path: str) -> None:
        assert issubclass(model, AvroRecord), f"{path}: {model} is not an AvroRecord"
        assert model.avro_name == node["name"], (
            f"{path}: model names {model.avro_name}, schema {node['name']}"
        )
        self.named[node["name"]] = node
        hints = get_type_hints(model, include_extras=True)
        fields = node["fields"]
        assert list(model.model_fields) == [f["name"] for f in fields], f"{path}: field names or order differ"
        for field in fields:
            where = f"{path}.{field['name']}"
            info = model.model_fields[field["name"]]
            if "default" in field:
                assert not info.is_required(), f"{where}: schema has a default, model requires it"
                assert info.default == field["default"], f"{where}: defaults differ"
            else:
                assert info.is_required(), f"{where}: model has a default the schema lacks"
            self.type(field["type"], hints[field["name"]], where)

    def type(self, avro: Any, annotation: Any, path: str) -> None:
        base, metadata = split_annotated(annotation)
        if isinstance(avro, list):
            members = union_members(base)
            assert members is not None, f"{path}: schema has a union, model has {annotation}"
            if "null" in avro:
                assert avro[0] == "null" and len(avro) == 2, f"{path}: optional must be [null, T]"
                assert type(None) in members and len(members) == 2, f"{path}: model is not X | None"
                (inner,) = [m for m in members if m is not type(None)]
                self.type(avro[1], inner, path)
                return
            assert len(members) == len(avro), f"{path}: union branches differ"
            for branch, member in zip(avro, members, strict=True):
                self.type(branch, member, f"{path}<{member.__name__}>")
            return
        if isinstance(avro, str) and avro not in PRIMITIVES:
            named = self.named.get(avro.rsplit(".", 1)[-1])
            assert named is not None, f"{path}: unknown named type {avro}"
            self.type({**named, "_reference": True}, annotation, path)
            return
        if isinstance(avro, dict) and avro.get("logicalType") == "timestamp-millis":
            assert avro["type"] == "long" and base is datetime, f"{path}: timestamp-millis needs datetime"
            return
        if isinstance(avro, dict) and avro.get("logicalType") == "date":
            assert avro["type"] == "int" and base is date, f"{path}: date needs date"
            return
        kind = avro["type"] if isinstance(avro, dict) else avro
        if kind == "record":
            if avro.get("_reference"):
                assert base.avro_name == avro["name"], f"{path}: record type differs"
            else:
                self.record(avro, base, path)
        elif kind == "enum":
            assert isinstance(base, type) and issubclass(base, StrEnum), f"{path}: enum needs a StrEnum"
            assert base.__name__ == avro["name"], f"{path}: enum {base.__name__} vs {avro['name']}"
            assert [m.value for m in base] == avro["symbols"], f"{path}: enum symbols differ"
            self.named.setdefault(avro["name"], avro)
        elif kind == "array":
            assert get_origin(base) in (tuple, list), f"{path}: array needs a tuple/list, got {base}"
            args = get_args(base)
            assert get_origin(base) is list or args[1:] == (Ellipsis,), f"{path}: tuple must be tuple[X, ...]"
            self.type(avro["items"], args[0], f"{path}[]")
        elif kind == "string":
            literal = get_origin(base) is Literal and all(isinstance(a, str) for a in get_args(base))
            assert base is str or literal, f"{path}: string needs str, got {base}"
        elif kind in ("int", "long"):
            assert base is int and AvroPrimitive(kind) in metadata, f"{path}: {kind} needs Avro{kind.title()}"
        elif kind == "bytes":
            assert base is bytes, f"{path}: bytes needs bytes"
        else:
            pytest.fail(f"{path}: no model mapping for Avro type {kind}")


@pytest.mark.parametrize("stem", STEMS)
def test_model_mirrors_schema(stem: str) -> None:
    schema = schema_by_stem(stem)
    model = MODELS_BY_STEM[stem]
    assert model.avro_full_name() == schema.full_name
    Walker().record(dict(schema.definition), model, schema.name)


def test_every_schema_file_has_a_model_and_every_event_type_a_schema() -> None:
    assert sorted(p.stem for p in SCHEMA_DIR.glob("*.avsc")) == STEMS
    assert tuple(EVENT_MODELS) == EVENT_TYPES
    for event_type, model in EVENT_MODELS.items():
        assert model.model_fields["event_type"].default == event_type


def test_walker_catches_a_mismatch() -> None:
    # The equivalence check must be able to fail: a schema with a reordered envelope is rejected.
    definition = dict(schema_by_stem("usage_recorded").definition)
    fields = list(definition["fields"])
    fields[0], fields[1] = fields[1], fields[0]
    with pytest.raises(AssertionError, match="order"):
        Walker().record({**definition, "fields": fields}, EVENT_MODELS["usage_recorded"], "UsageRecorded")
    retyped = [{**f, "type": "int"} if f["name"] == "quantity" else f for f in definition["fields"]]
    with pytest.raises(AssertionError, match="int needs AvroInt"):
        Walker().record({**definition, "fields": retyped}, EVENT_MODELS["usage_recorded"], "UsageRecorded")


def _records(node: Any) -> typing.Iterator[dict[str, Any]]:
    if isinstance(node, list):
        for item in node:
            yield from _records(item)
    elif isinstance(node, dict):
        if node.get("type") == "record":
            yield node
            for field in node["fields"]:
                yield from _records(field["type"])
        else:
            for key in ("items", "values", "type"):
                if key in node:
                    yield from _records(node[key])


@pytest.mark.parametrize("stem", STEMS)
def test_every_record_enum_and_field_has_a_doc(stem: str) -> None:
    for record in _records(schema_by_stem(stem).definition):
        assert record.get("doc"), f"{record['name']} has no doc"
        for field in record["fields"]:
            assert field.get("doc"), f"{record['name']}.{field['name']} has no doc"


# -- round trip through Avro binary ---------------------------------------------------------------


def _write_read(stem: str, record: dict[str, Any], **read_options: Any) -> dict[str, Any]:
    parsed = schema_by_stem(stem).parsed
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, record)
    buffer.seek(0)
    result = fastavro.schemaless_reader(buffer, parsed, None, **read_options)
    assert isinstance(result, dict)
    assert buffer.read() == b"", "reader left bytes behind"
    return result


@pytest.mark.parametrize("stem", STEMS)
def test_round_trip_through_avro_binary(stem: str) -> None:
    model = MODELS_BY_STEM[stem]

    @settings(max_examples=40, deadline=None)
    @given(model_strategy(model))
    def round_trip(instance: AvroRecord) -> None:
        assert model.from_avro(_write_read(stem, instance.to_avro())) == instance
        # Readers that name the union branch (return_record_name) decode to the same model.
        assert model.from_avro(_write_read(stem, instance.to_avro(), return_record_name=True)) == instance

    round_trip()


def test_all_schemas_parse_and_are_standalone() -> None:
    # Each file parses on its own (a fresh fastavro name registry per file): no cross-file types.
    assert [schema.stem for schema in all_schemas()] == STEMS
    for schema in all_schemas():
        fastavro.parse_schema(dict(schema.definition), named_schemas={})


@pytest.mark.parametrize("stem", STEMS)
def test_samples_are_valid_and_round_trip(stem: str) -> None:
    model = MODELS_BY_STEM[stem]
    instance = sample(model)
    assert model.from_avro(_write_read(stem, instance.to_avro())) == instance
