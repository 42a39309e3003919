"""Bounded memory on the real broker: parked records past the limit wait on the retry topic.

With ``PARKED_IN_MEMORY_MAX`` small and a long retry back-off, a master-data outage parks more
events than the worker may hold in memory: it pauses the retry topic's partitions (the metric says
so) instead of reading them all back, keeps running, and processes every event once the missing
customer arrives. A forged retry record due in ten years is retried within the longest back-off.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from processors.stages.retry import Parked, park_headers
from tests.integration.processors.harness import Harness, WorkerProcess, wait_until
from tests.unit.processors import factories as f

WAIT_S = 90.0
EVENTS = 40


def test_a_master_data_outage_pauses_the_retry_topic_instead_of_filling_memory(
    harness: Harness, worker_factory: Callable[..., WorkerProcess]
):
    customer = "C-OUTAGE"
    harness.publish_master(f.product("P1"), f.legal_entity("LE-DE"))
    invoices = [
        f.invoice(envelope={"event_id": f"EV-OUT-{i}", "customer_id": customer}, invoice_id=f"INV-OUT-{i}")
        for i in range(EVENTS)
    ]
    harness.publish(*invoices)
    worker = worker_factory(
        harness.catalog.namespace,
        "bounded",
        REVSTREAM_WORKER_PARKED_IN_MEMORY_MAX="5",
        # At most 10 records a fetch: the limit can be overshot by one fetch, not by the whole topic.
        REVSTREAM_WORKER_BATCH_SIZE="10",
        REVSTREAM_WORKER_MASTER_RETRY_ATTEMPTS="100",
        REVSTREAM_WORKER_MASTER_RETRY_BACKOFF="4",
        REVSTREAM_WORKER_MASTER_RETRY_BACKOFF_MAX="4",
    ).wait_ready()

    wait_until(
        lambda: worker.metric("revstream_processor_paused_partitions") > 0,
        WAIT_S,
        "the retry topic to be paused",
        worker,
    )
    assert worker.metric("revstream_processor_retry_waiting") <= 5 + 10

    harness.publish_master(f.customer(customer))
    wanted = {invoice.event_id for invoice in invoices}
    wait_until(
        lambda: wanted <= {c.source_event_id for c in harness.commands()},
        WAIT_S,
        "every invoice's commands after the outage",
        worker,
    )
    wait_until(
        lambda: worker.metric("revstream_processor_paused_partitions") == 0,
        WAIT_S,
        "the retry topic to be resumed",
        worker,
    )


def test_a_forged_retry_record_due_in_ten_years_is_retried_within_the_longest_back_off(
    harness: Harness, worker_factory: Callable[..., WorkerProcess]
):
    customer = "C-FORGED"
    harness.publish_master(f.customer(customer), f.product("P1"), f.legal_entity("LE-DE"))
    invoice = f.invoice(envelope={"event_id": "EV-FORGED", "customer_id": customer}, invoice_id="INV-FORGED")
    topic = harness.catalog.event_topic("invoice_posted")
    now_ms = int(time.time() * 1000)
    forged = Parked(
        1, now_ms + 10 * 365 * 86_400_000, now_ms, ("customer:x",), "MASTER_DATA_MISSING", topic, 0, 0
    )
    harness.publish_raw(
        harness.catalog.retry_topic,
        customer.encode(),
        harness.serde.serialize(topic, invoice),
        park_headers([], forged),
    )
    worker = worker_factory(
        harness.catalog.namespace, "forged", REVSTREAM_WORKER_MASTER_RETRY_BACKOFF_MAX="2"
    ).wait_ready()
    wait_until(
        lambda: [c for c in harness.commands() if c.source_event_id == invoice.event_id],
        WAIT_S,
        "the forged record's retry",
        worker,
    )
