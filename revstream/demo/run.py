"""The main job: stack, topics, schemas, ledger, a simulated company, workers, sink, report.

Everything runs under a topic namespace and a ledger database of its own, so a demo never mixes
with an earlier one or with what a user keeps on a running stack. The pipeline counts as drained
when every dead letter the simulator expects is out, the command stream has stopped growing and
the ledger has applied every command seen (or the deadline passed, which the report says).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from pydantic import SecretStr

from connectors.ledger.database import connect, create_database, drop_database
from connectors.ledger.migrate import migrate
from connectors.simulator import SimulationConfig, simulate
from connectors.simulator.output import publish_simulation
from connectors.simulator.simulate import Simulation
from revstream.demo.approval import DISCOUNT_BP, HeldDeal, approve, book, held_deal, waiting, with_deal
from revstream.demo.report import render
from revstream.demo.services import ChildService
from revstream.demo.watch import OutputWatcher, measure_lag
from schemas.loader import SCHEMA_DIR
from streams.clients import admin_client
from streams.governance import bind_subjects, register_subject
from streams.provisioning import ensure_topics
from streams.queue_settings import load_queue_settings
from streams.serde import AvroSerde
from streams.settings import DatabaseSettings, Settings, WorkerSettings
from streams.stack import EmbeddedStack, free_port
from streams.topics import TopicCatalog

__all__ = ["DemoOptions", "outcome_problem", "run_demo"]

logger = logging.getLogger(__name__)

DEMO_DATABASE = "revstream_demo"
_DIFF_PREFIX = "  [DIFF]"


def outcome_problem(report: str, drained: bool) -> str | None:
    """Return why the demo failed (one line), or ``None`` when every check matched and it drained."""
    differing = [
        line.removeprefix(_DIFF_PREFIX).strip()
        for line in report.splitlines()
        if line.startswith(_DIFF_PREFIX)
    ]
    problems = []
    if differing:
        labels = "; ".join(line.split(":", 1)[0] for line in differing)
        problems.append(f"{len(differing)} check(s) differ from the simulator's ground truth ({labels})")
    if not drained:
        problems.append("the streams were not drained before the deadline")
    return " and ".join(problems) if problems else None


@dataclass(frozen=True)
class DemoOptions:
    """What the demo simulates and how long it may take."""

    months: int = 3
    customers: int = 30
    seed: int = 7
    workers: int = 1
    deadline_s: float = 300.0
    keep: bool = False


def step(message: str) -> None:
    """Announce one step of the demo."""
    click.echo(click.style("==> ", fg="cyan", bold=True) + message)


def _child_env(settings: Settings, namespace: str, database_url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSTREAM_") and k != "DATABASE_URL"}
    env.update(
        REVSTREAM_PROFILE="embedded",
        REVSTREAM_HOME=str(settings.home),
        REVSTREAM_TOPICS_NAMESPACE=namespace,
        REVSTREAM_TOPICS_PARTITIONS=str(settings.topics.partitions),
        REVSTREAM_DATABASE_URL=database_url,
        # The simulated company's late master data arrives within seconds; master data that never
        # arrives is dead-lettered after a few short retries instead of minutes of back-off.
        REVSTREAM_WORKER_MASTER_RETRY_ATTEMPTS="8",
        REVSTREAM_WORKER_MASTER_RETRY_BACKOFF="0.2",
        REVSTREAM_WORKER_MASTER_RETRY_BACKOFF_MAX="1",
        REVSTREAM_LOGLEVEL="warning",
    )
    return env


def _provision(settings: Settings, catalog: TopicCatalog) -> str:
    ensure_topics(admin_client(settings.kafka), catalog.specs())
    from confluent_kafka.schema_registry import SchemaRegistryClient

    client = SchemaRegistryClient(settings.registry.client_config())
    registered = [register_subject(client, b) for b in bind_subjects(catalog, SCHEMA_DIR)]
    server = settings.database.conninfo()
    drop_database(server, DEMO_DATABASE)
    ledger = create_database(server, DEMO_DATABASE)
    migrations = migrate(ledger)
    click.echo(
        f"    {len(catalog.specs())} topics under '{catalog.namespace}', {len(registered)} schemas "
        f"registered, ledger database '{DEMO_DATABASE}' migrated ({len(migrations)} migrations)"
    )
    return ledger


def _start_services(
    settings: Settings, catalog: TopicCatalog, ledger: str, options: DemoOptions
) -> list[ChildService]:
    env = _child_env(settings, catalog.namespace, ledger)
    logs = settings.home / "demo"
    shutil.rmtree(logs, ignore_errors=True)
    services = []
    for index in range(options.workers):
        port = free_port()
        worker_env = {
            **env,
            "REVSTREAM_WORKER_DATA_DIR": str(logs / f"worker-{index}"),
            "REVSTREAM_WORKER_WEB_PORT": str(port),
        }
        services.append(
            ChildService(f"worker-{index}", ["worker"], worker_env, logs / f"worker-{index}.log", port)
        )
    port = free_port()
    queue_port = free_port()
    services.append(
        ChildService(
            "exceptions",
            ["exceptions", "consume", "--metrics-port", str(queue_port)],
            {**env, "REVSTREAM_EXCEPTIONS_CONSUMER_GROUP": f"{catalog.namespace}-exceptions"},
            logs / "exceptions.log",
            queue_port,
        )
    )
    services.append(
        ChildService(
            "sink",
            ["sink", "--group", f"{catalog.namespace}-sink", "--metrics-port", str(port)],
            env,
            logs / "sink.log",
            port,
        )
    )
    for service in services:
        service.start()
    _wait("workers, sink and queue to serve /metrics", lambda: all(s.ready() for s in services), 90, services)
    return services


def _wait(what: str, condition: Callable[[], bool], timeout_s: float, services: list[ChildService]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for service in services:
            if not service.running():
                raise click.ClickException(
                    f"{service.name} stopped unexpectedly; its log ({service.log}) ends with:\n"
                    + service.log_tail()
                )
        if condition():
            return
        time.sleep(0.25)
    raise click.ClickException(f"timed out after {timeout_s:g}s waiting for {what}")


def _applied(ledger: str) -> int:
    with connect(ledger) as connection:
        row = connection.execute("SELECT count(*) FROM applied_commands").fetchone()
    return int(str(row[0])) if row else 0


def _drain(
    watcher: OutputWatcher,
    simulation: Simulation,
    ledger: str,
    services: list[ChildService],
    deadline_s: float,
) -> bool:
    expected_dead = sum(e["count"] for e in simulation.summary["expected_dead_letters"]["by_reason"].values())
    started = time.monotonic()
    stable_since = time.monotonic()
    last_commands = -1
    while time.monotonic() - started < deadline_s:
        for service in services:
            if not service.running():
                raise click.ClickException(
                    f"{service.name} stopped; see {service.log}:\n{service.log_tail()}"
                )
        watcher.poll()
        output = watcher.output
        applied = _applied(ledger)
        commands = len(output.commands)
        if commands != last_commands:
            last_commands, stable_since = commands, time.monotonic()
        click.echo(
            f"\r    commands {commands:>6}  applied {applied:>6}  exceptions {len(output.exceptions):>4}  "
            f"dead letters {len(output.dead_letters):>3}/{expected_dead:<3}  "
            f"{time.monotonic() - started:5.0f}s",
            nl=False,
        )
        if (
            len(output.dead_letters) >= expected_dead
            and commands > 0
            and applied >= commands
            and time.monotonic() - stable_since > 5
        ):
            click.echo()
            return True
        time.sleep(1)
    click.echo()
    return False


def _approve_one(
    settings: Settings, catalog: TopicCatalog, ledger: str, deal: HeldDeal, services: list[ChildService]
) -> list[str]:
    """Work the held deal through the queue: wait until it shows, approve it, wait for the ledger."""
    step("working one approval through: a deal booked before its discount was approved")
    found: list[Any] = []

    def shown(kinds: frozenset[str]) -> Callable[[], bool]:
        def check() -> bool:
            found[:] = [waiting(ledger, deal, kinds)]
            return found[0] is not None

        return check

    _wait("the quote's exception in the queue", shown(frozenset()), 60, services)
    book(settings, catalog, deal)
    _wait(
        "the order and invoice held in the queue",
        shown(frozenset({"order_accepted", "invoice_posted"})),
        60,
        services,
    )
    row, holds = found[0]
    click.echo(
        f"    held in the {row.team} queue: {row.exception_key} ({', '.join(h.event_type for h in holds)})"
    )
    levels = load_queue_settings().approval_levels
    level = min(level for level, bp in levels.items() if bp >= DISCOUNT_BP)
    event = approve(settings, catalog, row, level, levels[level])
    click.echo(
        f"    approved by {event.approver} at level {level}; waiting for the order to reach the ledger"
    )
    _wait(
        "the released invoice in the ledger", lambda: _invoice_posted(ledger, deal.invoice_id), 60, services
    )
    return [
        f"  held deal: quote {deal.quote_id} (a {DISCOUNT_BP // 100} % discount, created by a sales rep),",
        f"    order {deal.order_id} and invoice {deal.invoice_id} held in the {row.team} queue,",
        f"    approved by {event.approver} (level {level}): released and posted to the ledger",
    ]


def _invoice_posted(ledger: str, invoice_id: str) -> bool:
    with connect(ledger) as connection:
        row = connection.execute(
            "SELECT count(*) FROM invoices WHERE invoice_id = %s", (invoice_id,)
        ).fetchone()
    return bool(row and int(str(row[0])))


def run_demo(stack: EmbeddedStack, base: Settings, options: DemoOptions) -> None:
    """Run the whole pipeline on the embedded stack and print the report.

    Raises:
        SystemExit: with code 1 when a ground-truth check differs or the run did not drain.
    """
    started = time.monotonic()
    step("starting the embedded stack (broker, PostgreSQL, schema registry)")
    for name, status in stack.up().items():
        click.echo(f"    {name:<9} {status.state:<9} {status.endpoint or status.detail}")
    settings = base.with_embedded_endpoints()
    catalog = TopicCatalog(f"demo-{uuid.uuid4().hex[:6]}", settings.topics.partitions, 1)
    step("provisioning topics, schemas and the ledger")
    ledger = _provision(settings, catalog)
    step(f"simulating {options.months} months of a SaaS company ({options.customers} customers, faults on)")
    simulation = simulate(
        SimulationConfig(months=options.months, seed=options.seed, customers=options.customers)
    )
    deal = held_deal(simulation)
    company = simulation
    published, simulation = with_deal(company, deal, approved=False)
    counts = publish_simulation(published, settings, catalog)
    click.echo(
        f"    published {counts['events']} events, {counts['master']} master records, "
        f"{counts['raw']} raw fault records"
    )
    step(f"running {options.workers} worker(s) and the ERP sink until the streams are drained")
    services = _start_services(settings, catalog, ledger, options)
    watcher = OutputWatcher(settings, catalog, AvroSerde.from_settings(settings.registry))
    try:
        drained = _drain(watcher, simulation, ledger, services, options.deadline_s)
        story = _approve_one(settings, catalog, ledger, deal, services)
        _, simulation = with_deal(company, deal, approved=True)
        drained = _drain(watcher, simulation, ledger, services, options.deadline_s) and drained
        workers = [s for s in services if s.name.startswith("worker")]
        metrics: dict[str, Any] = {
            "duplicates_dropped": sum(
                w.metric("revstream_processor_duplicates_dropped_total") for w in workers
            ),
            # Every consumed record either reaches dedupe or is dead-lettered by decode.
            "events_consumed": sum(
                w.metric("revstream_processor_records_total", stage="dedupe")
                + w.metric("revstream_processor_records_total", stage="decode", outcome="dead_lettered")
                for w in workers
            ),
        }
        # Measured while the consumers still run, so their last commits are in.
        groups = {
            "worker": WorkerSettings().effective_group_id(catalog.namespace),
            "sink": f"{catalog.namespace}-sink",
            "queue": f"{catalog.namespace}-exceptions",
        }
        lag = (measure_lag(settings, list(groups.values())), groups)
    finally:
        watcher.close()
        for service in services:
            service.stop()
    step("report")
    ledger_settings = settings.model_copy(update={"database": DatabaseSettings(url=SecretStr(ledger))})
    report = render(ledger_settings, watcher.output, simulation, metrics, drained, lag, story)
    click.echo(report)
    if not options.keep:
        step("shutting down")
        stack.down()
    step(
        f"done in {time.monotonic() - started:.0f}s"
        + ("" if drained else " (deadline reached before drained)")
    )
    problem = outcome_problem(report, drained)
    if problem is not None:
        # A demo whose outcome is wrong must fail the make target that ran it (exit 1, one line).
        click.echo(f"revstream: error: {problem}", err=True)
        sys.exit(1)


def demo_home(settings: Settings) -> Path:
    """The state directory the demo's stack uses."""
    return settings.home
