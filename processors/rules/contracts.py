"""ERP commands of the contract lifecycle: subscriptions, amendments and schedule re-spreads.

Same id and time rules as :mod:`processors.rules.commands`. A subscription's ``version`` is the
event time in epoch milliseconds (the ledger keeps the highest). A re-spread is prospective
(DOMAIN.md): what was earned before the effective date stays, the rest of each affected schedule
is spread again by the daily rule from that date; the new version keeps the schedule's id and is
followed by one adjusting entry (DR deferred / CR revenue of the schedule's accounts, or the
reverse) per month whose amount changed. Re-spreads are kept per subscription and folded into a
schedule's invoiced plan in event-time order (:func:`fold_respreads`), whatever order they and
the invoice arrived in.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from datetime import date

from pydantic import BaseModel, ConfigDict

from processors.errors import InvalidPeriodError
from processors.rules.commands import CommandBuilder
from processors.rules.ids import epoch_millis
from processors.rules.recognition import TrackedSchedule, recognition_lines, respread, schedule_differences
from schemas.models import (
    ContractAmended,
    ContractRenewed,
    ErpCommand,
    EventEnvelope,
    OrderAccepted,
    RevenueScheduleAdjusted,
    Subscription,
    SubscriptionStatus,
)

__all__ = [
    "Respread",
    "add_respreads",
    "contract_renewed_commands",
    "fold_respreads",
    "order_accepted_commands",
    "respread_commands",
    "respread_of",
    "respread_reason",
]

logger = logging.getLogger(__name__)


def _subscription(
    event: EventEnvelope,
    subscription_id: str,
    order_id: str | None,
    status: SubscriptionStatus,
    currency: str,
    term: tuple[date, date],
) -> list[ErpCommand]:
    if term[1] <= term[0]:
        raise InvalidPeriodError(term[0], term[1])
    out = CommandBuilder(event)
    out.add(
        Subscription(
            subscription_id=subscription_id,
            order_id=order_id,
            status=status,
            currency=currency,
            term_start=term[0],
            term_end=term[1],
            version=epoch_millis(event.occurred_at),
        )
    )
    return out.commands


def order_accepted_commands(event: OrderAccepted) -> list[ErpCommand]:
    """Create the subscription (ACTIVE) for the order's term; its version is the event time in ms.

    Raises:
        InvalidPeriodError: when the term is empty or reversed.
    """
    return _subscription(
        event,
        event.subscription_id,
        event.order_id,
        SubscriptionStatus.ACTIVE,
        event.currency,
        (event.term_start, event.term_end),
    )


def contract_renewed_commands(event: ContractRenewed) -> list[ErpCommand]:
    """Move the subscription to its new term (RENEWED); its version is the event time in ms.

    Raises:
        InvalidPeriodError: when the new term is empty or reversed.
    """
    return _subscription(
        event,
        event.subscription_id,
        None,
        SubscriptionStatus.RENEWED,
        event.currency,
        (event.new_term_start, event.new_term_end),
    )


class Respread(BaseModel):
    """A prospective re-spread a subscription has received (an amendment or a schedule adjustment).

    Kept in the subscription's state, so that it also applies to a schedule whose invoice arrives
    after it (DOMAIN.md: arrival order across topics is not guaranteed) and so that re-spreads are
    folded in event-time order whatever order they arrived in.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    occurred_ms: int
    effective_date: date
    line_ids: tuple[str, ...] | None = None
    """Amended line ids (``None``: every schedule of the subscription)."""
    product_ids: tuple[str, ...] | None = None

    def applies_to(self, tracked: TrackedSchedule) -> bool:
        """Whether it changes ``tracked``: the schedule was invoiced at or before it and it names it."""
        if tracked.invoiced_at_ms > self.occurred_ms:
            return False
        if self.line_ids is None:
            return True
        return tracked.schedule.line_id in self.line_ids or tracked.product_id in (self.product_ids or ())


def respread_of(event: ContractAmended | RevenueScheduleAdjusted) -> Respread:
    """Return the re-spread an amendment (its lines) or an adjustment (every schedule) asks for."""
    occurred_ms = epoch_millis(event.occurred_at)
    if isinstance(event, ContractAmended):
        return Respread(
            event_id=event.event_id,
            occurred_ms=occurred_ms,
            effective_date=event.effective_date,
            line_ids=tuple(line.line_id for line in event.lines),
            product_ids=tuple(line.product_id for line in event.lines),
        )
    return Respread(event_id=event.event_id, occurred_ms=occurred_ms, effective_date=event.effective_date)


def fold_respreads(tracked: TrackedSchedule, respreads: Iterable[Respread]) -> TrackedSchedule:
    """Return ``tracked`` with every re-spread that applies to it folded into its invoiced plan.

    The re-spreads are applied to the plan the invoice gave, in event-time order (then by event
    id), so the result does not depend on the order they arrived in.

    Raises:
        RuleInputError: from :func:`processors.rules.recognition.respread`.
    """
    base = tracked.base_entries if tracked.base_entries is not None else tracked.schedule.entries
    applicable = sorted(
        (item for item in respreads if item.applies_to(tracked)), key=lambda r: (r.occurred_ms, r.event_id)
    )
    if tuple(item.event_id for item in applicable) == tracked.applied:
        return tracked
    current = tracked.model_copy(
        update={"schedule": tracked.schedule.model_copy(update={"entries": base}), "base_entries": base}
    )
    for item in applicable:
        current = respread(current, item.effective_date) or current
    return current.model_copy(update={"applied": tuple(item.event_id for item in applicable)})


def add_respreads(
    out: CommandBuilder, schedules: Sequence[TrackedSchedule], respreads: Sequence[Respread], why: str
) -> list[TrackedSchedule]:
    """Fold ``respreads`` into ``schedules``; add each changed plan and its adjusting entries to ``out``.

    Returns the schedules whose state changed (their plan, or only the re-spreads they record).

    Raises:
        RuleInputError: from the re-spread rule.
    """
    updated: list[TrackedSchedule] = []
    for tracked in schedules:
        new = fold_respreads(tracked, respreads)
        if new == tracked:
            continue
        updated.append(new)
        if new.schedule.entries == tracked.schedule.entries:
            continue
        out.add(new.schedule)
        for month, recognition_date, difference in schedule_differences(tracked.schedule, new.schedule):
            out.add_entry(
                recognition_date,
                new.schedule.currency,
                f"re-spread {month} ({why}): invoice {new.schedule.invoice_id} line {new.schedule.line_id}",
                recognition_lines(difference, memo=new.schedule.line_id, accounts=new.accounts),
            )
    return updated


def respread_commands(
    event: ContractAmended | RevenueScheduleAdjusted,
    schedules: Sequence[TrackedSchedule],
    respreads: Sequence[Respread],
) -> tuple[list[ErpCommand], list[TrackedSchedule]]:
    """Re-spread, from the effective date, the subscription's schedules the event changes.

    ``schedules`` are the subscription's schedules in force and ``respreads`` every re-spread the
    subscription has received, this event's included. An amendment changes the schedules whose
    line id or product a changed line names; an adjustment every schedule. A schedule's total
    stays what was invoiced (the deferred revenue it draws down); only what was not earned before
    the effective date moves. Returns the commands (per changed schedule: its new version, then
    one adjusting entry per month whose amount changed) and the schedules whose state changed,
    which replace the old ones in the caller's state.

    Raises:
        RuleInputError: from the re-spread rule.
    """
    own = [tracked for tracked in schedules if tracked.schedule.subscription_id == event.subscription_id]
    out = CommandBuilder(event)
    updated = add_respreads(out, own, respreads, respread_reason(event))
    return out.commands, updated


def respread_reason(event: ContractAmended | RevenueScheduleAdjusted) -> str:
    """Return what an entry's description says caused a re-spread."""
    return "contract amended" if isinstance(event, ContractAmended) else event.reason
