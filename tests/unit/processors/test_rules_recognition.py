"""Accounting building blocks: balanced entries, invoice lines to accounts, schedules and re-spreads."""

from __future__ import annotations

from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from processors.errors import InvalidPeriodError, RuleInputError, UnbalancedEntryError, UnpostableLineError
from processors.rules.money import ratable_by_month
from processors.rules.recognition import (
    TrackedSchedule,
    credit,
    debit,
    earned_before,
    ensure_balanced,
    invoice_entry_lines,
    journal_entry,
    line_schedule,
    respread,
    schedule_differences,
)
from schemas.models import JournalEntry, JournalLine
from tests.unit.processors import factories as f

DAY = date(2024, 1, 31)


def _sides(lines: list[JournalLine] | tuple[JournalLine, ...]) -> list[tuple[str, int, int]]:
    return [(line.account, line.debit_minor, line.credit_minor) for line in lines]


def test_debit_and_credit_put_negative_amounts_on_the_other_side() -> None:
    assert _sides([debit("1000", 5), debit("1000", -5), credit("4000", 5), credit("4000", -5)]) == [
        ("1000", 5, 0),
        ("1000", 0, 5),
        ("4000", 0, 5),
        ("4000", 5, 0),
    ]


def test_journal_entry_drops_zero_lines_and_returns_none_when_nothing_is_left() -> None:
    entry = journal_entry("J1", DAY, "EUR", "x", [debit("1200", 10), credit("2400", 10), credit("2200", 0)])
    assert entry is not None and _sides(entry.lines) == [("1200", 10, 0), ("2400", 0, 10)]
    assert journal_entry("J2", DAY, "EUR", "x", [debit("1200", 0), credit("2400", 0)]) is None


def test_an_unbalanced_entry_is_refused_with_its_totals() -> None:
    with pytest.raises(
        UnbalancedEntryError, match="J9 does not balance in EUR: debits 10 != credits 9"
    ) as info:
        journal_entry("J9", DAY, "EUR", "x", [debit("1200", 10), credit("2400", 9)])
    assert (info.value.debit_minor, info.value.credit_minor) == (10, 9)


def test_a_line_on_both_sides_or_negative_is_refused() -> None:
    both = JournalLine(account="1", debit_minor=5, credit_minor=5)
    with pytest.raises(UnbalancedEntryError):
        ensure_balanced(
            JournalEntry(entry_id="J", posting_date=DAY, currency="EUR", description="", lines=(both,))
        )
    negative = (JournalLine(account="1", debit_minor=-5, credit_minor=0), credit("2", -5))
    with pytest.raises(UnbalancedEntryError):
        ensure_balanced(
            JournalEntry(entry_id="J", posting_date=DAY, currency="EUR", description="", lines=negative)
        )


def test_invoice_lines_go_to_their_accounts_in_domain_order() -> None:
    invoice = f.invoice(
        lines=(
            f.invoice_line("S1", amount_minor=1200),
            f.invoice_line("T", kind="TAX", product_id=None, amount_minor=300),
            f.usage_line("U", quantity=10, unit_price_minor=5),
            f.invoice_line("SV", kind="SERVICES", amount_minor=700),
            f.invoice_line("S2", amount_minor=100),
        )
    )
    assert _sides(invoice_entry_lines(invoice)) == [
        ("1200", 2350, 0),
        ("2400", 0, 1300),
        ("2410", 0, 700),
        ("4100", 0, 50),
        ("2200", 0, 300),
    ]


def test_an_unknown_line_kind_cannot_be_posted() -> None:
    invoice = f.invoice(lines=(f.invoice_line(kind="UNKNOWN"),))
    with pytest.raises(UnpostableLineError, match="has kind UNKNOWN"):
        invoice_entry_lines(invoice)


def test_line_schedule_spreads_the_line_daily_over_its_period() -> None:
    invoice = f.invoice()
    tracked = line_schedule(invoice, invoice.lines[0], "SCH")
    schedule = tracked.schedule
    assert (schedule.schedule_id, schedule.invoice_id, schedule.line_id, schedule.total_minor) == (
        "SCH",
        "INV1",
        "IL1",
        120_000,
    )
    assert [(e.month, e.amount_minor) for e in schedule.entries][:3] == [
        ("2024-01", 10_164),  # 120000 * 31/366 = 10163.9
        ("2024-02", 9_508),  # 120000 * 29/366 = 9508.2
        ("2024-03", 10_164),
    ]
    assert sum(e.amount_minor for e in schedule.entries) == 120_000
    assert (tracked.period_start, tracked.period_end, tracked.product_id) == (
        date(2024, 1, 1),
        date(2025, 1, 1),
        "P1",
    )
    bad = f.invoice_line(period_start=date(2024, 3, 1), period_end=date(2024, 3, 1))
    with pytest.raises(InvalidPeriodError):
        line_schedule(f.invoice(lines=(bad,)), bad, "SCH")


def _tracked(amount: int, start: date, end: date) -> TrackedSchedule:
    line = f.invoice_line(amount_minor=amount, period_start=start, period_end=end)
    return line_schedule(f.invoice(lines=(line,)), line, "SCH")


def test_respread_keeps_what_was_earned_before_a_mid_month_date_and_spreads_the_rest() -> None:
    tracked = _tracked(36_500, date(2023, 1, 1), date(2024, 1, 1))  # 100 per day
    # The same total again: earned before 16 July (January-June, and 15 of July's 31 days) stays,
    # the rest at the same daily rate gives the same months: nothing to change.
    assert respread(tracked, date(2023, 7, 16)) is None
    new = respread(tracked, date(2023, 7, 16), new_total_minor=40_000)
    assert new is not None
    months = {e.month: e.amount_minor for e in new.schedule.entries}
    assert [months[f"2023-{m:02d}"] for m in range(1, 7)] == [3100, 2800, 3100, 3000, 3100, 3000]
    # Earned 18,100 + 3,100 x 15/31 = 1,500; the remaining 20,400 over the 169 days from 16 July.
    rest = ratable_by_month(40_000 - 18_100 - 1_500, date(2023, 7, 16), date(2024, 1, 1))
    assert months["2023-07"] == 1_500 + rest[0].amount_minor
    assert [months[f"2023-{m:02d}"] for m in range(8, 13)] == [share.amount_minor for share in rest[1:]]
    assert sum(months.values()) == 40_000
    assert new.schedule.schedule_id == tracked.schedule.schedule_id
    assert (new.period_start, new.period_end) == (tracked.period_start, tracked.period_end)


def test_earned_before_rounds_the_effective_months_part_down() -> None:
    tracked = _tracked(1_000, date(2023, 3, 10), date(2023, 5, 1))  # March 22 days, April 30
    kept, earned = earned_before(tracked, date(2023, 3, 20))
    march = tracked.schedule.entries[0].amount_minor
    assert kept == [] and earned == march * 10 // 22
    kept, earned = earned_before(tracked, date(2023, 4, 11))
    assert (
        kept == [tracked.schedule.entries[0]]
        and earned == tracked.schedule.entries[1].amount_minor * 10 // 30
    )


def test_respread_with_a_new_total() -> None:
    tracked = _tracked(36_500, date(2023, 1, 1), date(2024, 1, 1))
    new = respread(tracked, date(2023, 7, 1), new_total_minor=40_000)
    assert new is not None and new.schedule.total_minor == 40_000
    assert sum(e.amount_minor for e in new.schedule.entries) == 40_000
    with pytest.raises(RuleInputError, match="below the 18100 already earned"):
        respread(tracked, date(2023, 7, 1), new_total_minor=18_000)


def test_respread_changes_nothing_before_the_period_or_after_it() -> None:
    tracked = _tracked(36_500, date(2023, 1, 1), date(2024, 1, 1))
    assert respread(tracked, date(2022, 6, 1)) is None  # the same spread again
    assert respread(tracked, date(2024, 1, 1)) is None  # nothing left to spread
    assert respread(tracked, date(2023, 7, 1)) is None  # month boundary: daily rule gives the same months


def test_schedule_differences_per_month() -> None:
    tracked = _tracked(36_500, date(2023, 1, 1), date(2024, 1, 1))
    # December's unrecognised 3100 is re-spread over December 31 alone: still December's 3100.
    assert respread(tracked, date(2023, 12, 31)) is None
    new = respread(tracked, date(2023, 12, 31), new_total_minor=36_600)
    assert new is not None
    assert schedule_differences(tracked.schedule, new.schedule) == [("2023-12", date(2023, 12, 31), 100)]


@st.composite
def schedules_and_dates(draw: st.DrawFn) -> tuple[TrackedSchedule, date, int]:
    start = draw(st.dates(min_value=date(2019, 1, 1), max_value=date(2030, 12, 31)))
    end = start + timedelta(days=draw(st.integers(1, 800)))
    amount = draw(st.integers(0, 10**11))
    effective = start + timedelta(days=draw(st.integers(-40, (end - start).days + 40)))
    extra = draw(st.integers(0, 10**6))
    return _tracked(amount, start, end), effective, extra


@given(schedules_and_dates())
def test_respread_sums_exactly_keeps_the_past_and_differences_rebuild_the_new_schedule(
    case: tuple[TrackedSchedule, date, int],
) -> None:
    tracked, effective, extra = case
    old = tracked.schedule
    new_total = old.total_minor + extra
    new = respread(tracked, effective, new_total_minor=new_total)
    if new is None:
        assert effective >= tracked.period_end or extra == 0
        return
    entries = new.schedule.entries
    assert sum(e.amount_minor for e in entries) == new_total == new.schedule.total_minor
    assert all(e.amount_minor >= 0 for e in entries)
    start = max(effective, tracked.period_start)
    assert [e for e in entries if e.recognition_date < start] == [
        e for e in old.entries if e.recognition_date < start
    ]
    _, earned = earned_before(tracked, start)
    effective_month = next(e for e in entries if e.recognition_date >= start)
    assert effective_month.amount_minor >= earned >= 0
    rebuilt = {e.month: e.amount_minor for e in old.entries}
    for month, _, difference in schedule_differences(old, new.schedule):
        rebuilt[month] = rebuilt.get(month, 0) + difference
    assert {m: a for m, a in rebuilt.items() if a} == {
        e.month: e.amount_minor for e in entries if e.amount_minor
    }
