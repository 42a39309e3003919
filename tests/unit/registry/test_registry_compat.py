"""The compatibility matrix: each level against the schema changes teams actually make."""

from __future__ import annotations

import json
from typing import Any

import pytest
from avro.schema import Schema

from streams.registry.compat import CompatibilityLevel, check_compatibility, check_pair, parse_level
from streams.registry.errors import InvalidCompatibilityLevelError
from streams.registry.schema import parse_schema

L = CompatibilityLevel
KEY = {"name": "id", "type": "string"}


def rec(*fields: dict[str, Any], name: str = "Event") -> Schema:
    return parse_schema(
        json.dumps({"type": "record", "name": name, "namespace": "t", "fields": [KEY, *fields]})
    ).avro


def enum(*symbols: str, **extra: Any) -> dict[str, Any]:
    return {"name": "status", "type": {"type": "enum", "name": "Status", "symbols": list(symbols), **extra}}


# (v1, v2, can the new schema read old data (BACKWARD), can the old schema read new data (FORWARD))
CHANGES: dict[str, tuple[Schema, Schema, bool, bool]] = {
    "add field with default": (rec(), rec({"name": "n", "type": "int", "default": 0}), True, True),
    "add field without default": (rec(), rec({"name": "n", "type": "int"}), False, True),
    "remove field with default": (rec({"name": "n", "type": "int", "default": 0}), rec(), True, True),
    "remove field without default": (rec({"name": "n", "type": "int"}), rec(), True, False),
    "rename via alias": (
        rec({"name": "amount", "type": "long"}),
        rec({"name": "amount_minor", "type": "long", "aliases": ["amount"]}),
        True,
        False,
    ),
    "rename without alias": (
        rec({"name": "amount", "type": "long"}),
        rec({"name": "amount_minor", "type": "long"}),
        False,
        False,
    ),
    "promote int to long": (
        rec({"name": "n", "type": "int"}),
        rec({"name": "n", "type": "long"}),
        True,
        False,
    ),
    "narrow long to int": (
        rec({"name": "n", "type": "long"}),
        rec({"name": "n", "type": "int"}),
        False,
        True,
    ),
    "change string to int": (
        rec({"name": "n", "type": "string"}),
        rec({"name": "n", "type": "int"}),
        False,
        False,
    ),
    "enum symbol added": (rec(enum("A", "B")), rec(enum("A", "B", "C")), True, False),
    "enum symbol added, old enum has a default": (
        rec(enum("A", "B", default="A")),
        rec(enum("A", "B", "C", default="A")),
        True,
        True,
    ),
    "enum symbol removed": (rec(enum("A", "B")), rec(enum("A")), False, True),
    "union branch added": (
        rec({"name": "u", "type": ["null", "string"], "default": None}),
        rec({"name": "u", "type": ["null", "string", "long"], "default": None}),
        True,
        False,
    ),
    "union branch removed": (
        rec({"name": "u", "type": ["null", "string", "long"], "default": None}),
        rec({"name": "u", "type": ["null", "string"], "default": None}),
        False,
        True,
    ),
    "record renamed": (rec(), rec(name="Renamed"), False, False),
}


def expected(level: CompatibilityLevel, backward: bool, forward: bool) -> bool:
    return (backward or not level.backward) and (forward or not level.forward)


@pytest.mark.parametrize("level", list(L))
@pytest.mark.parametrize("change", list(CHANGES))
def test_single_step_matrix(change: str, level: CompatibilityLevel) -> None:
    v1, v2, backward, forward = CHANGES[change]
    problems = check_compatibility(v2, [(1, v1)], level)
    assert (not problems) is expected(level, backward, forward), [str(p) for p in problems]
    assert all(problem.version == 1 for problem in problems)


# v1 -> v2 is fine under every level; v3 is compatible with v2 but not with v1.
BACKWARD_BREAK_WITH_V1 = (
    rec(),
    rec({"name": "b", "type": "int", "default": 0}),
    rec({"name": "b", "type": "int"}),  # v1 data has no b, and v3 has no default for it
)
FORWARD_BREAK_WITH_V1 = (
    rec({"name": "b", "type": "int"}),
    rec({"name": "b", "type": "int", "default": 0}),
    rec(),  # v1 cannot read v3 data: b is missing and v1 has no default
)


@pytest.mark.parametrize(
    ("history", "breaks"),
    [
        (BACKWARD_BREAK_WITH_V1, {L.BACKWARD_TRANSITIVE, L.FULL_TRANSITIVE}),
        (FORWARD_BREAK_WITH_V1, {L.FORWARD_TRANSITIVE, L.FULL_TRANSITIVE}),
    ],
    ids=["backward", "forward"],
)
@pytest.mark.parametrize("level", list(L))
def test_transitive_levels_check_older_versions(
    history: tuple[Schema, Schema, Schema], breaks: set[CompatibilityLevel], level: CompatibilityLevel
) -> None:
    v1, v2, v3 = history
    assert not check_compatibility(v2, [(1, v1)], level)
    problems = check_compatibility(v3, [(1, v1), (2, v2)], level)
    assert bool(problems) is (level in breaks)
    assert all(problem.version == 1 for problem in problems)
    assert all("/fields/1" in problem.location for problem in problems)


def test_message_names_kind_location_field_and_version() -> None:
    old = rec({"name": "currency", "type": "string"})
    new = rec({"name": "currency", "type": "string"}, {"name": "amount_minor", "type": "long"})
    [problem] = check_compatibility(new, [(1, rec()), (2, old)], L.BACKWARD)
    assert str(problem).startswith(
        "READER_FIELD_MISSING_DEFAULT_VALUE at /fields/2 (amount_minor) against version 2: "
        "the new schema adds field 'amount_minor' without a default"
    )
    assert str(problem).endswith("give the field a default")


def test_forward_message_says_which_side_reads() -> None:
    [problem] = check_compatibility(
        rec({"name": "n", "type": "long"}), [(4, rec({"name": "n", "type": "int"}))], L.FORWARD
    )
    assert (problem.kind, problem.location, problem.field_path) == ("TYPE_MISMATCH", "/fields/1/type", "n")
    assert "version 4 has int at field 'n' but the new schema writes long" in problem.explanation


def test_enum_and_union_messages_name_what_is_missing() -> None:
    [symbols] = check_compatibility(rec(enum("A")), [(1, rec(enum("A", "B", "C")))], L.BACKWARD)
    assert symbols.kind == "MISSING_ENUM_SYMBOLS"
    assert "lacks B, C" in symbols.explanation
    old = rec({"name": "u", "type": ["null", "string", "long"], "default": None})
    new = rec({"name": "u", "type": ["null", "string"], "default": None})
    [branch] = check_compatibility(new, [(1, old)], L.BACKWARD)
    assert (branch.kind, branch.field_path) == ("MISSING_UNION_BRANCH", "u")
    assert "no branch for long" in branch.explanation


def test_fields_inside_arrays_and_optional_records_are_named() -> None:
    def line(*fields: dict[str, Any]) -> dict[str, Any]:
        item = {"type": "record", "name": "Line", "fields": [{"name": "sku", "type": "string"}, *fields]}
        return {"name": "lines", "type": {"type": "array", "items": item}}

    [in_array] = check_compatibility(
        rec(line({"name": "qty", "type": "int"})), [(1, rec(line()))], L.BACKWARD
    )
    assert (in_array.location, in_array.field_path) == ("/fields/1/type/items/fields/1", "lines[].qty")

    def optional(field_type: str) -> dict[str, Any]:
        nested = {"type": "record", "name": "Approval", "fields": [{"name": "level", "type": field_type}]}
        return {"name": "approval", "type": ["null", nested], "default": None}

    # Avro alone would only say the union lacks a RECORD branch; the nested field is what broke.
    [nested] = check_compatibility(rec(optional("string")), [(1, rec(optional("int")))], L.BACKWARD)
    assert (nested.kind, nested.field_path) == ("TYPE_MISMATCH", "approval.level")
    assert nested.location == "/fields/1/type/1/fields/0/type"


def test_root_type_change() -> None:
    [problem] = check_pair(parse_schema('"int"').avro, parse_schema('"string"').avro, 3)
    assert (problem.kind, problem.location, problem.field_path) == ("TYPE_MISMATCH", "/", "")
    assert "against version 3" in str(problem)


def test_no_previous_versions_is_compatible() -> None:
    assert check_compatibility(rec(), [], L.FULL_TRANSITIVE) == []


@pytest.mark.parametrize("given", ["backward", "Full_Transitive", "NONE"])
def test_parse_level_is_case_insensitive(given: str) -> None:
    assert parse_level(given).value == given.upper()


@pytest.mark.parametrize("given", ["SIDEWAYS", None, 3, ""])
def test_parse_level_rejects_the_rest(given: object) -> None:
    with pytest.raises(InvalidCompatibilityLevelError, match="FULL_TRANSITIVE"):
        parse_level(given)
