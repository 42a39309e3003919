"""Validation shared by the SDK, the file publisher and the gateway: every problem names its field."""

from __future__ import annotations

import csv
import io
import json

import pytest

from connectors.errors import EventValidationError, InputFileError
from connectors.producers.files import detect_format, read_lines
from connectors.producers.validation import csv_row_to_data, parse_event, parse_master
from schemas.models import InvoicePosted, UsageRecorded
from tests.unit.schemas.strategies import sample

USAGE = json.loads(sample(UsageRecorded).model_dump_json())
INVOICE = json.loads(sample(InvoicePosted).model_dump_json())


def fields_of(exc: pytest.ExceptionInfo[EventValidationError]) -> dict[str, str]:
    return {problem.field: problem.reason for problem in exc.value.problems}


def test_valid_dict_and_json_text_give_the_same_model() -> None:
    assert parse_event("usage_recorded", USAGE) == parse_event("usage_recorded", json.dumps(USAGE))


def test_every_bad_field_is_named_with_its_path() -> None:
    bad = {**INVOICE, "total_minor": "lots", "lines": [{**INVOICE["lines"][0], "quantity": 1.5}]}
    del bad["currency"]
    with pytest.raises(EventValidationError) as exc:
        parse_event("invoice_posted", bad)
    problems = fields_of(exc)
    assert set(problems) == {"total_minor", "lines.0.quantity", "currency"}
    assert "total_minor" in str(exc.value)


def test_naive_datetime_is_refused_with_the_reason() -> None:
    with pytest.raises(EventValidationError) as exc:
        parse_event("usage_recorded", {**USAGE, "occurred_at": "2026-01-05T10:00:00"})
    assert fields_of(exc) == {"occurred_at": "must be timezone-aware (UTC); naive datetimes are ambiguous"}


def test_event_type_is_filled_in_but_another_one_is_refused() -> None:
    without = {key: value for key, value in USAGE.items() if key != "event_type"}
    assert parse_event("usage_recorded", without).event_type == "usage_recorded"
    with pytest.raises(EventValidationError) as exc:
        parse_event("usage_recorded", {**USAGE, "event_type": "invoice_posted", "bogus": 1})
    assert set(fields_of(exc)) == {"event_type", "bogus"}


def test_source_is_filled_in_and_must_match_when_given() -> None:
    without = {key: value for key, value in USAGE.items() if key != "source"}
    assert parse_event("usage_recorded", without, source="meter").source == "meter"
    assert parse_event("usage_recorded", {**USAGE, "source": "meter"}, source="meter").source == "meter"
    with pytest.raises(EventValidationError) as exc:
        parse_event("usage_recorded", {**USAGE, "source": "billing"}, source="meter")
    assert "source" in fields_of(exc)


def test_not_json_and_not_an_object_are_refused() -> None:
    with pytest.raises(EventValidationError, match="not valid JSON"):
        parse_event("usage_recorded", "{nope")
    with pytest.raises(EventValidationError, match="JSON object"):
        parse_event("usage_recorded", "[1, 2]")


def test_unknown_event_type_and_master_kind() -> None:
    with pytest.raises(EventValidationError, match="unknown event type 'nope'"):
        parse_event("nope", USAGE)
    with pytest.raises(EventValidationError, match="unknown master-data kind"):
        parse_master("supplier", {})


def test_csv_cells_nested_json_and_empty_means_not_given() -> None:
    row = {"lines": '[{"a": 1}]', "metric": "api_calls", "product_id": "", "quantity": "5"}
    assert csv_row_to_data(row) == {"lines": [{"a": 1}], "metric": "api_calls", "quantity": "5"}
    with pytest.raises(EventValidationError) as exc:
        csv_row_to_data({"lines": "[{oops"})
    assert "lines" in fields_of(exc)


def test_read_lines_jsonl_keeps_line_numbers_and_originals() -> None:
    text = json.dumps(USAGE) + "\n\n" + "{nope\n" + json.dumps({**USAGE, "quantity": -1}) + "\n"
    lines = list(read_lines(io.StringIO(text), "jsonl", "usage_recorded"))
    assert [line.number for line in lines] == [1, 3, 4]
    assert lines[0].record is not None and lines[2].record is not None  # negative is a policy matter
    assert lines[1].rejection is not None
    assert lines[1].rejection.original == "{nope"
    assert json.loads(lines[1].rejection.as_json())["line"] == 3


def test_read_lines_csv_with_nested_lines_and_a_bad_row() -> None:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(INVOICE))
    writer.writeheader()
    cells = {key: json.dumps(value) if isinstance(value, list) else value for key, value in INVOICE.items()}
    writer.writerow(cells)
    writer.writerow({**cells, "total_minor": "many"})
    lines = list(read_lines(io.StringIO(out.getvalue()), "csv", "invoice_posted"))
    assert lines[0].record == sample(InvoicePosted)
    assert lines[1].rejection is not None
    assert lines[1].number == 3
    assert [p.field for p in lines[1].rejection.problems] == ["total_minor"]


def test_format_from_extension_or_explicit() -> None:
    assert detect_format("a.jsonl") == "jsonl"
    assert detect_format("a.CSV") == "csv"
    assert detect_format("-", "csv") == "csv"
    with pytest.raises(InputFileError, match="--format"):
        detect_format("-")
