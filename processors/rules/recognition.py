"""The accounting rules of DOMAIN.md: journal entries, revenue schedules and prospective re-spreads.

Functions here build payloads (:class:`JournalEntry`, :class:`RevenueSchedule`) from amounts and
ids they are given; :mod:`processors.rules.commands` decides the ids and wraps them in commands.
Every journal entry leaves through :func:`journal_entry`, which drops zero lines and refuses an
entry that does not balance.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from datetime import date, timedelta
from typing import Final, NamedTuple

from pydantic import BaseModel, ConfigDict

from processors.errors import RuleInputError, UnbalancedEntryError, UnpostableLineError
from processors.rules.money import last_day_of_month, month_key, ratable_by_month
from schemas.models import (
    InvoiceLine,
    InvoicePosted,
    JournalEntry,
    JournalLine,
    LineKind,
    Product,
    RevenueSchedule,
    ScheduleEntry,
)

__all__ = [
    "ACCOUNTS_RECEIVABLE",
    "CASH",
    "CUSTOMER_CREDITS",
    "DEFAULT_ACCOUNTS",
    "DEFERRED_REVENUE",
    "DEFERRED_SERVICES_REVENUE",
    "INVOICE_CREDIT_ACCOUNTS",
    "SERVICES_REVENUE",
    "SUBSCRIPTION_REVENUE",
    "TAX_PAYABLE",
    "USAGE_REVENUE",
    "AccountsOf",
    "LineAccounts",
    "TrackedSchedule",
    "credit",
    "debit",
    "default_accounts",
    "earned_before",
    "ensure_balanced",
    "invoice_credit_account",
    "invoice_entry_lines",
    "journal_entry",
    "line_schedule",
    "product_accounts",
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


class LineAccounts(NamedTuple):
    """The GL accounts a line posts to: where it is deferred and where it is recognised."""

    deferred: str
    revenue: str


DEFAULT_ACCOUNTS: Final[Mapping[LineKind, LineAccounts]] = {
    # The chart's defaults (DOMAIN.md), for lines that name no product; a product's own accounts win.
    LineKind.SUBSCRIPTION: LineAccounts(DEFERRED_REVENUE, SUBSCRIPTION_REVENUE),
    LineKind.SERVICES: LineAccounts(DEFERRED_SERVICES_REVENUE, SERVICES_REVENUE),
    LineKind.USAGE: LineAccounts(USAGE_REVENUE, USAGE_REVENUE),
    LineKind.TAX: LineAccounts(TAX_PAYABLE, TAX_PAYABLE),
}

AccountsOf = Callable[[str | None, LineKind], LineAccounts]
"""``(product id, line kind) → the accounts`` (the product's from the price book, else the defaults)."""


def default_accounts(product_id: str | None, kind: LineKind) -> LineAccounts:
    """Return the chart's default accounts of a line ``kind`` (an :data:`AccountsOf`).

    Raises:
        UnpostableLineError: when the kind has no posting rule (``UNKNOWN``).
    """
    accounts = DEFAULT_ACCOUNTS.get(kind)
    if accounts is None:
        raise UnpostableLineError(
            f"a line of product {product_id} has kind {kind.value}, which has no posting rule; re-post it"
            " with kind SUBSCRIPTION, USAGE, SERVICES or TAX"
        )
    return accounts


def product_accounts(product: Callable[[str], Product | None]) -> AccountsOf:
    """Return the :data:`AccountsOf` that reads a line's accounts from its product in the price book.

    A line without a product (tax) or whose product is unknown takes the chart's defaults.
    """

    def accounts_of(product_id: str | None, kind: LineKind) -> LineAccounts:
        found = product(product_id) if product_id is not None else None
        if found is None:
            return default_accounts(product_id, kind)
        return LineAccounts(found.deferred_account, found.revenue_account)

    return accounts_of


class TrackedSchedule(BaseModel):
    """A revenue schedule in force and the service period it spreads (kept for later re-spreads).

    ``base_entries`` is the plan the invoice gave (``None``: the schedule's entries, never
    re-spread) and ``applied`` the ids of the re-spreads folded into it, so that re-spreads that
    arrive in another order than they happened are folded again in event-time order.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schedule: RevenueSchedule
    product_id: str | None
    period_start: date
    period_end: date
    """Exclusive."""
    deferred_account: str = DEFERRED_REVENUE
    revenue_account: str = SUBSCRIPTION_REVENUE
    invoiced_at_ms: int = 0
    """Event time of the invoice: a re-spread applies to schedules invoiced at or before it."""
    base_entries: tuple[ScheduleEntry, ...] | None = None
    applied: tuple[str, ...] = ()

    @property
    def accounts(self) -> LineAccounts:
        """The accounts its recognition posts to (fixed when it was invoiced)."""
        return LineAccounts(self.deferred_account, self.revenue_account)


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


def invoice_credit_account(line: InvoiceLine, accounts_of: AccountsOf) -> str:
    """Return the account an invoice line is credited to: its deferral, or revenue for usage, 2200 tax.

    Raises:
        UnpostableLineError: when the line's kind has no posting rule (``UNKNOWN``).
    """
    if line.kind is LineKind.TAX:
        return TAX_PAYABLE
    if line.kind not in INVOICE_CREDIT_ACCOUNTS:
        default_accounts(line.product_id, line.kind)
    accounts = accounts_of(line.product_id, line.kind)
    # Usage is billed in arrears, so already earned: straight to the product's revenue account.
    return accounts.revenue if line.kind is LineKind.USAGE else accounts.deferred


def invoice_entry_lines(
    invoice: InvoicePosted, accounts_of: AccountsOf = default_accounts
) -> list[JournalLine]:
    """Return DR 1200 for the total and one credit per account for the lines (DOMAIN.md order).

    Each line is credited to its product's account (``accounts_of``); the chart's defaults come
    first in the entry, in DOMAIN.md's order, then any other account in order of appearance.

    Raises:
        UnpostableLineError: when a line's kind has no account (``UNKNOWN``).
    """
    per_account: dict[str, int] = {account: 0 for account in INVOICE_CREDIT_ACCOUNTS.values()}
    for line in invoice.lines:
        try:
            account = invoice_credit_account(line, accounts_of)
        except UnpostableLineError as exc:
            raise UnpostableLineError(f"invoice {invoice.invoice_id} line {line.line_id}: {exc}") from exc
        per_account[account] = per_account.get(account, 0) + line.amount_minor
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


def line_schedule(
    invoice: InvoicePosted, line: InvoiceLine, schedule_id: str, accounts: LineAccounts | None = None
) -> TrackedSchedule:
    """Return the daily-ratable schedule of a subscription line over its service period.

    ``accounts`` are the line's product's (default: the chart's 2400 / 4000).

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
        deferred_account=(accounts or DEFAULT_ACCOUNTS[LineKind.SUBSCRIPTION]).deferred,
        revenue_account=(accounts or DEFAULT_ACCOUNTS[LineKind.SUBSCRIPTION]).revenue,
        invoiced_at_ms=int(invoice.occurred_at.timestamp() * 1000),
    )


def recognition_lines(
    amount_minor: int, memo: str | None = None, accounts: LineAccounts | None = None
) -> list[JournalLine]:
    """Return DR deferred / CR revenue for ``amount_minor`` (default 2400 Deferred / 4000 Subscription)."""
    deferred, revenue = accounts or DEFAULT_ACCOUNTS[LineKind.SUBSCRIPTION]
    return [debit(deferred, amount_minor, memo), credit(revenue, amount_minor, memo)]


def earned_before(tracked: TrackedSchedule, effective_date: date) -> tuple[list[ScheduleEntry], int]:
    """Return what the plan in force has earned before ``effective_date`` (DOMAIN.md, exact).

    That is the plan's months that end before the effective date's month, kept as they are, plus
    the effective month's old amount x (days of the period in that month before the date) / (days
    of the period in that month), rounded down. The date is clamped to the period start.
    """
    start = max(effective_date, tracked.period_start)
    schedule = tracked.schedule
    month = month_key(start)
    kept = [entry for entry in schedule.entries if entry.month < month]
    current = next((entry for entry in schedule.entries if entry.month == month), None)
    if current is None:
        return kept, 0
    month_start = max(start.replace(day=1), tracked.period_start)
    month_stop = min(last_day_of_month(start) + timedelta(days=1), tracked.period_end)
    days_in_month = (month_stop - month_start).days
    days_before = (start - month_start).days
    # Floor division on a possibly negative amount would round away from zero: round the magnitude.
    magnitude = abs(current.amount_minor) * days_before // days_in_month
    return kept, magnitude if current.amount_minor >= 0 else -magnitude


def respread(
    tracked: TrackedSchedule, effective_date: date, new_total_minor: int | None = None
) -> TrackedSchedule | None:
    """Re-spread what a schedule has not earned yet from ``effective_date``, prospectively (DOMAIN.md).

    What was earned before the effective date (:func:`earned_before`: whole months before its
    month, plus the part of its month before the date, rounded down) stays earned; the remainder
    (the total, or ``new_total_minor`` when given, minus what was earned) is spread by the daily
    rule with largest remainder over [effective date, period end), and the effective month gets
    its earned part plus its share. Returns ``None`` when nothing changes: the effective date is
    at or past the period end, or the re-spread gives the same months.

    Raises:
        RuleInputError: when ``new_total_minor`` is less than what is already earned.
    """
    start = max(effective_date, tracked.period_start)
    if start >= tracked.period_end:
        return None
    schedule = tracked.schedule
    kept, earned_in_month = earned_before(tracked, start)
    recognised = sum(entry.amount_minor for entry in kept) + earned_in_month
    total = schedule.total_minor if new_total_minor is None else new_total_minor
    remainder = total - recognised
    if remainder < 0:
        raise RuleInputError(
            f"schedule {schedule.schedule_id}: new total {total} is below the {recognised} already"
            f" earned before {start}; post the reduction as a credit note instead"
        )
    spread = list(_ratable_entries(remainder, start, tracked.period_end))
    first = spread[0]
    spread[0] = first.model_copy(update={"amount_minor": first.amount_minor + earned_in_month})
    entries = (*kept, *spread)
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
