"""Money arithmetic in integer minor units: exact splits and daily-ratable monthly spreads.

Nothing here ever touches a float. Every split sums exactly to what was split; the rounding rule is
largest remainder with ties to the earlier share (DOMAIN.md, "Accounting rules").
"""

from __future__ import annotations

import calendar
import logging
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Final, NamedTuple

from processors.errors import InvalidPeriodError, RuleInputError

__all__ = [
    "BIGINT_MAX",
    "MAX_AMOUNT_MINOR",
    "MonthShare",
    "allocate_largest_remainder",
    "fits_bigint",
    "in_range",
    "last_day_of_month",
    "month_key",
    "month_spans",
    "ratable_by_month",
]

logger = logging.getLogger(__name__)

BIGINT_MAX: Final = 2**63 - 1
"""The largest value of the ledger's ``bigint`` columns and of an Avro ``long``."""

MAX_AMOUNT_MINOR: Final = 10**15
"""The largest amount or quantity policy lets through, one field or one derived figure.

10^15 minor units is ten trillion in a two-decimal currency, beyond any real invoice, and it leaves
the ledger room to add figures up: about 9,200 amounts at this ceiling still sum within a
``bigint`` (the trial balance and AR aging sum a column per account), where a single amount of
2^63 - 1 overflowed the first sum it took part in.
"""


def in_range(value: int) -> bool:
    """Whether ``value`` is within policy's ceiling, ``|value| <= MAX_AMOUNT_MINOR``."""
    return -MAX_AMOUNT_MINOR <= value <= MAX_AMOUNT_MINOR


def fits_bigint(value: int) -> bool:
    """Whether ``value`` fits a signed 64-bit column (and an Avro ``long``)."""
    return -(2**63) <= value <= BIGINT_MAX


class MonthShare(NamedTuple):
    """The part of an amount recognised in one calendar month."""

    month: str
    """The calendar month, ``YYYY-MM``."""
    recognition_date: date
    """The last day of that month: the date the month's revenue is posted."""
    amount_minor: int


def allocate_largest_remainder(total_minor: int, weights: Sequence[int]) -> list[int]:
    """Split ``total_minor`` in proportion to ``weights`` so that the shares sum exactly to it.

    Each share is ``floor(|total| * w / W)``; the units left over go one each to the shares with
    the largest remainders, ties to the earlier index. A negative total is split as its absolute
    value and every share negated, so ``allocate(-t, w) == [-s for s in allocate(t, w)]``.

    Raises:
        RuleInputError: when there are no weights, a weight is negative, or all weights are zero.
    """
    if not weights:
        raise RuleInputError("nothing to allocate to: give at least one weight")
    if any(weight < 0 for weight in weights):
        raise RuleInputError(f"weights must not be negative, got {list(weights)}")
    weight_sum = sum(weights)
    if weight_sum == 0:
        raise RuleInputError("weights sum to zero: at least one weight must be positive")
    sign = -1 if total_minor < 0 else 1
    magnitude = abs(total_minor)
    quotients_remainders = [divmod(magnitude * weight, weight_sum) for weight in weights]
    shares = [quotient for quotient, _ in quotients_remainders]
    leftover = magnitude - sum(shares)
    # Sorting by (-remainder, index) puts the largest remainders first and, among equals, the
    # earlier index first; leftover < len(weights) always, so each share gets at most one unit.
    by_remainder = sorted(range(len(weights)), key=lambda i: (-quotients_remainders[i][1], i))
    for index in by_remainder[:leftover]:
        shares[index] += 1
    return [sign * share for share in shares]


def month_key(day: date) -> str:
    """Return the calendar month of ``day`` as ``YYYY-MM``."""
    return f"{day.year:04d}-{day.month:02d}"


def last_day_of_month(day: date) -> date:
    """Return the last day of the calendar month that contains ``day``."""
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def month_spans(start: date, end_exclusive: date) -> list[tuple[str, date, int]]:
    """Return ``(month, last day of month, days of [start, end) in that month)`` for each month.

    Raises:
        InvalidPeriodError: when ``end_exclusive`` is not after ``start``.
    """
    if end_exclusive <= start:
        raise InvalidPeriodError(start, end_exclusive)
    spans: list[tuple[str, date, int]] = []
    cursor = start
    while cursor < end_exclusive:
        month_end = last_day_of_month(cursor)
        stop = min(month_end + timedelta(days=1), end_exclusive)
        spans.append((month_key(cursor), month_end, (stop - cursor).days))
        cursor = stop
    return spans


def ratable_by_month(amount_minor: int, start: date, end_exclusive: date) -> list[MonthShare]:
    """Spread ``amount_minor`` ratably by day over [start, end_exclusive), one share per month.

    Each calendar month touched by the period gets ``amount * days in that month / days in the
    period`` with largest-remainder rounding (ties to the earlier month), dated the last day of the
    month. Every month of the period is listed, including months whose share rounds to zero.

    Raises:
        InvalidPeriodError: when ``end_exclusive`` is not after ``start``.
    """
    spans = month_spans(start, end_exclusive)
    amounts = allocate_largest_remainder(amount_minor, [days for _, _, days in spans])
    return [
        MonthShare(month, month_end, amount)
        for (month, month_end, _), amount in zip(spans, amounts, strict=True)
    ]
