"""Process-intelligence KPIs: what finance asks the dashboard (DOMAIN.md), as pure functions.

Inputs are what the pipeline produced (ERP commands, business exceptions, dead-letter counts) plus
the timestamps of orders, activations and first invoices; nothing here reads a topic or a clock.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from schemas.models import BusinessException, ErpCommand, Invoice, Subscription
from schemas.models.enums import LineKind, ReasonCode

__all__ = ["CycleEvents", "Kpis", "OrderFacts", "compute_kpis", "standing_mismatches"]

DAY_S = 86_400.0


@dataclass(frozen=True)
class OrderFacts:
    """When an order was accepted, and what links it to the rest of its chain."""

    ordered_at: datetime
    subscription_id: str
    correlation_id: str


@dataclass
class CycleEvents:
    """Order, activation and first-invoice times, keyed for the cycle-time joins."""

    orders: dict[str, OrderFacts] = field(default_factory=dict)  # order_id →
    activations: dict[str, datetime] = field(default_factory=dict)  # order_id → first activation
    first_invoices: dict[str, datetime] = field(default_factory=dict)  # subscription_id → first invoice


@dataclass(frozen=True)
class Kpis:
    """The KPIs of one run; cycle times in days (median, p90), rates in [0, 1]."""

    order_to_activation_days: tuple[float, float] | None
    order_to_invoice_days: tuple[float, float] | None
    touchless_rate: float | None
    exception_rate_by_reason: dict[str, float]
    dead_letters: int
    duplicate_rate: float | None
    usage_leakage_minor: dict[str, int]  # currency → under-billed amount
    open_exceptions: int
    invoice_accuracy: float | None


def _days(pairs: list[tuple[datetime, datetime]]) -> tuple[float, float] | None:
    spans = sorted((end - start).total_seconds() / DAY_S for start, end in pairs if end >= start)
    if not spans:
        return None
    p90 = spans[min(len(spans) - 1, int(0.9 * len(spans)))]
    return round(statistics.median(spans), 2), round(p90, 2)


def _latest_mismatches(exceptions: list[BusinessException]) -> dict[tuple[str, str, str], BusinessException]:
    # Late usage re-opens a period and raises the next revision. Revisions of one key share its
    # customer's partition, so in topic order (the order given) the last one is the standing one;
    # the trigger's event time is no guide, late usage being older by nature.
    latest: dict[tuple[str, str, str], BusinessException] = {}
    for exception in exceptions:
        if exception.reason_code is ReasonCode.USAGE_BILLING_MISMATCH:
            latest[(exception.subscription_id or "", exception.metric or "", exception.period or "")] = (
                exception
            )
    return latest


def _resolved(exception: BusinessException) -> bool:
    return not exception.quantity_difference or exception.detail.lower().startswith("resolved")


def standing_mismatches(exceptions: list[BusinessException]) -> dict[tuple[str, str, str], BusinessException]:
    """Return the last revision of each open usage-to-billing mismatch by (subscription, metric, period).

    ``exceptions`` must be in topic order (as read from the exceptions topic).
    """
    return {key: e for key, e in _latest_mismatches(exceptions).items() if not _resolved(e)}


def compute_kpis(
    cycle: CycleEvents,
    commands: list[ErpCommand],
    exceptions: list[BusinessException],
    dead_letters: int,
    events_consumed: int,
    duplicates_dropped: int,
) -> Kpis:
    """Compute the KPIs of DOMAIN.md from one run's outputs."""
    approved = {e.exception_key for e in exceptions if e.resolution == "approved"}
    exceptions = [e for e in exceptions if e.raises]
    activation_pairs = [
        (order.ordered_at, cycle.activations[order_id])
        for order_id, order in cycle.orders.items()
        if order_id in cycle.activations
    ]
    invoice_pairs = [
        (order.ordered_at, cycle.first_invoices[order.subscription_id])
        for order in cycle.orders.values()
        if order.subscription_id in cycle.first_invoices
    ]
    posted_subscriptions = {
        c.payload.subscription_id for c in commands if isinstance(c.payload, Subscription)
    }
    standing = standing_mismatches(exceptions)
    # A mismatch touches an order only if it still stands: revisions that a later one resolved
    # (late usage arriving, a corrective invoice) needed nobody's hands.
    touching = [e for e in exceptions if e.reason_code is not ReasonCode.USAGE_BILLING_MISMATCH] + list(
        standing.values()
    )
    touched = {e.correlation_id for e in touching} | {
        e.subscription_id for e in touching if e.subscription_id
    }
    touchless = [
        order
        for order in cycle.orders.values()
        if order.subscription_id in posted_subscriptions
        and order.correlation_id not in touched
        and order.subscription_id not in touched
    ]
    by_reason = Counter(e.reason_code.value for e in exceptions)
    leakage: dict[str, int] = defaultdict(int)
    for mismatch in standing.values():
        if (mismatch.amount_difference_minor or 0) > 0 and mismatch.currency:
            leakage[mismatch.currency] += mismatch.amount_difference_minor or 0
    open_exceptions = sum(
        1
        for e in exceptions
        if e.reason_code is not ReasonCode.USAGE_BILLING_MISMATCH and e.exception_id not in approved
    )
    open_exceptions += len(standing)
    invoices = [c.payload for c in commands if isinstance(c.payload, Invoice)]
    inaccurate = sum(
        1
        for invoice in invoices
        if any(
            (invoice.subscription_id, line.metric or "", f"{line.period_start:%Y-%m}") in standing
            for line in invoice.lines
            if line.kind is LineKind.USAGE
        )
    )
    return Kpis(
        order_to_activation_days=_days(activation_pairs),
        order_to_invoice_days=_days(invoice_pairs),
        touchless_rate=round(len(touchless) / len(cycle.orders), 4) if cycle.orders else None,
        exception_rate_by_reason={
            reason: round(count / events_consumed, 4) for reason, count in sorted(by_reason.items())
        }
        if events_consumed
        else {},
        dead_letters=dead_letters,
        duplicate_rate=round(duplicates_dropped / events_consumed, 4) if events_consumed else None,
        usage_leakage_minor=dict(sorted(leakage.items())),
        open_exceptions=open_exceptions,
        invoice_accuracy=round(1 - inaccurate / len(invoices), 4) if invoices else None,
    )
