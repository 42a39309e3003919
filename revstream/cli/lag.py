"""``revstream lag``: consumer lag per group and partition, live, once, as JSON, or as an exporter.

``revstream lag`` redraws a table every ``--interval`` seconds until Ctrl-C; ``--once`` prints one
(after ``--samples`` polls, since the lag in seconds and the status need history); ``--json``
prints the same for scripts. With ``--once`` or ``--json`` the exit code is 1 when any group is ERR,
STOP or STALL, so a cron job or CI step can check a pipeline with it.
"""

from __future__ import annotations

import json
import math
import signal
import sys
import time

import click

from revstream.cli.common import settings_for_cli
from streams.lag.collector import LagCollector, LagConfig
from streams.lag.exporter import LagExporter
from streams.lag.metrics import LagMetrics
from streams.lag.model import GroupFilter, Snapshot
from streams.lag.status import Status
from streams.settings import Settings

__all__ = ["lag", "render_table"]

_COLOURS = {
    Status.OK: "green",
    Status.WARN: "yellow",
    Status.REWIND: "magenta",
    Status.STALL: "red",
    Status.STOP: "red",
    Status.ERR: "red",
}


def _seconds(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.1f}"


def render_table(snapshot: Snapshot) -> list[str]:
    """Return the table lines of ``snapshot``: a line per group, then one per partition it consumes."""
    if not snapshot.groups:
        return ["no consumer groups match"]
    header = (
        f"{'GROUP / TOPIC':<44} {'PART':>4} {'COMMITTED':>10} {'END':>10} {'LAG':>8} {'SECONDS':>8}  STATUS"
    )
    lines = [header]
    for group in snapshot.groups:
        colour = _COLOURS[group.status]
        detail = (
            f"  ({group.error})" if group.error else f"  {group.state.lower()}, {group.members} member(s)"
        )
        lines.append(
            click.style(
                f"{group.group:<44} {'':>4} {'':>10} {'':>10} {group.sum_lag:>8} "
                f"{_seconds(group.max_lag_seconds):>8}  {group.status.name}",
                fg=colour,
                bold=True,
            )
            + detail
        )
        for p in group.partitions:
            lines.append(
                click.style(
                    f"  {p.topic:<42} {p.partition:>4} {p.committed:>10} {p.end:>10} {p.lag:>8} "
                    f"{_seconds(p.lag_seconds):>8}  {p.status.name}",
                    fg=_COLOURS[p.status],
                )
            )
    return lines


def _collector(settings: Settings, allow: str | None, deny: str | None) -> LagCollector:
    config = LagConfig.from_settings(settings.lag)
    groups = GroupFilter(allow or config.groups.allow, deny if deny is not None else config.groups.deny)
    return LagCollector(
        settings.kafka, LagConfig(config.cluster_name, groups, config.window, config.lookup_table_size)
    )


@click.group(
    "lag", invoke_without_command=True, short_help="Consumer lag per group: live, once, JSON, exporter."
)
@click.option("--once", is_flag=True, help="Print one snapshot and exit (1 when a group is ERR/STOP/STALL).")
@click.option("--json", "as_json", is_flag=True, help="Print one snapshot as JSON and exit (implies --once).")
@click.option(
    "--interval", type=click.FloatRange(0.1, 3600), default=1.0, show_default=True,
    help="Seconds between two polls.",
)  # fmt: skip
@click.option(
    "--samples", type=click.IntRange(1, 100), default=3, show_default=True,
    help="Polls before --once/--json print (the seconds and the status need two or more).",
)  # fmt: skip
@click.option(
    "--group", "allow", metavar="REGEX", help="Only groups matching (default REVSTREAM_LAG_GROUP_ALLOW)."
)
@click.option(
    "--exclude", "deny", metavar="REGEX", help="Leave out groups matching (default REVSTREAM_LAG_GROUP_DENY)."
)
@click.pass_context
def lag(
    ctx: click.Context,
    once: bool,
    as_json: bool,
    interval: float,
    samples: int,
    allow: str | None,
    deny: str | None,
) -> None:
    """Show consumer lag per group and partition: committed offset, log end, lag, seconds, status."""
    if ctx.invoked_subcommand is not None:
        return
    settings = settings_for_cli()
    collector = _collector(settings, allow, deny)
    try:
        if once or as_json:
            snapshot = collector.poll()
            for _ in range(samples - 1):
                time.sleep(interval)
                snapshot = collector.poll()
            if as_json:
                click.echo(json.dumps(snapshot.to_json(), indent=2, sort_keys=True))
            else:
                click.echo("\n".join(render_table(snapshot)))
            sys.exit(1 if snapshot.failing() else 0)
        while True:
            snapshot = collector.poll()
            click.clear()
            stamp = time.strftime("%H:%M:%S", time.gmtime(snapshot.taken_at))
            click.echo(f"revstream lag  {stamp} UTC  every {interval:g}s  (Ctrl-C to quit)")
            click.echo("\n".join(render_table(snapshot)))
            time.sleep(interval)
    finally:
        collector.close()


@lag.command("serve", short_help="Serve /metrics, /healthz and /api/groups.")
@click.option("--host", default=None, help="Interface to listen on. Default: REVSTREAM_LAG_HOST (127.0.0.1).")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=None, help="Port. Default: REVSTREAM_LAG_PORT (8000)."
)
def serve(host: str | None, port: int | None) -> None:
    """Poll every group's lag on REVSTREAM_LAG_POLL_INTERVAL and serve it until stopped (SIGTERM / Ctrl-C)."""
    settings = settings_for_cli()
    exporter = LagExporter(_collector(settings, None, None), LagMetrics.create(), settings.lag.poll_interval)
    bound = exporter.start(host or settings.lag.host, settings.lag.port if port is None else port)
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: exporter.request_stop())
    click.echo(
        f"lag exporter: http://{host or settings.lag.host}:{bound}/metrics, polling every "
        f"{settings.lag.poll_interval:g}s",
        err=True,
    )
    exporter.wait()
    exporter.stop()
