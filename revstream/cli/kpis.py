"""``revstream kpis serve``: the process-intelligence measures as Prometheus metrics (revstream.kpis)."""

from __future__ import annotations

import signal

import click
from prometheus_client import start_http_server

from revstream.cli.common import settings_for_cli
from revstream.demo.watch import OutputWatcher
from revstream.kpis import KpiMetrics, KpiPoller
from streams.serde import AvroSerde
from streams.topics import catalog_for

__all__ = ["kpis"]


@click.group("kpis", short_help="Process-intelligence measures as Prometheus metrics.")
def kpis() -> None:
    """Cycle times, touchless rate, usage leakage, open exceptions and invoice accuracy."""


@kpis.command("serve", short_help="Serve the measures on /metrics.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address /metrics listens on.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=9103, show_default=True, help="Port of /metrics."
)
@click.option(
    "--interval", type=click.FloatRange(0.5, 3600), default=15.0, show_default=True,
    help="Seconds between two recomputations.",
)  # fmt: skip
def serve(host: str, port: int, interval: float) -> None:
    """Follow REVSTREAM_TOPICS_NAMESPACE's topics and serve the measures until stopped (SIGTERM / Ctrl-C)."""
    settings = settings_for_cli()
    catalog = catalog_for(settings)
    watcher = OutputWatcher(settings, catalog, AvroSerde.from_settings(settings.registry))
    metrics = KpiMetrics.create()
    poller = KpiPoller(watcher, metrics, interval)
    start_http_server(port, addr=host, registry=metrics.registry)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: poller.stop())
    click.echo(
        f"kpis: http://{host}:{port}/metrics, namespace {catalog.namespace}, every {interval:g}s", err=True
    )
    try:
        poller.run()
    finally:
        watcher.close()
