"""Builders of valid events and master data for the processor rule tests (defaults overridable)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from schemas.models import (
    Approval,
    BillingFrequency,
    ContractAmended,
    ContractRenewed,
    Customer,
    CustomerStatus,
    InvoiceLine,
    InvoicePosted,
    LegalEntity,
    LineKind,
    OrderAccepted,
    OrderLine,
    PaymentFailed,
    PaymentReceived,
    Product,
    QuoteApproved,
    QuoteLine,
    RevenueScheduleAdjusted,
    ServiceActivated,
    UsageRecorded,
)

T0 = datetime(2024, 1, 15, 9, 30, tzinfo=UTC)


def envelope(event_id: str = "E1", **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "event_id": event_id,
        "occurred_at": T0,
        "source": "test",
        "customer_id": "C1",
        "legal_entity": "LE-DE",
        "correlation_id": "CORR-1",
    }
    fields.update(overrides)
    return fields


def customer(customer_id: str = "C1", **overrides: Any) -> Customer:
    fields: dict[str, Any] = {
        "customer_id": customer_id,
        "name": "Acme",
        "legal_entity": "LE-DE",
        "billing_terms_days": 30,
        "status": CustomerStatus.ACTIVE,
        "currency": "EUR",
        "updated_at": T0,
        "version": 1,
    }
    fields.update(overrides)
    return Customer(**fields)


def product(product_id: str = "P1", **overrides: Any) -> Product:
    fields: dict[str, Any] = {
        "product_id": product_id,
        "name": "Platform",
        "revenue_kind": LineKind.SUBSCRIPTION,
        "list_price_minor": 10_000,
        "currency": "EUR",
        "max_discount_bp": 1000,
        "revenue_account": "4000",
        "deferred_account": "2400",
        "updated_at": T0,
        "version": 1,
    }
    fields.update(overrides)
    return Product(**fields)


def legal_entity(legal_entity_id: str = "LE-DE", **overrides: Any) -> LegalEntity:
    fields: dict[str, Any] = {
        "legal_entity_id": legal_entity_id,
        "name": "Acme GmbH",
        "functional_currency": "EUR",
        "tax_rate_bp": 1900,
        "updated_at": T0,
        "version": 1,
    }
    fields.update(overrides)
    return LegalEntity(**fields)


def quote_line(line_id: str = "QL1", **overrides: Any) -> QuoteLine:
    fields: dict[str, Any] = {
        "line_id": line_id,
        "product_id": "P1",
        "quantity": 1,
        "list_price_minor": 10_000,
        "net_price_minor": 9_000,
        "discount_bp": 1000,
    }
    fields.update(overrides)
    return QuoteLine(**fields)


def approval(max_discount_bp: int, **overrides: Any) -> Approval:
    fields: dict[str, Any] = {
        "approver": "cfo",
        "level": 2,
        "approved_at": T0,
        "max_discount_bp": max_discount_bp,
    }
    fields.update(overrides)
    return Approval(**fields)


def quote(
    lines: tuple[QuoteLine, ...] = (), approvals: tuple[Approval, ...] = (), **overrides: Any
) -> QuoteApproved:
    fields = envelope(**overrides.pop("envelope", {}))
    fields.update({"quote_id": "Q1", "currency": "EUR", "lines": lines or (quote_line(),)})
    fields["approvals"] = approvals
    fields.update(overrides)
    return QuoteApproved(**fields)


def order_line(line_id: str = "L1", **overrides: Any) -> OrderLine:
    fields: dict[str, Any] = {
        "line_id": line_id,
        "product_id": "P1",
        "kind": LineKind.SUBSCRIPTION,
        "quantity": 1,
        "unit_price_minor": 120_000,
        "amount_minor": 120_000,
    }
    fields.update(overrides)
    return OrderLine(**fields)


def order(lines: tuple[OrderLine, ...] = (), **overrides: Any) -> OrderAccepted:
    fields = envelope(**overrides.pop("envelope", {}))
    fields.update(
        {
            "order_id": "O1",
            "quote_id": "Q1",
            "subscription_id": "S1",
            "currency": "EUR",
            "term_start": date(2024, 1, 1),
            "term_end": date(2025, 1, 1),
            "billing_frequency": BillingFrequency.ANNUAL,
            "lines": lines or (order_line(),),
        }
    )
    fields.update(overrides)
    return OrderAccepted(**fields)


def invoice_line(line_id: str = "IL1", **overrides: Any) -> InvoiceLine:
    fields: dict[str, Any] = {
        "line_id": line_id,
        "kind": LineKind.SUBSCRIPTION,
        "product_id": "P1",
        "quantity": 1,
        "unit_price_minor": 120_000,
        "amount_minor": 120_000,
        "period_start": date(2024, 1, 1),
        "period_end": date(2025, 1, 1),
    }
    fields.update(overrides)
    return InvoiceLine(**fields)


def usage_line(
    line_id: str = "UL1", quantity: int = 100, unit_price_minor: int = 5, **overrides: Any
) -> InvoiceLine:
    fields: dict[str, Any] = {
        "kind": LineKind.USAGE,
        "product_id": None,
        "metric": "api_calls",
        "quantity": quantity,
        "unit_price_minor": unit_price_minor,
        "amount_minor": quantity * unit_price_minor,
        "period_start": date(2024, 1, 1),
        "period_end": date(2024, 2, 1),
    }
    fields.update(overrides)
    return invoice_line(line_id, **fields)


def invoice(lines: tuple[InvoiceLine, ...] = (), **overrides: Any) -> InvoicePosted:
    lines = lines or (invoice_line(),)
    fields = envelope(**overrides.pop("envelope", {}))
    fields.update(
        {
            "invoice_id": "INV1",
            "subscription_id": "S1",
            "currency": "EUR",
            "issued_on": date(2024, 1, 1),
            "due_date": date(2024, 1, 31),
            "total_minor": sum(line.amount_minor for line in lines),
            "lines": lines,
        }
    )
    fields.update(overrides)
    return InvoicePosted(**fields)


def usage(event_id: str = "U1", quantity: int = 10, **overrides: Any) -> UsageRecorded:
    fields = envelope(event_id, **overrides.pop("envelope", {}))
    fields.update(
        {
            "subscription_id": "S1",
            "metric": "api_calls",
            "quantity": quantity,
            "window_start": datetime(2024, 1, 10, tzinfo=UTC),
            "window_end": datetime(2024, 1, 10, 1, tzinfo=UTC),
        }
    )
    fields.update(overrides)
    return UsageRecorded(**fields)


def payment(amount_minor: int = 1000, **overrides: Any) -> PaymentReceived:
    fields = envelope(**overrides.pop("envelope", {}))
    fields.update(
        {
            "payment_id": "PAY1",
            "invoice_id": "INV1",
            "amount_minor": amount_minor,
            "currency": "EUR",
            "received_at": datetime(2024, 2, 3, 23, 59, tzinfo=UTC),
        }
    )
    fields.update(overrides)
    return PaymentReceived(**fields)


def payment_failed(attempt: int = 1, **overrides: Any) -> PaymentFailed:
    fields = envelope(**overrides.pop("envelope", {}))
    fields.update(
        {
            "payment_id": "PAY1",
            "invoice_id": "INV1",
            "amount_minor": 1000,
            "currency": "EUR",
            "failure_reason": "insufficient_funds",
            "attempt": attempt,
        }
    )
    fields.update(overrides)
    return PaymentFailed(**fields)


def activation(**overrides: Any) -> ServiceActivated:
    fields = envelope(**overrides.pop("envelope", {}))
    fields.update(
        {
            "order_id": "O1",
            "subscription_id": "S1",
            "activated_at": datetime(2024, 3, 5, 12, tzinfo=UTC),
            "line_kind": "SERVICES_MILESTONE",
            "line_id": "IL2",
            "milestone_amount_minor": 5_000,
            "currency": "EUR",
        }
    )
    fields.update(overrides)
    return ServiceActivated(**fields)


def renewal(lines: tuple[OrderLine, ...] = (), **overrides: Any) -> ContractRenewed:
    fields = envelope(**overrides.pop("envelope", {}))
    fields.update(
        {
            "subscription_id": "S1",
            "currency": "EUR",
            "new_term_start": date(2025, 1, 1),
            "new_term_end": date(2026, 1, 1),
            "lines": lines or (order_line(),),
        }
    )
    fields.update(overrides)
    return ContractRenewed(**fields)


def amendment(lines: tuple[OrderLine, ...] = (), **overrides: Any) -> ContractAmended:
    fields = envelope(**overrides.pop("envelope", {}))
    fields.update(
        {
            "subscription_id": "S1",
            "currency": "EUR",
            "effective_date": date(2024, 7, 1),
            "lines": lines or (order_line("IL1"),),
        }
    )
    fields.update(overrides)
    return ContractAmended(**fields)


def adjustment(**overrides: Any) -> RevenueScheduleAdjusted:
    fields = envelope(**overrides.pop("envelope", {}))
    fields.update({"subscription_id": "S1", "effective_date": date(2024, 7, 1), "reason": "go-live moved"})
    fields.update(overrides)
    return RevenueScheduleAdjusted(**fields)
