"""``revstream dlq`` with a real worker and the real sink: replays that prove their outcome in the ledger.

One worker runs for the module on a namespace of its own (master-data retries made short, so that
``MASTER_DATA_MISSING`` comes within seconds); the control scenario, where the master data came
first, runs on another namespace with a worker of its own. Ledgers are filled by the real ERP sink
and compared through ``revstream ledger report --json``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient

from connectors.sink.sink import ErpSink, SinkConfig
from schemas.models import EventEnvelope
from streams.serde import AvroSerde
from streams.settings import Settings
from tests.integration.dlq.conftest import Deployment, new_deployment
from tests.integration.processors.harness import Harness, WorkerProcess, wait_until
from tests.integration.sink.helpers import new_ledger
from tests.unit.processors import factories as f

WAIT_S = 90.0
RETRY_ENV = {
    "REVSTREAM_WORKER_MASTER_RETRY_ATTEMPTS": "2",
    "REVSTREAM_WORKER_MASTER_RETRY_BACKOFF": "0.2",
    "REVSTREAM_WORKER_MASTER_RETRY_BACKOFF_MAX": "0.5",
}
AS_OF = "2024-12-31"


def start_worker(deployment: Deployment, tmp: Path) -> WorkerProcess:
    ns = deployment.catalog.namespace
    worker = WorkerProcess(
        deployment.settings, ns, data_dir=tmp / ns, log_path=tmp / f"{ns}.log", env_overrides=RETRY_ENV
    )
    return worker.start().wait_ready()


@pytest.fixture(scope="module")
def pipeline(
    stack_settings: Settings, admin: AdminClient, serde: AvroSerde, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Deployment, Harness, WorkerProcess]]:
    """A namespace with a running worker; its ledger database also holds the dlq audit table."""
    deployment = new_deployment(stack_settings, admin, new_ledger(stack_settings))
    harness = Harness(stack_settings, deployment.catalog, serde)
    harness.publish_master(f.product("P1"), f.legal_entity("LE-DE"))
    worker = start_worker(deployment, Path(tmp_path_factory.mktemp("dlq-workers")))
    yield deployment, harness, worker
    worker.stop()


def run_sink(deployment: Deployment) -> None:
    config = SinkConfig(group_id=f"{deployment.catalog.namespace}-sink", until_idle_s=2.0)
    ErpSink(deployment.service_settings(), config).run()


def report(deployment: Deployment) -> dict[str, Any]:
    ran = deployment.cli("ledger", "report", "--json", "--as-of", AS_OF)
    assert ran.code == 0, ran.err
    parsed: dict[str, Any] = json.loads(ran.out)
    return parsed


def invoices(tag: str) -> tuple[list[Any], list[EventEnvelope]]:
    """Master data and two invoices: one for a new customer, one naming a new product."""
    customer, other, product = f"C-{tag}", f"C2-{tag}", f"P-{tag}"
    master = [f.customer(customer), f.customer(other), f.product(product)]
    events: list[EventEnvelope] = [
        f.invoice(envelope={"event_id": f"E1-{tag}", "customer_id": customer}, invoice_id=f"INV1-{tag}"),
        f.invoice(
            lines=(f.invoice_line(product_id=product),),
            envelope={"event_id": f"E2-{tag}", "customer_id": other},
            invoice_id=f"INV2-{tag}",
        ),
    ]
    return master, events


def enrich_letters(harness: Harness, keys: set[bytes]) -> Any:
    return lambda: [d for d in harness.dead_letters("enrich") if d.source.key in keys]


# First in the module on purpose: the ledger it compares holds only this test's rows.
def test_missing_master_data_replayed_with_follow_gives_the_ledger_of_an_on_time_run(
    pipeline: tuple[Deployment, Harness, WorkerProcess],
    stack_settings: Settings,
    admin: AdminClient,
    serde: AvroSerde,
    tmp_path: Path,
) -> None:
    deployment, harness, worker = pipeline
    tag = uuid.uuid4().hex[:6]
    master, events = invoices(tag)
    event_ids = {e.event_id for e in events}

    def ours(where: Harness) -> list[Any]:
        return [c for c in where.commands() if c.source_event_id in event_ids]

    harness.publish(*events)
    keys = {e.customer_id.encode() for e in events}
    letters = wait_until(
        lambda: len(enrich_letters(harness, keys)()) == 2, WAIT_S, "two dead letters", worker
    )
    assert letters
    assert {d.failure.reason_code for d in enrich_letters(harness, keys)()} == {"MASTER_DATA_MISSING"}
    harness.publish_master(*master)

    ran = deployment.cli(
        "dlq", "replay", "--reason", "MASTER_DATA_MISSING", "--follow", "--yes", "--timeout", "90"
    )
    assert ran.code == 0, ran.out + ran.err
    assert "replayed 2, parked 0" in ran.out
    assert "2 processed, 0 dead-lettered again, 0 still pending" in ran.out
    run_sink(deployment)
    late = report(deployment)

    # Control: the same events on another namespace, the master data published first.
    control = new_deployment(stack_settings, admin, new_ledger(stack_settings))
    control_harness = Harness(stack_settings, control.catalog, serde)
    control_harness.publish_master(f.product("P1"), f.legal_entity("LE-DE"), *master)
    control_worker = start_worker(control, tmp_path)
    try:
        control_harness.publish(*events)
        expected = len(ours(harness))
        wait_until(lambda: len(ours(control_harness)) == expected, WAIT_S, "the control run's commands",
                   control_worker)  # fmt: skip
    finally:
        control_worker.stop()
    run_sink(control)
    assert late == report(control)
    assert late["trial_balance"], "the invoices reached the ledger"

    # A second replay sends nothing and changes nothing.
    commands = len(ours(harness))
    again = deployment.cli("dlq", "replay", "--reason", "MASTER_DATA_MISSING", "--follow", "--yes")
    assert again.code == 1 and "no dead letter waiting for a replay matches" in again.err
    run_sink(deployment)
    assert report(deployment) == late and len(ours(harness)) == commands


def test_a_bad_field_is_fixed_with_a_patch_and_lands_in_the_ledger(
    pipeline: tuple[Deployment, Harness, WorkerProcess], tmp_path: Path
) -> None:
    deployment, harness, worker = pipeline
    customer = f"C-{uuid.uuid4().hex[:6]}"
    harness.publish_master(f.customer(customer))
    bad = f.invoice(
        lines=(f.invoice_line(period_start=date(2024, 2, 1), period_end=date(2024, 1, 1)),),
        envelope={"event_id": f"E-{customer}", "customer_id": customer},
        invoice_id=f"INV-{customer}",
    )
    harness.publish(bad)
    # Whichever stage refuses it (policy, today), the tool finds it by its key.
    (row,) = wait_until(
        lambda: json.loads(deployment.cli("dlq", "list", "--key", customer, "--json").out),
        WAIT_S, "the INVALID_PERIOD dead letter", worker,
    )  # fmt: skip
    assert row["reason"] == "INVALID_PERIOD"
    shown = json.loads(deployment.cli("dlq", "show", row["id"], "--json").out)

    invalid = tmp_path / "invalid.json"
    invalid.write_text(json.dumps({"currency": "euro"}))
    refused = deployment.cli("dlq", "replay", row["id"], "--patch", str(invalid), "--yes")
    assert refused.code == 1
    assert refused.err.startswith(f"revstream: error: patch refused for {row['id']}: field currency:")
    assert len(refused.err.strip().splitlines()) == 1

    lines = shown["value"]["record"]["lines"]
    lines[0]["period_start"] = "2024-01-01"
    lines[0]["period_end"] = "2025-01-01"
    fix = tmp_path / "fix.json"
    fix.write_text(json.dumps({"lines": lines}))
    dry = deployment.cli("dlq", "replay", row["id"], "--patch", str(fix), "--dry-run")
    assert f"would replay {row['id']} -> " in dry.out and "\n    lines: [" in dry.out
    ran = deployment.cli(
        "dlq", "replay", row["id"], "--patch", str(fix), "--follow", "--yes", "--timeout", "90"
    )
    assert ran.code == 0, ran.out + ran.err
    assert "1 processed" in ran.out

    commands = [c for c in harness.commands() if c.source_event_id == bad.event_id]
    assert commands, "the patched invoice produced its commands"
    run_sink(deployment)
    with_entries = report(deployment)
    assert with_entries["trial_balance"]
    (audit,) = [r for r in json.loads(deployment.cli("dlq", "audit", "--json").out) if r["patch"]]
    assert audit["patch"] == {"lines": lines}
    fields = {change["field"] for change in audit["diff"][row["id"]]}
    assert fields == {"lines"}
    assert "period_end" in deployment.cli("dlq", "show", row["id"]).out


def test_follow_reports_a_record_that_fails_again_and_the_loop_guard_parks_it(
    pipeline: tuple[Deployment, Harness, WorkerProcess], tmp_path: Path
) -> None:
    deployment, harness, worker = pipeline
    key = f"K-{uuid.uuid4().hex[:6]}".encode()
    topic = deployment.catalog.event_topic("usage_recorded")
    harness.publish_raw(topic, key, b"not avro at all", [("trace", b"t"), ("nullable", None)])

    def letters() -> list[dict[str, Any]]:
        rows = json.loads(deployment.cli("dlq", "list", "--key", key.decode(), "--json").out)
        return [r for r in rows if r["stage"] == "decode"]

    metrics = tmp_path / "dlq.prom"
    for replay in (1, 2):
        (row,) = wait_until(letters, WAIT_S, f"dead letter before replay {replay}", worker)
        assert row["replay_count"] == replay - 1
        ran = deployment.cli(
            "dlq",
            "replay",
            row["id"],
            "--follow",
            "--yes",
            "--max-replays",
            "2",
            "--metrics-file",
            str(metrics),
        )
        assert ran.code == 2, ran.out + ran.err
        assert f"{row['id']} -> " in ran.out and "dead-lettered again: CORRUPT_RECORD (now decode:" in ran.out
        assert "0 processed, 1 dead-lettered again, 0 still pending" in ran.out
        assert (
            'revstream_dlq_failed_again_total{reason="CORRUPT_RECORD",stage="decode"} 1.0'
            in metrics.read_text()
        )
    (row,) = wait_until(letters, WAIT_S, "the dead letter of the second replay", worker)
    assert row["replay_count"] == 2
    parked = deployment.cli("dlq", "replay", row["id"], "--yes", "--max-replays", "2")
    assert parked.code == 0 and "replayed 0, parked 1" in parked.out
    (record,) = [m for m in deployment.read(deployment.catalog.parked_topic) if m.key() == key]
    assert b"replayed 2 times" in dict(record.headers())["revstream.dlq.parked_reason"]
    assert letters() == []
    # The original record and both replays, and every dead letter of them: a null header stays null.
    copies = [m for m in deployment.read(topic) if m.key() == key]
    dead = [m for m in deployment.read(deployment.catalog.deadletter_topic("decode")) if m.key() == key]
    assert len(copies) == 3 and len(dead) == 3
    assert all((m.headers() or [])[:2] == [("trace", b"t"), ("nullable", None)] for m in copies + dead)
