"""``revstream sink``: apply ERP commands from Kafka to the PostgreSQL ledger, exactly once."""

from __future__ import annotations

import logging

import click
from prometheus_client import start_http_server

from connectors.sink.metrics import SinkMetrics
from connectors.sink.sink import ErpSink, SinkConfig
from revstream.cli.common import settings_for_cli

__all__ = ["sink"]

logger = logging.getLogger(__name__)


@click.command("sink", short_help="Apply ERP commands to the ledger, exactly once.")
@click.option("--group", default="revstream-sink", show_default=True, help="Consumer group id.")
@click.option("--topic", help="ERP command topic (default: the catalog's).")
@click.option(
    "--batch-size", type=click.IntRange(1, 100_000), default=2000, show_default=True,
    help="Most records applied in one database transaction.",
)  # fmt: skip
@click.option("--metrics-port", type=click.IntRange(0, 65535), help="Serve Prometheus /metrics on this port.")
@click.option("--metrics-host", default="127.0.0.1", show_default=True, help="Address /metrics listens on.")
@click.option("--max-records", type=click.IntRange(1), help="Stop after handling this many records.")
@click.option(
    "--until-idle", "until_idle", type=click.FloatRange(0.1), metavar="SECONDS",
    help="Stop once no record arrived for this long.",
)  # fmt: skip
@click.option("--crash-after-batches", type=click.IntRange(1), hidden=True)
def sink(
    group: str,
    topic: str | None,
    batch_size: int,
    metrics_port: int | None,
    metrics_host: str,
    max_records: int | None,
    until_idle: float | None,
    crash_after_batches: int | None,
) -> None:
    """Consume ERP commands and apply them to the ledger until stopped (SIGTERM / Ctrl-C)."""
    settings = settings_for_cli()
    config = SinkConfig(
        group_id=group,
        topic=topic,
        batch_size=batch_size,
        max_records=max_records,
        until_idle_s=until_idle,
        crash_after_db_commits=crash_after_batches,
    )
    metrics = SinkMetrics.create()
    if metrics_port is not None:
        start_http_server(metrics_port, addr=metrics_host, registry=metrics.registry)
    worker = ErpSink(settings, config, metrics)
    worker.install_signal_handlers()
    click.echo(f"sink: {worker.topic} -> {settings.database.redacted()} (group {group})", err=True)
    stats = worker.run()
    click.echo(
        f"sink: {stats.consumed} read, {stats.applied} applied, {stats.duplicates} duplicates, "
        f"{stats.dead_lettered} dead-lettered, {stats.retries} retries",
        err=True,
    )
