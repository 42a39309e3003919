"""Enforced discount approval end to end: held, refused to its creator, approved, equal to approved-at-once.

A worker, the ERP sink and the queue consumer run on the session stack; people act through the
``revstream exceptions`` CLI, as a script would. The run that holds the order and then approves it
must end with the same ledger report as a run in which the quote was approved from the start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from connectors.exceptions.consumer import ExceptionQueueConsumer
from connectors.sink.config import SinkConfig
from connectors.sink.sink import ErpSink
from revstream.sdk import Publisher
from schemas.models import BusinessException, DiscountApproved, EventEnvelope, ReasonCode
from streams.provisioning import ensure_topics
from streams.queue_settings import ExceptionQueueSettings
from streams.serde import AvroSerde
from streams.settings import Settings
from streams.topics import TopicCatalog
from tests.integration.processors.harness import Harness, WorkerProcess, wait_until
from tests.integration.sink.helpers import count, ledger_settings, new_ledger
from tests.unit.processors import factories as f

WAIT_S = 60.0
AS_OF = "2024-06-30"


class Run:
    """One namespace, its ledger database, a worker, and the commands to run the sink and the CLI."""

    def __init__(self, stack: Settings, admin: AdminClient, serde: AvroSerde, workdir: Path) -> None:
        self.catalog = TopicCatalog(
            namespace=f"appr-{uuid.uuid4().hex[:10]}", partitions=3, replication_factor=1
        )
        ensure_topics(admin, self.catalog.specs())
        base = ledger_settings(stack, new_ledger(stack))
        self.settings = base.model_copy(
            update={
                "topics": base.topics.model_copy(
                    update={"namespace": self.catalog.namespace, "partitions": 3}
                )
            }
        )
        self.harness = Harness(stack, self.catalog, serde)
        self.harness.publish_master(f.product("P1"), f.legal_entity("LE-DE"), f.customer("C1"))
        name = self.catalog.namespace
        self.worker = WorkerProcess(stack, name, workdir / name, workdir / f"{name}.log").start()

    def sink(self) -> None:
        ErpSink(self.settings, SinkConfig(group_id=f"{self.catalog.namespace}-sink", until_idle_s=1.5)).run()

    def queue(self) -> None:
        group = f"{self.catalog.namespace}-queue"
        ExceptionQueueConsumer(
            self.settings, ExceptionQueueSettings(consumer_group=group), SinkConfig(until_idle_s=1.5)
        ).run()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("REVSTREAM_")}
        env.update(
            REVSTREAM_PROFILE="external",
            REVSTREAM_KAFKA_BOOTSTRAP_SERVERS=self.settings.kafka.require_bootstrap(),
            REVSTREAM_KAFKA_IDEMPOTENCE="false",
            REVSTREAM_REGISTRY_URL=self.settings.registry.require_url(),
            REVSTREAM_DATABASE_URL=self.settings.database.conninfo(),
            REVSTREAM_TOPICS_NAMESPACE=self.catalog.namespace,
            REVSTREAM_TOPICS_PARTITIONS="3",
        )
        return subprocess.run(
            [sys.executable, "-m", "revstream", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    def json(self, *args: str) -> Any:
        result = self.cli(*args, "--json")
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def exceptions(
        self, reason: ReasonCode | None = None, resolution: str | None = None
    ) -> list[BusinessException]:
        found = self.harness.exceptions()
        return [
            e for e in found if (reason is None or e.reason_code is reason) and e.resolution == resolution
        ]

    def commands_for(self, events: list[EventEnvelope]) -> set[str]:
        ids = {event.event_id for event in events}
        return {c.command_id for c in self.harness.commands() if c.source_event_id in ids}


def chain(approved_from_the_start: bool) -> list[EventEnvelope]:
    approvals = (f.approval(3000, approver="cfo", level=2),) if approved_from_the_start else ()
    quote = f.quote(
        lines=(f.quote_line(discount_bp=2500, net_price_minor=7500),),
        approvals=approvals,
        created_by="sam",
        envelope={"event_id": "E-QUOTE"},
    )
    later = [quote.occurred_at + timedelta(hours=hours) for hours in (1, 2, 3)]
    order = f.order(envelope={"event_id": "E-ORDER", "occurred_at": later[0]})
    invoice = f.invoice(envelope={"event_id": "E-INVOICE", "occurred_at": later[1]})
    payment = f.payment(invoice.total_minor, envelope={"event_id": "E-PAYMENT", "occurred_at": later[2]})
    return [quote, order, invoice, payment]


@pytest.fixture(scope="module")
def runs(
    stack_settings: Settings, admin: AdminClient, serde: AvroSerde, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Run, Run]]:
    workdir = Path(tmp_path_factory.mktemp("approval"))
    held, approved = Run(stack_settings, admin, serde, workdir), Run(stack_settings, admin, serde, workdir)
    try:
        yield held, approved
    finally:
        for run in (held, approved):
            run.worker.stop()


def test_a_held_order_is_released_by_a_second_persons_approval_and_ends_as_if_approved_at_once(
    runs: tuple[Run, Run],
) -> None:
    held, approved = runs
    events, reference = chain(approved_from_the_start=False), chain(approved_from_the_start=True)
    # The quote first, as CPQ sends it before the deal is booked: what is processed before the quote
    # cannot know that it waits on it (arrival order across topics is not guaranteed).
    held.harness.publish(events[0])
    approved.harness.publish(*reference)
    wait_until(
        lambda: held.exceptions(ReasonCode.DISCOUNT_NOT_APPROVED),
        WAIT_S,
        "the quote's exception",
        held.worker,
    )
    held.harness.publish(*events[1:])
    posting = reference[1:]

    # Held: one open exception in the deal desk's queue, the order, invoice and payment waiting on it.
    wait_until(
        lambda: len(held.exceptions(resolution="held")) == 3, WAIT_S, "three hold notices", held.worker
    )
    wait_until(
        lambda: len(approved.commands_for(posting)) > 0, WAIT_S, "the reference commands", approved.worker
    )
    assert held.commands_for(events) == set()
    held.queue()
    held.sink()
    (item,) = held.json("exceptions", "list", "--team", "deal-desk")
    assert (item["reason_code"], item["status"], item["quote_id"]) == ("DISCOUNT_NOT_APPROVED", "open", "Q1")
    shown = held.json("exceptions", "show", item["exception_key"])
    # Listed in the order the worker held them: the three come from three topics, whose records
    # reach the worker in no guaranteed order.
    assert sorted((h["event_type"], h["released_at"]) for h in shown["held"]) == [
        ("invoice_posted", None),
        ("order_accepted", None),
        ("payment_received", None),
    ]
    assert all("quote Q1" in h["reason"] for h in shown["held"])
    source = shown["source_event"]["record"]
    assert (source["event_id"], source["quote_id"], source["created_by"]) == ("E-QUOTE", "Q1", "sam")
    stats = held.json("exceptions", "stats")
    assert (stats["held_orders"], stats["held_order_value_minor"]) == (1, {"EUR": 120_000})
    assert count(held.settings.database.conninfo(), "invoices") == 0
    assert count(held.settings.database.conninfo(), "journal_entries") == 0

    # The quote's creator may not approve it: refused with the reason, nothing released.
    refused = held.cli("exceptions", "approve", item["exception_key"], "--by", "sam", "--level", "2")
    assert refused.returncode == 0, refused.stderr
    (refusal,) = wait_until(
        lambda: held.exceptions(ReasonCode.APPROVAL_NOT_ALLOWED), WAIT_S, "the refusal", held.worker
    )
    assert "sam created quote Q1" in refusal.detail and "segregation of duties" in refusal.detail
    assert held.commands_for(events) == set()

    # A second person at a level that covers 25 %: the order and what waited on it reach the ledger.
    ok = held.cli("exceptions", "approve", item["exception_key"], "--by", "ana", "--level", "2")
    assert ok.returncode == 0, ok.stderr
    expected = approved.commands_for(posting)
    wait_until(lambda: held.commands_for(events) == expected, WAIT_S, "the released commands", held.worker)
    held.queue()
    held.sink()
    approved.sink()
    report = held.json("ledger", "report", "--as-of", AS_OF)
    assert report["trial_balance"]
    assert report == approved.json("ledger", "report", "--as-of", AS_OF)
    shown = held.json("exceptions", "show", item["exception_key"])
    assert shown["exception"]["status"] == "approved"
    closing = shown["history"][-1]
    assert (closing["action"], closing["to_status"]) == ("closed", "approved")
    assert "approved by ana at level 2" in closing["note"]
    assert all(h["released_at"] is not None for h in shown["held"])
    assert held.json("exceptions", "stats")["held_orders"] == 0

    # A second approval changes nothing (sent as the CRM would, through the SDK).
    passed = held.worker.metric("revstream_processor_records_total", {"stage": "dedupe", "outcome": "passed"})
    second = DiscountApproved(
        **f.envelope("E-APPROVAL-2"),
        approval_id="AP-2",
        quote_id="Q1",
        approver="bo",
        level=3,
        max_discount_bp=5000,
    )
    with Publisher(held.settings) as publisher:
        publisher.publish(second).result(timeout=30)
    wait_until(
        lambda: (
            held.worker.metric("revstream_processor_records_total", {"stage": "dedupe", "outcome": "passed"})
            > passed
        ),
        WAIT_S,
        "the second approval processed",
        held.worker,
    )
    held.sink()
    assert held.commands_for(events) == expected
    assert not [e for e in held.harness.exceptions() if e.source_event_id == "E-APPROVAL-2"]
    assert held.json("ledger", "report", "--as-of", AS_OF) == report


def test_what_is_held_survives_a_worker_killed_and_restarted(
    runs: tuple[Run, Run],
    stack_settings: Settings,
    admin: AdminClient,
    serde: AvroSerde,
    tmp_path: Path,
) -> None:
    _, approved = runs
    crashed = Run(stack_settings, admin, serde, tmp_path)
    try:
        events = chain(approved_from_the_start=False)
        crashed.harness.publish(events[0])
        wait_until(
            lambda: crashed.exceptions(ReasonCode.DISCOUNT_NOT_APPROVED),
            WAIT_S,
            "the exception",
            crashed.worker,
        )
        crashed.harness.publish(*events[1:])
        wait_until(
            lambda: len(crashed.exceptions(resolution="held")) >= 3, WAIT_S, "the holds", crashed.worker
        )
        crashed.worker.kill()
        crashed.worker.start().wait_ready()
        crashed.queue()
        (item,) = crashed.json("exceptions", "list", "--team", "deal-desk")
        ok = crashed.cli("exceptions", "approve", item["exception_key"], "--by", "ana", "--level", "2")
        assert ok.returncode == 0, ok.stderr
        expected = approved.commands_for(chain(approved_from_the_start=True)[1:])
        assert expected
        wait_until(
            lambda: crashed.commands_for(events) == expected, WAIT_S, "the released commands", crashed.worker
        )
    finally:
        crashed.worker.stop()
