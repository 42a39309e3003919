"""Hostile input on the topics, with a worker running: every record ends somewhere, the worker lives.

Issue 12: an oversized record crash-looped the worker (its dead-letter copy could not be produced),
a null-keyed customer record was dropped as "older", figures beyond a long failed the batch, and an
invoice with a reversed line period was half posted. Each record here is pushed as a hostile
producer would (raw bytes, a producer allowed larger messages than the worker's), and the test
asserts where each one ended.
"""

from __future__ import annotations

import hashlib
import io
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import fastavro
import pytest

from processors.stages.retry import Parked, park_headers
from schemas.loader import schema_by_stem
from streams.clients import producer as make_producer
from streams.deadletter import MAX_RECORD_BYTES, VALUE_PREFIX_BYTES, DeadLetter
from streams.wire import frame
from tests.integration.processors.harness import Harness, WorkerProcess, headers_of, wait_until
from tests.integration.sink.helpers import count, new_ledger, run_sink
from tests.unit.processors import factories as f

WAIT_S = 60.0
BIG = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def worker(harness: Harness, worker_factory: Callable[..., WorkerProcess]) -> Iterator[WorkerProcess]:
    harness.publish_master(f.product("P1"), f.legal_entity("LE-DE"))
    yield worker_factory(harness.catalog.namespace, REVSTREAM_WORKER_MASTER_RETRY_ATTEMPTS="2").wait_ready()


def _big_producer(harness: Harness) -> Any:
    # What a hostile or misconfigured producer does: allow itself more than the worker's producer.
    return make_producer(harness.settings.kafka, **{"message.max.bytes": 4 * BIG})


def _letters(harness: Harness, stage: str, key: bytes) -> Callable[[], list[DeadLetter]]:
    return lambda: [letter for letter in harness.dead_letters(stage) if letter.source.key == key]


def test_an_oversized_record_is_dead_lettered_cut_to_a_prefix_with_its_digest(
    harness: Harness, worker: WorkerProcess
) -> None:
    key = f"C-{uuid.uuid4().hex[:8]}".encode()
    topic = harness.catalog.event_topic("invoice_posted")
    value = bytes(range(256)) * (BIG // 256)
    producer = _big_producer(harness)
    producer.produce(topic, key=key, value=value, headers=[("trace", b"t-1")])
    assert producer.flush(30) == 0

    (letter,) = wait_until(_letters(harness, "decode", key), WAIT_S, "the oversized dead letter", worker)

    assert letter.failure.reason_code == "RECORD_TOO_LARGE"
    assert letter.source.value == value[:VALUE_PREFIX_BYTES]
    assert letter.source.topic == topic and letter.source.offset >= 0
    assert letter.source.headers == (("trace", b"t-1"),)
    assert f"of {len(value)} value bytes" in letter.failure.error_message
    assert str(MAX_RECORD_BYTES) in letter.failure.error_message
    (raw,) = [m for m in harness.read(harness.catalog.deadletter_topic("decode")) if m.key() == key]
    context = dict(headers_of(raw))
    assert context["revstream.dlq.value_sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert context["revstream.dlq.value_bytes"] == str(len(value)).encode()
    assert context["revstream.dlq.truncated"] == b"true"
    assert worker.process is not None and worker.process.poll() is None


def test_an_oversized_record_on_the_retry_topic_is_dead_lettered_not_parked_again(
    harness: Harness, worker: WorkerProcess
) -> None:
    key = f"C-{uuid.uuid4().hex[:8]}".encode()
    origin = harness.catalog.event_topic("usage_recorded")
    due_now = int(time.time() * 1000)
    parked = Parked(1, due_now, due_now, ("customer:C-x",), "MASTER_DATA_MISSING", origin, 0, 7)
    producer = _big_producer(harness)
    producer.produce(
        harness.catalog.retry_topic, key=key, value=b"\x00" * BIG, headers=park_headers([], parked)
    )
    assert producer.flush(30) == 0

    (letter,) = wait_until(_letters(harness, "enrich", key), WAIT_S, "the retry record's dead letter", worker)

    assert letter.failure.reason_code == "RECORD_TOO_LARGE"
    assert (letter.source.topic, letter.source.partition, letter.source.offset) == (origin, 0, 7)
    assert letter.source.value == b"\x00" * VALUE_PREFIX_BYTES
    assert worker.process is not None and worker.process.poll() is None


# -- every kind of garbage at once ---------------------------------------------------------------------


@dataclass
class Garbage:
    """One hostile record and where it must end."""

    name: str
    topic: str
    key: bytes | None
    value: bytes | None
    expect: tuple[str, str]
    """(``dlq``, stage:reason), (``exception``, reason) or (``processed``, what is emitted)."""
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    event_id: str | None = None


def _menu(harness: Harness, customer: str) -> list[Garbage]:
    catalog, serde = harness.catalog, harness.serde
    invoices, payments = catalog.event_topic("invoice_posted"), catalog.event_topic("payment_received")
    usage_topic, customers = catalog.event_topic("usage_recorded"), catalog.master_topic("customer")
    tag = uuid.uuid4().hex[:8]

    def event(model: Any) -> bytes:
        return serde.serialize(catalog.event_topic(model.event_type), model)

    def env(name: str) -> dict[str, Any]:
        return {"event_id": f"E-{name}-{tag}", "customer_id": customer}

    valid_payment = serde.serialize(payments, f.payment(envelope=env("template")))
    wrong_types = f.payment(envelope=env("wrong-types")).to_avro() | {"currency": "euro"}
    body = io.BytesIO()
    fastavro.schemaless_writer(body, schema_by_stem("payment_received").parsed, wrong_types)
    huge_payment = f.payment(envelope=env("huge"), amount_minor=2**63 - 1)
    priced = f.invoice(
        lines=(f.usage_line(quantity=1, unit_price_minor=2**62),),
        invoice_id=f"INV-{tag}",
        envelope=env("priced"),
    )
    reversed_line = f.invoice_line(period_start=date(2024, 2, 1), period_end=date(2024, 1, 1))
    reversed_invoice = f.invoice(lines=(reversed_line,), invoice_id=f"INV-R-{tag}", envelope=env("reversed"))
    usage = f.usage(f"E-usage-{tag}", quantity=10, envelope={"customer_id": customer})
    order = f.order(envelope=env("binary-key"))
    key = customer.encode()
    menu = [
        Garbage("corrupt bytes", invoices, key, b"\x00\x00garbage", ("dlq", "decode:CORRUPT_RECORD")),
        Garbage("not even framed", invoices, key, b"hello", ("dlq", "decode:CORRUPT_RECORD")),
        Garbage(
            "unknown schema id",
            invoices,
            key,
            frame(1_999_999_999, b"\x02"),
            ("dlq", "decode:UNKNOWN_SCHEMA_ID"),
        ),
        Garbage("empty value", invoices, key, b"", ("dlq", "decode:CORRUPT_RECORD")),
        Garbage("tombstone", invoices, key, None, ("dlq", "decode:CORRUPT_RECORD")),
        Garbage(
            "wrong types",
            payments,
            key,
            valid_payment[:5] + body.getvalue(),
            ("dlq", "decode:INVALID_RECORD"),
        ),
        Garbage("oversized value", invoices, key, b"\x00" * BIG, ("dlq", "decode:RECORD_TOO_LARGE")),
        Garbage(
            "huge headers",
            payments,
            key,
            valid_payment,
            ("dlq", "decode:RECORD_TOO_LARGE"),
            headers=[(f"h{i}", b"x" * 100_000) for i in range(12)],
        ),
        Garbage(
            "a payment of 2^63-1",
            payments,
            key,
            event(huge_payment),
            ("exception", "AMOUNT_OUT_OF_RANGE"),
            event_id=huge_payment.event_id,
        ),
        Garbage(
            "a usage line priced 2^62",
            invoices,
            key,
            event(priced),
            ("exception", "AMOUNT_OUT_OF_RANGE"),
            event_id=priced.event_id,
        ),
        Garbage(
            "its usage of 10", usage_topic, key, event(usage), ("processed", ""), event_id=usage.event_id
        ),
        Garbage(
            "a reversed line period",
            invoices,
            key,
            event(reversed_invoice),
            ("dlq", "policy:INVALID_PERIOD"),
            event_id=reversed_invoice.event_id,
        ),
        Garbage(
            "an event under a binary key",
            catalog.event_topic("order_accepted"),
            b"\xff\xfe\x00binary",
            event(order),
            ("processed", "SUBSCRIPTION"),
            event_id=order.event_id,
        ),
        Garbage(
            "a customer with a null key",
            customers,
            None,
            serde.serialize(customers, f.customer(f"C-null-{tag}")),
            ("dlq", "decode:INVALID_MASTER_KEY"),
        ),
        Garbage(
            "a customer under a binary key",
            customers,
            b"\xff\xfe",
            serde.serialize(customers, f.customer(f"C-bin-{tag}")),
            ("dlq", "decode:INVALID_MASTER_KEY"),
        ),
        Garbage(
            "an oversized customer record",
            customers,
            f"C-big-{tag}".encode(),
            b"\x00" * BIG,
            ("dlq", "decode:RECORD_TOO_LARGE"),
        ),
        Garbage(
            "a customer record of garbage",
            customers,
            f"C-garbage-{tag}".encode(),
            b"\x00\x00\x00\x00\x01junk",
            ("dlq", "decode:UNREADABLE_MASTER_DATA"),
        ),
    ]
    return menu


def _dead_letters(worker: WorkerProcess) -> float:
    text = worker.metrics() or ""
    prefix = "revstream_processor_dead_letters_total{"
    return sum(float(line.rpartition(" ")[2]) for line in text.splitlines() if line.startswith(prefix))


def _recognised(worker: WorkerProcess, outcome: str) -> float:
    return worker.metric("revstream_processor_records_total", {"stage": "recognise", "outcome": outcome})


def _counts(worker: WorkerProcess) -> tuple[float, float, float]:
    """Dead letters, records processed (outputs emitted), records that raised business exceptions."""
    return _dead_letters(worker), _recognised(worker, "passed"), _recognised(worker, "exception")


def test_every_kind_of_garbage_ends_where_it_belongs_and_the_worker_lives(
    harness: Harness, worker: WorkerProcess
) -> None:
    customer = f"C-{uuid.uuid4().hex[:8]}"
    applied = worker.metric("revstream_processor_records_total", {"stage": "master", "outcome": "applied"})
    harness.publish_master(f.customer(customer))
    wait_until(
        lambda: (
            worker.metric("revstream_processor_records_total", {"stage": "master", "outcome": "applied"})
            > applied
        ),
        WAIT_S,
        "the customer record",
        worker,
    )
    menu = _menu(harness, customer)
    before = _counts(worker)
    producer = _big_producer(harness)
    for garbage in menu:
        producer.produce(garbage.topic, key=garbage.key, value=garbage.value, headers=garbage.headers or None)
    assert producer.flush(30) == 0

    def settled() -> tuple[float, ...] | None:
        now = tuple(a - b for a, b in zip(_counts(worker), before, strict=True))
        return now if sum(now) >= len(menu) else None

    dead, passed, raised = wait_until(settled, WAIT_S, "every garbage record to be settled", worker)

    # Count in = processed + dead letters + exceptions, from the worker's own metrics.
    assert (dead, passed, raised) == (
        sum(1 for g in menu if g.expect[0] == "dlq"),
        sum(1 for g in menu if g.expect[0] == "processed"),
        sum(1 for g in menu if g.expect[0] == "exception"),
    )
    assert len(menu) == dead + passed + raised

    # And per record, from the topics, as finance and operators would look.
    letters = [
        letter
        for stage in ("decode", "policy")
        for letter in harness.dead_letters(stage)
        if letter.source.key in {customer.encode(), None, b"\xff\xfe"}
        or letter.source.key.startswith((b"C-garbage", b"C-big"))
    ]
    exceptions = harness.exceptions()
    commands = harness.commands()
    for garbage in menu:
        kind, what = garbage.expect
        if kind == "dlq":
            stage, reason = what.split(":")
            found = [
                letter
                for letter in letters
                if letter.source.topic == garbage.topic
                and letter.failure.stage == stage
                and letter.failure.reason_code == reason
                and letter.source.key == (garbage.key[:1024] if garbage.key else garbage.key)
            ]
            assert found, f"{garbage.name}: no {what} dead letter"
        elif kind == "exception":
            raised_here = {e.reason_code.value for e in exceptions if e.source_event_id == garbage.event_id}
            assert raised_here == {what}, garbage.name
            assert not [c for c in commands if c.source_event_id == garbage.event_id], garbage.name
        else:
            emitted = [c.command_type.value for c in commands if c.source_event_id == garbage.event_id]
            assert emitted == ([what] if what else []), garbage.name
    assert worker.process is not None and worker.process.poll() is None, worker.log_tail()

    # The sink over what the worker emitted: nothing of a refused event reaches the ledger, nothing
    # is half posted (the sink dead-letters nothing), and what was processed lands.
    ledger = new_ledger(harness.settings)
    sink = run_sink(harness.settings, ledger, harness.catalog.commands_topic, f"sink-{uuid.uuid4().hex[:8]}")
    assert sink.stats.dead_lettered == 0
    refused = [g.event_id for g in menu if g.event_id is not None and g.expect[0] != "processed"]
    quoted = ", ".join(f"'{event_id}'" for event_id in refused)
    assert count(ledger, "applied_commands", f"source_event_id IN ({quoted})") == 0
    assert count(ledger, "subscriptions", f"customer_id = '{customer}'") == 1
