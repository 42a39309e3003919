"""Validation and policy: business exceptions for events that are valid Avro but break a rule.

Each rule is a small generator of findings; :func:`check` runs them all and turns the findings
into :class:`BusinessException` records with deterministic ids (source event id, reason code and
position: 0 for the event itself, ``n`` for its ``n``-th line counting from 1), so a replay
raises the same exceptions. ``detected_at`` is the event's ``occurred_at`` for the same reason.

The rules read master data through a :class:`MasterView`; a rule whose master data is absent
stays silent (the enrichment stage parks such events), except :data:`ReasonCode.UNKNOWN_PRODUCT`,
which exists to say exactly that. An event with any exception should not go on to produce ERP
commands: every reason here means posting it would put wrong numbers in the ledger.

Two checks come first, because what they find cannot be posted at all, not even in part. A
figure beyond :data:`MAX_AMOUNT_MINOR` (a money field, a quantity, a line's quantity times its
price, the sum of the lines) raises ``AMOUNT_OUT_OF_RANGE``: the ledger's ``bigint`` columns and
the sums over them would overflow. A reversed period or term (``InvalidPeriodError``, which the
worker dead-letters at the policy stage as ``INVALID_PERIOD``) is refused before any command is
built, so that an invoice is never half posted: its entry applied, its invoice refused.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

from processors.errors import InvalidPeriodError
from processors.rules.enrich import MasterView
from processors.rules.ids import derive_id
from processors.rules.money import MAX_AMOUNT_MINOR, fits_bigint, in_range
from schemas.models import (
    AvroRecord,
    BusinessException,
    CustomerStatus,
    EventEnvelope,
    InvoicePosted,
    QuoteApproved,
    ReasonCode,
)

__all__ = ["BLOCKING_STATUSES", "check", "exception_id", "refuse_reversed_periods"]

logger = logging.getLogger(__name__)

_NEW_BUSINESS: Final = frozenset({"quote_approved", "order_accepted", "contract_renewed", "contract_amended"})
_DELIVERY: Final = frozenset({"service_activated", "usage_recorded", "invoice_posted"})

BLOCKING_STATUSES: Final[Mapping[CustomerStatus, frozenset[str]]] = {
    # A suspended customer may still be invoiced for what was delivered and still pays, but gets no
    # new business; a closed (or unknown-status) one gets neither new business nor new deliveries.
    # Payments and finance's own schedule adjustments are never blocked: cash must always land.
    CustomerStatus.SUSPENDED: _NEW_BUSINESS,
    CustomerStatus.CLOSED: _NEW_BUSINESS | _DELIVERY,
    CustomerStatus.UNKNOWN: _NEW_BUSINESS | _DELIVERY,
}
"""For each non-active customer status, the event types that raise ``INACTIVE_CUSTOMER``."""

# Fields that must not be negative, per line and per event (quantities included: a negative
# quantity is the same defect as a negative amount).
_LINE_AMOUNT_FIELDS: Final = (
    "quantity",
    "list_price_minor",
    "net_price_minor",
    "unit_price_minor",
    "amount_minor",
)
_EVENT_AMOUNT_FIELDS: Final = ("total_minor", "amount_minor", "quantity", "milestone_amount_minor")
# (start, end) pairs and whether an empty period is allowed. An invoice line may be dated to one
# day (start == end: the ledger's own check allows it); a term must last.
_EVENT_PERIODS: Final = (
    ("term_start", "term_end", False),
    ("new_term_start", "new_term_end", False),
    ("window_start", "window_end", True),
)
_LINE_PERIODS: Final = (("period_start", "period_end", True),)
# Products of two fields that a rule multiplies (the value of a quantity at a price).
_LINE_PRODUCTS: Final = (("quantity", "unit_price_minor"), ("quantity", "net_price_minor"))


@dataclass(frozen=True)
class _Finding:
    reason: ReasonCode
    position: int
    detail: str
    amount_difference_minor: int | None = None


def exception_id(source_event_id: str, reason: ReasonCode, position: int) -> str:
    """Return the deterministic id of the exception ``reason`` raised at ``position`` of an event."""
    return derive_id("exception", source_event_id, reason.value, position)


def _lines(event: EventEnvelope) -> tuple[Any, ...]:
    return tuple(event.value_of("lines", ()))


def _inactive_customer(event: EventEnvelope, view: MasterView) -> Iterator[_Finding]:
    customer = view.customer(event.customer_id)
    if customer is None or event.event_type not in BLOCKING_STATUSES.get(customer.status, frozenset()):
        return
    yield _Finding(
        ReasonCode.INACTIVE_CUSTOMER,
        0,
        f"customer {customer.customer_id} is {customer.status.value}: {event.event_type} is not allowed;"
        " reactivate the customer or cancel the transaction",
    )


def _currency_mismatch(event: EventEnvelope, view: MasterView) -> Iterator[_Finding]:
    currency = event.value_of("currency")
    if currency is None:
        return
    customer = view.customer(event.customer_id)
    if customer is not None and customer.currency != currency:
        yield _Finding(
            ReasonCode.CURRENCY_MISMATCH,
            0,
            f"event currency {currency} differs from customer {customer.customer_id}'s currency"
            f" {customer.currency}; re-issue it in {customer.currency} or update the customer",
        )
    for position, line in enumerate(_lines(event), start=1):
        product = view.product(line.product_id) if line.value_of("product_id") else None
        if product is not None and product.currency != currency:
            yield _Finding(
                ReasonCode.CURRENCY_MISMATCH,
                position,
                f"line {line.line_id}: product {product.product_id} is priced in {product.currency},"
                f" the event in {currency}; use the product's {currency} price-book entry",
            )


def _negative(model: AvroRecord, names: tuple[str, ...]) -> list[str]:
    return [name for name in names if isinstance(value := model.value_of(name), int) and value < 0]


def _negative_amounts(event: EventEnvelope, view: MasterView) -> Iterator[_Finding]:
    negative = _negative(event, _EVENT_AMOUNT_FIELDS)
    if negative:
        yield _Finding(
            ReasonCode.NEGATIVE_AMOUNT,
            0,
            f"negative {', '.join(negative)}; send corrections as their own credit transaction, not as"
            " negative values",
        )
    for position, line in enumerate(_lines(event), start=1):
        negative = _negative(line, _LINE_AMOUNT_FIELDS)
        if negative:
            yield _Finding(
                ReasonCode.NEGATIVE_AMOUNT,
                position,
                f"line {line.line_id}: negative {', '.join(negative)}; correct the line at its source",
            )


def _out_of_range(model: AvroRecord, names: tuple[str, ...]) -> list[str]:
    found = [
        f"{name} {value}"
        for name in names
        if isinstance(value := model.value_of(name), int) and not in_range(value)
    ]
    for left, right in _LINE_PRODUCTS:
        a, b = model.value_of(left), model.value_of(right)
        if isinstance(a, int) and isinstance(b, int) and in_range(a) and in_range(b) and not in_range(a * b):
            found.append(f"{left} x {right} = {a * b}")
    return found


def _fits(model: AvroRecord, names: tuple[str, ...]) -> bool:
    # The fast path every event takes (the rules run per record): plain dict reads, no lists.
    values = model.__dict__
    for name in names:
        value = values.get(name)
        if value is not None and not -MAX_AMOUNT_MINOR <= value <= MAX_AMOUNT_MINOR:
            return False
    quantity = values.get("quantity")
    if quantity is None:
        return True
    for _, price_name in _LINE_PRODUCTS:
        price = values.get(price_name)
        if price is not None and not -MAX_AMOUNT_MINOR <= quantity * price <= MAX_AMOUNT_MINOR:
            return False
    return True


def _amounts_out_of_range(event: EventEnvelope, view: MasterView) -> Iterator[_Finding]:
    lines = _lines(event)
    lines_sum = sum(line.value_of("amount_minor", 0) for line in lines)
    if (
        in_range(lines_sum)
        and _fits(event, _EVENT_AMOUNT_FIELDS)
        and all(_fits(line, _LINE_AMOUNT_FIELDS) for line in lines)
    ):
        return
    fix = f"the ledger takes figures up to {MAX_AMOUNT_MINOR} minor units; correct it at its source"
    beyond = _out_of_range(event, _EVENT_AMOUNT_FIELDS)
    if not in_range(lines_sum):
        beyond.append(f"the lines' amounts sum to {lines_sum}")
    if beyond:
        yield _Finding(ReasonCode.AMOUNT_OUT_OF_RANGE, 0, f"{', '.join(beyond)}: {fix}")
    for position, line in enumerate(lines, start=1):
        beyond = _out_of_range(line, _LINE_AMOUNT_FIELDS)
        if beyond:
            yield _Finding(
                ReasonCode.AMOUNT_OUT_OF_RANGE, position, f"line {line.line_id}: {', '.join(beyond)}: {fix}"
            )


def _unbalanced_invoice(event: EventEnvelope, view: MasterView) -> Iterator[_Finding]:
    if not isinstance(event, InvoicePosted):
        return
    lines_total = sum(line.amount_minor for line in event.lines)
    if lines_total != event.total_minor:
        difference = event.total_minor - lines_total
        yield _Finding(
            ReasonCode.UNBALANCED_INVOICE,
            0,
            f"invoice {event.invoice_id}: lines sum to {lines_total} but total_minor is"
            f" {event.total_minor} ({event.currency} minor units); re-post the invoice with matching totals",
            # Out-of-range figures are named by AMOUNT_OUT_OF_RANGE; the field is a long.
            amount_difference_minor=difference if fits_bigint(difference) else None,
        )


def _unknown_products(event: EventEnvelope, view: MasterView) -> Iterator[_Finding]:
    for position, line in enumerate(_lines(event), start=1):
        product_id = line.value_of("product_id")
        if product_id is not None and view.product(product_id) is None:
            yield _Finding(
                ReasonCode.UNKNOWN_PRODUCT,
                position,
                f"line {line.line_id}: product {product_id} is not in the price book; publish it or fix"
                " the line",
            )


def _unapproved_discounts(event: EventEnvelope, view: MasterView) -> Iterator[_Finding]:
    if not isinstance(event, QuoteApproved):
        return
    approved_bp = max((approval.max_discount_bp for approval in event.approvals), default=None)
    for position, line in enumerate(event.lines, start=1):
        product = view.product(line.product_id)
        if product is None or line.discount_bp <= product.max_discount_bp:
            continue
        if approved_bp is not None and approved_bp >= line.discount_bp:
            continue
        yield _Finding(
            ReasonCode.DISCOUNT_NOT_APPROVED,
            position,
            f"line {line.line_id}: discount {line.discount_bp} bp exceeds product {product.product_id}'s"
            f" allowed {product.max_discount_bp} bp and no approval covers it; get an approval of at least"
            f" {line.discount_bp} bp",
        )


_RULES: Final[tuple[Callable[[EventEnvelope, MasterView], Iterator[_Finding]], ...]] = (
    _amounts_out_of_range,
    _inactive_customer,
    _currency_mismatch,
    _negative_amounts,
    _unbalanced_invoice,
    _unknown_products,
    _unapproved_discounts,
)


def refuse_reversed_periods(event: EventEnvelope) -> None:
    """Refuse an event whose period or term ends before it starts (or a term that is empty).

    Raises:
        InvalidPeriodError: naming the first such period.
    """
    models: list[tuple[AvroRecord, tuple[tuple[str, str, bool], ...]]] = [(event, _EVENT_PERIODS)]
    models.extend((line, _LINE_PERIODS) for line in _lines(event))
    for model, pairs in models:
        for start_name, end_name, may_be_empty in pairs:
            start, end = model.value_of(start_name), model.value_of(end_name)
            if start is None or end is None:
                continue
            if end < start or (end == start and not may_be_empty):
                raise InvalidPeriodError(start, end)


def check(event: EventEnvelope, master: MasterView) -> list[BusinessException]:
    """Return every business exception the event raises (empty when it passes every rule).

    Raises:
        InvalidPeriodError: when a period or term of the event is reversed
            (:func:`refuse_reversed_periods`): the event cannot be posted, whatever the rules say.
    """
    refuse_reversed_periods(event)
    return [
        BusinessException(
            exception_id=exception_id(event.event_id, finding.reason, finding.position),
            reason_code=finding.reason,
            source_event_id=event.event_id,
            event_type=event.event_type,
            customer_id=event.customer_id,
            legal_entity=event.legal_entity,
            correlation_id=event.correlation_id,
            detected_at=event.occurred_at,
            detail=finding.detail,
            amount_difference_minor=finding.amount_difference_minor,
            currency=event.value_of("currency"),
            subscription_id=event.value_of("subscription_id"),
            metric=event.value_of("metric"),
            quote_id=event.value_of("quote_id"),
        )
        for rule in _RULES
        for finding in rule(event, master)
    ]
