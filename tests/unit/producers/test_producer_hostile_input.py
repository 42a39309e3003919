"""What a hostile producer sends, refused by the pure validation every producer path shares."""

from __future__ import annotations

import io
import json

import pytest

from connectors.errors import EventValidationError
from connectors.producers.files import MAX_LINE_CHARS, read_lines
from connectors.producers.validation import csv_row_to_data, load_json, parse_event
from schemas.models import UsageRecorded
from tests.unit.schemas.strategies import sample

USAGE = json.loads(sample(UsageRecorded).model_dump_json())


def problems(data: object) -> dict[str, str]:
    with pytest.raises(EventValidationError) as exc:
        parse_event("usage_recorded", data)  # type: ignore[arg-type]
    return {p.field: p.reason for p in exc.value.problems}


@pytest.mark.parametrize("instant", ["0001-01-01T00:30:00+01:00", "9999-12-31T23:30:00-01:00"])
def test_instants_outside_the_datetime_range_in_utc_are_refused(instant: str) -> None:
    assert "outside the years 1 to 9999" in problems({**USAGE, "occurred_at": instant})["occurred_at"]


def test_the_extreme_instants_that_fit_are_kept() -> None:
    first = parse_event("usage_recorded", {**USAGE, "occurred_at": "0001-01-01T01:30:00+01:00"})
    assert first.occurred_at.year == 1
    assert parse_event("usage_recorded", {**USAGE, "occurred_at": "9999-12-31T23:30:00+01:00"})


@pytest.mark.parametrize("value", [True, False, "10", 10.5, None])
def test_money_and_quantities_are_strict_integers(value: object) -> None:
    assert "quantity" in problems({**USAGE, "quantity": value})


def test_a_json_number_without_fraction_is_an_integer_as_json_schema_says() -> None:
    event = parse_event(
        "usage_recorded", json.dumps({**USAGE, "quantity": 1}).replace('"quantity": 1', '"quantity": 1e1')
    )
    assert isinstance(event, UsageRecorded) and event.quantity == 10


def test_numbers_are_not_instants() -> None:
    assert "not a number" in problems({**USAGE, "window_start": 0})["window_start"]


def test_lone_surrogates_are_named_by_field_even_in_keys() -> None:
    found = problems({**USAGE, "metric": "ok\ud800", "\udc00": 1})
    assert "lone surrogate" in found["metric"]
    assert any("field name" in reason for reason in found.values())


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("[" * 100_000, "nested deeper than 32 levels"),
        ('{"a": ' * 40 + "1" + "}" * 40, "nested deeper than 32 levels"),
        ("9" * 5000, "4,300 digits"),
        (b"\xff\xfe{}", "not valid"),
        ('{"a": 1e999999}', None),  # a float infinity, refused by the integer field later
    ],
)
def test_load_json_refuses_what_later_steps_could_not_take(text: str | bytes, reason: str | None) -> None:
    if reason is None:
        assert load_json(text) == {"a": float("inf")}
        return
    with pytest.raises(EventValidationError) as exc:
        load_json(text)
    assert reason in exc.value.problems[0].reason


def test_csv_integer_cells_become_integers_only_when_they_hold_one() -> None:
    row = {"quantity": " 42 ", "metric": "007", "schema_version": "1.0"}
    assert csv_row_to_data(row, UsageRecorded) == {"quantity": 42, "metric": "007", "schema_version": "1.0"}


def test_a_line_over_the_limit_is_rejected_unread() -> None:
    text = json.dumps(USAGE) + "\n" + "x" * (MAX_LINE_CHARS + 5) + "\n" + json.dumps(USAGE) + "\n"
    lines = list(read_lines(io.StringIO(text), "jsonl", "usage_recorded"))
    assert [line.record is not None for line in lines] == [True, False, True]
    rejection = lines[1].rejection
    assert rejection is not None and f"{MAX_LINE_CHARS + 5:,} characters" in rejection.problems[0].reason


def test_a_bom_read_as_text_is_skipped_in_csv_and_jsonl() -> None:
    csv_text = "\ufeff" + ",".join(USAGE) + "\n" + ",".join(str(v) for v in USAGE.values()) + "\n"
    assert next(read_lines(io.StringIO(csv_text), "csv", "usage_recorded")).record is not None
    assert next(read_lines(io.StringIO("\ufeff" + json.dumps(USAGE)), "jsonl", "usage_recorded")).record
