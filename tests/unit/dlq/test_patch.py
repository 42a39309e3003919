"""RFC 7386 merge patches, the diff they make, and reading a patch file."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.dlq.errors import PatchError
from connectors.dlq.patch import diff, json_view, load_patch, merge_patch

# The test cases of RFC 7386, appendix A: (original, patch, result).
RFC_7386_EXAMPLES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("original", "patch", "result"), RFC_7386_EXAMPLES)
def test_merge_patch_follows_rfc_7386(original: Any, patch: Any, result: Any) -> None:
    before = json.dumps(original)
    assert merge_patch(original, patch) == result
    assert json.dumps(original) == before  # the target is not changed in place


def test_diff_names_every_changed_field_by_its_path() -> None:
    before = {"currency": "usd", "lines": [{"qty": 1}], "memo": "x", "same": 1}
    after = {"currency": "USD", "lines": [{"qty": 2}], "extra": True, "same": 1}
    assert diff(before, after) == [
        {"field": "currency", "before": "usd", "after": "USD"},
        {"field": "extra", "before": None, "after": True},
        {"field": "lines", "before": [{"qty": 1}], "after": [{"qty": 2}]},
        {"field": "memo", "before": "x", "after": None},
    ]
    assert diff({"a": {"b": 1}}, {"a": {"b": 2}}) == [{"field": "a.b", "before": 1, "after": 2}]
    assert diff(before, before) == []


def test_json_view_gives_plain_json() -> None:
    view = json_view(
        {"at": datetime(2024, 1, 2, 3, 4, tzinfo=UTC), "on": date(2024, 1, 2), "raw": b"\x01", "l": (1,)}
    )
    assert view == {"at": "2024-01-02T03:04:00+00:00", "on": "2024-01-02", "raw": "01", "l": [1]}
    json.dumps(view)


def test_a_patch_file_must_be_a_json_object(tmp_path: Path) -> None:
    good = tmp_path / "good.json"
    good.write_text('{"currency": "EUR"}')
    assert load_patch(good) == {"currency": "EUR"}
    for text, message in (("{currency: EUR", "is not JSON"), ('["a"]', "is a JSON list, not an object")):
        bad = tmp_path / "bad.json"
        bad.write_text(text)
        with pytest.raises(PatchError, match=message):
            load_patch(bad)
    with pytest.raises(PatchError, match="cannot read the patch"):
        load_patch(tmp_path / "missing.json")


def test_a_patch_nested_absurdly_deep_is_refused(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text('{"a": ' * 40 + "1" + "}" * 40)
    with pytest.raises(PatchError, match="nested deeper than 32 levels"):
        load_patch(deep)
    deeper = tmp_path / "deeper.json"
    deeper.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(PatchError, match="nested too deeply"):
        load_patch(deeper)
