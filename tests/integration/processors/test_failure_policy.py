"""The failure policy end to end: whose fault decides between a dead letter and a stopped worker.

- The infrastructure's fault (here: the schema registry unreachable) is retried with back-off,
  then the worker process really exits, non-zero, with a one-line reason; nothing is
  dead-lettered, and a worker started once the cause is gone processes every record.
- A reference-data record (product) that does not decode is the record's fault: it goes to the
  decode dead-letter topic, once, whichever worker reads it.
"""

from __future__ import annotations

from collections.abc import Callable

from streams.deadletter import DeadLetter
from streams.stack import free_port
from streams.wire import frame
from tests.integration.processors.harness import Harness, WorkerProcess, wait_until
from tests.unit.processors import factories as f

WAIT_S = 120.0


def test_an_unreachable_registry_stops_the_worker_in_one_line_and_loses_nothing(
    harness: Harness, worker_factory: Callable[..., WorkerProcess]
):
    customer = "C-REGISTRY"
    harness.publish_master(f.customer(customer), f.product("P1"), f.legal_entity("LE-DE"))
    invoice = f.invoice(envelope={"event_id": "EV-REGISTRY", "customer_id": customer}, invoice_id="INV-REG")
    harness.publish(invoice)

    nowhere = f"http://127.0.0.1:{free_port()}"
    broken = worker_factory(
        harness.catalog.namespace,
        "no-registry",
        REVSTREAM_REGISTRY_URL=nowhere,
        REVSTREAM_WORKER_FAILURE_ATTEMPTS="2",
    )
    assert broken.process is not None
    returncode = broken.process.wait(WAIT_S)

    assert returncode == 1, broken.log_tail()
    last = broken.log_tail(1)
    assert last.startswith("revstream: error: ") and "\n" not in last, broken.log_tail()
    assert "Traceback" not in broken.log_path.read_text()
    assert harness.dead_letters("decode") == [] and harness.dead_letters("enrich") == []

    healthy = worker_factory(harness.catalog.namespace, "registry-back").wait_ready()
    wait_until(
        lambda: [c for c in harness.commands() if c.source_event_id == invoice.event_id],
        WAIT_S,
        "the invoice's commands once the registry is reachable",
        healthy,
    )
    healthy.stop()


def test_an_unreadable_product_goes_to_the_decode_dead_letter_topic_once(
    harness: Harness, worker_factory: Callable[..., WorkerProcess]
):
    topic = harness.catalog.master_topic("product")
    harness.publish_raw(topic, b"P-BROKEN", frame(1, b"\xff\xfe not avro"))
    one = worker_factory(harness.catalog.namespace, "reader-1").wait_ready()
    two = worker_factory(harness.catalog.namespace, "reader-2").wait_ready()

    def unreadable() -> list[DeadLetter]:
        return [
            letter
            for letter in harness.dead_letters("decode")
            if letter.source.key == b"P-BROKEN" and letter.failure.reason_code == "UNREADABLE_MASTER_DATA"
        ]

    (letter,) = wait_until(unreadable, WAIT_S, "the product's dead letter", two)
    assert letter.source.topic == topic
    one.stop()
    two.stop()
    assert len(unreadable()) == 1
