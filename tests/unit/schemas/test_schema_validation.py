"""Domain validation of the models beyond types, and schema evolution of enums."""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import fastavro
import pytest
from pydantic import ValidationError

from schemas.loader import schema_by_stem
from schemas.models import (
    BillingFrequency,
    CollectionsCase,
    CollectionsCaseStatus,
    CommandType,
    CustomerStatus,
    ErpCommand,
    Invoice,
    InvoiceLine,
    LineKind,
    OrderAccepted,
    OrderLine,
    PaymentReceived,
    ScheduleEntry,
)

NOW = datetime(2025, 3, 14, 9, 26, 53, 589_793, tzinfo=UTC)


def payment(**overrides: Any) -> PaymentReceived:
    values: dict[str, Any] = {
        "event_id": "evt-1",
        "occurred_at": NOW,
        "source": "payments",
        "customer_id": "cust-1",
        "legal_entity": "US01",
        "correlation_id": "chain-1",
        "payment_id": "pay-1",
        "invoice_id": "inv-1",
        "amount_minor": 12_345,
        "currency": "USD",
        "received_at": NOW,
    }
    return PaymentReceived(**{**values, **overrides})


def command(**overrides: Any) -> ErpCommand:
    case = CollectionsCase(
        case_id="case-1",
        invoice_id="inv-1",
        payment_id="pay-1",
        status=CollectionsCaseStatus.OPEN,
        attempt=1,
        amount_minor=500,
        currency="EUR",
        reason="insufficient_funds",
    )
    values: dict[str, Any] = {
        "command_id": "cmd-1",
        "source_event_id": "evt-1",
        "correlation_id": "chain-1",
        "customer_id": "cust-1",
        "legal_entity": "DE01",
        "issued_at": NOW,
        "payload": case,
    }
    return ErpCommand(**{**values, **overrides})


def test_naive_datetimes_are_rejected() -> None:
    with pytest.raises(ValidationError, match="timezone-aware"):
        payment(received_at=datetime(2025, 3, 14, 9, 0))


def test_instants_are_normalised_to_utc_milliseconds() -> None:
    local = datetime(2025, 3, 14, 15, 0, 0, 123_999, tzinfo=timezone(timedelta(hours=5, minutes=30)))
    event = payment(received_at=local)
    assert event.received_at == datetime(2025, 3, 14, 9, 30, 0, 123_000, tzinfo=UTC)
    assert event.received_at.tzinfo is UTC


@pytest.mark.parametrize("currency", ["usd", "US", "USDX", "U$D", ""])
def test_currency_must_be_three_upper_case_letters(currency: str) -> None:
    with pytest.raises(ValidationError, match="currency"):
        payment(currency=currency)


def test_negative_amounts_are_data_not_schema_errors() -> None:
    # The policy stage turns these into NEGATIVE_AMOUNT business exceptions; the model keeps them.
    assert payment(amount_minor=-1).amount_minor == -1


def test_amounts_must_fit_an_avro_long() -> None:
    with pytest.raises(ValidationError, match="amount_minor"):
        payment(amount_minor=2**63)


def test_models_are_frozen_and_forbid_unknown_fields() -> None:
    event = payment()
    with pytest.raises(ValidationError):
        event.amount_minor = 1
    with pytest.raises(ValidationError, match="extra"):
        payment(amount=1)


def test_event_type_is_fixed_per_class_and_ids_are_non_empty() -> None:
    assert payment().event_type == "payment_received"
    with pytest.raises(ValidationError, match="event_type"):
        payment(event_type="payment_failed")
    with pytest.raises(ValidationError, match="event_id"):
        payment(event_id="")


def test_command_type_follows_the_payload_and_must_match_it() -> None:
    assert command().command_type is CommandType.COLLECTIONS_CASE
    with pytest.raises(ValidationError, match="needs payload Invoice"):
        command(command_type="INVOICE")


def test_a_plain_payload_dict_is_read_as_the_branch_command_type_names() -> None:
    record = command().to_avro()
    assert record["payload"][0] == "io.revstream.erp.CollectionsCase"
    plain = {**record, "payload": record["payload"][1]}
    assert ErpCommand.from_avro(plain) == command()
    with pytest.raises(ValidationError, match="payload is not a valid Invoice"):
        ErpCommand.from_avro({**plain, "command_type": "INVOICE"})


def test_schedule_month_is_yyyy_mm() -> None:
    assert (
        ScheduleEntry(month="2025-12", recognition_date=date(2025, 12, 31), amount_minor=1).month == "2025-12"
    )
    with pytest.raises(ValidationError, match="month"):
        ScheduleEntry(month="2025-13", recognition_date=date(2025, 12, 31), amount_minor=1)


def test_invoice_line_is_shared_by_event_and_command() -> None:
    line = InvoiceLine(
        line_id="l1",
        kind=LineKind.USAGE,
        metric="api_calls",
        quantity=1000,
        unit_price_minor=2,
        amount_minor=2000,
        period_start=date(2025, 3, 1),
        period_end=date(2025, 4, 1),
    )
    invoice = Invoice(
        invoice_id="inv-1",
        subscription_id="sub-1",
        currency="USD",
        issued_on=date(2025, 4, 1),
        due_date=date(2025, 5, 1),
        total_minor=2000,
        lines=(line,),
    )
    assert invoice.lines == (line,)
    assert command(payload=invoice).command_type is CommandType.INVOICE


def _encode(parsed: Any, record: dict[str, Any]) -> bytes:
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, record)
    return buffer.getvalue()


def test_an_enum_symbol_from_a_newer_writer_reads_as_unknown() -> None:
    # A newer writer added a status; today's reader resolves it to the enum default instead of failing.
    shipped = schema_by_stem("customer")
    newer = json.loads(json.dumps(shipped.definition))
    status = next(f for f in newer["fields"] if f["name"] == "status")
    status["type"]["symbols"].insert(3, "IN_COLLECTIONS")
    record = {
        "customer_id": "cust-1",
        "name": "Acme",
        "legal_entity": "US01",
        "billing_terms_days": 30,
        "status": "IN_COLLECTIONS",
        "currency": "USD",
        "updated_at": NOW,
        "version": 7,
    }
    data = _encode(fastavro.parse_schema(newer), record)
    decoded = fastavro.schemaless_reader(io.BytesIO(data), fastavro.parse_schema(newer), shipped.parsed)
    assert isinstance(decoded, dict)
    assert decoded["status"] == CustomerStatus.UNKNOWN


def test_order_accepted_optional_quote_defaults_to_none() -> None:
    order = OrderAccepted(
        event_id="evt-2",
        occurred_at=NOW,
        source="crm",
        customer_id="cust-1",
        legal_entity="US01",
        correlation_id="chain-1",
        order_id="ord-1",
        subscription_id="sub-1",
        currency="USD",
        term_start=date(2025, 1, 1),
        term_end=date(2026, 1, 1),
        billing_frequency=BillingFrequency.ANNUAL,
        lines=(
            OrderLine(
                line_id="l1",
                product_id="p1",
                kind=LineKind.SUBSCRIPTION,
                quantity=10,
                unit_price_minor=12_000,
                amount_minor=120_000,
            ),
        ),
    )
    assert order.quote_id is None
    assert order.to_avro()["quote_id"] is None
