"""The demo's approval story: a deal booked before its discount was approved, held, then approved.

The simulated company corrects its unapproved quotes before ordering, so nothing of it is held.
The demo adds one deal that was not: a new customer's quote with a 25 % discount and no approval,
then, once its exception is in the queue, an order made from it and its annual invoice. The worker
holds the order and the invoice; once the queue shows them waiting, a second person at the deal
desk approves the discount (a
``discount_approved`` event through the SDK, as the CRM would send it), and the deal reaches the
ledger. The ground truth is recomputed with that quote approved, so the report's checks include it.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from connectors.exceptions.queue import QueueRow
from connectors.exceptions.store import Filters, Hold, QueueStore
from connectors.ledger.database import connect
from connectors.simulator.emissions import Emission
from connectors.simulator.expectations import expect
from connectors.simulator.simulate import Simulation
from revstream.sdk import Publisher
from schemas.models import (
    BillingFrequency,
    Customer,
    DiscountApproved,
    EventEnvelope,
    InvoiceLine,
    InvoicePosted,
    LineKind,
    OrderAccepted,
    OrderLine,
    Product,
    QuoteApproved,
    QuoteLine,
)
from streams.queue_settings import ExceptionQueueSettings
from streams.settings import Settings
from streams.topics import TopicCatalog

__all__ = [
    "APPROVER",
    "CREATOR",
    "DISCOUNT_BP",
    "HeldDeal",
    "approve",
    "book",
    "held_deal",
    "waiting",
    "with_deal",
]

logger = logging.getLogger(__name__)

CREATOR = "sales.rep@example.com"
APPROVER = "deal-desk.lead@example.com"
DISCOUNT_BP = 2500
CUSTOMER_ID = "CUST-HELD-1"


@dataclass(frozen=True)
class HeldDeal:
    """The deal the demo adds, and the records that carry it."""

    quote_id: str
    order_id: str
    subscription_id: str
    invoice_id: str
    emissions: tuple[Emission, ...]
    """The customer, the quote, the order and the invoice, in publish order."""
    booking: tuple[EventEnvelope, ...]
    """The order and its invoice: published once the quote's exception is in the queue."""


def held_deal(simulation: Simulation) -> HeldDeal:
    """Return a deal of a new customer (modelled on the simulation's first) that breaks the price book."""
    model = next(
        e.record for e in simulation.emissions if e.kind == "master" and isinstance(e.record, Customer)
    )
    assert isinstance(model, Customer)
    product = next(
        e.record
        for e in simulation.emissions
        if e.kind == "master"
        and isinstance(e.record, Product)
        and e.record.currency == model.currency
        and e.record.revenue_kind is LineKind.SUBSCRIPTION
        and e.record.max_discount_bp < DISCOUNT_BP
    )
    assert isinstance(product, Product)
    start = simulation.config.start + timedelta(days=10)
    when = datetime.combine(start, time(9), UTC)
    customer = model.model_copy(
        update={"customer_id": CUSTOMER_ID, "name": "Held Deal Ltd", "updated_at": when}
    )
    envelope: dict[str, Any] = {
        "source": "crm",
        "customer_id": CUSTOMER_ID,
        "legal_entity": customer.legal_entity,
        "correlation_id": f"CORR-{CUSTOMER_ID}",
        "currency": customer.currency,
    }
    net = product.list_price_minor * (10_000 - DISCOUNT_BP) // 10_000
    amount = net * 12
    end = date(start.year + 1, start.month, start.day)
    quote_line = QuoteLine(
        line_id="1",
        product_id=product.product_id,
        quantity=12,
        list_price_minor=product.list_price_minor,
        net_price_minor=net,
        discount_bp=DISCOUNT_BP,
    )
    quote = QuoteApproved(
        **envelope,
        event_id=f"E-{CUSTOMER_ID}-quote",
        occurred_at=when + timedelta(minutes=1),
        quote_id=f"Q-{CUSTOMER_ID}",
        created_by=CREATOR,
        approvals=(),
        lines=(quote_line,),
    )
    order_line = OrderLine(
        line_id="1",
        product_id=product.product_id,
        kind=LineKind.SUBSCRIPTION,
        quantity=12,
        unit_price_minor=net,
        amount_minor=amount,
    )
    order = OrderAccepted(
        **envelope,
        event_id=f"E-{CUSTOMER_ID}-order",
        occurred_at=when + timedelta(hours=2),
        order_id=f"O-{CUSTOMER_ID}",
        quote_id=quote.quote_id,
        subscription_id=f"SUB-{CUSTOMER_ID}",
        term_start=start,
        term_end=end,
        billing_frequency=BillingFrequency.ANNUAL,
        lines=(order_line,),
    )
    invoice_line = InvoiceLine(
        line_id="1",
        kind=LineKind.SUBSCRIPTION,
        product_id=product.product_id,
        quantity=12,
        unit_price_minor=net,
        amount_minor=amount,
        period_start=start,
        period_end=end,
    )
    invoice = InvoicePosted(
        **envelope,
        event_id=f"E-{CUSTOMER_ID}-invoice",
        occurred_at=when + timedelta(days=1),
        invoice_id=f"INV-{CUSTOMER_ID}",
        subscription_id=order.subscription_id,
        issued_on=start,
        due_date=start + timedelta(days=30),
        total_minor=amount,
        lines=(invoice_line,),
    )
    emissions = (
        Emission("master", "customer", CUSTOMER_ID, customer),
        *(Emission("event", e.event_type, CUSTOMER_ID, e) for e in (quote, order, invoice)),
    )
    return HeldDeal(
        quote.quote_id, order.order_id, order.subscription_id, invoice.invoice_id, emissions, (order, invoice)
    )


def with_deal(simulation: Simulation, deal: HeldDeal, approved: bool) -> tuple[Simulation, Simulation]:
    """Return what to publish first (the simulation, the customer and the quote) and the ground truth.

    The ground truth's simulation has the whole deal in its emissions and the deal approved or held.
    """
    first = replace(simulation, emissions=(*simulation.emissions, *deal.emissions[:2]))
    emissions = (*simulation.emissions, *deal.emissions)
    truth = expect(emissions, approved_quotes={deal.quote_id} if approved else ())
    return first, replace(simulation, emissions=emissions, summary={**simulation.summary, **truth})


def book(settings: Settings, catalog: TopicCatalog, deal: HeldDeal) -> None:
    """Publish the deal's order and invoice (through the SDK, as the CRM and billing would)."""
    with Publisher(settings, catalog=catalog) as publisher:
        for event in deal.booking:
            publisher.publish(event)


def waiting(
    ledger: str, deal: HeldDeal, kinds: frozenset[str] = frozenset()
) -> tuple[QueueRow, list[Hold]] | None:
    """Return the deal's queue item once it is open and holds at least the ``kinds`` of records."""
    with connect(ledger, autocommit=True) as connection:
        store = QueueStore(connection, ExceptionQueueSettings())
        found = store.rows(Filters(reason="DISCOUNT_NOT_APPROVED"), datetime.now(UTC))
        rows = [row for row in found if row.quote_id == deal.quote_id and row.is_open]
        if not rows:
            return None
        holds = store.holds(rows[0].exception_key, waiting_only=True)
    return (rows[0], holds) if kinds <= {hold.event_type for hold in holds} else None


def approve(
    settings: Settings, catalog: TopicCatalog, row: QueueRow, level: int, max_discount_bp: int
) -> DiscountApproved:
    """Publish the deal desk's approval of ``row`` (as the CRM would, through the SDK)."""
    event = DiscountApproved(
        event_id=str(uuid.uuid4()),
        occurred_at=datetime.now(UTC),
        source="crm",
        customer_id=row.customer_id,
        legal_entity=row.legal_entity,
        correlation_id=row.correlation_id,
        approval_id=str(uuid.uuid4()),
        quote_id=row.quote_id or "",
        approver=APPROVER,
        level=level,
        max_discount_bp=max_discount_bp,
        exception_id=row.exception_id,
        note="demo: approved by a second person at the deal desk",
    )
    with Publisher(settings, catalog=catalog) as publisher:
        publisher.publish(event).result(timeout=60)
    return event
