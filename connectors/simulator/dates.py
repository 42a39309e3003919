"""Calendar and money arithmetic of the simulated company, written here on purpose.

The simulator's expectations must not come from the processors' code (a shared bug would then
agree with itself), so the daily-ratable spread with largest-remainder rounding of DOMAIN.md is
implemented again here, independently, from the text of the rule.
"""

from __future__ import annotations

import calendar
import logging
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction

__all__ = [
    "add_months",
    "at",
    "largest_remainder",
    "month_key",
    "month_start",
    "next_month",
    "prorated",
    "ratable_by_month",
    "round_half_up",
]

logger = logging.getLogger(__name__)


def month_start(day: date) -> date:
    """Return the first day of ``day``'s month."""
    return day.replace(day=1)


def next_month(day: date) -> date:
    """Return the first day of the month after ``day``'s."""
    return add_months(month_start(day), 1)


def add_months(day: date, months: int) -> date:
    """Return ``day`` moved by ``months`` calendar months (the day clamped to the month's length)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def month_key(day: date) -> str:
    """Return ``YYYY-MM`` of ``day``."""
    return f"{day.year:04d}-{day.month:02d}"


def at(day: date, seconds: int) -> datetime:
    """Return the UTC instant ``seconds`` after midnight of ``day``."""
    return datetime.combine(day, time(), tzinfo=UTC) + timedelta(seconds=seconds)


def round_half_up(value: Fraction) -> int:
    """Return ``value`` rounded to the nearest integer, halves away from zero."""
    sign = -1 if value < 0 else 1
    return sign * int(abs(value) + Fraction(1, 2))


def _spans(start: date, end: date) -> list[tuple[str, int]]:
    spans = []
    cursor = start
    while cursor < end:
        stop = min(next_month(cursor), end)
        spans.append((month_key(cursor), (stop - cursor).days))
        cursor = stop
    return spans


def largest_remainder(total: int, weights: list[int]) -> list[int]:
    """Split ``total`` (>= 0) by ``weights``: floors first, leftover units to the largest remainders.

    Ties go to the earlier weight; the shares sum exactly to ``total``.
    """
    whole = sum(weights)
    floors = [total * weight // whole for weight in weights]
    remainders = [total * weight % whole for weight in weights]
    leftover = total - sum(floors)
    order = sorted(range(len(weights)), key=lambda index: (-remainders[index], index))
    for index in order[:leftover]:
        floors[index] += 1
    return floors


def ratable_by_month(amount: int, start: date, end: date) -> dict[str, int]:
    """Return ``amount`` spread by day over [start, end), per ``YYYY-MM`` (DOMAIN.md's rule)."""
    spans = _spans(start, end)
    sign = -1 if amount < 0 else 1
    shares = largest_remainder(abs(amount), [days for _, days in spans])
    return {month: sign * share for (month, _), share in zip(spans, shares, strict=True)}


def prorated(monthly: int, start: date, end: date) -> int:
    """Return what the billing platform charges for [start, end) at ``monthly`` per calendar month.

    Each calendar month contributes ``monthly`` x its days in the period / its length; the sum is
    rounded once, halves up (the billing platform's rule, not the ledger's).
    """
    total = Fraction(0)
    for month, days in _spans(start, end):
        year, number = int(month[:4]), int(month[5:])
        total += Fraction(monthly * days, calendar.monthrange(year, number)[1])
    return round_half_up(total)


def respread(plan: dict[str, int], start: date, end: date, effective: date) -> dict[str, int]:
    """Return ``plan`` (month → amount over [start, end)) re-spread prospectively from ``effective``.

    DOMAIN.md's rule, read independently of the processors: the months before the effective month
    stay; the effective month keeps its old amount x (its days of the period before the date) /
    (its days of the period), rounded down; the rest of the total is spread by day over
    [effective, end) with largest remainder, and the effective month adds its share.
    """
    begin = max(effective, start)
    if begin >= end:
        return dict(plan)
    month = month_key(begin)
    kept = {key: amount for key, amount in plan.items() if key < month}
    month_begin = max(month_start(begin), start)
    month_stop = min(next_month(begin), end)
    earned = plan.get(month, 0) * (begin - month_begin).days // (month_stop - month_begin).days
    rest = ratable_by_month(sum(plan.values()) - sum(kept.values()) - earned, begin, end)
    rest[month] += earned
    return {**kept, **rest}
