"""A busy reconciliation key on a running worker: 50,000 usage events of one period, one invoice.

The reconciliation state once kept every usage event id of its key; at ~20,000 events the state
value (and its changelog record) outgrew the broker's largest message and the worker stopped.
This publishes 50,000 usage events under one (subscription, metric, month) with the SDK's bulk
path, then the invoice, and checks that the worker keeps running, raises the exact difference,
and writes small state. Takes ~20 s on the embedded stack (most of it the worker processing).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

from confluent_kafka.admin import AdminClient

from revstream.sdk import Publisher
from schemas.models import BusinessException
from tests.integration.processors.harness import Harness, WorkerProcess, wait_until
from tests.unit.processors import factories as f

EVENTS = 50_000
UNDER_BILLED = 1_234
UNIT_PRICE_MINOR = 3
WAIT_S = 240.0


def test_fifty_thousand_usage_events_of_one_key_keep_the_worker_running_with_small_state(
    harness: Harness, worker_factory: Callable[..., WorkerProcess], admin: AdminClient
) -> None:
    customer = f"C-{uuid.uuid4().hex[:8]}"
    subscription = f"S-{customer}"
    harness.publish_master(
        f.product("P1"), f.product("P2", currency="EUR"), f.legal_entity("LE-DE"), f.customer(customer)
    )
    worker = worker_factory(harness.catalog.namespace).wait_ready()

    template = f.usage("U", quantity=1, envelope={"customer_id": customer}, subscription_id=subscription)
    usages = [
        template.model_copy(update={"event_id": f"U-{customer}-{i}", "quantity": 1 + i % 5})
        for i in range(EVENTS)
    ]
    metered = sum(usage.quantity for usage in usages)
    invoice = f.invoice(
        lines=(f.usage_line(quantity=metered - UNDER_BILLED, unit_price_minor=UNIT_PRICE_MINOR),),
        envelope={"event_id": f"INV-EV-{customer}", "customer_id": customer},
        invoice_id=f"INV-{customer}",
        subscription_id=subscription,
    )
    with Publisher(harness.settings, catalog=harness.catalog) as publisher:
        for usage in usages:
            publisher.send(usage)
        publisher.send(invoice)

    def standing() -> BusinessException | None:
        # One customer, one partition: the topic holds the revisions in the order they were raised.
        found = [e for e in harness.exceptions() if e.subscription_id == subscription]
        return found[-1] if found and found[-1].quantity_difference == UNDER_BILLED else None

    mismatch = wait_until(standing, WAIT_S, "the standing mismatch", worker)
    assert mismatch.reason_code.value == "USAGE_BILLING_MISMATCH"
    assert (mismatch.quantity_difference, mismatch.amount_difference_minor) == (
        UNDER_BILLED,
        UNDER_BILLED * UNIT_PRICE_MINOR,
    )
    assert (mismatch.metric, mismatch.period, mismatch.currency) == ("api_calls", "2024-01", "EUR")
    assert worker.process is not None and worker.process.poll() is None, worker.log_tail()
    passed = worker.metric("revstream_processor_records_total", {"stage": "recognise", "outcome": "passed"})
    assert passed >= EVENTS + 1

    # The state of the key stays small whatever the usage: every changelog record of it is.
    (changelog,) = [
        name
        for name in admin.list_topics(timeout=10).topics
        if name.startswith(harness.catalog.namespace) and name.endswith("-reconcile-changelog")
    ]
    values = [m.value() or b"" for m in harness.read(changelog) if subscription.encode() in (m.key() or b"")]
    assert values, "the key's state was written to its changelog"
    assert max(len(value) for value in values) < 2_000
