"""Discount approvals: what a standing DISCOUNT_NOT_APPROVED holds, who may release it, and what is kept."""

from __future__ import annotations

from typing import Any

import pytest

from processors.rules import policy
from processors.rules.approval import QuoteHold, judge, quote_hold
from processors.rules.enrich import MasterView
from processors.stages.accounting import Transition
from processors.stages.holds import Holds
from schemas.models import DiscountApproved, EventEnvelope, ReasonCode
from streams.deadletter import SourceRecord
from streams.queue_settings import DEFAULT_APPROVAL_LEVELS
from streams.topics import TopicCatalog
from tests.unit.processors import factories as f

VIEW = MasterView({"C1": f.customer()}, {"P1": f.product()}, {"LE-DE": f.legal_entity()})
UNAPPROVED = f.quote(lines=(f.quote_line(discount_bp=2500, net_price_minor=7500),), created_by="sam")


def approval(approver: str = "ana", level: int = 2, **overrides: Any) -> DiscountApproved:
    fields: dict[str, Any] = {
        **f.envelope("A1"),
        "approval_id": "AP1",
        "quote_id": "Q1",
        "approver": approver,
        "level": level,
        "max_discount_bp": DEFAULT_APPROVAL_LEVELS.get(level, 0),
        **overrides,
    }
    return DiscountApproved(**fields)


def hold() -> QuoteHold:
    found = quote_hold(UNAPPROVED, policy.check(UNAPPROVED, VIEW), None)
    assert found is not None
    return found


def test_an_unapproved_discount_leaves_a_hold_with_the_largest_discount_and_its_creator() -> None:
    found = hold()
    assert (found.quote_id, found.required_bp, found.created_by, found.standing) == ("Q1", 2500, "sam", True)
    assert len(found.exception_ids) == 1
    approved = f.quote(lines=(f.quote_line(discount_bp=2500),), approvals=(f.approval(3000),))
    assert quote_hold(approved, policy.check(approved, VIEW), None) is None


@pytest.mark.parametrize(
    ("given", "outcome", "says"),
    [
        (approval(), "release", ""),
        (approval("Sam"), "refused", "created quote Q1"),
        (approval(level=1), "refused", "level 1 may approve up to 1500 bp"),
        (approval(level=9), "refused", "level 9 is not in the discount matrix"),
        (approval(max_discount_bp=2000), "refused", "covers 2000 bp"),
    ],
)
def test_only_a_second_person_at_a_level_that_covers_the_discount_releases(
    given: DiscountApproved, outcome: str, says: str
) -> None:
    verdict = judge(hold(), given, DEFAULT_APPROVAL_LEVELS)
    assert verdict.outcome == outcome
    assert says in verdict.detail


def test_after_the_approval_another_allowed_one_changes_nothing_but_a_self_approval_is_still_refused() -> (
    None
):
    approved = hold().model_copy(update={"approved_by": "ana"})
    assert judge(approved, approval("bo"), DEFAULT_APPROVAL_LEVELS).outcome == "unchanged"
    assert judge(approved, approval("sam"), DEFAULT_APPROVAL_LEVELS).outcome == "refused"
    assert judge(None, approval(), DEFAULT_APPROVAL_LEVELS).outcome == "unchanged"


class _State:
    """The worker's contracts table as a dict, applying each record's updates like the pipeline does."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, bytes], bytes] = {}
        self.offset = 0

    def read(self, table: str, key: bytes) -> bytes | None:
        return self.data.get((table, key))

    def run(self, holds: Holds, event: EventEnvelope, offset: int | None = None) -> tuple[Any, Transition]:
        out = Transition(exceptions=policy.check(event, VIEW))
        self.offset += 1
        source = SourceRecord("t", 0, self.offset if offset is None else offset, b"C1", b"\xff\x00avro")
        outcome = holds.apply(event, self.read, source, out)
        for table, key, value in out.updates:
            self.data[table, key] = value
        return outcome, out


def test_the_order_and_what_waits_with_it_are_held_then_released_once_in_arrival_order() -> None:
    holds = Holds(DEFAULT_APPROVAL_LEVELS, TopicCatalog("ns", 3, 1), codec=None, outputs=None)  # type: ignore[arg-type]
    state = _State()
    state.run(holds, UNAPPROVED)
    order, _ = state.run(holds, f.order(envelope={"event_id": "O1"}))
    invoice, _ = state.run(holds, f.invoice(envelope={"event_id": "I1"}))
    payment, _ = state.run(holds, f.payment(envelope={"event_id": "P1"}))
    again, _ = state.run(holds, f.order(envelope={"event_id": "O1"}), offset=2)  # redelivered
    usage, _ = state.run(holds, f.usage())
    assert all(o.done for o in (order, invoice, payment, again)) and not usage.done
    assert [n.resolution for n in (*order.notices, *invoice.notices)] == ["held", "held"]
    assert order.notices[0].amount_difference_minor == 120_000
    assert "quote Q1" in order.notices[0].detail

    refused, out = state.run(holds, approval("sam"))
    assert refused.done and not refused.released
    assert [e.reason_code for e in out.exceptions] == [ReasonCode.APPROVAL_NOT_ALLOWED]
    assert "segregation of duties" in out.exceptions[0].detail

    released, out = state.run(holds, approval())
    assert [r.event_id for r in released.released] == ["O1", "I1", "P1"]
    assert released.released[0].value == b"\xff\x00avro"
    assert [(n.resolution, n.exception_key) for n in released.notices] == [
        ("approved", hold().exception_ids[0])
    ]
    assert not out.exceptions

    second, _ = state.run(holds, approval("bo", event_id="A2"))
    assert second.done and not second.released and not second.notices
    # What was released is no longer held: it runs through the later stages when it comes back.
    back, _ = state.run(holds, f.invoice(envelope={"event_id": "I1"}), offset=3)
    assert not back.done


def test_a_corrected_quote_that_needs_no_approval_releases_what_waited_on_the_opportunity() -> None:
    holds = Holds(DEFAULT_APPROVAL_LEVELS, TopicCatalog("ns", 3, 1), codec=None, outputs=None)  # type: ignore[arg-type]
    state = _State()
    state.run(holds, UNAPPROVED)
    # The invoice was read before the order (arrival order across topics): it waits all the same.
    invoice, _ = state.run(holds, f.invoice(envelope={"event_id": "I1"}))
    corrected = f.quote(lines=(f.quote_line(discount_bp=1000),), quote_id="Q2", envelope={"event_id": "Q2E"})
    released, out = state.run(holds, corrected)
    assert invoice.done and not released.done and not out.exceptions
    assert [r.event_id for r in released.released] == ["I1"]
    assert [(n.resolution, n.source_event_id) for n in released.notices] == [("released", "I1")]
    order, _ = state.run(holds, f.order(envelope={"event_id": "O1"}, quote_id="Q2"))
    assert not order.done


def test_another_customers_quote_and_opportunity_with_the_same_ids_are_not_held() -> None:
    holds = Holds(DEFAULT_APPROVAL_LEVELS, TopicCatalog("ns", 3, 1), codec=None, outputs=None)  # type: ignore[arg-type]
    state = _State()
    state.run(holds, UNAPPROVED)
    other = {"customer_id": "C2", "event_id": "O2"}
    order, _ = state.run(holds, f.order(envelope=other))
    quote, _ = state.run(holds, f.quote(envelope={"customer_id": "C2", "event_id": "Q2E"}))
    assert not order.done and not quote.released
