"""The simulated company's arithmetic and business invariants."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.errors import SimulationConfigError
from connectors.simulator import FaultRates, SimulationConfig, simulate
from connectors.simulator.dates import add_months, largest_remainder, prorated, ratable_by_month, respread
from schemas.models import (
    ContractAmended,
    Customer,
    EventEnvelope,
    InvoicePosted,
    LineKind,
    QuoteApproved,
    RevenueScheduleAdjusted,
    ServiceActivated,
)


@given(total=st.integers(0, 10**9), weights=st.lists(st.integers(0, 400), min_size=1, max_size=14))
def test_largest_remainder_is_exact_and_closest(total: int, weights: list[int]) -> None:
    if sum(weights) == 0:
        return
    shares = largest_remainder(total, weights)
    assert sum(shares) == total
    for share, weight in zip(shares, weights, strict=True):
        exact = Fraction(total * weight, sum(weights))
        assert exact - 1 < share < exact + 1


def test_largest_remainder_ties_go_to_the_earlier_share() -> None:
    assert largest_remainder(1, [1, 1, 1]) == [1, 0, 0]
    assert largest_remainder(2, [1, 1, 1]) == [1, 1, 0]
    assert largest_remainder(10, [1, 2, 1]) == [3, 5, 2]  # remainders .5, 0, .5: the earlier wins


def test_ratable_spread_by_day_over_a_mid_month_year() -> None:
    spread = ratable_by_month(1_000_000, date(2026, 1, 17), date(2027, 1, 17))
    assert list(spread) == [f"2026-{m:02d}" for m in range(1, 13)] + ["2027-01"]
    assert sum(spread.values()) == 1_000_000
    assert spread["2026-02"] == round(1_000_000 * 28 / 365)
    assert ratable_by_month(-100, date(2026, 1, 31), date(2026, 2, 2)) == {"2026-01": -50, "2026-02": -50}


def test_proration_and_month_arithmetic() -> None:
    assert prorated(3100, date(2026, 1, 17), date(2026, 2, 1)) == 1500
    assert prorated(1000, date(2026, 1, 1), date(2026, 4, 1)) == 3000
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2026, 3, 1), -12) == date(2025, 3, 1)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"months": 0}, "--months"),
        ({"customers": 0}, "--customers"),
        ({"start": date(2026, 1, 15)}, "--start"),
        ({"faults": FaultRates(duplicates=1.5)}, "duplicates"),
    ],
)
def test_bad_options_are_refused_by_name(options: dict, message: str) -> None:
    with pytest.raises(SimulationConfigError, match=message):
        SimulationConfig(**options)


@settings(max_examples=6, deadline=None)
@given(seed=st.integers(0, 10_000), months=st.sampled_from([1, 3, 14]))
def test_business_invariants_hold_for_any_seed(seed: int, months: int) -> None:
    config = SimulationConfig(months=months, seed=seed, customers=12)
    simulation = simulate(config)
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime.combine(config.end, datetime.min.time(), UTC)
    first_event: dict[str, int] = {}
    master_at: dict[str, int] = {}
    for position, emission in enumerate(simulation.emissions):
        record = emission.record
        if isinstance(record, EventEnvelope):
            # A conflicting copy is stamped one minute after its original; everything else is inside.
            assert start <= record.occurred_at < (end + timedelta(minutes=1) if emission.fault else end)
            first_event.setdefault(record.customer_id, position)
            if emission.fault is not None:
                # A duplicate or conflict sits right behind its original on the same key.
                original = simulation.emissions[position - 1].record
                assert isinstance(original, EventEnvelope) and original.event_id == record.event_id
        if isinstance(record, InvoicePosted):
            assert record.total_minor == sum(line.amount_minor for line in record.lines)
            assert all(line.period_start < line.period_end for line in record.lines)
            for line in record.lines:
                if line.kind is LineKind.USAGE:
                    # Usage is billed in arrears by calendar month: the period ends on the invoice day.
                    assert line.period_end == record.issued_on and line.period_end.day == 1
                    assert add_months(line.period_end, -1) <= line.period_start
        if isinstance(record, QuoteApproved) and any(line.discount_bp > 1500 for line in record.lines):
            assert record.approvals == () or record.approvals[0].max_discount_bp >= 2000
        if isinstance(record, ContractAmended):
            assert record.effective_date.day == 1
        if isinstance(record, RevenueScheduleAdjusted):
            # First of a month on monthly contracts; the 16th when it re-spreads a longer period.
            assert record.effective_date.day in (1, 16)
        if isinstance(record, Customer):
            master_at.setdefault(record.customer_id, position)
    summary = simulation.summary
    for customer_id in summary["master_data"]["missing_customers"]:
        assert customer_id not in master_at
    for customer_id in summary["master_data"]["late_customers"]:
        if customer_id in first_event:
            assert master_at[customer_id] > first_event[customer_id]
    exceptions = summary["expected_exceptions"]["items"]
    assert not {item["customer_id"] for item in exceptions} & set(summary["master_data"]["missing_customers"])
    legal_entities = {
        e.record.legal_entity for e in simulation.emissions if isinstance(e.record, EventEnvelope)
    }
    assert len(legal_entities) >= 2


def test_the_simulators_own_respread_keeps_the_past_and_the_total() -> None:
    plan = ratable_by_month(997, date(2026, 1, 10), date(2026, 5, 17))
    again = respread(plan, date(2026, 1, 10), date(2026, 5, 17), date(2026, 2, 16))
    assert sum(again.values()) == 997
    assert again["2026-01"] == plan["2026-01"]
    # February keeps its old amount x 15/28 days, rounded down, plus its share of the rest.
    earned = plan["2026-02"] * 15 // 28
    rest = ratable_by_month(997 - plan["2026-01"] - earned, date(2026, 2, 16), date(2026, 5, 17))
    assert again["2026-02"] == earned + rest["2026-02"]
    assert respread(plan, date(2026, 1, 10), date(2026, 5, 17), date(2026, 6, 1)) == plan


def test_the_company_has_the_cases_that_exposed_the_ledger_defects() -> None:
    simulation = simulate(SimulationConfig(months=14, seed=3, customers=40))
    events = [e.record for e in simulation.emissions if isinstance(e.record, EventEnvelope)]
    assert any(
        isinstance(e, ServiceActivated) and e.milestone_amount_minor is None and e.line_id == "OL-4"
        for e in events
    )
    published_at = {e.event_id: i for i, e in enumerate(events)}
    invoices = [e for e in events if isinstance(e, InvoicePosted)]
    ahead = [
        adjustment
        for adjustment in events
        if isinstance(adjustment, RevenueScheduleAdjusted) and adjustment.effective_date.day == 16
        for invoice in invoices
        if invoice.subscription_id == adjustment.subscription_id
        and invoice.occurred_at < adjustment.occurred_at
        and published_at[adjustment.event_id] < published_at[invoice.event_id]
    ]
    assert ahead, "an adjustment from mid-month published ahead of the invoice it changes"
    revenue_accounts = {
        account
        for currencies in simulation.summary["expected_revenue"].values()
        for months in currencies.values()
        for accounts in months.values()
        for account in accounts
    }
    assert "4020" in revenue_accounts
