"""Models of the canonical events (``io.revstream.events``), one per ``.avsc`` file.

Every event starts with the shared envelope (:class:`EventEnvelope`). ``event_type`` is fixed per
class, so an event cannot claim to be another type. Amounts and quantities may be negative here on
purpose: the policy stage turns those into business exceptions instead of losing the record.
"""

from __future__ import annotations

import logging
from typing import ClassVar, Literal

from schemas.models.base import AvroInt, AvroLong, AvroRecord, Currency, Date, Id, TimestampMillis
from schemas.models.enums import ActivationKind, BillingFrequency, LineKind
from schemas.names import EVENTS_NAMESPACE

__all__ = [
    "Approval",
    "ContractAmended",
    "ContractRenewed",
    "DiscountApproved",
    "EventEnvelope",
    "InvoiceLine",
    "InvoicePosted",
    "OrderAccepted",
    "OrderLine",
    "PaymentFailed",
    "PaymentReceived",
    "QuoteApproved",
    "QuoteLine",
    "RevenueScheduleAdjusted",
    "ServiceActivated",
    "UsageRecorded",
]

logger = logging.getLogger(__name__)


class EventEnvelope(AvroRecord):
    """The fields every canonical event starts with, in this order."""

    avro_namespace: ClassVar[str | None] = EVENTS_NAMESPACE

    event_id: Id
    event_type: str
    occurred_at: TimestampMillis
    source: str
    customer_id: Id
    legal_entity: str
    correlation_id: str
    schema_version: AvroInt = 1


class QuoteLine(AvroRecord):
    """One priced line of a quote."""

    avro_name: ClassVar[str] = "QuoteLine"

    line_id: Id
    product_id: Id
    quantity: AvroLong
    list_price_minor: AvroLong
    net_price_minor: AvroLong
    discount_bp: AvroInt


class Approval(AvroRecord):
    """One approval given to a quote."""

    avro_name: ClassVar[str] = "Approval"

    approver: str
    level: AvroInt
    approved_at: TimestampMillis
    max_discount_bp: AvroInt


class OrderLine(AvroRecord):
    """One contracted line of an order, renewal or amendment."""

    avro_name: ClassVar[str] = "OrderLine"

    line_id: Id
    product_id: Id
    kind: LineKind
    quantity: AvroLong
    unit_price_minor: AvroLong
    amount_minor: AvroLong


class InvoiceLine(AvroRecord):
    """One billed line of an invoice with its service period [period_start, period_end)."""

    avro_name: ClassVar[str] = "InvoiceLine"

    line_id: Id
    kind: LineKind
    product_id: Id | None = None
    metric: str | None = None
    quantity: AvroLong
    unit_price_minor: AvroLong
    amount_minor: AvroLong
    period_start: Date
    period_end: Date


class QuoteApproved(EventEnvelope):
    """A quote was approved in CPQ and can become an order."""

    avro_name: ClassVar[str] = "QuoteApproved"

    event_type: Literal["quote_approved"] = "quote_approved"
    quote_id: Id
    currency: Currency
    lines: tuple[QuoteLine, ...]
    approvals: tuple[Approval, ...]
    created_by: str | None = None


class OrderAccepted(EventEnvelope):
    """A customer accepted an order; the term is [term_start, term_end)."""

    avro_name: ClassVar[str] = "OrderAccepted"

    event_type: Literal["order_accepted"] = "order_accepted"
    order_id: Id
    quote_id: Id | None = None
    subscription_id: Id
    currency: Currency
    term_start: Date
    term_end: Date
    billing_frequency: BillingFrequency
    lines: tuple[OrderLine, ...]


class ServiceActivated(EventEnvelope):
    """A subscription was provisioned or a services milestone was delivered."""

    avro_name: ClassVar[str] = "ServiceActivated"

    event_type: Literal["service_activated"] = "service_activated"
    order_id: Id
    subscription_id: Id
    activated_at: TimestampMillis
    line_kind: ActivationKind
    line_id: Id | None = None
    milestone_amount_minor: AvroLong | None = None
    currency: Currency


class UsageRecorded(EventEnvelope):
    """The usage meter measured a metric over the window [window_start, window_end)."""

    avro_name: ClassVar[str] = "UsageRecorded"

    event_type: Literal["usage_recorded"] = "usage_recorded"
    subscription_id: Id
    metric: str
    quantity: AvroLong
    window_start: TimestampMillis
    window_end: TimestampMillis


class InvoicePosted(EventEnvelope):
    """The billing platform posted an invoice."""

    avro_name: ClassVar[str] = "InvoicePosted"

    event_type: Literal["invoice_posted"] = "invoice_posted"
    invoice_id: Id
    subscription_id: Id
    currency: Currency
    issued_on: Date
    due_date: Date
    total_minor: AvroLong
    lines: tuple[InvoiceLine, ...]


class PaymentReceived(EventEnvelope):
    """The payment gateway settled a payment against an invoice."""

    avro_name: ClassVar[str] = "PaymentReceived"

    event_type: Literal["payment_received"] = "payment_received"
    payment_id: Id
    invoice_id: Id
    amount_minor: AvroLong
    currency: Currency
    received_at: TimestampMillis


class PaymentFailed(EventEnvelope):
    """A payment attempt against an invoice failed."""

    avro_name: ClassVar[str] = "PaymentFailed"

    event_type: Literal["payment_failed"] = "payment_failed"
    payment_id: Id
    invoice_id: Id
    amount_minor: AvroLong
    currency: Currency
    failure_reason: str
    attempt: AvroInt


class ContractRenewed(EventEnvelope):
    """A subscription was renewed for the term [new_term_start, new_term_end)."""

    avro_name: ClassVar[str] = "ContractRenewed"

    event_type: Literal["contract_renewed"] = "contract_renewed"
    subscription_id: Id
    currency: Currency
    new_term_start: Date
    new_term_end: Date
    lines: tuple[OrderLine, ...]


class ContractAmended(EventEnvelope):
    """A subscription was amended from effective_date; lines are the changed lines."""

    avro_name: ClassVar[str] = "ContractAmended"

    event_type: Literal["contract_amended"] = "contract_amended"
    subscription_id: Id
    currency: Currency
    effective_date: Date
    lines: tuple[OrderLine, ...]


class RevenueScheduleAdjusted(EventEnvelope):
    """Finance asked to re-spread the not-yet-recognised revenue from effective_date."""

    avro_name: ClassVar[str] = "RevenueScheduleAdjusted"

    event_type: Literal["revenue_schedule_adjusted"] = "revenue_schedule_adjusted"
    subscription_id: Id
    effective_date: Date
    reason: str


class DiscountApproved(EventEnvelope):
    """A discount beyond the price book was approved for a quote after the quote itself."""

    avro_name: ClassVar[str] = "DiscountApproved"

    event_type: Literal["discount_approved"] = "discount_approved"
    approval_id: Id
    quote_id: Id
    approver: str
    level: AvroInt
    max_discount_bp: AvroInt
    exception_id: str | None = None
    note: str | None = None
