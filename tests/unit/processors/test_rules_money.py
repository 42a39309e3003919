"""Money rules: exact largest-remainder splits and the daily-ratable monthly spread."""

from __future__ import annotations

from datetime import date, timedelta
from fractions import Fraction
from itertools import pairwise

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.errors import InvalidPeriodError, RuleInputError
from processors.rules.money import (
    MonthShare,
    allocate_largest_remainder,
    last_day_of_month,
    month_spans,
    ratable_by_month,
)

amounts = st.integers(min_value=-(10**15), max_value=10**15)
weight_lists = st.lists(st.integers(min_value=0, max_value=10_000), min_size=1, max_size=40).filter(
    lambda weights: sum(weights) > 0
)
days = st.dates(min_value=date(1999, 1, 1), max_value=date(2101, 12, 31))


@st.composite
def periods(draw: st.DrawFn) -> tuple[date, date]:
    start = draw(days)
    return start, start + timedelta(days=draw(st.integers(min_value=1, max_value=1200)))


# --- allocate_largest_remainder ---------------------------------------------------------------


def test_allocation_examples() -> None:
    assert allocate_largest_remainder(100, [1, 1, 1]) == [34, 33, 33]
    assert allocate_largest_remainder(-100, [1, 1, 1]) == [-34, -33, -33]
    assert allocate_largest_remainder(10, [31, 28, 31]) == [4, 3, 3]
    assert allocate_largest_remainder(0, [5, 7]) == [0, 0]
    assert allocate_largest_remainder(7, [0, 1, 0]) == [0, 7, 0]
    # Remainders 2/3 and 1/3: the larger remainder gets the unit even when it comes later.
    assert allocate_largest_remainder(2, [1, 2]) == [1, 1]
    assert allocate_largest_remainder(1, [1, 2]) == [0, 1]


@pytest.mark.parametrize("weights", [[], [0, 0], [3, -1]])
def test_allocation_rejects_weights_it_cannot_split_by(weights: list[int]) -> None:
    with pytest.raises(RuleInputError):
        allocate_largest_remainder(100, weights)


@given(amounts, weight_lists)
def test_allocation_sums_exactly_and_stays_within_one_unit_of_the_exact_share(
    total: int, weights: list[int]
) -> None:
    shares = allocate_largest_remainder(total, weights)
    assert sum(shares) == total
    assert len(shares) == len(weights)
    for share, weight in zip(shares, weights, strict=True):
        exact = Fraction(total * weight, sum(weights))
        assert abs(share - exact) < 1
        if weight == 0:
            assert share == 0


@given(amounts, weight_lists)
def test_allocation_of_a_negative_total_mirrors_the_positive_one(total: int, weights: list[int]) -> None:
    assert allocate_largest_remainder(-total, weights) == [
        -share for share in allocate_largest_remainder(total, weights)
    ]


@given(st.integers(min_value=0, max_value=10**12), weight_lists)
def test_allocation_is_monotone_in_weight_and_ties_go_to_the_earlier_index(
    total: int, weights: list[int]
) -> None:
    shares = allocate_largest_remainder(total, weights)
    for i in range(len(weights)):
        for j in range(i + 1, len(weights)):
            if weights[i] > weights[j]:
                assert shares[i] >= shares[j]
            elif weights[i] < weights[j]:
                assert shares[i] <= shares[j]
            else:
                # Equal weights: equal shares, or the earlier one got the extra unit.
                assert shares[i] - shares[j] in (0, 1)


# --- month spans and ratable_by_month ---------------------------------------------------------


def test_last_day_of_month_knows_leap_years() -> None:
    assert last_day_of_month(date(2024, 2, 10)) == date(2024, 2, 29)
    assert last_day_of_month(date(2023, 2, 10)) == date(2023, 2, 28)
    assert last_day_of_month(date(1900, 2, 1)) == date(1900, 2, 28)
    assert last_day_of_month(date(2000, 2, 1)) == date(2000, 2, 29)
    assert last_day_of_month(date(2024, 12, 31)) == date(2024, 12, 31)


def test_a_calendar_year_is_spread_by_days_in_each_month() -> None:
    shares = ratable_by_month(36_500, date(2023, 1, 1), date(2024, 1, 1))
    assert [share.month for share in shares] == [f"2023-{month:02d}" for month in range(1, 13)]
    assert [share.amount_minor for share in shares] == [
        3100,
        2800,
        3100,
        3000,
        3100,
        3000,
        3100,
        3100,
        3000,
        3100,
        3000,
        3100,
    ]
    assert shares[1].recognition_date == date(2023, 2, 28)


def test_a_leap_february_gets_its_29th_day() -> None:
    shares = ratable_by_month(366, date(2024, 1, 1), date(2025, 1, 1))
    assert shares[1] == MonthShare("2024-02", date(2024, 2, 29), 29)


def test_a_period_across_a_year_end_with_partial_months() -> None:
    # 17 days of December, 31 of January, 14 of February: 62 days for 1000 minor units.
    shares = ratable_by_month(1000, date(2023, 12, 15), date(2024, 2, 15))
    assert shares == [
        MonthShare("2023-12", date(2023, 12, 31), 274),  # 274.19
        MonthShare("2024-01", date(2024, 1, 31), 500),  # 500.00
        MonthShare("2024-02", date(2024, 2, 29), 226),  # 225.81 gets the leftover unit
    ]


def test_ties_go_to_the_earlier_month() -> None:
    # 31 + 31 days (December, January): one unit left, equal remainders, December gets it.
    assert [s.amount_minor for s in ratable_by_month(1, date(2023, 12, 1), date(2024, 2, 1))] == [1, 0]
    assert [s.amount_minor for s in ratable_by_month(-1, date(2023, 12, 1), date(2024, 2, 1))] == [-1, 0]


def test_a_one_day_period_is_one_month_with_everything() -> None:
    assert ratable_by_month(999, date(2024, 2, 29), date(2024, 3, 1)) == [
        MonthShare("2024-02", date(2024, 2, 29), 999)
    ]


def test_zero_amount_lists_every_month_with_zero() -> None:
    shares = ratable_by_month(0, date(2024, 1, 31), date(2024, 3, 2))
    assert [(s.month, s.amount_minor) for s in shares] == [("2024-01", 0), ("2024-02", 0), ("2024-03", 0)]


@pytest.mark.parametrize(
    ("start", "end"), [(date(2024, 1, 1), date(2024, 1, 1)), (date(2024, 1, 2), date(2024, 1, 1))]
)
def test_an_empty_or_reversed_period_is_refused(start: date, end: date) -> None:
    with pytest.raises(InvalidPeriodError, match="must be after the start"):
        ratable_by_month(100, start, end)


@given(amounts, periods())
def test_ratable_spread_sums_exactly_covers_every_day_and_dates_month_ends(
    amount: int, period: tuple[date, date]
) -> None:
    start, end = period
    shares = ratable_by_month(amount, start, end)
    assert sum(share.amount_minor for share in shares) == amount
    assert sum(days for _, _, days in month_spans(start, end)) == (end - start).days
    assert shares[0].month == f"{start.year:04d}-{start.month:02d}"
    last = end - timedelta(days=1)
    assert shares[-1].month == f"{last.year:04d}-{last.month:02d}"
    for share in shares:
        assert share.recognition_date == last_day_of_month(share.recognition_date)
        assert share.month == share.recognition_date.strftime("%Y-%m")
    # Months are consecutive: the next month starts the day after this one's recognition date.
    for earlier, later in pairwise(shares):
        assert last_day_of_month(earlier.recognition_date + timedelta(days=1)) == later.recognition_date


@given(st.integers(min_value=0, max_value=10**12), periods())
def test_ratable_spread_is_monotone_in_days(amount: int, period: tuple[date, date]) -> None:
    start, end = period
    spans = month_spans(start, end)
    shares = ratable_by_month(amount, start, end)
    for (_, _, days_a), a in zip(spans, shares, strict=True):
        for (_, _, days_b), b in zip(spans, shares, strict=True):
            if days_a > days_b:
                assert a.amount_minor >= b.amount_minor
            # Each month is within one unit of its exact daily share.
            exact = Fraction(amount * days_a, (end - start).days)
            assert abs(a.amount_minor - exact) < 1
