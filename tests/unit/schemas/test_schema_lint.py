"""Each lint rule with a schema that breaks it and one that keeps it; the shipped schemas lint clean."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from schemas.lint import RULES, Finding, lint_all, lint_definition, lint_schema
from schemas.loader import SCHEMA_DIR, schema_by_stem

TS = {"type": "long", "logicalType": "timestamp-millis"}
DATE = {"type": "int", "logicalType": "date"}


def field(name: str, avro: Any, **extra: Any) -> dict[str, Any]:
    return {"name": name, "type": avro, "doc": f"the {name}", **extra}


def record(
    *fields: dict[str, Any], name: str = "Thing", namespace: str = "io.revstream.events"
) -> dict[str, Any]:
    return {"type": "record", "name": name, "namespace": namespace, "doc": "a thing", "fields": list(fields)}


def rules(definition: dict[str, Any], previous: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    return [(f.path, f.rule) for f in lint_definition(definition, previous)]


def test_the_shipped_schemas_lint_clean() -> None:
    assert lint_all(SCHEMA_DIR) == []
    assert lint_all(SCHEMA_DIR, previous=SCHEMA_DIR) == []


def test_doc_missing_on_records_enums_and_fields() -> None:
    line = {"type": "record", "name": "Line", "fields": [{"name": "sku", "type": "string"}]}
    kind = {"type": "enum", "name": "Kind", "symbols": ["A", "UNKNOWN"], "default": "UNKNOWN"}
    bad = record(field("lines", {"type": "array", "items": line}), field("kind", kind))
    bad["fields"][0].pop("doc")
    assert rules(bad) == [
        ("Thing.kind", "doc-missing"),
        ("Thing.lines", "doc-missing"),
        ("Thing.lines[]", "doc-missing"),
        ("Thing.lines[].sku", "doc-missing"),
    ]
    line_ok = {**line, "doc": "a line", "fields": [field("sku", "string")]}
    assert (
        rules(
            record(field("lines", {"type": "array", "items": line_ok}), field("kind", {**kind, "doc": "k"}))
        )
        == []
    )


@pytest.mark.parametrize("avro", ["double", "float", ["null", "double"], {"type": "array", "items": "float"}])
def test_money_float_anywhere(avro: Any) -> None:
    found = rules(record(field("ratio", avro)))
    assert [rule for _, rule in found] == ["money-float"]
    assert found[0][0] in ("Thing.ratio", "Thing.ratio[]")


def test_money_float_passes_integers() -> None:
    assert rules(record(field("ratio_bp", "int"))) == []


def test_money_pair_needs_long_minor_units_and_a_currency_in_scope() -> None:
    assert rules(record(field("amount_minor", "int"), field("currency", "string"))) == [
        ("Thing.amount_minor", "money-pair")
    ]
    assert rules(record(field("amount_minor", "long"))) == [("Thing.amount_minor", "money-pair")]
    assert rules(record(field("amount", "long"), field("currency", "string"))) == [
        ("Thing.amount", "money-pair")
    ]
    # A currency on an enclosing record covers nested lines, as on InvoicePosted.lines[].
    line = {"type": "record", "name": "Line", "doc": "a line", "fields": [field("amount_minor", "long")]}
    nested = record(field("currency", "string"), field("lines", {"type": "array", "items": line}))
    assert rules(nested) == []
    orphan = record(field("lines", {"type": "array", "items": line}))
    assert rules(orphan) == [("Thing.lines[].amount_minor", "money-pair")]
    assert (
        rules(record(field("fee_minor", ["null", "long"], default=None), field("currency", "string"))) == []
    )


def test_timestamp_type_for_instants_and_dates() -> None:
    bad = record(field("created_at", "long"), field("due_date", "string"), field("period_end", "int"))
    assert rules(bad) == [
        ("Thing.created_at", "timestamp-type"),
        ("Thing.due_date", "timestamp-type"),
        ("Thing.period_end", "timestamp-type"),
    ]
    good = record(
        field("created_at", TS), field("due_date", DATE), field("window_start", TS), field("issued_on", DATE)
    )
    assert rules(good) == []
    assert rules(record(field("paid_at", ["null", TS], default=None))) == []


def test_namespace_must_be_revstream() -> None:
    assert rules(record(field("id", "string"), namespace="com.acme")) == [("Thing", "namespace")]
    enum = {"type": "enum", "name": "x.Kind", "doc": "k", "symbols": ["UNKNOWN"], "default": "UNKNOWN"}
    assert rules(record(field("kind", enum))) == [("Thing.kind", "namespace")]
    assert rules(record(field("id", "string"), namespace="io.revstream.ops")) == []


def test_enum_default_is_required() -> None:
    enum = {"type": "enum", "name": "Kind", "doc": "k", "symbols": ["A", "B"]}
    assert rules(record(field("kind", enum))) == [("Thing.kind", "enum-default")]
    # A default that is not a symbol is not valid Avro at all.
    assert rules(record(field("kind", {**enum, "default": "C"}))) == [("Thing", "invalid-schema")]
    assert rules(record(field("kind", {**enum, "default": "A"}))) == []


def test_added_field_default_against_a_previous_version() -> None:
    v1 = record(field("id", "string"))
    assert rules(record(field("id", "string"), field("note", "string")), v1) == [
        ("Thing.note", "added-field-default")
    ]
    assert rules(record(field("id", "string"), field("note", "string", default="")), v1) == []
    assert rules(record(field("key", "string", aliases=["id"])), v1) == []


def test_added_field_default_in_nested_records() -> None:
    line = {"type": "record", "name": "Line", "doc": "l", "fields": [field("sku", "string")]}
    v1 = record(field("lines", {"type": "array", "items": line}))
    grown = copy.deepcopy(v1)
    grown["fields"][0]["type"]["items"]["fields"].append(field("qty", "long"))
    assert rules(grown, v1) == [("Thing.lines[].qty", "added-field-default")]


def test_a_shipped_schema_losing_a_default_is_caught() -> None:
    shipped = copy.deepcopy(dict(schema_by_stem("usage_recorded").definition))
    previous = copy.deepcopy(shipped)
    previous["fields"] = [f for f in previous["fields"] if f["name"] != "schema_version"]
    assert lint_definition(shipped, previous) == []
    next(f for f in shipped["fields"] if f["name"] == "schema_version").pop("default")
    assert rules(shipped, previous) == [("UsageRecorded.schema_version", "added-field-default")]


def test_invalid_schemas_and_inputs(tmp_path: Path) -> None:
    path = tmp_path / "broken.avsc"
    path.write_text("{ nope")
    assert [f.rule for f in lint_schema(path)] == ["invalid-schema"]
    assert [f.rule for f in lint_schema(record(field("x", "no_such_type")))] == ["invalid-schema"]
    text = json.dumps(record(field("x", "double")))
    assert [f.rule for f in lint_schema(text)] == ["money-float"]


def test_lint_all_compares_with_the_previous_directory(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    (old / "thing.avsc").write_text(json.dumps(record(field("id", "string"))))
    (new / "thing.avsc").write_text(json.dumps(record(field("id", "string"), field("n", "long"))))
    (new / "fresh.avsc").write_text(json.dumps(record(field("id", "string"), name="Fresh")))
    findings = lint_all(new, previous=old)
    assert findings == [
        Finding(str(new / "thing.avsc"), "Thing.n", "added-field-default", findings[0].message)
    ]
    assert str(findings[0]).startswith(f"{new / 'thing.avsc'}: Thing.n: added-field-default: ")
    assert {finding.rule for finding in findings} <= set(RULES)
