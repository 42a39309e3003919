"""Hostile figures: amounts the ledger's bigint cannot hold and periods that end before they start.

Policy refuses them before any command is built (``AMOUNT_OUT_OF_RANGE``, ``InvalidPeriodError``),
and no rule that builds a business exception can fail on a figure's size.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, date, datetime, timedelta
from typing import Any

import fastavro
import pytest
from avro.schema import parse
from hypothesis import given
from hypothesis import strategies as st

from processors.errors import InvalidPeriodError
from processors.rules.enrich import MasterView
from processors.rules.money import BIGINT_MAX, MAX_AMOUNT_MINOR
from processors.rules.policy import check, exception_id
from processors.rules.reconcile import SourcePosition, apply_invoice_line, apply_usage, report, usage_lines
from schemas.loader import schema_by_stem
from schemas.models import BusinessException, EventEnvelope, ReasonCode
from streams.registry.compat import CompatibilityLevel, check_compatibility
from tests.unit.processors import factories as f

VIEW = MasterView(
    customers={"C1": f.customer()},
    products={"P1": f.product(max_discount_bp=1000)},
    legal_entities={"LE-DE": f.legal_entity()},
)
longs = st.integers(min_value=0, max_value=BIGINT_MAX)


def _out_of_range(event: EventEnvelope) -> list[BusinessException]:
    return [e for e in check(event, VIEW) if e.reason_code is ReasonCode.AMOUNT_OUT_OF_RANGE]


def _encodes(exception: BusinessException) -> None:
    # What the worker does with it: write it with the topic's Avro schema.
    fastavro.schemaless_writer(io.BytesIO(), schema_by_stem("business_exception").parsed, exception.to_avro())


def test_a_payment_of_the_largest_long_is_refused_at_policy() -> None:
    (found,) = _out_of_range(f.payment(amount_minor=BIGINT_MAX))
    assert found.exception_id == exception_id("E1", ReasonCode.AMOUNT_OUT_OF_RANGE, 0)
    assert f"amount_minor {BIGINT_MAX}" in found.detail and str(MAX_AMOUNT_MINOR) in found.detail
    _encodes(found)


@given(amount=longs)
def test_a_payment_is_refused_exactly_when_it_exceeds_the_ceiling(amount: int) -> None:
    assert bool(_out_of_range(f.payment(amount_minor=amount))) is (amount > MAX_AMOUNT_MINOR)


def test_the_ceiling_itself_passes_and_one_more_does_not() -> None:
    assert check(f.payment(amount_minor=MAX_AMOUNT_MINOR), VIEW) == []
    assert _out_of_range(f.payment(amount_minor=MAX_AMOUNT_MINOR + 1))


def test_a_usage_line_priced_at_two_to_the_62_is_refused_on_its_line() -> None:
    # The reproduction of issue 12: reconciliation multiplied this price by the usage difference.
    invoice = f.invoice(lines=(f.usage_line(quantity=1, unit_price_minor=2**62),))
    found = _out_of_range(invoice)
    assert [e.exception_id for e in found] == [
        exception_id("E1", ReasonCode.AMOUNT_OUT_OF_RANGE, 0),  # the total, 2^62
        exception_id("E1", ReasonCode.AMOUNT_OUT_OF_RANGE, 1),
    ]
    assert "line UL1" in found[1].detail and f"unit_price_minor {2**62}" in found[1].detail


def test_a_quantity_times_price_beyond_the_ceiling_is_refused_when_each_is_within() -> None:
    line = f.usage_line(quantity=10**8, unit_price_minor=10**8, amount_minor=0)
    found = _out_of_range(f.invoice(lines=(line,), total_minor=0))
    assert len(found) == 1 and "quantity x unit_price_minor = 10000000000000000" in found[0].detail


def test_lines_whose_sum_exceeds_the_ceiling_are_refused_on_the_event() -> None:
    half = MAX_AMOUNT_MINOR // 2 + 1
    lines = tuple(f.invoice_line(f"L{i}", unit_price_minor=half, amount_minor=half) for i in range(2))
    found = _out_of_range(f.invoice(lines=lines))
    assert [e.exception_id for e in found] == [exception_id("E1", ReasonCode.AMOUNT_OUT_OF_RANGE, 0)]
    assert "the lines' amounts sum to" in found[0].detail and "total_minor" in found[0].detail


def test_an_unbalanced_invoice_whose_difference_is_no_long_still_builds_its_exception() -> None:
    lines = tuple(
        f.invoice_line(f"L{i}", unit_price_minor=BIGINT_MAX, amount_minor=BIGINT_MAX) for i in range(2)
    )
    found = check(f.invoice(lines=lines, total_minor=0), VIEW)
    unbalanced = [e for e in found if e.reason_code is ReasonCode.UNBALANCED_INVOICE]
    assert unbalanced and unbalanced[0].amount_difference_minor is None
    for exception in found:
        _encodes(exception)


@given(quantity=longs, price=longs, total=longs)
def test_policy_never_fails_and_refuses_every_invoice_figure_beyond_the_ceiling(
    quantity: int, price: int, total: int
) -> None:
    amount = min(quantity * price, BIGINT_MAX)
    line = f.usage_line(quantity=quantity, unit_price_minor=price, amount_minor=amount)
    invoice = f.invoice(lines=(line,), total_minor=total)
    found = check(invoice, VIEW)
    figures = (quantity, price, amount, total, quantity * price)
    assert any(e.reason_code is ReasonCode.AMOUNT_OUT_OF_RANGE for e in found) is (
        max(figures) > MAX_AMOUNT_MINOR
    )
    for exception in found:
        _encodes(exception)


@given(metered=st.lists(longs, min_size=1, max_size=4), billed=longs, price=longs)
def test_a_mismatch_report_never_fails_on_the_size_of_its_figures(
    metered: list[int], billed: int, price: int
) -> None:
    # Each usage quantity fits a long, their sum over a period need not; neither need the value.
    invoice = f.invoice(lines=(f.usage_line(quantity=billed, unit_price_minor=price, amount_minor=0),))
    ((_, line),) = usage_lines(invoice)
    state, _ = apply_invoice_line(None, line, invoice)
    for offset, quantity in enumerate(metered):
        state, _ = apply_usage(state, f.usage(f"U{offset}", quantity), SourcePosition("u", 0, offset))
    _, exception = report(state, invoice)
    difference = sum(metered) - billed
    if exception is None:
        assert difference == 0
        return
    _encodes(exception)
    if abs(difference * price) > BIGINT_MAX or abs(difference) > BIGINT_MAX:
        assert exception.amount_difference_minor is None and "beyond the range of a long" in exception.detail
        assert exception.quantity_difference == (difference if -(2**63) <= difference <= BIGINT_MAX else None)
    else:
        assert (exception.quantity_difference, exception.amount_difference_minor) == (
            difference,
            difference * price,
        )


def test_the_issue_reproduction_reports_without_a_money_value() -> None:
    invoice = f.invoice(lines=(f.usage_line(quantity=1, unit_price_minor=2**62),))
    ((_, line),) = usage_lines(invoice)
    state, _ = apply_invoice_line(None, line, invoice)
    state, _ = apply_usage(state, f.usage("U1", 10), SourcePosition("u", 0, 0))
    _, exception = report(state, invoice)
    assert exception is not None and exception.quantity_difference == 9
    assert exception.amount_difference_minor is None


def test_a_reader_of_the_schema_before_the_new_reason_reads_it_as_unknown() -> None:
    # Adding an enum symbol is a compatible change because the enum has a default.
    new = schema_by_stem("business_exception")
    old = json.loads(json.dumps(new.definition))
    symbols = old["fields"][1]["type"]["symbols"]
    symbols.remove("AMOUNT_OUT_OF_RANGE")
    (found,) = _out_of_range(f.payment(amount_minor=BIGINT_MAX))
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, new.parsed, found.to_avro())
    buffer.seek(0)
    read: Any = fastavro.schemaless_reader(buffer, new.parsed, fastavro.parse_schema(old))
    assert read["reason_code"] == "UNKNOWN" and read["exception_id"] == found.exception_id
    # And the registry accepts the new version over the old one under the strictest level.
    level = CompatibilityLevel.FULL_TRANSITIVE
    assert check_compatibility(parse(json.dumps(new.definition)), [(1, parse(json.dumps(old)))], level) == []


# -- reversed periods -------------------------------------------------------------------------------


def test_an_invoice_line_that_ends_before_it_starts_is_refused_before_any_rule() -> None:
    line = f.invoice_line(period_start=date(2024, 2, 1), period_end=date(2024, 1, 1))
    with pytest.raises(InvalidPeriodError, match=r"\[2024-02-01, 2024-01-01\)"):
        check(f.invoice(lines=(line,)), VIEW)


def test_a_one_day_line_passes_as_the_ledger_allows_it() -> None:
    line = f.invoice_line(
        "T", kind="TAX", product_id=None, period_start=date(2024, 1, 1), period_end=date(2024, 1, 1)
    )
    assert check(f.invoice(lines=(line,)), VIEW) == []


@pytest.mark.parametrize(
    "event",
    [
        f.order(term_start=date(2024, 1, 1), term_end=date(2024, 1, 1)),
        f.order(term_start=date(2025, 1, 1), term_end=date(2024, 1, 1)),
        f.renewal(new_term_start=date(2025, 1, 1), new_term_end=date(2024, 6, 1)),
        f.usage(window_start=datetime(2024, 1, 2, tzinfo=UTC), window_end=datetime(2024, 1, 1, tzinfo=UTC)),
    ],
    ids=["empty-term", "reversed-term", "reversed-renewal", "reversed-usage-window"],
)
def test_terms_and_windows_that_end_before_they_start_are_refused(event: EventEnvelope) -> None:
    with pytest.raises(InvalidPeriodError):
        check(event, VIEW)


@given(start=st.dates(date(2000, 1, 1), date(2100, 1, 1)), days=st.integers(-400, 400))
def test_a_line_period_is_refused_exactly_when_it_is_reversed(start: date, days: int) -> None:
    line = f.invoice_line(
        "T", kind="TAX", product_id=None, period_start=start, period_end=start + timedelta(days)
    )
    event = f.invoice(lines=(line,))
    if days < 0:
        with pytest.raises(InvalidPeriodError):
            check(event, VIEW)
    else:
        assert check(event, VIEW) == []
