"""The accounting rules of DOMAIN.md: journal entries, revenue schedules and prospective re-spreads.

Functions here build payloads (:class:`JournalEntry`, :class:`RevenueSchedule`) from amounts and
ids they are given; :mod:`processors.rules.commands` decides the ids and wraps them in commands.
Every journal entry leaves through :func:`journal_entry`, which drops zero lines and refuses an
entry that does not balance.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from datetime import date
from typing import Final

from pydantic import BaseModel, ConfigDict

from processors.errors import RuleInputError, UnbalancedEntryError, UnpostableLineError
from processors.rules.money import ratable_by_month
from schemas.models import (
    InvoiceLine,
    InvoicePosted,
    JournalEntry,
    JournalLine,
    LineKind,
    RevenueSchedule,
    ScheduleEntry,
)

__all__ = [
    "ACCOUNTS_RECEIVABLE",
    "CASH",
    "CUSTOMER_CREDITS",
    "DEFERRED_REVENUE",
    "DEFERRED_SERVICES_REVENUE",
    "INVOICE_CREDIT_ACCOUNTS",
    "SERVICES_REVENUE",
    "SUBSCRIPTION_REVENUE",
    "TAX_PAYABLE",
    "USAGE_REVENUE",
    "TrackedSchedule",
    "credit",
    "debit",
    "ensure_balanced",
    "invoice_entry_lines",
    "journal_entry",
    "line_schedule",
    "recognition_lines",
    "respread",
    "schedule_differences",
]

logger = logging.getLogger(__name__)

CASH: Final = "1000"
ACCOUNTS_RECEIVABLE: Final = "1200"
TAX_PAYABLE: Final = "2200"
CUSTOMER_CREDITS: Final = "2300"
DEFERRED_REVENUE: Final = "2400"
DEFERRED_SERVICES_REVENUE: Final = "2410"
SUBSCRIPTION_REVENUE: Final = "4000"
SERVICES_REVENUE: Final = "4010"
USAGE_REVENUE: Final = "4100"

INVOICE_CREDIT_ACCOUNTS: Final[Mapping[LineKind, str]] = {
    # Subscriptions and services are earned later (deferred); usage is billed in arrears and so
    # already earned; tax is owed to the authorities.
    LineKind.SUBSCRIPTION: DEFERRED_REVENUE,
    LineKind.SERVICES: DEFERRED_SERVICES_REVENUE,
    LineKind.USAGE: USAGE_REVENUE,
    LineKind.TAX: TAX_PAYABLE,
}
"""The account an invoice line of each kind is credited to (DR 1200 takes the invoice total)."""


class TrackedSchedule(BaseModel):
    """A revenue schedule in force and the service period it spreads (kept for later re-spreads)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schedule: RevenueSchedule
    product_id: str | None
    period_start: date
    period_end: date
    """Exclusive."""


def debit(account: str, amount_minor: int, memo: str | None = None) -> JournalLine:
    """Return a line debiting ``amount_minor`` (a negative amount becomes a credit of its absolute value)."""
    if amount_minor >= 0:
        return JournalLine(account=account, debit_minor=amount_minor, credit_minor=0, memo=memo)
    return JournalLine(account=account, debit_minor=0, credit_minor=-amount_minor, memo=memo)


def credit(account: str, amount_minor: int, memo: str | None = None) -> JournalLine:
    """Return a line crediting ``amount_minor`` (a negative amount becomes a debit of its absolute value)."""
    return debit(account, -amount_minor, memo)


def ensure_balanced(entry: JournalEntry) -> JournalEntry:
    """Return ``entry`` when its debits equal its credits (one currency per entry).

    Raises:
        UnbalancedEntryError: when they differ, or a line is negative or on both sides.
    """
    debits = sum(line.debit_minor for line in entry.lines)
    credits = sum(line.credit_minor for line in entry.lines)
    malformed = any(
        line.debit_minor < 0 or line.credit_minor < 0 or (line.debit_minor and line.credit_minor)
        for line in entry.lines
    )
    if debits != credits or malformed:
        raise UnbalancedEntryError(entry.entry_id, entry.currency, debits, credits)
    return entry


def journal_entry(
    entry_id: str, posting_date: date, currency: str, description: str, lines: Iterable[JournalLine]
) -> JournalEntry | None:
    """Return the balanced entry of the non-zero ``lines``, or ``None`` when every line is zero.

    Raises:
        UnbalancedEntryError: when the lines do not balance.
    """
    kept = tuple(line for line in lines if line.debit_minor or line.credit_minor)
    entry = JournalEntry(
        entry_id=entry_id, posting_date=posting_date, currency=currency, description=description, lines=kept
    )
    ensure_balanced(entry)
    return entry if kept else None


def invoice_entry_lines(invoice: InvoicePosted) -> list[JournalLine]:
    """Return DR 1200 for the total and one credit per account for the lines (DOMAIN.md order).

    Raises:
        UnpostableLineError: when a line's kind has no account (``UNKNOWN``).
    """
    per_account: dict[str, int] = {account: 0 for account in INVOICE_CREDIT_ACCOUNTS.values()}
    for line in invoice.lines:
        account = INVOICE_CREDIT_ACCOUNTS.get(line.kind)
        if account is None:
            raise UnpostableLineError(
                f"invoice {invoice.invoice_id} line {line.line_id} has kind {line.kind.value}, which has"
                " no posting rule; re-post it with kind SUBSCRIPTION, USAGE, SERVICES or TAX"
            )
        per_account[account] += line.amount_minor
    return [
        debit(ACCOUNTS_RECEIVABLE, invoice.total_minor, memo=f"invoice {invoice.invoice_id}"),
        *(credit(account, amount) for account, amount in per_account.items()),
    ]


def _ratable_entries(amount_minor: int, start: date, end_exclusive: date) -> tuple[ScheduleEntry, ...]:
    return tuple(
        ScheduleEntry(
            month=share.month, recognition_date=share.recognition_date, amount_minor=share.amount_minor
        )
        for share in ratable_by_month(amount_minor, start, end_exclusive)
    )


def line_schedule(invoice: InvoicePosted, line: InvoiceLine, schedule_id: str) -> TrackedSchedule:
    """Return the daily-ratable schedule of a subscription line over its service period.

    Raises:
        InvalidPeriodError: when the line's period is empty or reversed.
    """
    entries = _ratable_entries(line.amount_minor, line.period_start, line.period_end)
    schedule = RevenueSchedule(
        schedule_id=schedule_id,
        subscription_id=invoice.subscription_id,
        invoice_id=invoice.invoice_id,
        line_id=line.line_id,
        currency=invoice.currency,
        total_minor=line.amount_minor,
        entries=entries,
    )
    return TrackedSchedule(
        schedule=schedule,
        product_id=line.product_id,
        period_start=line.period_start,
        period_end=line.period_end,
    )


def recognition_lines(amount_minor: int, memo: str | None = None) -> list[JournalLine]:
    """Return DR 2400 Deferred Revenue / CR 4000 Subscription Revenue for ``amount_minor``."""
    return [debit(DEFERRED_REVENUE, amount_minor, memo), credit(SUBSCRIPTION_REVENUE, amount_minor, memo)]


def respread(
    tracked: TrackedSchedule, effective_date: date, new_total_minor: int | None = None
) -> TrackedSchedule | None:
    """Re-spread the not-yet-recognised remainder of a schedule from ``effective_date``, prospectively.

    Months whose recognition date is before the effective date (clamped to the period start) are
    recognised and kept as they are; the remainder (the total, or ``new_total_minor`` when given,
    minus what is recognised) is spread by the daily rule over [effective date, period end).
    Returns ``None`` when nothing changes: the effective date is at or past the period end, or the
    re-spread gives the same months.

    Raises:
        RuleInputError: when ``new_total_minor`` is less than what is already recognised.
    """
    start = max(effective_date, tracked.period_start)
    if start >= tracked.period_end:
        return None
    schedule = tracked.schedule
    kept = [entry for entry in schedule.entries if entry.recognition_date < start]
    recognised = sum(entry.amount_minor for entry in kept)
    total = schedule.total_minor if new_total_minor is None else new_total_minor
    remainder = total - recognised
    if remainder < 0:
        raise RuleInputError(
            f"schedule {schedule.schedule_id}: new total {total} is below the {recognised} already"
            f" recognised before {start}; post the reduction as a credit note instead"
        )
    entries = (*kept, *_ratable_entries(remainder, start, tracked.period_end))
    if entries == schedule.entries and total == schedule.total_minor:
        return None
    updated = schedule.model_copy(update={"entries": entries, "total_minor": total})
    return tracked.model_copy(update={"schedule": updated})


def schedule_differences(old: RevenueSchedule, new: RevenueSchedule) -> list[tuple[str, date, int]]:
    """Return ``(month, recognition date, new - old amount)`` for each month whose amount changed."""
    before = {entry.month: entry for entry in old.entries}
    after = {entry.month: entry for entry in new.entries}
    changed: list[tuple[str, date, int]] = []
    for month in sorted(before.keys() | after.keys()):
        old_amount = before[month].amount_minor if month in before else 0
        new_amount = after[month].amount_minor if month in after else 0
        if new_amount != old_amount:
            recognition_date = (after[month] if month in after else before[month]).recognition_date
            changed.append((month, recognition_date, new_amount - old_amount))
    return changed
