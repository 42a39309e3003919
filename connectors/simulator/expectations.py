"""The ground truth: what a correct pipeline must make of the emitted records.

Computed from the emitted stream itself, in publish order, by reading the rules of DOMAIN.md (not
by calling the processors: a bug shared with them would agree with itself). Records are judged as
the pipeline must: bytes that do not decode are dead-lettered at decode; a repeated ``event_id`` is a
duplicate (same content) or a conflict (dead-lettered at dedupe); an event whose customer, legal
entity or products never arrive is dead-lettered at enrich; the rest is the business.

While an opportunity's (correlation id's) current quote has a ``DISCOUNT_NOT_APPROVED`` standing,
everything of it that posts to the ledger (order, invoices, payments, milestones, contract
changes) is held and not in the ledger figures; a later quote that needs no approval releases it,
and so does an approval (quotes in ``approved_quotes``). What is still held is listed under
``expected_holds``. Usage is still metered, and compared with nothing until its invoices post.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import UTC
from typing import Any, Final

from connectors.simulator.dates import month_key, ratable_by_month, respread
from connectors.simulator.emissions import Emission
from schemas.models import (
    AvroRecord,
    ContractAmended,
    EventEnvelope,
    InvoiceLine,
    InvoicePosted,
    LineKind,
    OrderAccepted,
    PaymentFailed,
    PaymentReceived,
    Product,
    QuoteApproved,
    RevenueScheduleAdjusted,
    ServiceActivated,
    UsageRecorded,
)
from schemas.names import EVENT_TYPES, MASTER_DATA_KINDS

__all__ = ["ACCOUNTS", "expect", "fingerprint"]

logger = logging.getLogger(__name__)

ACCOUNTS: Final = {"subscription": "4000", "services": "4010", "usage": "4100"}


def fingerprint(event: EventEnvelope) -> str:
    """Return the content of ``event`` that decides duplicate versus conflict."""
    return event.model_dump_json(exclude={"schema_version"})


def _tree() -> defaultdict[str, Any]:
    return defaultdict(_tree)


def _plain(tree: Any) -> Any:
    return {key: _plain(value) for key, value in tree.items()} if isinstance(tree, dict) else tree


def _missing_master(event: EventEnvelope, masters: dict[str, dict[str, AvroRecord]]) -> list[str]:
    missing = []
    if event.customer_id not in masters["customer"]:
        missing.append(f"customer {event.customer_id}")
    if event.legal_entity not in masters["legal_entity"]:
        missing.append(f"legal_entity {event.legal_entity}")
    for line in getattr(event, "lines", ()):
        product_id = getattr(line, "product_id", None)
        if product_id is not None and product_id not in masters["product"]:
            missing.append(f"product {product_id}")
    return missing


def expect(emissions: Sequence[Emission], approved_quotes: Collection[str] = ()) -> dict[str, Any]:
    """Return the expected outcome of publishing ``emissions`` in order (see the module docstring)."""
    masters: dict[str, dict[str, AvroRecord]] = {kind: {} for kind in MASTER_DATA_KINDS}
    for emission in emissions:
        if emission.kind == "master" and emission.record is not None:
            masters[emission.stream][emission.key] = emission.record
    published = dict.fromkeys(EVENT_TYPES, 0)
    unique = dict.fromkeys(EVENT_TYPES, 0)
    duplicates = dict.fromkeys(EVENT_TYPES, 0)
    conflicts = dict.fromkeys(EVENT_TYPES, 0)
    dead_letters: list[dict[str, Any]] = []
    seen: dict[str, str] = {}
    passing: list[EventEnvelope] = []
    for emission in emissions:
        if emission.kind == "raw":
            dead_letters.append(
                {
                    "stage": "decode",
                    "reason": emission.fault,
                    "event_type": emission.stream,
                    "key": emission.key,
                }
            )
            continue
        if emission.kind != "event" or not isinstance(emission.record, EventEnvelope):
            continue
        event = emission.record
        published[event.event_type] += 1
        content = fingerprint(event)
        if event.event_id in seen:
            if seen[event.event_id] == content:
                duplicates[event.event_type] += 1
            else:
                conflicts[event.event_type] += 1
                dead_letters.append(_dead("dedupe", "DUPLICATE_ID_CONFLICT", event))
            continue
        seen[event.event_id] = content
        unique[event.event_type] += 1
        missing = _missing_master(event, masters)
        if missing:
            dead_letters.append({**_dead("enrich", "MASTER_DATA_MISSING", event), "missing": missing})
            continue
        passing.append(event)
    kept, holds = _without_held(passing, masters, approved_quotes)
    kept = _milestones_that_can_post(kept, dead_letters)
    business = _business(kept, masters)
    business["expected_holds"] = holds
    by_reason: dict[str, dict[str, Any]] = {}
    for letter in dead_letters:
        entry = by_reason.setdefault(letter["reason"], {"stage": letter["stage"], "count": 0})
        entry["count"] += 1
    return {
        "records": {
            "events_published": published,
            "events_unique": unique,
            "events_published_total": sum(published.values()),
            "master_published": {
                kind: sum(1 for e in emissions if e.kind == "master" and e.stream == kind)
                for kind in MASTER_DATA_KINDS
            },
            "raw_faults": sum(1 for e in emissions if e.kind == "raw"),
        },
        "duplicates": {"total": sum(duplicates.values()), "by_event_type": duplicates},
        "conflicts": {"total": sum(conflicts.values()), "by_event_type": conflicts},
        "expected_dead_letters": {
            "total": len(dead_letters),
            "by_reason": by_reason,
            "records": dead_letters,
        },
        **business,
    }


def _dead(stage: str, reason: str, event: EventEnvelope) -> dict[str, Any]:
    return {
        "stage": stage,
        "reason": reason,
        "event_type": event.event_type,
        "event_id": event.event_id,
        "key": event.customer_id,
    }


def _order_products(events: list[EventEnvelope]) -> dict[tuple[str, str], str]:
    return {
        (event.subscription_id, line.line_id): line.product_id
        for event in events
        if isinstance(event, OrderAccepted)
        for line in event.lines
    }


def _services_invoiced(events: list[EventEnvelope]) -> dict[tuple[str, str], int]:
    invoiced: dict[tuple[str, str], int] = defaultdict(int)
    for event in events:
        if isinstance(event, InvoicePosted):
            for line in event.lines:
                if line.kind is LineKind.SERVICES and line.product_id is not None:
                    invoiced[event.subscription_id, line.product_id] += line.amount_minor
    return invoiced


def _milestones_that_can_post(
    events: list[EventEnvelope], dead_letters: list[dict[str, Any]]
) -> list[EventEnvelope]:
    """Drop (and expect dead-lettered) the milestones whose order line or invoiced amount never came.

    A milestone names its order line (DOMAIN.md); without an amount of its own it takes what was
    invoiced on the subscription for that line's product. It waits for both, then is dead-lettered
    at recognise with a reason naming what is missing.
    """
    products = _order_products(events)
    invoiced = _services_invoiced(events)
    kept = []
    for event in events:
        if (
            isinstance(event, ServiceActivated)
            and event.line_kind.value == "SERVICES_MILESTONE"
            and event.line_id
        ):
            product = products.get((event.subscription_id, event.line_id))
            if product is None:
                dead_letters.append(_dead("recognise", "ORDER_LINE_NOT_FOUND", event))
                continue
            if event.milestone_amount_minor is None and (event.subscription_id, product) not in invoiced:
                dead_letters.append(_dead("recognise", "INVOICED_SERVICES_NOT_FOUND", event))
                continue
        kept.append(event)
    return kept


def _respreads_of(events: list[EventEnvelope]) -> dict[str, list[ContractAmended | RevenueScheduleAdjusted]]:
    """Subscription → its amendments and schedule adjustments in event-time order (then event id)."""
    found: dict[str, list[ContractAmended | RevenueScheduleAdjusted]] = defaultdict(list)
    for event in events:
        if isinstance(event, ContractAmended | RevenueScheduleAdjusted):
            found[event.subscription_id].append(event)
    for items in found.values():
        items.sort(key=lambda item: (item.occurred_at, item.event_id))
    return found


def _subscription_plan(
    invoice: InvoicePosted, line: InvoiceLine, respreads: list[ContractAmended | RevenueScheduleAdjusted]
) -> dict[str, int]:
    """A subscription line's revenue by month: ratable by day, then every re-spread that applies.

    A re-spread applies to the schedules invoiced at or before it happened; an amendment only to
    the lines of the products it names (the invoice's line ids are not the order's).
    """
    plan = ratable_by_month(line.amount_minor, line.period_start, line.period_end)
    for item in respreads:
        if item.occurred_at < invoice.occurred_at:
            continue
        if isinstance(item, ContractAmended) and line.product_id not in {x.product_id for x in item.lines}:
            continue
        plan = respread(plan, line.period_start, line.period_end, item.effective_date)
    return plan


def _revenue_account(masters: dict[str, dict[str, AvroRecord]], product_id: str | None, kind: str) -> str:
    # The product's GL account decides (DOMAIN.md); a line without a known product takes the default.
    product = masters["product"].get(product_id or "")
    return product.revenue_account if isinstance(product, Product) else ACCOUNTS[kind]


def _business(events: list[EventEnvelope], masters: dict[str, dict[str, AvroRecord]]) -> dict[str, Any]:
    invoices = _tree()
    revenue = _tree()
    cash = _tree()
    exceptions: list[dict[str, Any]] = []
    metered: dict[tuple[str, str, str], int] = defaultdict(int)
    billed: dict[tuple[str, str, str], dict[str, Any]] = {}
    failed_invoices: set[str] = set()
    paid_invoices: set[str] = set()
    failures = 0

    def book(event: EventEnvelope, currency: str, month: str, account: str, amount: int) -> None:
        months = revenue[event.legal_entity][currency][month]
        months[account] = months.get(account, 0) + amount

    respreads = _respreads_of(events)
    order_products = _order_products(events)
    services_invoiced = _services_invoiced(events)

    for event in events:
        if isinstance(event, QuoteApproved):
            exceptions.extend(_unapproved_discounts(event, masters))
        elif isinstance(event, InvoicePosted):
            totals = invoices[event.legal_entity][event.currency]
            totals["count"] = totals.get("count", 0) + 1
            totals["total_minor"] = totals.get("total_minor", 0) + event.total_minor
            for line in event.lines:
                if line.kind is LineKind.SUBSCRIPTION:
                    account = _revenue_account(masters, line.product_id, "subscription")
                    plan = _subscription_plan(event, line, respreads[event.subscription_id])
                    for month, amount in plan.items():
                        book(event, event.currency, month, account, amount)
                elif line.kind is LineKind.USAGE and line.metric is not None:
                    account = _revenue_account(masters, line.product_id, "usage")
                    book(event, event.currency, month_key(event.issued_on), account, line.amount_minor)
                    key = (event.subscription_id, line.metric, month_key(line.period_start))
                    entry = billed.setdefault(
                        key,
                        {
                            "quantity": 0,
                            "event": event,
                            "latest": (event.issued_on, event.invoice_id, line.line_id),
                        },
                    )
                    entry["quantity"] += line.quantity
                    latest = (event.issued_on, event.invoice_id, line.line_id)
                    if latest >= entry["latest"]:
                        entry.update(latest=latest, unit_price=line.unit_price_minor, event=event)
        elif isinstance(event, UsageRecorded):
            metered[
                (event.subscription_id, event.metric, month_key(event.window_start.astimezone(UTC).date()))
            ] += event.quantity
        elif isinstance(event, ServiceActivated) and event.line_kind.value == "SERVICES_MILESTONE":
            product = order_products.get((event.subscription_id, event.line_id or ""))
            milestone = event.milestone_amount_minor
            if milestone is None and product is not None:
                milestone = services_invoiced[event.subscription_id, product]
            if milestone is not None:
                month = month_key(event.activated_at.astimezone(UTC).date())
                book(event, event.currency, month, _revenue_account(masters, product, "services"), milestone)
        elif isinstance(event, PaymentReceived):
            totals = cash[event.legal_entity][event.currency]
            totals["payments"] = totals.get("payments", 0) + 1
            totals["total_minor"] = totals.get("total_minor", 0) + event.amount_minor
            paid_invoices.add(event.invoice_id)
        elif isinstance(event, PaymentFailed):
            failures += 1
            failed_invoices.add(event.invoice_id)
    exceptions.extend(_mismatches(metered, billed))
    by_reason: dict[str, int] = defaultdict(int)
    for item in exceptions:
        by_reason[item["reason"]] += 1
    return {
        "expected_exceptions": {"total": len(exceptions), "by_reason": dict(by_reason), "items": exceptions},
        "expected_invoices": _plain(invoices),
        "expected_revenue": _plain(revenue),
        "expected_cash": _plain(cash),
        "expected_payment_failures": {
            "failed_attempts": failures,
            "invoices_with_failures": len(failed_invoices),
            "invoices_never_paid_after_failure": len(failed_invoices - paid_invoices),
        },
    }


# Written out again rather than imported from processors.rules.approval: the ground truth reads
# DOMAIN.md's rule itself (see the module docstring).
_HELD_TYPES: Final = frozenset(
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


def _without_held(
    events: list[EventEnvelope], masters: dict[str, dict[str, AvroRecord]], approved_quotes: Collection[str]
) -> tuple[list[EventEnvelope], list[dict[str, Any]]]:
    """Return the events that post and the opportunities still held, with what they hold.

    An opportunity (correlation id) whose current quote waits for an approval holds its later
    events; a later quote that needs none releases them (they post), an approved quote never held.
    """
    current: dict[str, dict[str, Any]] = {}
    kept: list[EventEnvelope] = []
    for event in events:
        if isinstance(event, QuoteApproved):
            waits = bool(_unapproved_discounts(event, masters)) and event.quote_id not in approved_quotes
            opportunity = current.get(event.correlation_id)
            if waits:
                opportunity = opportunity or {"held": [], "value": defaultdict(int)}
                opportunity.update(quote_id=event.quote_id, customer_id=event.customer_id)
                current[event.correlation_id] = opportunity
            elif opportunity is not None:
                kept.extend(opportunity["held"])
                del current[event.correlation_id]
            kept.append(event)
            continue
        opportunity = current.get(event.correlation_id)
        if opportunity is not None and event.event_type in _HELD_TYPES:
            opportunity["held"].append(event)
            if isinstance(event, OrderAccepted):
                opportunity["value"][event.currency] += sum(line.amount_minor for line in event.lines)
            continue
        kept.append(event)
    holds = [
        {
            "correlation_id": correlation_id,
            "quote_id": opportunity["quote_id"],
            "customer_id": opportunity["customer_id"],
            "order_value_minor": dict(opportunity["value"]),
            "events": [e.event_id for e in opportunity["held"]],
        }
        for correlation_id, opportunity in current.items()
        if opportunity["held"]
    ]
    return kept, holds


def _unapproved_discounts(
    event: QuoteApproved, masters: dict[str, dict[str, AvroRecord]]
) -> list[dict[str, Any]]:
    approved = max((approval.max_discount_bp for approval in event.approvals), default=None)
    found = []
    for line in event.lines:
        product = masters["product"][line.product_id]
        assert isinstance(product, Product)
        if line.discount_bp > product.max_discount_bp and (approved is None or approved < line.discount_bp):
            found.append(
                {
                    "reason": "DISCOUNT_NOT_APPROVED",
                    "event_id": event.event_id,
                    "customer_id": event.customer_id,
                    "legal_entity": event.legal_entity,
                    "quote_id": event.quote_id,
                    "line_id": line.line_id,
                    "product_id": line.product_id,
                    "discount_bp": line.discount_bp,
                    "allowed_bp": product.max_discount_bp,
                }
            )
    return found


def _mismatches(
    metered: dict[tuple[str, str, str], int], billed: dict[tuple[str, str, str], dict[str, Any]]
) -> list[dict[str, Any]]:
    found = []
    for key in sorted(billed):
        subscription_id, metric, period = key
        entry = billed[key]
        difference = metered.get(key, 0) - entry["quantity"]
        if difference == 0:
            continue
        invoice: InvoicePosted = entry["event"]
        found.append(
            {
                "reason": "USAGE_BILLING_MISMATCH",
                "customer_id": invoice.customer_id,
                "legal_entity": invoice.legal_entity,
                "subscription_id": subscription_id,
                "metric": metric,
                "period": period,
                "currency": invoice.currency,
                "metered_quantity": metered.get(key, 0),
                "billed_quantity": entry["quantity"],
                "quantity_difference": difference,
                "amount_difference_minor": difference * entry["unit_price"],
                "kind": "under-billed" if difference > 0 else "over-billed",
            }
        )
    return found
