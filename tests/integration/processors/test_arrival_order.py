"""Arrival order as a property, on the real broker: one subscription's events in any order, any cut.

DOMAIN.md: the ledger must end the same whatever order a subscription's events arrive in. The same
six events (order, invoice, amendment and schedule adjustment from mid-month dates, a services
milestone without an amount naming its order line, a payment) are published for one customer per
arrival order, in two chunks (the first processed before the second is published: a batch cut).
Every customer's ledger (journal lines by month and account, to the minor unit) must equal the
one the rules give in event-time order, and nothing may be dead-lettered. The products carry GL
accounts of their own, so the accounts are checked too.
"""

from __future__ import annotations

import functools
import random
from collections import defaultdict
from collections.abc import Callable
from datetime import date, timedelta

import pytest

from processors.rules.recognition import product_accounts
from processors.stages.accounting import Transition, recognise
from schemas.models import EventEnvelope, JournalEntry, LineKind
from tests.integration.processors.harness import Harness, WorkerProcess, wait_until
from tests.unit.processors import factories as f

WAIT_S = 90.0
ORDERS = 8
PRODUCTS = (
    f.product("P1", revenue_account="4050", deferred_account="2450"),
    f.product("P-ONB", revenue_kind=LineKind.SERVICES, revenue_account="4060", deferred_account="2460"),
)
Ledger = dict[tuple[str, str], int]


def story(customer: str) -> list[EventEnvelope]:
    """The subscription's events in event-time order (ids and keys of ``customer``'s own)."""
    subscription = f"S-{customer}"

    def env(name: str, days: int) -> dict[str, object]:
        return {
            "event_id": f"{customer}-{name}",
            "customer_id": customer,
            "occurred_at": f.T0 + timedelta(days),
        }

    services = f.order_line("OL2", product_id="P-ONB", kind=LineKind.SERVICES, amount_minor=5_000)
    invoice_lines = (
        # 997 over a period that starts and ends mid-month: the re-spreads move minor units.
        f.invoice_line("IL1", amount_minor=997, period_start=date(2024, 1, 10), period_end=date(2024, 5, 17)),
        f.invoice_line("IL2", kind=LineKind.SERVICES, product_id="P-ONB", amount_minor=5_000),
    )
    invoice_id = f"INV-{customer}"
    return [
        f.order(
            lines=(f.order_line("OL1"), services), envelope=env("order", 0), subscription_id=subscription
        ),
        f.invoice(
            lines=invoice_lines,
            envelope=env("invoice", 1),
            subscription_id=subscription,
            invoice_id=invoice_id,
        ),
        f.payment(3_000, envelope=env("payment", 10), invoice_id=invoice_id, payment_id=f"PAY-{customer}"),
        f.amendment(
            effective_date=date(2024, 2, 13),
            lines=(f.order_line("OL1"),),
            envelope=env("amendment", 20),
            subscription_id=subscription,
        ),
        f.activation(
            milestone_amount_minor=None,
            line_id="OL2",
            envelope=env("milestone", 30),
            subscription_id=subscription,
        ),
        f.adjustment(
            effective_date=date(2024, 3, 7), envelope=env("adjustment", 40), subscription_id=subscription
        ),
    ]


def expected_ledger(events: list[EventEnvelope]) -> Ledger:
    """The ledger the rules give for ``events`` applied one by one in event-time order."""
    products = {product.product_id: product for product in PRODUCTS}
    accounts_of = product_accounts(products.get)
    data: dict[tuple[str, bytes], bytes] = {}
    months: defaultdict[tuple[str, str], int] = defaultdict(int)
    for event in events:
        out = Transition()
        recognise(event, lambda table, key: data.get((table, key)), out, accounts_of)
        data.update({(table, key): value for table, key, value in out.updates})
        for command in out.commands:
            if isinstance(command.payload, JournalEntry):
                month = command.payload.posting_date.strftime("%Y-%m")
                for line in command.payload.lines:
                    months[month, line.account] += line.credit_minor - line.debit_minor
    return {key: amount for key, amount in months.items() if amount}


def ledgers(harness: Harness) -> dict[str, Ledger]:
    """Each customer's ledger from the command topic (a repeated command id counts once)."""
    seen: set[str] = set()
    months: defaultdict[str, defaultdict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
    for command in harness.commands():
        if command.command_id in seen or not isinstance(command.payload, JournalEntry):
            continue
        seen.add(command.command_id)
        month = command.payload.posting_date.strftime("%Y-%m")
        for line in command.payload.lines:
            months[command.customer_id][month, line.account] += line.credit_minor - line.debit_minor
    return {customer: {k: v for k, v in ledger.items() if v} for customer, ledger in months.items()}


def arrival_orders(count: int, size: int) -> list[tuple[list[int], int]]:
    """Event-time order, its reverse, then random permutations; each with a cut (deterministic)."""
    rng = random.Random(17)
    orders = [list(range(size)), list(reversed(range(size)))]
    while len(orders) < count:
        order = rng.sample(range(size), size)
        if order not in orders:
            orders.append(order)
    return [(order, rng.randint(1, size - 1)) for order in orders]


@pytest.fixture(scope="module")
def worker(harness: Harness, worker_factory: Callable[..., WorkerProcess]) -> WorkerProcess:
    harness.publish_master(*PRODUCTS, f.legal_entity("LE-DE"))
    return worker_factory(harness.catalog.namespace, "arrival").wait_ready()


def passed(worker: WorkerProcess) -> float:
    return worker.metric("revstream_processor_records_total", {"stage": "dedupe", "outcome": "passed"})


def reached(worker: WorkerProcess, target: float) -> bool:
    return passed(worker) >= target


def test_the_ledger_ends_the_same_whatever_order_a_subscriptions_events_arrive_in(
    harness: Harness, worker: WorkerProcess
):
    reference = expected_ledger(story("REF"))
    without_respreads = expected_ledger(
        [e for e in story("REF") if e.event_type.startswith(("order", "inv", "pay"))]
    )
    assert reference != without_respreads, "the re-spreads must change something, or the test proves nothing"
    assert {account for _, account in reference} >= {"2450", "4050", "2460", "4060"}

    customers = []
    for number, (order, cut) in enumerate(arrival_orders(ORDERS, 6)):
        customer = f"ARR{number}"
        customers.append(customer)
        harness.publish_master(f.customer(customer))
        events = story(customer)
        target = passed(worker) + cut
        harness.publish(*(events[i] for i in order[:cut]))
        # The first chunk is processed (or parked) before the rest is even published: a batch cut.
        first_chunk = functools.partial(reached, worker, target)
        wait_until(first_chunk, WAIT_S, f"the first {cut} events of {order}", worker)
        harness.publish(*(events[i] for i in order[cut:]))

    def settled() -> bool:
        found = ledgers(harness)
        return all(found.get(customer) == reference for customer in customers)

    try:
        wait_until(settled, WAIT_S, "every arrival order to give the event-time ledger", worker)
    finally:
        found = ledgers(harness)
        differing = {c: found.get(c) for c in customers if found.get(c) != reference}
        assert not differing, f"expected {reference}, got {differing}"
    for stage in ("decode", "dedupe", "enrich", "recognise", "reconcile"):
        assert harness.dead_letters(stage) == [], stage
