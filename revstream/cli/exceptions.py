"""``revstream exceptions``: the queue finance works from (consume, list, show, assign, resolve, stats)."""

from __future__ import annotations

import contextlib
import getpass
import json
import logging
import re
import uuid
from collections.abc import Iterator
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

import click
import psycopg
from confluent_kafka import KafkaException
from prometheus_client import start_http_server
from pydantic import TypeAdapter, ValidationError

from connectors.errors import ConnectorError, LedgerUnavailableError
from connectors.exceptions.consumer import ExceptionQueueConsumer
from connectors.exceptions.lookup import SourceEvent, find_source_event
from connectors.exceptions.metrics import QueueMetrics
from connectors.exceptions.queue import QueueRow, age_bucket, breaches_sla
from connectors.exceptions.stats import queue_stats
from connectors.exceptions.store import Filters, QueueStore
from connectors.ledger.migrate import connect_current
from connectors.sink.config import SinkConfig
from revstream.cli.common import echo_json, settings_for_cli
from revstream.sdk import Publisher
from schemas.models import DiscountApproved
from streams.errors import PlatformError
from streams.queue_settings import load_queue_settings
from streams.settings import Settings
from streams.topics import catalog_for

__all__ = ["exceptions"]

logger = logging.getLogger(__name__)

STATUSES = ("open", "assigned", "resolved", "approved")
_SHORT = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}


def _now() -> datetime:
    return datetime.now(UTC)


def _duration(_ctx: click.Context, _param: click.Parameter, value: str | None) -> timedelta | None:
    if value is None:
        return None
    short = _SHORT.match(value)
    if short:
        return timedelta(**{_UNITS[short.group(2)]: float(short.group(1))})
    try:
        return TypeAdapter(timedelta).validate_python(value)
    except ValidationError:
        raise click.BadParameter(f"{value!r} is not a duration; use e.g. 90m, 36h, 3d or P3D") from None


@contextlib.contextmanager
def _store(settings: Settings | None = None) -> Iterator[QueueStore]:
    settings = settings or settings_for_cli()
    with connect_current(settings.database.conninfo()) as connection:
        try:
            yield QueueStore(connection, load_queue_settings())
        except psycopg.OperationalError as exc:
            raise LedgerUnavailableError(
                f"the ledger database went away ({str(exc).strip().splitlines()[0]}); try again"
            ) from exc


def _row_dict(row: QueueRow, now: datetime) -> dict[str, Any]:
    data = asdict(row)
    data["age_seconds"] = round((now - row.first_seen).total_seconds(), 3)
    data["age_bucket"] = age_bucket(row, now)
    data["sla_breached"] = breaches_sla(row, now)
    return data


def _age(row: QueueRow, now: datetime) -> str:
    seconds = int((now - row.first_seen).total_seconds())
    if seconds >= 86_400:
        return f"{seconds // 86_400}d{seconds % 86_400 // 3600}h"
    if seconds >= 3600:
        return f"{seconds // 3600}h{seconds % 3600 // 60}m"
    return f"{seconds // 60}m"


def _money(row: QueueRow) -> str:
    return f"{row.amount_minor} {row.currency}" if row.amount_minor is not None and row.currency else "-"


@click.group()
def exceptions() -> None:
    """Work the business-exception queue: routed to teams, aged against SLAs, audited."""


@exceptions.command("consume")
@click.option("--metrics-port", type=click.IntRange(0, 65535), help="Serve Prometheus /metrics on this port.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address /metrics listens on.")
@click.option(
    "--until-idle", "until_idle", type=click.FloatRange(0.1), metavar="SECONDS",
    help="Stop once no record arrived for this long.",
)  # fmt: skip
def consume_command(metrics_port: int | None, metrics_host: str, until_idle: float | None) -> None:
    """Apply <ns>.exceptions to the queue in the ledger database until stopped, exactly once."""
    settings = settings_for_cli()
    queue = load_queue_settings()
    metrics = QueueMetrics.create()
    if metrics_port is not None:
        start_http_server(metrics_port, addr=metrics_host, registry=metrics.registry)
    consumer = ExceptionQueueConsumer(settings, queue, SinkConfig(until_idle_s=until_idle), metrics)
    click.echo(f"exceptions: {consumer.topic} -> {settings.database.redacted()}", err=True)
    stats = consumer.run()
    click.echo(
        f"exceptions: {stats.consumed} read, {stats.applied} changes, {stats.dead_lettered} dead-lettered",
        err=True,
    )


@exceptions.command("list")
@click.option("--team", help="Only this team's queue.")
@click.option("--reason", help="Only this reason code, e.g. DISCOUNT_NOT_APPROVED.")
@click.option("--status", type=click.Choice(STATUSES), help="Only this status (default: open and assigned).")
@click.option("--customer", help="Only this customer id.")
@click.option(
    "--older-than", callback=_duration, metavar="DURATION", help="Only first seen longer ago, e.g. 3d."
)
@click.option("--all", "show_all", is_flag=True, help="Closed exceptions too.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def list_command(
    team: str | None,
    reason: str | None,
    status: str | None,
    customer: str | None,
    older_than: timedelta | None,
    show_all: bool,
    as_json: bool,
) -> None:
    """List exceptions, oldest first."""
    now = _now()
    with _store() as store:
        rows = store.rows(Filters(team, reason, status, customer, older_than), now)
    if status is None and not show_all:
        rows = [row for row in rows if row.is_open]
    if as_json:
        echo_json([_row_dict(row, now) for row in rows])
        return
    if not rows:
        click.echo("no exceptions match")
        return
    click.echo(
        f"{'ID':36}  {'TEAM':12} {'REASON':24} {'STATUS':9} {'CUSTOMER':14} {'AGE':>7}  {'SLA':4} AMOUNT"
    )
    for row in rows:
        sla = "LATE" if breaches_sla(row, now) else "ok"
        click.echo(
            f"{row.exception_key:36}  {row.team:12} {row.reason_code:24} {row.status:9} {row.customer_id:14}"
            f" {_age(row, now):>7}  {sla:4} {_money(row)}"
        )


def _source_event(settings: Settings, row: QueueRow, timeout_s: float) -> tuple[SourceEvent | None, str]:
    try:
        found = find_source_event(
            settings,
            catalog_for(settings),
            row.event_type,
            row.source_event_id,
            row.source_partition,
            timeout_s,
        )
    except (KafkaException, PlatformError) as exc:
        return None, f"not read ({str(exc).strip().splitlines()[0]})"
    return found, "" if found is not None else f"not found on its topic within {timeout_s:g}s"


@exceptions.command("show")
@click.argument("ident", metavar="ID")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option(
    "--source-timeout", type=click.FloatRange(0), default=10.0, show_default=True, metavar="SECONDS",
    help="How long to look for the source event on its topic (0: do not look).",
)  # fmt: skip
def show_command(ident: str, as_json: bool, source_timeout: float) -> None:
    """Show one exception (by its id or its queue key), its source event, its history and holds."""
    now = _now()
    settings = settings_for_cli()
    with _store(settings) as store:
        row = store.find(ident)
        history = store.history(row.exception_key)
        holds = store.holds(row.exception_key)
    source, why = (
        _source_event(settings, row, source_timeout) if source_timeout > 0 else (None, "not looked up")
    )
    if as_json:
        echo_json(
            {
                "exception": _row_dict(row, now),
                "source_event": asdict(source) if source is not None else None,
                "history": [asdict(e) for e in history],
                "held": [asdict(h) for h in holds],
            }
        )
        return
    for name, value in _row_dict(row, now).items():
        click.echo(f"{name:20} {value}")
    if source is None:
        click.echo(f"source event: {why}")
    else:
        click.echo(f"source event ({source.topic}[{source.partition}]@{source.offset}):")
        click.echo(json.dumps(source.record, indent=2, sort_keys=True, default=str))
    click.echo("history:")
    for entry in history:
        note = f"  ({entry.note})" if entry.note else ""
        move = f"{entry.from_status or '-'} -> {entry.to_status}"
        click.echo(f"  {entry.at.isoformat()}  {entry.actor}: {entry.action} {move}{note}")
    if holds:
        click.echo("held on it:")
    for hold in holds:
        state = f"released {hold.released_at.isoformat()}" if hold.released_at else "waiting"
        money = f" {hold.amount_minor} {hold.currency}" if hold.amount_minor is not None else ""
        click.echo(f"  {hold.event_type} {hold.source_event_id}{money} ({state}): {hold.reason}")


@exceptions.command("assign")
@click.argument("ident", metavar="ID")
@click.option("--to", "assignee", required=True, help="Who works it.")
@click.option("--by", "actor", default=getpass.getuser, show_default="current user", help="Who assigns it.")
@click.option("--note", help="Why, for the audit trail.")
def assign_command(ident: str, assignee: str, actor: str, note: str | None) -> None:
    """Assign an open exception to a person (audited)."""
    with _store() as store:
        row = store.change(ident, actor, "assigned", _now(), assignee=assignee, note=note)
    click.echo(f"{row.exception_key}: assigned to {row.assignee} by {actor}")


@exceptions.command("resolve")
@click.argument("ident", metavar="ID")
@click.option("--note", required=True, help="How it was resolved, e.g. accepted as a credit.")
@click.option("--by", "actor", default=getpass.getuser, show_default="current user", help="Who resolves it.")
def resolve_command(ident: str, note: str, actor: str) -> None:
    """Close an exception the pipeline cannot close itself (audited)."""
    with _store() as store:
        row = store.change(ident, actor, "resolved", _now(), status="resolved", note=note)
    click.echo(f"{row.exception_key}: resolved by {actor}")


@exceptions.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def stats_command(as_json: bool) -> None:
    """Open exceptions by team and reason, their ages, SLA breaches and leakage by currency."""
    now = _now()
    with _store() as store:
        stats = queue_stats(store.rows(Filters(), now), now, store.holds(waiting_only=True)).as_dict()
    if as_json:
        echo_json(stats)
        return
    click.echo(f"open {stats['open']}, closed {stats['closed']}, SLA breaches {stats['sla_breaches']}")
    for team, detail in stats["by_team"].items():
        ages = ", ".join(f"{label} {count}" for label, count in detail["by_age"].items())
        click.echo(f"  {team:12} open {detail['open']:4}  late {detail['sla_breaches']:4}  ({ages})")
        for reason, count in detail["by_reason"].items():
            click.echo(f"    {reason:28} {count}")
    for currency, amount in stats["leakage_minor"].items():
        click.echo(f"  leakage {currency}: {amount} minor units")
    held = ", ".join(f"{v} {c}" for c, v in stats["held_order_value_minor"].items()) or "nothing"
    click.echo(
        f"held for approval: {stats['held_orders']} order(s) worth {held}; all records {stats['held']}"
    )


@exceptions.command("approve")
@click.argument("ident", metavar="ID")
@click.option("--by", "approver", required=True, help="Who approves (user id or e-mail).")
@click.option(
    "--level", type=click.IntRange(1), required=True, help="The approver's level in the discount matrix."
)
@click.option("--note", help="Why, for the audit trail.")
def approve_command(ident: str, approver: str, level: int, note: str | None) -> None:
    """Approve the discount of a DISCOUNT_NOT_APPROVED exception: publish a discount_approved event.

    The event goes through the SDK to the canonical topic, as the CRM would send it; the worker
    checks it against the discount matrix and segregation of duties (not the quote's creator) and
    releases the held order, or raises APPROVAL_NOT_ALLOWED.
    """
    settings = settings_for_cli()
    queue = load_queue_settings()
    with _store(settings) as store:
        row = store.find(ident)
    if row.reason_code != "DISCOUNT_NOT_APPROVED" or row.quote_id is None:
        raise ConnectorError(
            f"exception {row.exception_key} is {row.reason_code}, not a quote's discount to approve"
        )
    if not row.is_open:
        raise ConnectorError(f"exception {row.exception_key} is {row.status} already; nothing published")
    event = DiscountApproved(
        event_id=str(uuid.uuid4()),
        occurred_at=_now(),
        source="revstream-cli",
        customer_id=row.customer_id,
        legal_entity=row.legal_entity,
        correlation_id=row.correlation_id,
        approval_id=str(uuid.uuid4()),
        quote_id=row.quote_id,
        approver=approver,
        level=level,
        # What the level may approve at most; 0 for a level the matrix lacks (the worker refuses it).
        max_discount_bp=queue.approval_levels.get(level, 0),
        exception_id=row.exception_id,
        note=note,
    )
    with Publisher(settings) as publisher:
        publisher.publish(event).result(timeout=60)
    who = f"{approver} (level {level})"
    click.echo(
        f"{row.exception_key}: approval {event.approval_id} of quote {row.quote_id} by {who} published"
    )
