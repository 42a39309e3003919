"""Every stage of a running worker, each dead-letter and exception reason, on the embedded broker.

One worker runs for the whole module; each test works with customers and event ids of its own and
reads the outputs back from the topics as any consumer would.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from typing import Any

import pytest

from processors.rules.commands import invoice_posted_commands
from processors.rules.recognition import product_accounts
from schemas.models import (
    BusinessException,
    CustomerStatus,
    ErpCommand,
    JournalEntry,
    LineKind,
    RevenueSchedule,
)
from streams.deadletter import DeadLetter
from streams.wire import frame
from tests.integration.processors.harness import Harness, WorkerProcess, wait_until
from tests.unit.processors import factories as f

WAIT_S = 60.0
PRODUCTS = {
    "P1": f.product("P1"),
    "P2": f.product(
        "P2", revenue_kind=LineKind.SERVICES, revenue_account="4015", deferred_account="2415", currency="EUR"
    ),
}


@pytest.fixture(scope="module")
def worker(harness: Harness, worker_factory: Callable[..., WorkerProcess]) -> Iterator[WorkerProcess]:
    harness.publish_master(*PRODUCTS.values(), f.legal_entity("LE-DE"))
    worker = worker_factory(
        harness.catalog.namespace,
        REVSTREAM_WORKER_MASTER_RETRY_ATTEMPTS="5",
        REVSTREAM_WORKER_MASTER_RETRY_BACKOFF="0.3",
        REVSTREAM_WORKER_MASTER_RETRY_BACKOFF_MAX="1.5",
    ).wait_ready()
    yield worker


def new_customer(harness: Harness, publish: bool = True, **overrides: Any) -> str:
    customer_id = f"C-{uuid.uuid4().hex[:8]}"
    if publish:
        harness.publish_master(f.customer(customer_id, **overrides))
    return customer_id


def env(customer_id: str, event_id: str | None = None) -> dict[str, Any]:
    return {"event_id": event_id or f"E-{uuid.uuid4().hex[:10]}", "customer_id": customer_id}


def for_event(records: list[Any], event_id: str) -> list[Any]:
    return [record for record in records if record.source_event_id == event_id]


def dead_letter_for(harness: Harness, stage: str, key: bytes) -> Callable[[], list[DeadLetter]]:
    return lambda: [letter for letter in harness.dead_letters(stage) if letter.source.key == key]


# -- decode ------------------------------------------------------------------------------------


def test_corrupt_bytes_are_dead_lettered_untouched_with_their_context(
    harness: Harness, worker: WorkerProcess
):
    key = f"C-{uuid.uuid4().hex[:8]}".encode()
    topic = harness.catalog.event_topic("invoice_posted")
    harness.publish_raw(topic, key, b"this is not avro", headers=[("trace", b"t-1")])

    (letter,) = wait_until(dead_letter_for(harness, "decode", key), WAIT_S, "the decode dead letter", worker)

    assert letter.source.value == b"this is not avro"
    assert letter.source.headers == (("trace", b"t-1"),)
    assert letter.source.topic == topic and letter.source.offset >= 0
    assert letter.failure.stage == "decode"
    assert letter.failure.reason_code == "CORRUPT_RECORD"
    assert letter.failure.consumer_group == f"{harness.catalog.namespace}-processors"
    assert "CorruptRecordError" in letter.failure.error_class


def test_unknown_schema_id_is_dead_lettered(harness: Harness, worker: WorkerProcess):
    key = f"C-{uuid.uuid4().hex[:8]}".encode()
    value = frame(2_000_000_000, b"\x02\x04\x06")
    harness.publish_raw(harness.catalog.event_topic("usage_recorded"), key, value)

    (letter,) = wait_until(dead_letter_for(harness, "decode", key), WAIT_S, "the decode dead letter", worker)

    assert letter.failure.reason_code == "UNKNOWN_SCHEMA_ID"
    assert letter.source.value == value


# -- dedupe ------------------------------------------------------------------------------------


def test_an_exact_repeat_is_dropped_and_counted(harness: Harness, worker: WorkerProcess):
    customer = new_customer(harness)
    invoice = f.invoice(envelope=env(customer), invoice_id=f"INV-{customer}")
    dropped_before = worker.metric("revstream_processor_duplicates_dropped_total")

    harness.publish(invoice, invoice, invoice)

    wait_until(
        lambda: worker.metric("revstream_processor_duplicates_dropped_total") >= dropped_before + 2,
        WAIT_S,
        "two dropped duplicates",
        worker,
    )
    commands = for_event(harness.commands(), invoice.event_id)
    assert len(commands) == len(invoice_posted_commands(invoice))
    assert len({command.command_id for command in commands}) == len(commands)


def test_same_id_with_another_payload_is_a_conflict_and_the_first_stands(
    harness: Harness, worker: WorkerProcess
):
    customer = new_customer(harness)
    first = f.invoice(envelope=env(customer), invoice_id=f"INV-{customer}")
    changed = first.model_copy(update={"due_date": date(2024, 3, 1)})

    harness.publish(first, changed)

    (letter,) = wait_until(
        dead_letter_for(harness, "dedupe", customer.encode()), WAIT_S, "the conflict dead letter", worker
    )
    assert letter.failure.reason_code == "DUPLICATE_ID_CONFLICT"
    assert harness.serde.decode_model(letter.source.value or b"") == changed
    invoices = [c for c in for_event(harness.commands(), first.event_id) if c.command_type.value == "INVOICE"]
    assert [command.payload.due_date for command in invoices] == [first.due_date]


# -- policy ------------------------------------------------------------------------------------


def test_each_policy_reason_raises_its_exception_and_no_commands(harness: Harness, worker: WorkerProcess):
    eur = new_customer(harness)
    closed = new_customer(harness, status=CustomerStatus.CLOSED)
    cases = {
        "DISCOUNT_NOT_APPROVED": f.quote(
            lines=(f.quote_line(discount_bp=2500, net_price_minor=7500),), envelope=env(eur)
        ),
        "CURRENCY_MISMATCH": f.invoice(envelope=env(eur), invoice_id=f"INV-USD-{eur}", currency="USD"),
        "NEGATIVE_AMOUNT": f.payment(amount_minor=-500, envelope=env(eur), payment_id=f"PAY-{eur}"),
        "UNBALANCED_INVOICE": f.invoice(envelope=env(eur), invoice_id=f"INV-UB-{eur}", total_minor=1),
        "INACTIVE_CUSTOMER": f.order(envelope=env(closed)),
    }
    harness.publish(*cases.values())

    def raised() -> dict[str, list[BusinessException]] | None:
        found = harness.exceptions()
        by_case = {reason: for_event(found, event.event_id) for reason, event in cases.items()}
        return by_case if all(by_case.values()) else None

    by_case = wait_until(raised, WAIT_S, "an exception for every case", worker)
    for reason, exceptions in by_case.items():
        assert {e.reason_code.value for e in exceptions} == {reason}, reason
        assert all(e.customer_id == cases[reason].customer_id for e in exceptions)
    commands = harness.commands()
    assert not [c for c in commands if c.source_event_id in {e.event_id for e in cases.values()}]


# -- enrich ------------------------------------------------------------------------------------


def test_missing_master_data_parks_the_event_until_it_arrives(harness: Harness, worker: WorkerProcess):
    late = new_customer(harness, publish=False)
    invoice = f.invoice(envelope=env(late), invoice_id=f"INV-{late}")
    harness.publish(invoice)

    parked = wait_until(
        lambda: [m for m in harness.read(harness.catalog.retry_topic) if m.key() == late.encode()],
        WAIT_S,
        "the parked record",
        worker,
    )
    headers = dict(parked[0].headers() or [])
    assert headers["revstream.retry.attempt"] == b"1"
    assert headers["revstream.retry.missing"] == f"customer:{late}".encode()
    assert harness.read(harness.catalog.retry_topic)  # nothing waits in the source partition
    harness.publish_master(f.customer(late))

    commands = wait_until(
        lambda: for_event(harness.commands(), invoice.event_id),
        WAIT_S,
        "the parked invoice's commands",
        worker,
    )
    assert len(commands) == len(invoice_posted_commands(invoice))
    assert not dead_letter_for(harness, "enrich", late.encode())()


def test_master_data_that_never_arrives_is_dead_lettered_after_the_attempts(
    harness: Harness, worker: WorkerProcess
):
    missing = new_customer(harness, publish=False)
    invoice = f.invoice(envelope=env(missing), invoice_id=f"INV-{missing}")
    harness.publish(invoice)

    (letter,) = wait_until(
        dead_letter_for(harness, "enrich", missing.encode()), WAIT_S, "the enrich dead letter", worker
    )
    assert letter.failure.reason_code == "MASTER_DATA_MISSING"
    assert letter.failure.attempt == 5
    assert f"customer:{missing}" in letter.failure.error_message
    assert letter.source.topic == harness.catalog.event_topic("invoice_posted")
    assert not [k for k, _ in letter.source.headers if k.startswith("revstream.retry.")]
    assert harness.serde.decode_model(letter.source.value or b"") == invoice
    assert letter.failure.first_failure_at is not None and letter.failure.last_failure_at is not None
    assert letter.failure.first_failure_at < letter.failure.last_failure_at
    assert not for_event(harness.commands(), invoice.event_id)


def test_a_payment_waits_for_its_invoice(harness: Harness, worker: WorkerProcess):
    customer = new_customer(harness)
    invoice = f.invoice(envelope=env(customer), invoice_id=f"INV-{customer}")
    payment = f.payment(
        amount_minor=invoice.total_minor + 700, envelope=env(customer), invoice_id=invoice.invoice_id
    )
    harness.publish(payment)
    wait_until(
        lambda: [m for m in harness.read(harness.catalog.retry_topic) if m.key() == customer.encode()],
        WAIT_S,
        "the parked payment",
        worker,
    )
    harness.publish(invoice)

    (application,) = wait_until(
        lambda: [
            c
            for c in for_event(harness.commands(), payment.event_id)
            if c.command_type.value == "PAYMENT_APPLICATION"
        ],
        WAIT_S,
        "the payment application",
        worker,
    )
    assert application.payload.applied_minor == invoice.total_minor
    assert application.payload.excess_minor == 700


# -- reconcile ---------------------------------------------------------------------------------


def test_usage_billing_mismatch_is_raised_and_reopened_by_late_usage(harness: Harness, worker: WorkerProcess):
    customer = new_customer(harness)
    subscription = f"S-{customer}"
    usage = f.usage(
        f"U-{customer}-1", envelope={"customer_id": customer}, quantity=100, subscription_id=subscription
    )
    invoice = f.invoice(
        lines=(f.usage_line(quantity=90, unit_price_minor=5),),
        envelope=env(customer),
        invoice_id=f"INV-{customer}",
        subscription_id=subscription,
    )
    harness.publish(usage, invoice)

    def mismatches() -> list[BusinessException]:
        # One customer, one partition: the topic holds the revisions in the order they were raised.
        return [e for e in harness.exceptions() if e.subscription_id == subscription]

    # Usage and invoice travel on different topics, so either may be counted first; the standing
    # difference after both is the same (earlier revisions may differ).
    def standing() -> BusinessException | None:
        found = mismatches()
        return found[-1] if found and found[-1].quantity_difference == 10 else None

    first = wait_until(standing, WAIT_S, "the mismatch", worker)
    assert first.reason_code.value == "USAGE_BILLING_MISMATCH"
    assert (first.quantity_difference, first.amount_difference_minor) == (10, 50)
    assert (first.metric, first.period, first.currency) == ("api_calls", "2024-01", "EUR")

    late = f.usage(
        f"U-{customer}-2",
        envelope={"customer_id": customer},
        quantity=5,
        subscription_id=subscription,
        window_start=datetime(2024, 1, 30, tzinfo=UTC),
        window_end=datetime(2024, 1, 31, tzinfo=UTC),
    )
    harness.publish(late)

    reopened = wait_until(
        lambda: [e for e in mismatches() if e.source_event_id == late.event_id],
        WAIT_S,
        "the reopened mismatch",
        worker,
    )
    assert [(e.quantity_difference, e.amount_difference_minor) for e in reopened] == [(15, 75)]
    assert reopened[0].exception_id != first.exception_id
    assert mismatches()[-1] == reopened[0]


# -- recognise ---------------------------------------------------------------------------------


def test_commands_have_deterministic_ids_and_balanced_entries(harness: Harness, worker: WorkerProcess):
    customer = new_customer(harness)
    invoice = f.invoice(
        lines=(
            f.invoice_line("IL1", amount_minor=100_000),
            f.invoice_line("IL2", kind=LineKind.SERVICES, product_id="P2", amount_minor=20_000),
            f.usage_line("UL1", quantity=100, unit_price_minor=5),
            f.invoice_line("TX1", kind=LineKind.TAX, product_id=None, amount_minor=19_000),
        ),
        envelope=env(customer),
        invoice_id=f"INV-{customer}",
    )
    harness.publish(invoice)

    commands: list[ErpCommand] = wait_until(
        lambda: for_event(harness.commands(), invoice.event_id), WAIT_S, "the invoice's commands", worker
    )
    # P2 is a services product with accounts of its own: its deferral goes to 2415, not 2410.
    expected = invoice_posted_commands(invoice, product_accounts(PRODUCTS.get))
    assert sorted(c.command_id for c in commands) == sorted(c.command_id for c in expected)
    assert {c.command_id: c for c in commands} == {c.command_id: c for c in expected}
    for command in commands:
        if isinstance(command.payload, JournalEntry):
            lines = command.payload.lines
            assert sum(line.debit_minor for line in lines) == sum(line.credit_minor for line in lines)
        if isinstance(command.payload, RevenueSchedule):
            assert (
                sum(e.amount_minor for e in command.payload.entries) == command.payload.total_minor == 100_000
            )
    assert all(c.customer_id == customer for c in commands)
    credited = {
        line.account for c in commands if isinstance(c.payload, JournalEntry) for line in c.payload.lines
    }
    assert "2415" in credited and "2410" not in credited
    assert {m.key() for m in harness.read(harness.catalog.commands_topic) if m.key() == customer.encode()}


@pytest.mark.parametrize(
    ("end", "stage"),
    [
        # A one-day line passes policy (the ledger allows it) but has no day to recognise over.
        (date(2024, 1, 1), "recognise"),
        # A reversed one is refused at policy, before any of the invoice's commands is built.
        (date(2023, 12, 1), "policy"),
    ],
    ids=["empty-at-recognise", "reversed-at-policy"],
)
def test_a_period_that_cannot_be_posted_is_dead_lettered_whole(
    harness: Harness, worker: WorkerProcess, end: date, stage: str
):
    customer = new_customer(harness)
    invoice = f.invoice(
        lines=(f.invoice_line(period_start=date(2024, 1, 1), period_end=end),),
        envelope=env(customer),
        invoice_id=f"INV-{customer}",
    )
    harness.publish(invoice)

    (letter,) = wait_until(
        dead_letter_for(harness, stage, customer.encode()), WAIT_S, f"the {stage} dead letter", worker
    )
    assert letter.failure.reason_code == "INVALID_PERIOD"
    assert not for_event(harness.commands(), invoice.event_id)


def test_metrics_count_by_stage_and_reason(harness: Harness, worker: WorkerProcess):
    text = wait_until(worker.metrics, WAIT_S, "/metrics", worker)
    assert "revstream_processor_latency_event_time_seconds_bucket" in text
    assert "revstream_processor_latency_ingest_seconds_bucket" in text
    assert worker.metric("revstream_processor_records_total", {"stage": "dedupe", "outcome": "passed"}) > 0
