"""The hold stage: what waits for a discount approval, and its release.

Runs after policy (``processors/engine/pipeline.py``), over the worker's ``contracts`` table:
``hold:quote:<customer id>/<quote id>`` (a :class:`QuoteHold`) and
``hold:opp:<customer id>/<correlation id>`` (an :class:`OpportunityHold`: its current quote and the
records that wait, byte for byte). Every event
of one opportunity has the same key (the customer), so it is one partition's state. Like every
state update of the worker it is returned, not written, and it is idempotent per source record: a
redelivered record is held once (same coordinates); an approval re-processed after a crash
re-queues the same records, whose commands carry the same ids (the sink applies them once).

A release puts the held records on the retry topic, due at once, in the order they arrived; the
retry stage then runs them through enrich and the later stages as if they had just been read,
and the hold no longer stops them. The ledger ends as if the quote had been approved from the start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from processors.engine.outputs import OutputProducer
from processors.metrics import BatchTally
from processors.rules.approval import (
    RELEASED,
    HeldRecord,
    OpportunityHold,
    QuoteHold,
    approval_closures,
    held_amount,
    hold_notice,
    is_held_type,
    judge,
    opportunity_after_quote,
    quote_hold,
    refusal,
)
from processors.stages.accounting import CONTRACTS, StateAccess, Transition
from processors.stages.decode import OutputEncoder
from processors.stages.retry import Parked, park_headers
from schemas.models import BusinessException, DiscountApproved, EventEnvelope, QuoteApproved
from streams.deadletter import SourceRecord
from streams.topics import TopicCatalog

__all__ = ["HOLD_REASON", "HoldOutcome", "Holds", "release_headers"]

logger = logging.getLogger(__name__)

HOLD_REASON = "HELD_FOR_APPROVAL"


def _quote_key(customer_id: str, quote_id: str) -> bytes:
    # Per customer, like everything of a partition's state: quote ids need not be unique across CPQs.
    return b"hold:quote:" + f"{customer_id}\x1f{quote_id}".encode()


def _opportunity_key(customer_id: str, correlation_id: str) -> bytes:
    # The customer too: a correlation id is unique within its source system, not across customers.
    return b"hold:opp:" + f"{customer_id}\x1f{correlation_id}".encode()


@dataclass
class HoldOutcome:
    """What the hold stage decided for one record."""

    done: bool = False
    """The record's work ends here: it was held, or it was an approval."""
    released: list[HeldRecord] = field(default_factory=list)
    notices: list[BusinessException] = field(default_factory=list)
    """Records for the queue that are not new exceptions (holds noted, items approved)."""


class Holds:
    """The hold stage of one worker, with the discount matrix it judges approvals by."""

    def __init__(
        self, levels: Mapping[int, int], catalog: TopicCatalog, codec: OutputEncoder, outputs: OutputProducer
    ) -> None:
        self.levels = dict(levels)
        self.catalog = catalog
        self.codec = codec
        self.outputs = outputs

    def apply(
        self, event: EventEnvelope, read: StateAccess, source: SourceRecord, out: Transition
    ) -> HoldOutcome:
        """Note, hold, release or refuse; add state updates and exceptions to ``out``."""
        if isinstance(event, QuoteApproved):
            return self._quote(event, read, out)
        if isinstance(event, DiscountApproved):
            return self._approve(event, read, out)
        if out.exceptions or not is_held_type(event):
            return HoldOutcome()
        return self._hold(event, read, source, out)

    def deliver(self, outcome: HoldOutcome, tally: BatchTally) -> None:
        """Queue what a record's hold outcome produces (after the record's own outputs)."""
        topic = self.catalog.exceptions_topic
        for notice in outcome.notices:
            self.outputs.produce(topic, notice.customer_id.encode(), self.codec.encode(topic, notice))
            if notice.resolution != RELEASED:  # released records are counted below
                tally.processed["policy", str(notice.resolution)] += 1
        for record in outcome.released:
            # The partition it was read from: the retry topic is co-partitioned with the inputs.
            self.outputs.produce(
                self.catalog.retry_topic, record.key, record.value, release_headers(record), record.partition
            )
            tally.processed["policy", "released"] += 1

    def _quote(self, quote: QuoteApproved, read: StateAccess, out: Transition) -> HoldOutcome:
        previous = _load_quote(read, quote.customer_id, quote.quote_id)
        hold = quote_hold(quote, out.exceptions, previous)
        if hold is not None and hold != previous:
            out.updates.append(
                (CONTRACTS, _quote_key(quote.customer_id, quote.quote_id), hold.model_dump_json().encode())
            )
        current = _load_opportunity(read, quote.customer_id, quote.correlation_id)
        after = opportunity_after_quote(quote, hold, current)
        if after is None or after == current:
            return HoldOutcome()
        out.updates.append(
            (
                CONTRACTS,
                _opportunity_key(quote.customer_id, quote.correlation_id),
                after.model_dump_json().encode(),
            )
        )
        if current is None or after.standing or not current.records:
            return HoldOutcome()
        # A corrected quote that needs no approval releases what waited on the one it replaces; the
        # queue hears which records no longer wait. The quote's own outputs still go out as usual.
        replaced = _load_quote(read, quote.customer_id, current.quote_id)
        notices = [hold_notice(replaced, r, quote, RELEASED) for r in current.records] if replaced else []
        return HoldOutcome(released=list(current.records), notices=notices)

    def _approve(self, approval: DiscountApproved, read: StateAccess, out: Transition) -> HoldOutcome:
        hold = _load_quote(read, approval.customer_id, approval.quote_id)
        verdict = judge(hold, approval, self.levels)
        if verdict.outcome == "refused":
            out.exceptions.append(refusal(approval, verdict))
            return HoldOutcome(done=True)
        if verdict.outcome == "unchanged" or hold is None:
            logger.info("approval %s changes nothing: %s", approval.approval_id, verdict.detail)
            return HoldOutcome(done=True)
        outcome = HoldOutcome(done=True, notices=approval_closures(hold, approval))
        approved = hold.model_copy(
            update={"approved_by": approval.approver, "approval_event_id": approval.event_id}
        )
        out.updates.append(
            (CONTRACTS, _quote_key(approval.customer_id, hold.quote_id), approved.model_dump_json().encode())
        )
        current = _load_opportunity(read, approval.customer_id, hold.correlation_id)
        if current is not None and current.quote_id == hold.quote_id and current.standing:
            outcome.released.extend(current.records)
            released = current.released(hold.quote_id)
            out.updates.append(
                (
                    CONTRACTS,
                    _opportunity_key(approval.customer_id, hold.correlation_id),
                    released.model_dump_json().encode(),
                )
            )
        return outcome

    def _hold(
        self, event: EventEnvelope, read: StateAccess, source: SourceRecord, out: Transition
    ) -> HoldOutcome:
        current = _load_opportunity(read, event.customer_id, event.correlation_id)
        if current is None or not current.standing:
            return HoldOutcome()
        record = HeldRecord(
            event_id=event.event_id,
            event_type=event.event_type,
            topic=source.topic,
            partition=source.partition,
            offset=source.offset,
            key=source.key,
            value=source.value or b"",
            headers=tuple(source.headers),
            amount_minor=held_amount(event),
            currency=event.value_of("currency"),
        )
        held = current.with_record(record)
        out.updates.append(
            (
                CONTRACTS,
                _opportunity_key(event.customer_id, event.correlation_id),
                held.model_dump_json().encode(),
            )
        )
        quote = _load_quote(read, event.customer_id, current.quote_id)
        notices = [hold_notice(quote, record, event)] if quote is not None else []
        return HoldOutcome(done=True, notices=notices)


def release_headers(record: HeldRecord) -> list[tuple[str, bytes | None]]:
    """Return a released record's headers for the retry topic: due now, first read where it was."""
    now_ms = int(time.time() * 1000)
    parked = Parked(
        attempt=0,
        not_before_ms=now_ms,
        first_failure_ms=now_ms,
        missing=(),
        reason=HOLD_REASON,
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
    )
    return park_headers(record.headers, parked)


def _load_quote(read: StateAccess, customer_id: str, quote_id: str) -> QuoteHold | None:
    raw = read(CONTRACTS, _quote_key(customer_id, quote_id))
    return QuoteHold.model_validate_json(raw) if raw is not None else None


def _load_opportunity(read: StateAccess, customer_id: str, correlation_id: str) -> OpportunityHold | None:
    raw = read(CONTRACTS, _opportunity_key(customer_id, correlation_id))
    return OpportunityHold.model_validate_json(raw) if raw is not None else None
