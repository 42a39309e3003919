"""Schema identity: what makes two schema texts the same registered schema, and what is invalid."""

from __future__ import annotations

import json

import pytest

from streams.registry.errors import InvalidSchemaError
from streams.registry.schema import parse_schema

INVOICE = {
    "type": "record",
    "name": "Invoice",
    "namespace": "revstream.billing",
    "doc": "An invoice.",
    "fields": [
        {"name": "invoice_id", "type": "string", "doc": "Id."},
        {"name": "amount_minor", "type": "long", "default": 0},
        {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": ["OPEN", "PAID"]}},
        {"name": "previous", "type": ["null", "Status"], "default": None},
    ],
}


def test_formatting_key_order_and_namespaces_do_not_change_identity() -> None:
    compact = parse_schema(json.dumps(INVOICE, separators=(",", ":")))
    pretty = parse_schema(json.dumps(INVOICE, indent=4, sort_keys=True))
    explicit = json.loads(json.dumps(INVOICE))
    explicit["fields"][2]["type"]["namespace"] = "revstream.billing"
    explicit["fields"][3]["type"][1] = "revstream.billing.Status"
    assert compact.fingerprint == pretty.fingerprint == parse_schema(json.dumps(explicit)).fingerprint
    assert compact.text == pretty.text
    assert parse_schema(compact.text).text == compact.text  # canonical text is a fixed point


@pytest.mark.parametrize(
    "change",
    [
        lambda s: s.update(doc="Another doc."),
        lambda s: s["fields"][1].update(default=1),
        lambda s: s["fields"][0].update(aliases=["id"]),
        lambda s: s["fields"][1].update(type={"type": "long", "logicalType": "timestamp-millis"}),
        lambda s: s["fields"].insert(0, s["fields"].pop(1)),
    ],
    ids=["doc", "default", "alias", "logical type", "field order"],
)
def test_what_readers_see_changes_identity(change: object) -> None:
    changed = json.loads(json.dumps(INVOICE))
    change(changed)  # type: ignore[operator]
    assert parse_schema(json.dumps(changed)).fingerprint != parse_schema(json.dumps(INVOICE)).fingerprint


def test_canonical_text_reads_like_avro() -> None:
    text = parse_schema(json.dumps(INVOICE, sort_keys=True)).text
    assert text.startswith('{"type":"record","name":"Invoice","namespace":"revstream.billing"')
    assert '{"name":"amount_minor","type":"long","default":0}' in text
    assert parse_schema('  "string" ').text == '"string"'


@pytest.mark.parametrize(
    ("schema", "reason"),
    [
        ('{"type": "record", "name": "X", "fields": [{"name": "a", "type": "money"}]}', "money"),
        (
            '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "int", "default": "x"}]}',
            "Default value",
        ),
        (
            '{"type": "record", "name": "X", "fields": [{"name": "a", "type": "int"}, '
            '{"name": "a", "type": "int"}]}',
            "already in use",
        ),
        ('{"type": "enum", "name": "E", "symbols": ["A"], "default": "B"}', "default"),
        ("{oops", "Error parsing JSON"),
        ("", "Empty schema"),
        (None, "Empty schema"),
        ({"type": "string"}, "Empty schema"),
    ],
)
def test_invalid_schemas_say_why(schema: object, reason: str) -> None:
    with pytest.raises(InvalidSchemaError, match="schema") as raised:
        parse_schema(schema)
    assert reason in str(raised.value)
    assert raised.value.error_code == 42201


def test_only_avro_without_references() -> None:
    assert parse_schema('"string"', "avro").text == '"string"'
    assert parse_schema('"string"', None).text == '"string"'
    with pytest.raises(InvalidSchemaError, match="AVRO"):
        parse_schema("{}", "JSON")
    with pytest.raises(InvalidSchemaError, match="references"):
        parse_schema('"string"', "AVRO", [{"name": "x", "subject": "s", "version": 1}])
    assert parse_schema('"string"', "AVRO", []).text == '"string"'
