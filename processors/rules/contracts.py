"""ERP commands of the contract lifecycle: subscriptions, amendments and schedule re-spreads.

Same id and time rules as :mod:`processors.rules.commands`. A subscription's ``version`` is the
event time in epoch milliseconds (the ledger keeps the highest). A re-spread is prospective
(DOMAIN.md): the not-yet-recognised remainder of each affected schedule is spread again by the
daily rule from the effective date; the new version keeps the schedule's id and is followed by one
adjusting entry (DR 2400 / CR 4000, or the reverse) per month whose amount changed.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date

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
    "contract_amended_commands",
    "contract_renewed_commands",
    "order_accepted_commands",
    "schedule_adjusted_commands",
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


def _respread_commands(
    event: EventEnvelope, schedules: Sequence[TrackedSchedule], effective_date: date, why: str
) -> tuple[list[ErpCommand], list[TrackedSchedule]]:
    out = CommandBuilder(event)
    updated: list[TrackedSchedule] = []
    for tracked in schedules:
        new = respread(tracked, effective_date)
        if new is None:
            continue
        updated.append(new)
        out.add(new.schedule)
        for month, recognition_date, difference in schedule_differences(tracked.schedule, new.schedule):
            out.add_entry(
                recognition_date,
                new.schedule.currency,
                f"re-spread {month} ({why}): invoice {new.schedule.invoice_id} line {new.schedule.line_id}",
                recognition_lines(difference, memo=new.schedule.line_id),
            )
    return out.commands, updated


def contract_amended_commands(
    event: ContractAmended, schedules: Sequence[TrackedSchedule]
) -> tuple[list[ErpCommand], list[TrackedSchedule]]:
    """Re-spread, from the effective date, the schedules of the subscription's amended lines.

    ``schedules`` are the subscription's schedules in force. A schedule is amended when a changed
    line names its line id or its product. Its total stays what was invoiced (the deferred revenue
    it draws down); only the not-yet-recognised remainder moves. Returns the commands (per changed
    schedule: its new version, then one adjusting entry per month whose amount changed) and the
    new versions, which replace the old ones in the caller's state.
    """
    line_ids = {line.line_id for line in event.lines}
    product_ids = {line.product_id for line in event.lines}
    amended = [
        tracked
        for tracked in schedules
        if tracked.schedule.subscription_id == event.subscription_id
        and (tracked.schedule.line_id in line_ids or tracked.product_id in product_ids)
    ]
    return _respread_commands(event, amended, event.effective_date, "contract amended")


def schedule_adjusted_commands(
    event: RevenueScheduleAdjusted, schedules: Sequence[TrackedSchedule]
) -> tuple[list[ErpCommand], list[TrackedSchedule]]:
    """Re-spread every schedule of the subscription from the effective date (see the amendment)."""
    own = [tracked for tracked in schedules if tracked.schedule.subscription_id == event.subscription_id]
    return _respread_commands(event, own, event.effective_date, event.reason)
