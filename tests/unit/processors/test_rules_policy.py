"""Policy: each reason code fires on the data that breaks it, and only there."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.rules.enrich import MasterView
from processors.rules.policy import BLOCKING_STATUSES, check, exception_id
from schemas.models import BusinessException, CustomerStatus, EventEnvelope, ReasonCode
from tests.unit.processors import factories as f

VIEW = MasterView(
    customers={"C1": f.customer()},
    products={"P1": f.product(max_discount_bp=1000), "P2": f.product("P2", max_discount_bp=0)},
    legal_entities={"LE-DE": f.legal_entity()},
)

CLEAN_EVENTS: list[EventEnvelope] = [
    f.quote(),
    f.order(),
    f.activation(),
    f.usage(),
    f.invoice(lines=(f.invoice_line(), f.usage_line(), f.invoice_line("T", kind="TAX", product_id=None))),
    f.payment(),
    f.payment_failed(),
    f.renewal(),
    f.amendment(),
    f.adjustment(),
]


def _reasons(exceptions: list[BusinessException]) -> list[tuple[ReasonCode, str]]:
    return [(e.reason_code, e.exception_id) for e in exceptions]


@pytest.mark.parametrize("event", CLEAN_EVENTS, ids=lambda e: e.event_type)
def test_a_clean_event_raises_nothing(event: EventEnvelope) -> None:
    assert check(event, VIEW) == []


def test_discount_above_the_product_limit_without_approval() -> None:
    event = f.quote(
        lines=(
            f.quote_line("A", discount_bp=1000),  # at the limit: fine
            f.quote_line("B", discount_bp=1500),  # above, no approval
            f.quote_line("C", product_id="P2", discount_bp=1),
        )
    )
    found = check(event, VIEW)
    assert [(e.reason_code, e.exception_id) for e in found] == [
        (ReasonCode.DISCOUNT_NOT_APPROVED, exception_id("E1", ReasonCode.DISCOUNT_NOT_APPROVED, 2)),
        (ReasonCode.DISCOUNT_NOT_APPROVED, exception_id("E1", ReasonCode.DISCOUNT_NOT_APPROVED, 3)),
    ]
    assert "line B" in found[0].detail and "1500 bp" in found[0].detail


def test_an_approval_covering_the_discount_clears_it_and_a_smaller_one_does_not() -> None:
    line = f.quote_line(discount_bp=2500)
    assert check(f.quote(lines=(line,), approvals=(f.approval(2500),)), VIEW) == []
    assert check(f.quote(lines=(line,), approvals=(f.approval(1000), f.approval(3000))), VIEW) == []
    found = check(f.quote(lines=(line,), approvals=(f.approval(2000),)), VIEW)
    assert [e.reason_code for e in found] == [ReasonCode.DISCOUNT_NOT_APPROVED]


def test_currency_must_match_the_customer_and_each_product() -> None:
    view = MasterView(
        customers={"C1": f.customer(currency="USD")},
        products={"P1": f.product(currency="EUR"), "P2": f.product("P2", currency="USD")},
        legal_entities=VIEW.legal_entities,
    )
    event = f.order(lines=(f.order_line("A"), f.order_line("B", product_id="P2")), currency="USD")
    found = check(event, view)
    assert [(e.reason_code, e.exception_id) for e in found] == [
        (ReasonCode.CURRENCY_MISMATCH, exception_id("E1", ReasonCode.CURRENCY_MISMATCH, 1))
    ]
    found = check(f.payment(currency="GBP"), view)
    assert [e.reason_code for e in found] == [ReasonCode.CURRENCY_MISMATCH]
    assert found[0].currency == "GBP" and "USD" in found[0].detail


def test_negative_amounts_on_the_event_and_its_lines() -> None:
    event = f.invoice(
        lines=(f.invoice_line(), f.invoice_line("X", quantity=-1, amount_minor=-5, unit_price_minor=5)),
    )
    found = check(event, VIEW)
    assert _reasons(found) == [
        (ReasonCode.NEGATIVE_AMOUNT, exception_id("E1", ReasonCode.NEGATIVE_AMOUNT, 2)),
    ]
    assert "quantity, amount_minor" in found[0].detail
    assert [e.reason_code for e in check(f.payment(amount_minor=-1), VIEW)] == [ReasonCode.NEGATIVE_AMOUNT]
    assert [e.reason_code for e in check(f.usage(quantity=-3), VIEW)] == [ReasonCode.NEGATIVE_AMOUNT]
    assert [e.reason_code for e in check(f.activation(milestone_amount_minor=-3), VIEW)] == [
        ReasonCode.NEGATIVE_AMOUNT
    ]
    assert check(f.activation(milestone_amount_minor=None), VIEW) == []


def test_unbalanced_invoice_carries_the_difference() -> None:
    event = f.invoice(lines=(f.invoice_line(amount_minor=1000), f.usage_line()), total_minor=1600)
    found = check(event, VIEW)
    assert [e.reason_code for e in found] == [ReasonCode.UNBALANCED_INVOICE]
    assert found[0].amount_difference_minor == 1600 - (1000 + 500)
    assert found[0].currency == "EUR" and found[0].subscription_id == "S1"


def test_unknown_product_per_line() -> None:
    event = f.order(lines=(f.order_line("A"), f.order_line("B", product_id="P404")))
    found = check(event, VIEW)
    assert _reasons(found) == [
        (ReasonCode.UNKNOWN_PRODUCT, exception_id("E1", ReasonCode.UNKNOWN_PRODUCT, 2))
    ]
    assert "P404" in found[0].detail


@pytest.mark.parametrize("status", [CustomerStatus.SUSPENDED, CustomerStatus.CLOSED, CustomerStatus.UNKNOWN])
@pytest.mark.parametrize("event", CLEAN_EVENTS, ids=lambda e: e.event_type)
def test_inactive_customer_blocks_what_its_status_forbids(
    status: CustomerStatus, event: EventEnvelope
) -> None:
    view = MasterView({"C1": f.customer(status=status)}, VIEW.products, VIEW.legal_entities)
    reasons = [e.reason_code for e in check(event, view)]
    expected = [ReasonCode.INACTIVE_CUSTOMER] if event.event_type in BLOCKING_STATUSES[status] else []
    assert reasons == expected


def test_payments_are_never_blocked_and_new_business_always_is_for_a_non_active_customer() -> None:
    for status, event_types in BLOCKING_STATUSES.items():
        assert "payment_received" not in event_types and "payment_failed" not in event_types, status
        assert {"quote_approved", "order_accepted"} <= event_types, status


def test_exception_carries_the_event_context_and_is_deterministic() -> None:
    event = f.quote(
        lines=(f.quote_line(discount_bp=5000),), envelope={"event_id": "E77", "correlation_id": "CHAIN-9"}
    )
    first = check(event, VIEW)
    assert first == check(event, VIEW)
    (exc,) = first
    assert (exc.source_event_id, exc.event_type, exc.customer_id, exc.legal_entity, exc.correlation_id) == (
        "E77",
        "quote_approved",
        "C1",
        "LE-DE",
        "CHAIN-9",
    )
    assert exc.detected_at == event.occurred_at


def test_exception_ids_differ_by_event_reason_and_position() -> None:
    ids = {
        exception_id(event_id, reason, position)
        for event_id in ("E1", "E2")
        for reason in ReasonCode
        for position in range(4)
    }
    assert len(ids) == 2 * len(ReasonCode) * 4


@given(
    st.lists(
        st.tuples(st.integers(-100, 10_000), st.sampled_from(["P1", "P2", "P9"]), st.integers(-5, 5)),
        min_size=1,
        max_size=8,
    ),
    st.integers(-50, 50),
)
def test_exceptions_on_arbitrary_invoices_match_an_independent_count(
    lines: list[tuple[int, str, int]], total_delta: int
) -> None:
    invoice_lines = tuple(
        f.invoice_line(f"L{i}", amount_minor=amount, product_id=product, quantity=quantity)
        for i, (amount, product, quantity) in enumerate(lines)
    )
    event = f.invoice(lines=invoice_lines, total_minor=sum(a for a, _, _ in lines) + total_delta)
    found = check(event, VIEW)
    reasons = [e.reason_code for e in found]
    assert reasons.count(ReasonCode.UNBALANCED_INVOICE) == (1 if total_delta else 0)
    assert reasons.count(ReasonCode.UNKNOWN_PRODUCT) == sum(p == "P9" for _, p, _ in lines)
    expected_negative = sum(a < 0 or q < 0 for a, _, q in lines) + (event.total_minor < 0)
    assert reasons.count(ReasonCode.NEGATIVE_AMOUNT) == expected_negative
    assert len({e.exception_id for e in found}) == len(found)
