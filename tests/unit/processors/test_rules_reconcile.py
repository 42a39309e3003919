"""Usage-to-billing reconciliation: mismatches, re-opening by late usage, idempotence, order independence."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.errors import RuleInputError
from processors.rules.reconcile import (
    ReconKey,
    ReconState,
    apply_invoice_line,
    apply_usage,
    invoice_line_key,
    usage_key,
    usage_lines,
)
from schemas.models import BusinessException, InvoiceLine, InvoicePosted, ReasonCode, UsageRecorded
from tests.unit.processors import factories as f

KEY = ReconKey("S1", "api_calls", "2024-01")


def _invoice(quantity: int, invoice_id: str = "INV1", unit_price: int = 5, **line: Any) -> InvoicePosted:
    return f.invoice(
        lines=(f.usage_line(quantity=quantity, unit_price_minor=unit_price, **line),),
        invoice_id=invoice_id,
        envelope={"event_id": f"EV-{invoice_id}"},
    )


def _bill(state: ReconState | None, invoice: InvoicePosted, tolerance: int = 0):
    (_, line), *_ = usage_lines(invoice)
    return apply_invoice_line(state, line, invoice, tolerance)


def test_keys_use_the_month_of_the_usage_window_start_in_utc_and_of_the_line_period_start() -> None:
    late_evening = datetime(2024, 1, 31, 23, 30, tzinfo=UTC)
    assert usage_key(f.usage(window_start=late_evening)) == KEY
    assert usage_key(f.usage(window_start=datetime(2024, 2, 1, tzinfo=UTC))).period == "2024-02"
    invoice = _invoice(10)
    assert invoice_line_key(invoice, invoice.lines[0]) == KEY


def test_only_usage_lines_with_a_metric_are_reconciled() -> None:
    invoice = f.invoice(lines=(f.invoice_line(), f.usage_line(metric=None), f.usage_line("U2")))
    assert [line.line_id for _, line in usage_lines(invoice)] == ["U2"]
    with pytest.raises(RuleInputError, match="not a usage line"):
        apply_invoice_line(None, invoice.lines[0], invoice)


def test_nothing_is_raised_before_invoicing_nor_when_usage_matches_the_bill() -> None:
    state, raised = apply_usage(None, f.usage("U1", 60))
    assert raised == [] and state.metered_quantity == 60 and not state.invoiced
    state, raised = apply_usage(state, f.usage("U2", 40))
    state, raised = _bill(state, _invoice(100))
    assert raised == [] and state.difference == 0 and state.reported_difference is None


def test_under_billing_raises_the_quantity_and_money_difference() -> None:
    state, _ = apply_usage(None, f.usage("U1", 130))
    invoice = _invoice(100, unit_price=7)
    state, raised = _bill(state, invoice)
    (exc,) = raised
    assert exc.reason_code is ReasonCode.USAGE_BILLING_MISMATCH
    assert (exc.quantity_difference, exc.amount_difference_minor, exc.currency) == (30, 210, "EUR")
    assert (exc.subscription_id, exc.metric, exc.period) == ("S1", "api_calls", "2024-01")
    assert (exc.source_event_id, exc.event_type) == ("EV-INV1", "invoice_posted")
    assert "under-billed" in exc.detail
    assert state.reported_difference == 30 and state.revision == 1


def test_late_usage_reopens_with_a_new_revision_and_id_and_resolution_closes_it() -> None:
    state, raised = _bill(None, _invoice(100))
    (over,) = raised
    assert over.quantity_difference == -100 and "over-billed" in over.detail
    state, raised = apply_usage(state, f.usage("U1", 70))
    (updated,) = raised
    assert updated.quantity_difference == -30 and updated.amount_difference_minor == -150
    assert updated.exception_id != over.exception_id and "revision 2" in updated.detail
    state, raised = apply_usage(state, f.usage("U2", 30))
    (resolved,) = raised
    assert resolved.quantity_difference == 0 and resolved.detail.startswith("resolved (revision 3)")
    assert state.reported_difference is None
    # A usage event of quantity zero changes nothing and raises nothing.
    state, raised = apply_usage(state, f.usage("U3", 0))
    assert raised == [] and state.revision == 3


def test_tolerance_is_a_quantity_band_around_the_bill() -> None:
    state, _ = apply_usage(None, f.usage("U1", 102))
    state, raised = _bill(state, _invoice(100), tolerance=2)
    assert raised == []
    state, raised = apply_usage(state, f.usage("U2", 1), tolerance=2)
    assert [e.quantity_difference for e in raised] == [3]
    with pytest.raises(RuleInputError, match="tolerance"):
        apply_usage(state, f.usage("U4", 1), tolerance=-1)


def test_a_repeated_usage_event_or_invoice_line_counts_once() -> None:
    state, _ = apply_usage(None, f.usage("U1", 10))
    again, raised = apply_usage(state, f.usage("U1", 10))
    assert again == state and raised == []
    state, raised = _bill(state, _invoice(4))
    assert len(raised) == 1
    again, raised = _bill(state, _invoice(4))
    assert again == state and raised == []


def test_the_latest_invoice_prices_the_difference() -> None:
    state, _ = apply_usage(None, f.usage("U1", 50))
    later = _invoice(10, "INV2", unit_price=9).model_copy(update={"issued_on": date(2024, 2, 5)})
    state, _ = _bill(state, later)
    # The earlier invoice arrives last; the later invoice's price still values the difference.
    state, raised = _bill(state, _invoice(10, "INV1", unit_price=5))
    assert state.billed_quantity == 20
    assert [(e.quantity_difference, e.amount_difference_minor) for e in raised] == [(30, 270)]
    assert state.latest_line is not None and state.latest_line.invoice_id == "INV2"


def test_state_refuses_input_for_another_key_and_survives_json() -> None:
    state, _ = apply_usage(None, f.usage("U1", 10))
    state, _ = _bill(state, _invoice(4))
    with pytest.raises(RuleInputError, match="look the state up by key"):
        apply_usage(state, f.usage("U9", metric="storage_gb"))
    restored = ReconState.model_validate_json(state.model_dump_json())
    assert restored == state and restored.difference == 6


# --- order independence -----------------------------------------------------------------------

usage_events = st.lists(st.integers(0, 500), min_size=0, max_size=8).map(
    lambda quantities: [f.usage(f"U{i}", q) for i, q in enumerate(quantities)]
)
invoices = st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 50), st.integers(1, 28)), max_size=3).map(
    lambda specs: [
        _invoice(q, f"INV{i}", unit_price=p).model_copy(update={"issued_on": date(2024, 2, day)})
        for i, (q, p, day) in enumerate(specs)
    ]
)


Case = tuple[list[UsageRecorded], list[InvoicePosted], list[object], list[object]]


@st.composite
def interleavings(
    draw: st.DrawFn,
) -> tuple[list[UsageRecorded], list[InvoicePosted], list[object], list[object]]:
    usages = draw(usage_events)
    bills = draw(invoices)
    # Each input at least once, some repeated (redelivery after a crash), in two arbitrary orders.
    items: list[object] = [*usages, *bills]
    repeats = draw(st.lists(st.sampled_from(items), max_size=6)) if items else []
    first = draw(st.permutations([*items, *repeats]))
    second = draw(st.permutations([*items, *repeats]))
    return usages, bills, first, second


def _fold(items: list[object], tolerance: int) -> tuple[ReconState | None, list[BusinessException]]:
    state: ReconState | None = None
    raised: list[BusinessException] = []
    for item in items:
        if isinstance(item, UsageRecorded):
            state, new = apply_usage(state, item, tolerance)
        else:
            assert isinstance(item, InvoicePosted)
            state, new = _bill(state, item, tolerance)
        raised.extend(new)
    return state, raised


@given(interleavings(), st.integers(0, 5))
def test_any_interleaving_ends_with_the_same_totals_and_standing_difference(
    case: Case, tolerance: int
) -> None:
    usages, bills, first, second = case
    a, raised_a = _fold(first, tolerance)
    b, raised_b = _fold(second, tolerance)
    if a is None or b is None:
        assert a is b is None
        return
    essence = ("usage", "billed", "reported_difference")
    assert a.model_dump(include=set(essence)) == b.model_dump(include=set(essence))
    metered = sum(u.quantity for u in usages)
    billed = sum(inv.lines[0].quantity for inv in bills)
    assert (a.metered_quantity, a.billed_quantity) == (metered, billed)
    expected = metered - billed if bills and abs(metered - billed) > tolerance else None
    assert a.reported_difference == expected
    for state, raised in ((a, raised_a), (b, raised_b)):
        # What was last said about the key is what stands now.
        assert state.revision == len(raised)
        if raised:
            assert raised[-1].quantity_difference == metered - billed
        else:
            assert expected is None
        assert len({e.exception_id for e in raised}) == len(raised)


@given(usage_events, st.integers(0, 20_000))
def test_usage_before_or_after_the_invoice_gives_the_same_final_result(
    usages: list[UsageRecorded], billed: int
) -> None:
    invoice = _invoice(billed)
    before, _ = _fold([*usages, invoice], 0)
    after, _ = _fold([invoice, *usages], 0)
    assert before is not None and after is not None
    assert (before.difference, before.reported_difference) == (after.difference, after.reported_difference)


def test_line_lookup_helper_covers_a_line_model() -> None:
    # _bill picks the first reconcilable line; a typo in the factory would make every test vacuous.
    line = usage_lines(_invoice(3))[0][1]
    assert isinstance(line, InvoiceLine) and line.quantity == 3
