"""A worker killed right after writing its local store: the changelog must already hold that write.

The kill comes from a test hook (``crashing_worker.py``): the process exits at once after the
local store took a payment. The worker is restarted on the same store, finishes, and is stopped;
then the partitions move to a fresh worker (empty data dir: its state comes from the changelogs
alone), which gets more events. Table contents (read from the changelogs) and every output must
equal those of an undisturbed run of the same events. With the local store written before its
changelog records were delivered, the payment lived only in the crashed worker's store: the fresh
worker applied the next payment against the full invoice amount.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import TopicPartition
from confluent_kafka.admin import AdminClient

from processors.stages.dedupe import DedupeEntry
from schemas.models import BusinessException, ErpCommand, EventEnvelope
from streams.clients import consumer as make_consumer
from streams.serde import AvroSerde
from streams.settings import Settings
from tests.integration.processors.conftest import new_catalog
from tests.integration.processors.crashing_worker import EXIT_CODE
from tests.integration.processors.harness import Harness, WorkerProcess, read_topic, wait_until
from tests.unit.processors import factories as f

WAIT_S = 90.0
FAST_COMMITS = {"REVSTREAM_WORKER_COMMIT_INTERVAL": "0.2"}
CRASHING = ("-m", "tests.integration.processors.crashing_worker")
TABLES = ("dedupe", "reconcile", "contracts")

INVOICE = f.invoice(
    lines=(
        f.invoice_line("IL1", amount_minor=100_000),
        f.usage_line("UL1", quantity=100, unit_price_minor=5),
    ),
    envelope={"event_id": "EV-INV1"},
)
FIRST = (
    f.payment(60_000, envelope={"event_id": "EV-PAY1"}, payment_id="PAY1"),
    f.usage("EV-U1", quantity=60),
)
LATER = (
    f.payment(50_000, envelope={"event_id": "EV-PAY2"}, payment_id="PAY2"),
    f.usage("EV-U2", quantity=40),
)


@pytest.fixture
def new_harness(stack_settings: Settings, admin: AdminClient, serde: AvroSerde) -> Callable[[], Harness]:
    return lambda: Harness(stack_settings, new_catalog(admin), serde)


def publish_one_by_one(harness: Harness, *events: EventEnvelope) -> None:
    # One record per produce request: the embedded broker reports end offsets right for those.
    for event in events:
        harness.publish(event)


def offsets_of(harness: Harness, events: tuple[EventEnvelope, ...]) -> dict[tuple[str, int], int]:
    """(topic, partition) → the highest offset among ``events``."""
    wanted = {event.event_id for event in events}
    found: dict[tuple[str, int], int] = {}
    for event in events:
        topic = harness.catalog.event_topic(event.event_type)
        for message in read_topic(harness.settings, topic):
            record = harness.serde.decode_model(message.value() or b"", type(event))
            if getattr(record, "event_id", None) in wanted:
                where = (topic, int(message.partition() or 0))
                found[where] = max(found.get(where, -1), int(message.offset() or 0))
    return found


def committed_past(harness: Harness, offsets: dict[tuple[str, int], int]) -> bool:
    group = f"{harness.catalog.namespace}-processors"
    consumer = make_consumer(harness.settings.kafka, group)
    try:
        parts = [TopicPartition(topic, partition) for topic, partition in offsets]
        committed = consumer.committed(parts, timeout=5)
        return all(tp.offset > offsets[tp.topic, tp.partition] for tp in committed)
    finally:
        consumer.close()


def finish(harness: Harness, worker: WorkerProcess, events: tuple[EventEnvelope, ...]) -> None:
    """Wait until ``worker`` has processed and committed ``events``."""
    offsets = offsets_of(harness, events)
    wait_until(lambda: committed_past(harness, offsets), WAIT_S, f"commits past {offsets}", worker)


def table_contents(harness: Harness) -> dict[str, dict[bytes, bytes]]:
    """Each table's last value per key, read from its changelog (namespace made neutral)."""
    namespace = harness.catalog.namespace.encode()
    contents: dict[str, dict[bytes, bytes]] = {}
    for table in TABLES:
        topic = f"{harness.catalog.namespace}-processors-{table}-changelog"
        latest: dict[bytes, Any] = {}
        for message in read_topic(harness.settings, topic):
            latest[message.key() or b""] = message.value()
        kept = {k: v for k, v in latest.items() if v is not None}
        if table == "dedupe":
            # The first sighting's time is the record's produce time, which differs between runs.
            kept = {k: _without_time(DedupeEntry.decode(v)) for k, v in kept.items()}
        contents[table] = {k: v.replace(namespace, b"NS") for k, v in kept.items()}
    return contents


def _without_time(entry: DedupeEntry) -> bytes:
    return dataclasses.replace(entry, first_seen_ms=0).encode()


def outputs(harness: Harness) -> dict[str, dict[str, bytes]]:
    """Commands and exceptions by id, as bytes: repeats of one id must be the same bytes."""
    found: dict[str, dict[str, bytes]] = {}
    catalog = harness.catalog
    for kind, topic, model, id_field in (
        ("commands", catalog.commands_topic, ErpCommand, "command_id"),
        ("exceptions", catalog.exceptions_topic, BusinessException, "exception_id"),
    ):
        by_id: dict[str, bytes] = {}
        for message in read_topic(harness.settings, topic):
            value = message.value() or b""
            record_id = getattr(harness.serde.decode_model(value, model), id_field)
            assert by_id.setdefault(record_id, value) == value, f"{kind} {record_id} differs between copies"
        found[kind] = by_id
    return found


def run(harness: Harness, worker_factory: Callable[..., WorkerProcess], crash: bool) -> dict[str, Any]:
    namespace = harness.catalog.namespace
    harness.publish_master(f.customer(), f.product("P1"), f.legal_entity("LE-DE"))
    publish_one_by_one(harness, INVOICE)
    first = worker_factory(namespace, "w1", argv=CRASHING if crash else None, **FAST_COMMITS).wait_ready()
    finish(harness, first, (INVOICE,))
    publish_one_by_one(harness, *FIRST)
    if crash:
        assert first.process is not None
        returncode = first.process.wait(WAIT_S)
        assert returncode == EXIT_CODE, first.log_tail()
        first = worker_factory(namespace, "w1", **FAST_COMMITS).wait_ready()  # the same store
    finish(harness, first, FIRST)
    assert first.stop() == 0
    fresh = worker_factory(namespace, "w2", **FAST_COMMITS).wait_ready()
    publish_one_by_one(harness, *LATER)
    finish(harness, fresh, LATER)
    assert fresh.stop() == 0
    return {"tables": table_contents(harness), **outputs(harness)}


def test_a_crash_after_the_local_write_leaves_nothing_only_in_the_local_store(
    new_harness: Callable[[], Harness], worker_factory: Callable[..., WorkerProcess]
):
    undisturbed = run(new_harness(), worker_factory, crash=False)
    crashed = run(new_harness(), worker_factory, crash=True)

    assert crashed["commands"] == undisturbed["commands"]
    assert crashed["exceptions"] == undisturbed["exceptions"]
    assert crashed["tables"] == undisturbed["tables"]
    # What the comparison rests on: the later payment saw the first one (40,500 still open).
    assert any(b"PAY2" in value for value in undisturbed["commands"].values())
