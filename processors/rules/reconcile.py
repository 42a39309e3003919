"""Usage-to-billing reconciliation per (subscription, metric, billing period ``YYYY-MM``).

The metered quantity (usage events, period = month of the usage window's start, UTC) is compared
with the quantity billed on invoice usage lines (period = month of the line's ``period_start``).
Before anything is invoiced there is nothing to compare. Once invoiced, a difference beyond the
tolerance raises ``USAGE_BILLING_MISMATCH`` with the quantity difference (metered - billed:
positive = under-billing, revenue leakage; negative = over-billing, dispute risk) and its money
value (difference x billed unit price). Late usage re-opens the period: when the standing
difference changes, an updated exception with the next revision is raised; when it falls back
within tolerance, a last revision says it is resolved.

The state is a pure function of the *set* of usage events and invoice lines applied: usage counts
once per event id and invoice lines once per (invoice, line), so re-processing after a crash
converges, and any order of the same inputs ends with the same totals and the same standing
difference (only the number of revisions raised on the way depends on the order).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, date
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

from processors.errors import RuleInputError
from processors.rules.ids import derive_id
from processors.rules.money import month_key
from schemas.models import (
    BusinessException,
    EventEnvelope,
    InvoiceLine,
    InvoicePosted,
    LineKind,
    ReasonCode,
    UsageRecorded,
)

__all__ = [
    "BilledLine",
    "ReconKey",
    "ReconState",
    "apply_invoice_line",
    "apply_usage",
    "invoice_line_key",
    "usage_key",
    "usage_lines",
]

logger = logging.getLogger(__name__)


class ReconKey(NamedTuple):
    """What is reconciled: one metric of one subscription in one billing month."""

    subscription_id: str
    metric: str
    period: str
    """The billing month, ``YYYY-MM``."""


class BilledLine(BaseModel):
    """What one invoice usage line billed."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    invoice_id: str
    line_id: str
    issued_on: date
    quantity: int
    unit_price_minor: int
    currency: str


class ReconState(BaseModel):
    """Reconciliation state of one :class:`ReconKey`; JSON-serialisable for a Faust table."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subscription_id: str
    metric: str
    period: str
    usage: Mapping[str, int] = {}
    """Metered quantity per usage event id (each event counts once)."""
    billed: Mapping[str, BilledLine] = {}
    """Billed lines by ``invoice_id/line_id`` (each line counts once)."""
    reported_difference: int | None = None
    """The difference (metered - billed) standing as an open exception; ``None`` when none is open."""
    revision: int = 0
    """How many exception revisions this key has raised so far."""

    @classmethod
    def empty(cls, key: ReconKey) -> ReconState:
        """Return the state of a key nothing has been applied to."""
        return cls(subscription_id=key.subscription_id, metric=key.metric, period=key.period)

    @property
    def key(self) -> ReconKey:
        """The key this state reconciles."""
        return ReconKey(self.subscription_id, self.metric, self.period)

    @property
    def metered_quantity(self) -> int:
        """Total quantity of the usage events counted."""
        return sum(self.usage.values())

    @property
    def billed_quantity(self) -> int:
        """Total quantity billed on the invoice lines counted."""
        return sum(line.quantity for line in self.billed.values())

    @property
    def invoiced(self) -> bool:
        """Whether any invoice line has billed this key."""
        return bool(self.billed)

    @property
    def difference(self) -> int:
        """Metered minus billed quantity (positive: under-billed; negative: over-billed)."""
        return self.metered_quantity - self.billed_quantity

    @property
    def latest_line(self) -> BilledLine | None:
        """The billed line whose price values the difference: the latest invoice, by content."""
        if not self.billed:
            return None
        return max(self.billed.values(), key=lambda line: (line.issued_on, line.invoice_id, line.line_id))


def usage_key(usage: UsageRecorded) -> ReconKey:
    """Return the key a usage event counts under (billing month of its window start, in UTC)."""
    return ReconKey(usage.subscription_id, usage.metric, month_key(usage.window_start.astimezone(UTC).date()))


def invoice_line_key(invoice: InvoicePosted, line: InvoiceLine) -> ReconKey:
    """Return the key an invoice usage line bills.

    Raises:
        RuleInputError: when the line is not a usage line with a metric.
    """
    if line.kind is not LineKind.USAGE or line.metric is None:
        raise RuleInputError(
            f"invoice {invoice.invoice_id} line {line.line_id} is not a usage line with a metric;"
            " only those are reconciled against usage"
        )
    return ReconKey(invoice.subscription_id, line.metric, month_key(line.period_start))


def usage_lines(invoice: InvoicePosted) -> list[tuple[ReconKey, InvoiceLine]]:
    """Return the invoice's reconcilable lines (usage lines with a metric) with their keys."""
    return [
        (invoice_line_key(invoice, line), line)
        for line in invoice.lines
        if line.kind is LineKind.USAGE and line.metric is not None
    ]


def _start(state: ReconState | None, key: ReconKey) -> ReconState:
    if state is None:
        return ReconState.empty(key)
    if state.key != key:
        raise RuleInputError(f"state of {state.key} cannot take input for {key}; look the state up by key")
    return state


def _check_tolerance(tolerance: int) -> None:
    if tolerance < 0:
        raise RuleInputError(f"quantity tolerance must be zero or more, got {tolerance}")


def apply_usage(
    state: ReconState | None, usage: UsageRecorded, tolerance: int = 0
) -> tuple[ReconState, list[BusinessException]]:
    """Count a usage event (once per event id) and report any change in the standing difference.

    Raises:
        RuleInputError: when ``state`` belongs to another key or ``tolerance`` is negative.
    """
    _check_tolerance(tolerance)
    current = _start(state, usage_key(usage))
    if usage.event_id in current.usage:
        return current, []
    updated = current.model_copy(update={"usage": {**current.usage, usage.event_id: usage.quantity}})
    return _report(updated, usage, tolerance)


def apply_invoice_line(
    state: ReconState | None, line: InvoiceLine, invoice: InvoicePosted, tolerance: int = 0
) -> tuple[ReconState, list[BusinessException]]:
    """Count an invoice usage line (once per invoice and line id) and report any change.

    A line re-posted under the same invoice and line id with other values replaces the earlier one
    (dedupe sends a changed payload under the same event id to the dead letters before this).

    Raises:
        RuleInputError: when the line is not a usage line with a metric, ``state`` belongs to
            another key, or ``tolerance`` is negative.
    """
    _check_tolerance(tolerance)
    current = _start(state, invoice_line_key(invoice, line))
    billed = BilledLine(
        invoice_id=invoice.invoice_id,
        line_id=line.line_id,
        issued_on=invoice.issued_on,
        quantity=line.quantity,
        unit_price_minor=line.unit_price_minor,
        currency=invoice.currency,
    )
    billed_key = f"{invoice.invoice_id}/{line.line_id}"
    if current.billed.get(billed_key) == billed:
        return current, []
    updated = current.model_copy(update={"billed": {**current.billed, billed_key: billed}})
    return _report(updated, invoice, tolerance)


def _report(
    state: ReconState, trigger: EventEnvelope, tolerance: int
) -> tuple[ReconState, list[BusinessException]]:
    line = state.latest_line
    if line is None:
        return state, []
    difference = state.difference
    standing = difference if abs(difference) > tolerance else None
    if standing == state.reported_difference:
        return state, []
    revision = state.revision + 1
    amount = difference * line.unit_price_minor
    if standing is None:
        detail = (
            f"resolved (revision {revision}): metered {state.metered_quantity}, billed"
            f" {state.billed_quantity} for {state.metric} in {state.period}, within tolerance {tolerance};"
            " close the open mismatch"
        )
    else:
        kind = "under-billed (revenue leakage)" if difference > 0 else "over-billed (dispute risk)"
        detail = (
            f"{kind} (revision {revision}): metered {state.metered_quantity}, billed"
            f" {state.billed_quantity} for {state.metric} in {state.period}; issue a corrective invoice"
            " or correct the meter"
        )
    exception = BusinessException(
        exception_id=derive_id(
            "exception",
            trigger.event_id,
            ReasonCode.USAGE_BILLING_MISMATCH.value,
            state.subscription_id,
            state.metric,
            state.period,
            revision,
        ),
        reason_code=ReasonCode.USAGE_BILLING_MISMATCH,
        source_event_id=trigger.event_id,
        event_type=trigger.event_type,
        customer_id=trigger.customer_id,
        legal_entity=trigger.legal_entity,
        correlation_id=trigger.correlation_id,
        detected_at=trigger.occurred_at,
        detail=detail,
        quantity_difference=difference,
        amount_difference_minor=amount,
        currency=line.currency,
        subscription_id=state.subscription_id,
        metric=state.metric,
        period=state.period,
    )
    updated = state.model_copy(update={"reported_difference": standing, "revision": revision})
    return updated, [exception]
