"""The hold stage: orders held for a discount approval, what waits with them, and their release.

Runs after policy (``processors/agents/pipeline.py``), over the worker's ``ledger`` table:
``hold:quote:<quote id>`` (a :class:`QuoteHold`), ``hold:sub:<subscription id>`` (the records
that wait, byte for byte) and ``hold:inv:<invoice id>`` (a held invoice's subscription, for its
payments, which name the invoice only). Like every state update of the worker it is returned, not
written, and it is idempotent per source record: a redelivered record is held once (same
coordinates), a re-processed approval after a crash re-queues the same records, whose commands
carry the same ids (the sink applies them once).

A release puts the held records on the retry topic, due at once, in the order they arrived; the
retry stage then runs them through enrich and the later stages as if they had just been read,
and the hold no longer stops them. The ledger ends as if the quote had been approved from the start.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from processors.agents.ledger import LEDGER, StateAccess, Transition
from processors.agents.retry import Parked, park_headers
from processors.codec import HotCodec
from processors.metrics import BatchTally
from processors.outputs import OutputProducer
from processors.rules.approval import (
    HeldRecord,
    QuoteHold,
    SubscriptionHold,
    approval_closures,
    held_amount,
    hold_notice,
    is_held_type,
    judge,
    quote_hold,
    refusal,
)
from schemas.models import BusinessException, DiscountApproved, EventEnvelope, OrderAccepted, QuoteApproved
from streams.deadletter import SourceRecord
from streams.topics import TopicCatalog

__all__ = ["HOLD_REASON", "HoldOutcome", "Holds"]

logger = logging.getLogger(__name__)

HOLD_REASON = "HELD_FOR_APPROVAL"


def _quote_key(quote_id: str) -> bytes:
    return b"hold:quote:" + quote_id.encode()


def _subscription_key(subscription_id: str) -> bytes:
    return b"hold:sub:" + subscription_id.encode()


def _invoice_key(invoice_id: str) -> bytes:
    return b"hold:inv:" + invoice_id.encode()


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
        self, levels: Mapping[int, int], catalog: TopicCatalog, codec: HotCodec, outputs: OutputProducer
    ) -> None:
        self.levels = dict(levels)
        self.catalog = catalog
        self.codec = codec
        self.outputs = outputs

    def deliver(self, outcome: HoldOutcome, tally: BatchTally) -> None:
        """Queue what a record's hold outcome produces (after the record's own outputs)."""
        topic = self.catalog.exceptions_topic
        for notice in outcome.notices:
            self.outputs.produce(topic, notice.customer_id.encode(), self.codec.encode(topic, notice))
            tally.processed["policy", str(notice.resolution)] += 1
        for record in outcome.released:
            # The partition it was read from: the retry topic is co-partitioned with the inputs.
            self.outputs.produce(
                self.catalog.retry_topic, record.key, record.value, release_headers(record), record.partition
            )
            tally.processed["policy", "released"] += 1

    def apply(
        self, event: EventEnvelope, read: StateAccess, source: SourceRecord, out: Transition
    ) -> HoldOutcome:
        """Note, hold, release or refuse; add state updates and exceptions to ``out``."""
        if isinstance(event, QuoteApproved):
            self._note_quote(event, read, out)
            return HoldOutcome()
        if isinstance(event, DiscountApproved):
            return self._approve(event, read, out)
        if out.exceptions or not is_held_type(event):
            return HoldOutcome()
        return self._hold(event, read, source, out)

    def _note_quote(self, quote: QuoteApproved, read: StateAccess, out: Transition) -> None:
        previous = _load_quote(read, quote.quote_id)
        hold = quote_hold(quote, out.exceptions, previous)
        if hold is not None and hold != previous:
            out.updates.append((LEDGER, _quote_key(quote.quote_id), hold.model_dump_json().encode()))

    def _approve(self, approval: DiscountApproved, read: StateAccess, out: Transition) -> HoldOutcome:
        hold = _load_quote(read, approval.quote_id)
        verdict = judge(hold, approval, self.levels)
        if verdict.outcome == "refused":
            out.exceptions.append(refusal(approval, verdict))
            return HoldOutcome(done=True)
        if verdict.outcome == "unchanged" or hold is None:
            logger.info("approval %s changes nothing: %s", approval.approval_id, verdict.detail)
            return HoldOutcome(done=True)
        outcome = HoldOutcome(done=True, notices=approval_closures(hold, approval))
        for subscription_id in hold.subscriptions:
            held = _load_subscription(read, subscription_id)
            if held is None:
                continue
            outcome.released.extend(held.records)
            released = held.model_copy(update={"records": (), "released": True})
            out.updates.append(
                (LEDGER, _subscription_key(subscription_id), released.model_dump_json().encode())
            )
        approved = hold.model_copy(
            update={"approved_by": approval.approver, "approval_event_id": approval.event_id}
        )
        out.updates.append((LEDGER, _quote_key(hold.quote_id), approved.model_dump_json().encode()))
        return outcome

    def _hold(
        self, event: EventEnvelope, read: StateAccess, source: SourceRecord, out: Transition
    ) -> HoldOutcome:
        subscription_id = event.value_of("subscription_id")
        invoice_id = event.value_of("invoice_id")
        if subscription_id is None and invoice_id is not None:
            raw = read(LEDGER, _invoice_key(invoice_id))
            subscription_id = raw.decode() if raw is not None else None
        if subscription_id is None:
            return HoldOutcome()
        held = _load_subscription(read, subscription_id)
        if held is not None and held.released:
            return HoldOutcome()
        quote: QuoteHold | None = None
        if held is None:
            quote_id = event.quote_id if isinstance(event, OrderAccepted) else None
            quote = _load_quote(read, quote_id) if quote_id else None
            if quote is None or not quote.standing:
                return HoldOutcome()
            held = SubscriptionHold(subscription_id=subscription_id, quote_id=quote.quote_id)
            subscriptions = tuple(dict.fromkeys((*quote.subscriptions, subscription_id)))
            quote = quote.model_copy(update={"subscriptions": subscriptions})
            out.updates.append((LEDGER, _quote_key(quote.quote_id), quote.model_dump_json().encode()))
        else:
            quote = _load_quote(read, held.quote_id)
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
        out.updates.append(
            (LEDGER, _subscription_key(subscription_id), held.with_record(record).model_dump_json().encode())
        )
        if event.event_type == "invoice_posted" and invoice_id is not None:
            out.updates.append((LEDGER, _invoice_key(invoice_id), subscription_id.encode()))
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


def _load_quote(read: StateAccess, quote_id: str) -> QuoteHold | None:
    raw = read(LEDGER, _quote_key(quote_id))
    return QuoteHold.model_validate_json(raw) if raw is not None else None


def _load_subscription(read: StateAccess, subscription_id: str) -> SubscriptionHold | None:
    raw = read(LEDGER, _subscription_key(subscription_id))
    return SubscriptionHold.model_validate_json(raw) if raw is not None else None
