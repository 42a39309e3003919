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
from datetime import UTC, date, datetime

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
    "contract_renewed_commands",
    "fold_respreads",
    "order_accepted_commands",
    "respread_of",
    "respread_schedule",
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
    folded in event-time order whatever order they arrived in. It keeps what its commands carry
    (the event's envelope), so they are the same whenever they are emitted.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    event_id: str
    event_type: str
    occurred_ms: int
    effective_date: date
    customer_id: str
    legal_entity: str
    correlation_id: str
    why: str
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

    def envelope(self) -> EventEnvelope:
        """The envelope of the event it came from (what its commands are traced to)."""
        return EventEnvelope(
            event_id=self.event_id,
            event_type=self.event_type,
            occurred_at=datetime.fromtimestamp(self.occurred_ms / 1000, UTC),
            source="revstream",
            customer_id=self.customer_id,
            legal_entity=self.legal_entity,
            correlation_id=self.correlation_id,
        )


def respread_of(event: ContractAmended | RevenueScheduleAdjusted) -> Respread:
    """Return the re-spread an amendment (its lines) or an adjustment (every schedule) asks for."""
    why, line_ids, product_ids = event.value_of("reason", "contract amended"), None, None
    if isinstance(event, ContractAmended):
        line_ids = tuple(line.line_id for line in event.lines)
        product_ids = tuple(line.product_id for line in event.lines)
    return Respread(
        event_id=event.event_id,
        event_type=event.event_type,
        occurred_ms=epoch_millis(event.occurred_at),
        effective_date=event.effective_date,
        customer_id=event.customer_id,
        legal_entity=event.legal_entity,
        correlation_id=event.correlation_id,
        why=str(why),
        line_ids=line_ids,
        product_ids=product_ids,
    )


def _applicable(tracked: TrackedSchedule, respreads: Iterable[Respread]) -> list[Respread]:
    return sorted(
        (item for item in respreads if item.applies_to(tracked)), key=lambda r: (r.occurred_ms, r.event_id)
    )


def _base(tracked: TrackedSchedule) -> TrackedSchedule:
    base = tracked.base_entries if tracked.base_entries is not None else tracked.schedule.entries
    return tracked.model_copy(
        update={
            "schedule": tracked.schedule.model_copy(update={"entries": base}),
            "base_entries": base,
            "applied": (),
        }
    )


def fold_respreads(tracked: TrackedSchedule, respreads: Iterable[Respread]) -> TrackedSchedule:
    """Return ``tracked`` with every re-spread that applies to it folded into its invoiced plan.

    The re-spreads are applied to the plan the invoice gave, in event-time order (then by event
    id), so the result does not depend on the order they arrived in.

    Raises:
        RuleInputError: from :func:`processors.rules.recognition.respread`.
    """
    applicable = _applicable(tracked, respreads)
    if tuple(item.event_id for item in applicable) == tracked.applied:
        return tracked
    current = _base(tracked)
    for item in applicable:
        current = _step(current, item)
    return current


def _step(tracked: TrackedSchedule, item: Respread) -> TrackedSchedule:
    new = respread(tracked, item.effective_date) or tracked
    return new.model_copy(update={"applied": (*tracked.applied, item.event_id)})


def _adjusting_commands(
    item: Respread, old: TrackedSchedule, new: TrackedSchedule, tag: str = ""
) -> list[ErpCommand]:
    # Scoped by schedule: the same re-spread of the same schedule gets the same ids, whether it
    # was applied when it arrived or when the invoice it changes arrived after it.
    out = CommandBuilder(item.envelope(), scope=f"{new.schedule.schedule_id}{tag}")
    out.add(new.schedule)
    for month, recognition_date, difference in schedule_differences(old.schedule, new.schedule):
        out.add_entry(
            recognition_date,
            new.schedule.currency,
            f"re-spread {month} ({item.why}): invoice {new.schedule.invoice_id} line {new.schedule.line_id}",
            recognition_lines(difference, memo=new.schedule.line_id, accounts=new.accounts),
        )
    return out.commands


def respread_schedule(
    tracked: TrackedSchedule, respreads: Sequence[Respread]
) -> tuple[list[ErpCommand], TrackedSchedule]:
    """Fold the re-spreads that apply to ``tracked`` and not yet in it; return their commands.

    Each newly applied re-spread posts its own step in event-time order (its new schedule version,
    then one adjusting entry DR deferred / CR revenue, or the reverse, per month whose amount
    changed), traced to its own event. When one arrives after a later one was applied, the steps
    already posted are corrected by one more version and its differences, traced to the newest
    re-spread applied. The plan posted always sums to the schedule's total.

    Raises:
        RuleInputError: from the re-spread rule.
    """
    target = fold_respreads(tracked, respreads)
    if target == tracked:
        return [], tracked
    commands: list[ErpCommand] = []
    already = set(tracked.applied)
    current, posted, last = _base(tracked), tracked, None
    for item in _applicable(tracked, respreads):
        following = _step(current, item)
        if item.event_id not in already and following.schedule.entries != current.schedule.entries:
            commands.extend(_adjusting_commands(item, posted if last is None else last, following))
            last = following
        current = following
    end = last if last is not None else posted
    if end.schedule.entries != target.schedule.entries:
        newest = max(_applicable(tracked, respreads), key=lambda r: (r.occurred_ms, r.event_id))
        commands.extend(_adjusting_commands(newest, end, target, tag="|correction"))
    return commands, target
