"""Discount approvals, enforced: what a standing ``DISCOUNT_NOT_APPROVED`` holds and what releases it.

A quote whose discount breaks the price book without an approval raises ``DISCOUNT_NOT_APPROVED``
(``processors.rules.policy``) and leaves a :class:`QuoteHold`: the largest discount on the quote,
who created it and the exceptions it raised. It also becomes the current quote of its opportunity
(the ``correlation_id`` that links quote, order, invoice and payment), and while that quote waits
for an approval every later event of the opportunity that would post to the ledger is held
(:data:`HELD_EVENT_TYPES`: the order, its invoices and payments, milestones, contract changes);
usage is not held (it posts nothing, and reconciliation compares it only with invoiced lines).
Holding by opportunity rather than by subscription holds an invoice that arrives before its order
too (arrival order across topics is not guaranteed), but not an event processed before the quote
itself: publish a quote before what is made from it.

What releases the opportunity: a ``discount_approved`` event that is allowed (the approver is not
the quote's creator, segregation of duties, and the discount matrix lets the approver's level
approve the quote's largest discount), or a later quote of the same opportunity that needs no
approval (the sales team corrected the discount). A refused approval raises ``APPROVAL_NOT_ALLOWED``
and releases nothing. Once a quote is approved, later allowed approvals change nothing.

Everything here is pure; :mod:`processors.stages.holds` stores the holds and re-queues the records.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict

from processors.rules.ids import derive_id
from schemas.models import BusinessException, DiscountApproved, EventEnvelope, QuoteApproved, ReasonCode

__all__ = [
    "HELD_EVENT_TYPES",
    "HeldRecord",
    "QuoteHold",
    "OpportunityHold",
    "Verdict",
    "approval_closures",
    "hold_notice",
    "held_amount",
    "is_held_type",
    "judge",
    "opportunity_after_quote",
    "quote_hold",
    "refusal",
]

logger = logging.getLogger(__name__)

HELD_EVENT_TYPES: Final = frozenset(
    {
        "order_accepted",
        "invoice_posted",
        "payment_received",
        "payment_failed",
        "service_activated",
        "contract_renewed",
        "contract_amended",
        "revenue_schedule_adjusted",
    }
)
"""Events of a held opportunity that wait for the approval (everything that posts to the ledger)."""

APPROVED: Final = "approved"
HELD: Final = "held"
RELEASED: Final = "released"


class QuoteHold(BaseModel):
    """A quote with a ``DISCOUNT_NOT_APPROVED``, its opportunity, and its approval once given."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    quote_id: str
    correlation_id: str
    required_bp: int
    created_by: str | None = None
    exception_ids: tuple[str, ...] = ()
    approved_by: str | None = None
    approval_event_id: str | None = None

    @property
    def standing(self) -> bool:
        """Whether the discount still waits for an approval."""
        return self.approved_by is None


class HeldRecord(BaseModel):
    """One record waiting for an approval: the original record, byte for byte, and where it was read."""

    # Base64 in the stored JSON: Avro values are not text.
    model_config = ConfigDict(frozen=True, extra="forbid", ser_json_bytes="base64", val_json_bytes="base64")

    event_id: str
    event_type: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    headers: tuple[tuple[str, bytes | None], ...] = ()
    amount_minor: int | None = None
    currency: str | None = None


class OpportunityHold(BaseModel):
    """An opportunity's current quote, whether it waits for an approval, and the records that wait."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    correlation_id: str
    quote_id: str
    standing: bool
    records: tuple[HeldRecord, ...] = ()

    def with_record(self, record: HeldRecord) -> OpportunityHold:
        """Return the hold with ``record`` added (once: a redelivered record is the same record)."""
        if any(r.topic == record.topic and r.partition == record.partition and r.offset == record.offset
               for r in self.records):  # fmt: skip
            return self
        return self.model_copy(update={"records": (*self.records, record)})

    def released(self, quote_id: str) -> OpportunityHold:
        """Return it once ``quote_id`` (approved, or needing no approval) stands for the opportunity."""
        return self.model_copy(update={"quote_id": quote_id, "standing": False, "records": ()})


def quote_hold(
    quote: QuoteApproved, exceptions: Sequence[BusinessException], previous: QuoteHold | None
) -> QuoteHold | None:
    """Return the hold a quote's policy exceptions leave (``None`` when its discounts need no approval).

    A quote seen again (a redelivery) keeps what its hold already knows: its approval.
    """
    raised = tuple(e.exception_id for e in exceptions if e.reason_code is ReasonCode.DISCOUNT_NOT_APPROVED)
    if not raised:
        return previous
    required = max(line.discount_bp for line in quote.lines)
    if previous is not None:
        return previous.model_copy(update={"required_bp": required, "created_by": quote.created_by})
    return QuoteHold(
        quote_id=quote.quote_id,
        correlation_id=quote.correlation_id,
        required_bp=required,
        created_by=quote.created_by,
        exception_ids=raised,
    )


def opportunity_after_quote(
    quote: QuoteApproved, hold: QuoteHold | None, current: OpportunityHold | None
) -> OpportunityHold | None:
    """Return the opportunity as ``quote`` (with its ``hold``, if any) leaves it; ``None``: untouched.

    A quote that waits for an approval becomes the current one and holds what follows; a quote
    that needs none (or was approved) releases what its opportunity held.
    """
    waits = hold is not None and hold.standing
    if current is None:
        if not waits:
            return None
        return OpportunityHold(correlation_id=quote.correlation_id, quote_id=quote.quote_id, standing=True)
    if current.quote_id == quote.quote_id and current.standing == waits:
        return current  # a redelivery: nothing changes
    if waits:
        return current.model_copy(update={"quote_id": quote.quote_id, "standing": True})
    return current.released(quote.quote_id)


@dataclass(frozen=True)
class Verdict:
    """What an approval does: release the quote's holds, nothing (already approved), or refusal."""

    outcome: Literal["release", "unchanged", "refused"]
    detail: str = ""


def judge(hold: QuoteHold | None, approval: DiscountApproved, levels: Mapping[int, int]) -> Verdict:
    """Judge ``approval`` against the quote's hold and the discount matrix ``levels`` (level → bp)."""
    if hold is None:
        return Verdict("unchanged", f"quote {approval.quote_id} has no discount waiting for an approval")
    if hold.created_by is not None and hold.created_by.casefold() == approval.approver.casefold():
        return Verdict(
            "refused",
            f"{approval.approver} created quote {hold.quote_id} and may not approve its discount"
            " (segregation of duties); ask a second person",
        )
    allowed = levels.get(approval.level)
    if allowed is None:
        known = ", ".join(str(level) for level in levels)
        return Verdict("refused", f"approval level {approval.level} is not in the discount matrix ({known})")
    covered = min(allowed, approval.max_discount_bp)
    if covered < hold.required_bp:
        return Verdict(
            "refused",
            f"level {approval.level} may approve up to {allowed} bp (this approval covers {covered} bp);"
            f" quote {hold.quote_id} has a {hold.required_bp} bp discount: ask a higher level",
        )
    if not hold.standing:
        # Refusals above still count: a self-approval is worth a person's attention even when late.
        return Verdict("unchanged", f"quote {hold.quote_id} was approved already by {hold.approved_by}")
    return Verdict("release")


def _exception(
    approval: DiscountApproved, reason: ReasonCode, position: str, detail: str, **fields: object
) -> BusinessException:
    return BusinessException(
        exception_id=derive_id("exception", approval.event_id, reason.value, position),
        reason_code=reason,
        source_event_id=approval.event_id,
        event_type=approval.event_type,
        customer_id=approval.customer_id,
        legal_entity=approval.legal_entity,
        correlation_id=approval.correlation_id,
        detected_at=approval.occurred_at,
        detail=detail,
        quote_id=approval.quote_id,
        **fields,  # type: ignore[arg-type]
    )


def refusal(approval: DiscountApproved, verdict: Verdict) -> BusinessException:
    """Return the ``APPROVAL_NOT_ALLOWED`` exception of a refused approval."""
    return _exception(
        approval,
        ReasonCode.APPROVAL_NOT_ALLOWED,
        "0",
        f"approval {approval.approval_id} refused: {verdict.detail}",
    )


def approval_closures(hold: QuoteHold, approval: DiscountApproved) -> list[BusinessException]:
    """Return a closing revision of each ``DISCOUNT_NOT_APPROVED`` exception the approval covers."""
    detail = f"approved by {approval.approver} at level {approval.level} (approval {approval.approval_id})"
    return [
        _exception(
            approval,
            ReasonCode.DISCOUNT_NOT_APPROVED,
            exception_id,
            detail,
            exception_key=exception_id,
            revision=1,
            resolution=APPROVED,
        )
        for exception_id in hold.exception_ids
    ]


def hold_notice(
    hold: QuoteHold, held: HeldRecord, event: EventEnvelope, resolution: str = HELD
) -> BusinessException:
    """Return the queue's note that ``held`` waits on the quote's exception (``resolution`` ``held``).

    Not a new exception: it names the exception it waits on (``exception_key``), so that
    ``exceptions show`` lists what an approval would release, with the amount held. With
    ``resolution`` ``released`` it says the record no longer waits (``event`` is then what released it).
    """
    return BusinessException(
        exception_id=derive_id(resolution, held.event_id, hold.quote_id),
        reason_code=ReasonCode.DISCOUNT_NOT_APPROVED,
        source_event_id=held.event_id,
        event_type=held.event_type,
        customer_id=event.customer_id,
        legal_entity=event.legal_entity,
        correlation_id=event.correlation_id,
        detected_at=event.occurred_at,
        detail=f"{held.event_type} held: waiting for an approval of quote {hold.quote_id}'s discount"
        f" ({hold.required_bp} bp)"
        if resolution == HELD
        else f"{held.event_type} released by {event.event_type} {event.event_id}",
        amount_difference_minor=held.amount_minor,
        currency=held.currency,
        subscription_id=event.value_of("subscription_id"),
        quote_id=hold.quote_id,
        exception_key=hold.exception_ids[0] if hold.exception_ids else None,
        resolution=resolution,
    )


def held_amount(event: EventEnvelope) -> int | None:
    """Return the money a held event carries (an order's lines, an invoice total, a payment)."""
    total = event.value_of("total_minor")
    if total is None:
        total = event.value_of("amount_minor")
    if total is None and event.value_of("lines") is not None:
        total = sum(line.value_of("amount_minor", 0) or 0 for line in event.value_of("lines"))
    return int(total) if total is not None else None


def is_held_type(event: EventEnvelope) -> bool:
    """Whether ``event`` waits with its opportunity while the opportunity is held."""
    return event.event_type in HELD_EVENT_TYPES
