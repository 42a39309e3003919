"""The business-exception schema's new fields: old records read with it, and it passes FULL compatibility."""

from __future__ import annotations

import copy
import io
import json
from datetime import UTC, datetime
from typing import Any

import fastavro

from schemas.loader import schema_by_stem
from schemas.models import BusinessException, ReasonCode
from streams.registry.compat import CompatibilityLevel, check_compatibility
from streams.registry.schema import parse_schema

NEW_FIELDS = ("exception_key", "revision", "resolution", "quote_id")


def _previous() -> dict[str, Any]:
    """The schema as shipped before the queue: without the queue's fields and the approval reason."""
    definition = copy.deepcopy(dict(schema_by_stem("business_exception").definition))
    definition["fields"] = [f for f in definition["fields"] if f["name"] not in NEW_FIELDS]
    reason = next(f for f in definition["fields"] if f["name"] == "reason_code")
    reason["type"]["symbols"].remove("APPROVAL_NOT_ALLOWED")
    return definition


def _roundtrip(record: dict[str, Any], writer: dict[str, Any], reader: dict[str, Any]) -> dict[str, Any]:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(writer), record)
    buffer.seek(0)
    result = fastavro.schemaless_reader(buffer, fastavro.parse_schema(writer), fastavro.parse_schema(reader))
    assert isinstance(result, dict)
    return result


OLD_RECORD: dict[str, Any] = {
    "exception_id": "X1",
    "reason_code": "USAGE_BILLING_MISMATCH",
    "source_event_id": "E1",
    "event_type": "usage_recorded",
    "customer_id": "C1",
    "legal_entity": "LE-DE",
    "correlation_id": "K1",
    "detected_at": datetime(2026, 1, 5, tzinfo=UTC),
    "detail": "under-billed (revision 1)",
    "quantity_difference": 3,
    "amount_difference_minor": 300,
    "currency": "EUR",
    "subscription_id": "S1",
    "metric": "api_calls",
    "period": "2026-01",
}


def test_an_old_record_reads_with_the_new_schema_as_a_one_off_exception() -> None:
    new = dict(schema_by_stem("business_exception").definition)
    read = _roundtrip(OLD_RECORD, _previous(), new)
    model = BusinessException.from_avro(read)
    assert (model.exception_key, model.revision, model.resolution) == (None, None, None)
    assert model.amount_difference_minor == 300


def test_an_approval_refusal_read_by_an_old_consumer_is_unknown_not_a_failure() -> None:
    new = dict(schema_by_stem("business_exception").definition)
    record = {**OLD_RECORD, "reason_code": "APPROVAL_NOT_ALLOWED", "exception_key": None, "revision": None}
    read = _roundtrip({**record, "resolution": None, "quote_id": "Q1"}, new, _previous())
    assert read["reason_code"] == "UNKNOWN"
    assert ReasonCode("APPROVAL_NOT_ALLOWED") is ReasonCode.APPROVAL_NOT_ALLOWED


def test_the_change_is_fully_compatible_with_the_previous_version() -> None:
    new = parse_schema(json.dumps(schema_by_stem("business_exception").definition)).avro
    old = parse_schema(json.dumps(_previous())).avro
    assert check_compatibility(new, [(1, old)], CompatibilityLevel.FULL) == []


def test_an_old_quote_reads_with_the_new_schema_without_a_known_creator() -> None:
    new = dict(schema_by_stem("quote_approved").definition)
    old = copy.deepcopy(new)
    old["fields"] = [f for f in old["fields"] if f["name"] != "created_by"]
    quote = {
        "event_id": "Q-E1",
        "occurred_at": datetime(2026, 1, 5, tzinfo=UTC),
        "source": "crm",
        "customer_id": "C1",
        "legal_entity": "LE-DE",
        "correlation_id": "K1",
        "quote_id": "Q1",
        "currency": "EUR",
        "lines": [],
        "approvals": [],
    }
    read = _roundtrip({**quote, "event_type": "quote_approved", "schema_version": 1}, old, new)
    assert read["created_by"] is None
    compat = check_compatibility(
        parse_schema(json.dumps(new)).avro, [(1, parse_schema(json.dumps(old)).avro)], CompatibilityLevel.FULL
    )
    assert compat == []
