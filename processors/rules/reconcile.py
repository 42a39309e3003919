"""Usage-to-billing reconciliation per (subscription, metric, billing period ``YYYY-MM``).

The metered quantity (usage events, period = month of the usage window's start, UTC) is compared
with the quantity billed on invoice usage lines (period = month of the line's ``period_start``).
Before anything is invoiced there is nothing to compare. Once invoiced, a difference beyond the
tolerance raises ``USAGE_BILLING_MISMATCH`` with the quantity difference (metered - billed:
positive = under-billing, revenue leakage; negative = over-billing, dispute risk) and its money
value (difference x billed unit price). Late usage re-opens the period: when the standing
difference changes, an updated exception with the next revision is raised; when it falls back
within tolerance, a last revision says it is resolved.

Counting and reporting are separate steps: :func:`apply_usage` and :func:`apply_invoice_line`
only count, :func:`report` compares the standing difference with the one last reported and
returns at most one exception. The worker counts every record of a batch, then reports each key
it touched once, so revisions a batch would have raised and superseded at once are never raised.
A key whose difference left the reported one during the batch (:func:`departs`) and came back
reports anyway (a restatement): after a crash between delivering a batch's exceptions and writing
its state, the re-processed batch may be cut differently, and the restatement is what replaces
the revision delivered then and lost from the state.

Idempotency is bounded: instead of every usage event id, the state keeps the metered total and,
per source partition the usage was first read from, the highest offset counted (Kafka hands a
partition over in offset order, and after a crash redelivers it in offset order from the last
commit, so an offset at or below the mark was already seen: counted, or parked) plus the offsets
of records parked for missing master data and not counted yet. A parked record comes back
through the retry topic in due-time order, not offset order, and may have been parked twice by a
crash; it carries where it was first read, and counts only while that offset is still registered
as parked. So the state
grows with the records in flight on the retry topic, not with the usage of the period. Invoice
lines count once per (invoice, line), bounded by the invoices of a period.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, date
from typing import NamedTuple

from pydantic import BaseModel, ConfigDict

from processors.errors import RuleInputError
from processors.rules.ids import derive_id
from processors.rules.money import fits_bigint, month_key
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
    "SourceMark",
    "SourcePosition",
    "apply_invoice_line",
    "apply_usage",
    "departs",
    "forget_parked",
    "invoice_line_key",
    "note_parked",
    "report",
    "standing",
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


class SourcePosition(NamedTuple):
    """Where a usage record was first read: its canonical topic, partition and offset."""

    topic: str
    partition: int
    offset: int

    @property
    def source(self) -> str:
        """The source partition as a state key, ``topic/partition`` (topic names have no ``/``)."""
        return f"{self.topic}/{self.partition}"


class SourceMark(BaseModel):
    """What has been counted from one source partition (see the module docstring)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    offset: int = -1
    """The highest offset read there (not through the retry topic) and counted or parked; -1 when none."""
    parked: tuple[int, ...] = ()
    """Offsets read there, parked for missing master data, not counted yet (ascending)."""


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
    metered_quantity: int = 0
    """Total quantity of the usage events counted."""
    sources: Mapping[str, SourceMark] = {}
    """What was counted, per source partition (``topic/partition``) the usage was first read from."""
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

    def mark(self, position: SourcePosition) -> SourceMark:
        """Return what was counted from the partition of ``position``."""
        return self.sources.get(position.source) or SourceMark()

    def with_mark(self, position: SourcePosition, mark: SourceMark) -> ReconState:
        """Return a copy with ``mark`` for the partition of ``position``."""
        return self.model_copy(update={"sources": {**self.sources, position.source: mark}})


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


def _without(offsets: tuple[int, ...], offset: int) -> tuple[int, ...]:
    return tuple(o for o in offsets if o != offset)


def apply_usage(
    state: ReconState | None, usage: UsageRecorded, position: SourcePosition, *, retried: bool = False
) -> tuple[ReconState, bool]:
    """Count a usage event unless it was counted already; return the state and whether it counted.

    ``position`` is where the record was first read (a retried record carries it in its retry
    headers); ``retried`` says whether it comes back through the retry topic. A record read
    directly counts when its offset is above the partition's mark or still registered as parked
    (redelivered after a crash that followed its parking); a retried one counts only while its
    offset is registered as parked (another copy, or its redelivery, may have counted it).

    Raises:
        RuleInputError: when ``state`` belongs to another key.
    """
    current = _start(state, usage_key(usage))
    mark = current.mark(position)
    if position.offset in mark.parked:
        updated = SourceMark(offset=mark.offset, parked=_without(mark.parked, position.offset))
        if not retried:
            updated = updated.model_copy(update={"offset": max(mark.offset, position.offset)})
    elif not retried and position.offset > mark.offset:
        updated = mark.model_copy(update={"offset": position.offset})
    else:
        return current, False
    counted = current.with_mark(position, updated).model_copy(
        update={"metered_quantity": current.metered_quantity + usage.quantity}
    )
    return counted, True


def note_parked(state: ReconState | None, key: ReconKey, position: SourcePosition) -> ReconState | None:
    """Register a usage record read at ``position`` and parked (first time): its copy may count later.

    Returns ``None`` when nothing changes: a record at or below the mark was processed before (a
    redelivery), and its earlier processing decided whether it counts.

    Raises:
        RuleInputError: when ``state`` belongs to another key.
    """
    current = _start(state, key)
    mark = current.mark(position)
    if position.offset <= mark.offset or position.offset in mark.parked:
        return None
    parked = tuple(sorted((*mark.parked, position.offset)))
    # The mark moves past a parked record too: once its retried copy has counted (and left
    # ``parked``), a redelivery of the original must not count it again, even when no later usage
    # of this key on the partition has moved the mark (measured: a whole month counted twice after
    # a worker took over partitions whose usage had all been parked once).
    return current.with_mark(position, SourceMark(offset=max(mark.offset, position.offset), parked=parked))


def forget_parked(state: ReconState | None, position: SourcePosition) -> ReconState | None:
    """Unregister a parked usage record that was dead-lettered; ``None`` when it was not registered.

    A replay from the dead-letter topic is read at a new offset and counts then.
    """
    if state is None:
        return None
    mark = state.mark(position)
    if position.offset not in mark.parked:
        return None
    return state.with_mark(
        position, mark.model_copy(update={"parked": _without(mark.parked, position.offset)})
    )


def apply_invoice_line(
    state: ReconState | None, line: InvoiceLine, invoice: InvoicePosted
) -> tuple[ReconState, bool]:
    """Count an invoice usage line (once per invoice and line id); return the state and whether it changed.

    A line re-posted under the same invoice and line id with other values replaces the earlier one
    (dedupe sends a changed payload under the same event id to the dead letters before this).

    Raises:
        RuleInputError: when the line is not a usage line with a metric or ``state`` belongs to
            another key.
    """
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
        return current, False
    return current.model_copy(update={"billed": {**current.billed, billed_key: billed}}), True


def standing(state: ReconState, tolerance: int) -> int | None:
    """Return the difference beyond ``tolerance`` once invoiced, else ``None`` (nothing stands).

    Raises:
        RuleInputError: when ``tolerance`` is negative.
    """
    if tolerance < 0:
        raise RuleInputError(f"quantity tolerance must be zero or more, got {tolerance}")
    if state.latest_line is None:
        return None
    difference = state.difference
    return difference if abs(difference) > tolerance else None


def departs(state: ReconState, tolerance: int) -> bool:
    """Whether a report now would raise a revision (invoiced, standing other than reported).

    Raises:
        RuleInputError: when ``tolerance`` is negative.
    """
    return state.latest_line is not None and standing(state, tolerance) != state.reported_difference


def report(
    state: ReconState, trigger: EventEnvelope, tolerance: int = 0, *, restate: bool = False
) -> tuple[ReconState, BusinessException | None]:
    """Report the standing difference if it differs from the one last reported, or ``restate`` it.

    ``trigger`` is the last event that changed the state (its ids make the exception's id, with
    the revision and the counts it reports); ``restate`` raises a revision even when the
    difference equals the one last reported (the batch's counts left it and came back: see the
    module docstring). Returns the state with the new revision and the exception, or the state
    unchanged and ``None``.

    Raises:
        RuleInputError: when ``tolerance`` is negative.
    """
    line = state.latest_line
    standing_now = standing(state, tolerance)
    if line is None or (standing_now == state.reported_difference and not restate):
        return state, None
    difference = state.difference
    revision = state.revision + 1
    amount = difference * line.unit_price_minor
    # Policy bounds each usage quantity and price, not their sum over a period: a figure beyond a
    # long is left out (and said so) rather than failing the whole batch's report.
    representable = fits_bigint(amount) and fits_bigint(difference)
    beyond = "" if representable else " (the money difference is beyond the range of a long)"
    if standing_now is None:
        detail = (
            f"resolved (revision {revision}): metered {state.metered_quantity}, billed"
            f" {state.billed_quantity} for {state.metric} in {state.period}, within tolerance {tolerance};"
            " close the open mismatch"
        )
    else:
        kind = "under-billed (revenue leakage)" if difference > 0 else "over-billed (dispute risk)"
        detail = (
            f"{kind} (revision {revision}): metered {state.metered_quantity}, billed"
            f" {state.billed_quantity} for {state.metric} in {state.period}{beyond}; issue a corrective"
            " invoice or correct the meter"
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
            # What it says is part of its id: after a crash that lost the state of a revision it
            # had delivered, the next worker raises that revision number again, from the same
            # trigger, with the counts of another batch cut; under the same id every consumer
            # (the exception queue keeps one record per id) would drop it as a repeat.
            difference,
            state.billed_quantity,
            standing_now is None,
        ),
        reason_code=ReasonCode.USAGE_BILLING_MISMATCH,
        source_event_id=trigger.event_id,
        event_type=trigger.event_type,
        customer_id=trigger.customer_id,
        legal_entity=trigger.legal_entity,
        correlation_id=trigger.correlation_id,
        detected_at=trigger.occurred_at,
        detail=detail,
        quantity_difference=difference if fits_bigint(difference) else None,
        amount_difference_minor=amount if representable else None,
        currency=line.currency,
        subscription_id=state.subscription_id,
        metric=state.metric,
        period=state.period,
        # Every revision of the key names the same queue item; the highest revision stands.
        exception_key=derive_id(
            "exception-key",
            ReasonCode.USAGE_BILLING_MISMATCH.value,
            state.subscription_id,
            state.metric,
            state.period,
        ),
        revision=revision,
        resolution="resolved" if standing_now is None else None,
    )
    updated = state.model_copy(update={"reported_difference": standing_now, "revision": revision})
    return updated, exception
