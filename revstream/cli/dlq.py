"""``revstream dlq stats | list | show | replay | purge | audit``: dead-letter reprocessing.

Works on every dead-letter topic of the catalog (``<ns>.dlq.<stage>``, the sink's included) and
the parking topic. Exit codes: 0 done; 1 an error (one line); 2 ``--follow`` saw a replayed record
dead-lettered again; 3 ``--follow`` left records pending at its deadline; 130 not confirmed.
"""

from __future__ import annotations

import getpass
import shlex
import socket
import sys
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from connectors.dlq.entries import Selection, statistics
from connectors.dlq.errors import EmptySelectionError
from connectors.dlq.patch import load_patch
from connectors.dlq.tool import DlqTool
from connectors.dlq.values import decode_value
from connectors.errors import ConnectorError
from revstream.cli.common import echo_json, settings_for_cli
from revstream.cli.dlq_output import entry_row, render_entry, render_outcomes, render_stats, render_table
from streams.errors import SettingsError

__all__ = ["dlq"]

FAILED_AGAIN_EXIT = 2
PENDING_EXIT = 3


def _when(_ctx: click.Context, _param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not an ISO-8601 time, e.g. 2026-12-03T08:00:00Z") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _rate(_ctx: click.Context, _param: click.Parameter, value: str | None) -> float | None:
    if value is None:
        return None
    try:
        rate = float(value.removesuffix("/s"))
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a rate; use records per second, e.g. 50/s") from None
    if rate <= 0:
        raise click.BadParameter("the rate must be above 0")
    return rate


def filters(command: Callable[..., Any]) -> Callable[..., Any]:
    """The selection options every command shares."""
    options = [
        click.option(
            "--stage", "stages", multiple=True, help="Stage (repeatable): decode, enrich, sink, parked…"
        ),
        click.option("--reason", "reasons", multiple=True, help="Reason code (repeatable)."),
        click.option("--source-topic", "source_topics", multiple=True, help="Topic the record failed on."),
        click.option("--event-type", "event_types", multiple=True, help="Canonical event type."),
        click.option("--key", "keys", multiple=True, help="Record key (customer id)."),
        click.option("--event-id", "event_ids", multiple=True, help="Event id (decodes values)."),
        click.option("--since", callback=_when, metavar="TIME", help="Dead-lettered at or after (ISO-8601)."),
        click.option("--until", callback=_when, metavar="TIME", help="Dead-lettered before (ISO-8601)."),
        click.option("--limit", type=click.IntRange(1), help="At most this many, oldest first."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _selection(ids: Sequence[str] = (), include_done: bool = False, **given: Any) -> Selection:
    return Selection(ids=tuple(ids), include_done=include_done, **given)


def _tool() -> DlqTool:
    return DlqTool(settings_for_cli())


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _command_line() -> str:
    return shlex.join(["revstream", *sys.argv[1:]])


def _histogram(entries: Sequence[Any]) -> str:
    reasons = Counter(f"{e.stage}/{e.letter.failure.reason_code}" for e in entries)
    return ", ".join(f"{name} {count}" for name, count in reasons.most_common())


class _FollowProgress:
    """Tells stderr how the followed records stand whenever that changes (``--follow`` can take a while)."""

    def __init__(self) -> None:
        self._last = ""

    def __call__(self, outcomes: Sequence[Any]) -> None:
        counts = Counter(o.status for o in outcomes)
        line = (
            f"following: {counts['processed']} processed, {counts['failed']} failed again, "
            f"{counts['pending']} pending"
        )
        if line != self._last:
            click.echo(line, err=True)
            self._last = line


@click.group()
def dlq() -> None:
    """List, inspect, replay and purge dead letters (every <ns>.dlq.<stage> topic)."""


@dlq.command("stats")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def stats_command(as_json: bool) -> None:
    """Counts by stage, reason, source topic, event type and age; replayed, parked and purged."""
    summary = statistics(_tool().entries(), datetime.now(UTC))
    if as_json:
        echo_json(summary)
    else:
        click.echo(render_stats(summary), nl=False)


@dlq.command("list")
@filters
@click.option(
    "--all", "include_done", is_flag=True, help="Also list replayed, parked-away and purged records."
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def list_command(include_done: bool, as_json: bool, **given: Any) -> None:
    """A table of dead letters waiting for a replay; ids are <stage>:<partition>:<offset>."""
    selected = _tool().select(_selection(include_done=include_done, **given))
    if as_json:
        echo_json([entry_row(e) for e in selected])
        return
    click.echo(render_table(selected), nl=False)


@dlq.command("show")
@click.argument("dead_letter_id")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def show_command(dead_letter_id: str, as_json: bool) -> None:
    """One dead letter: headers, error context, decoded value, replay and purge history."""
    tool = _tool()
    entry = tool.find(dead_letter_id)
    decoded = decode_value(tool.serde, entry.record.value)
    try:
        history: list[dict[str, Any]] | str = [row.as_dict() for row in tool.audit_rows(entry.id)]
    except (ConnectorError, SettingsError) as exc:
        # Inspecting must work while the audit database is down (the marker is shown anyway).
        history = f"unavailable ({exc})"
    if as_json:
        echo_json({**entry_row(entry), "value": decoded.__dict__, "history": history,
                   "headers": [[k, None if v is None else v.decode("utf-8", "backslashreplace")]
                               for k, v in entry.record.headers]})  # fmt: skip
        return
    click.echo(render_entry(entry, decoded, history), nl=False)


@dlq.command("replay")
@click.argument("ids", nargs=-1, metavar="[ID]...")
@filters
@click.option("--to", "to", metavar="TOPIC", help="Publish to this topic instead of the original one.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Print what would be replayed, send nothing.")
@click.option("--rate", callback=_rate, metavar="N/s", help="Records per second at most.")
@click.option("--max-replays", type=click.IntRange(1), default=3, show_default=True,
              help="A record replayed this often goes to <ns>.dlq.parked instead.")  # fmt: skip
@click.option("--patch", "patch_file", type=click.Path(path_type=Path, dir_okay=False),
              help="RFC 7386 JSON merge patch applied to each value (validated, re-encoded).")  # fmt: skip
@click.option("--follow", is_flag=True, help="Wait for each record's outcome and report it.")
@click.option("--timeout", "timeout_s", type=click.FloatRange(1), default=120.0, show_default=True,
              help="--follow: seconds before records still pending are reported so.")  # fmt: skip
@click.option("--group", help="--follow: the consumer group to watch (default: the one that failed it).")
@click.option("--metrics-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Write this run's metrics here (Prometheus textfile format).")  # fmt: skip
@click.option("--crash-after-chunks", type=click.IntRange(1), hidden=True)
def replay_command(ids: tuple[str, ...], to: str | None, yes: bool, dry_run: bool, rate: float | None,
                   max_replays: int, patch_file: Path | None, follow: bool, timeout_s: float,
                   group: str | None, metrics_file: Path | None, crash_after_chunks: int | None,
                   **given: Any) -> None:  # fmt: skip
    """Re-publish dead letters to their original topic with lineage headers, once each."""
    patch = load_patch(patch_file) if patch_file is not None else None
    tool = _tool()
    job = tool.prepare_replay(
        _selection(ids, **given), to=to, max_replays=max_replays, actor=_actor(), patch=patch
    )
    parked = sum(p.action == "park" for p in job.planned)
    click.echo(f"{len(job.planned)} dead letter(s) selected: {_histogram([p.entry for p in job.planned])}")
    if parked:
        click.echo(
            f"{parked} of them were replayed {max_replays} time(s) already: "
            f"they go to {tool.catalog.parked_topic}"
        )
    if dry_run:
        for item in job.planned:
            where = item.topic if item.partition is None else f"{item.topic}[{item.partition}]"
            verb = "park" if item.action == "park" else "replay"
            click.echo(f"would {verb} {item.entry.id} -> {where} (replay {item.lineage.count})")
            for change in job.changes.get(item.entry.id, []):
                click.echo(f"    {change['field']}: {change['before']!r} -> {change['after']!r}")
        click.echo("dry run: nothing was sent")
        return
    if not yes:
        click.confirm("replay them?", abort=True, err=True)
    with click.progressbar(length=len(job.planned), label="replaying", file=sys.stderr) as bar:
        result = tool.replay(
            job,
            command_line=_command_line(),
            rate=rate,
            progress=bar.update,
            follow_timeout_s=timeout_s if follow else None,
            group=group,
            on_round=_FollowProgress(),
            crash_after_chunks=crash_after_chunks,
        )
    if metrics_file is not None:
        tool.metrics.write(metrics_file)
    recovered = sum(s.recovered for s in result.sent)
    click.echo(
        f"replayed {len(result.sent) - parked}, parked {parked}"
        + (f" ({recovered} already published by an interrupted run)" if recovered else "")
        + f"; audit #{result.audit_id}"
    )
    if follow:
        click.echo(render_outcomes(result.outcomes), nl=False)
        statuses = Counter(o.status for o in result.outcomes)
        if statuses["failed"]:
            sys.exit(FAILED_AGAIN_EXIT)
        if statuses["pending"]:
            sys.exit(PENDING_EXIT)


@dlq.command("purge")
@click.argument("ids", nargs=-1, metavar="[ID]...")
@filters
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--dry-run", is_flag=True, help="Print what would be purged, change nothing.")
@click.option("--metrics-file", type=click.Path(path_type=Path, dir_okay=False),
              help="Write this run's metrics here (Prometheus textfile format).")  # fmt: skip
def purge_command(
    ids: tuple[str, ...], yes: bool, dry_run: bool, metrics_file: Path | None, **given: Any
) -> None:
    """Hide dead letters from list, stats and replay by a marker; topic data is never deleted."""
    tool = _tool()
    selection = _selection(ids, **given)
    selected = tool.select(selection)
    if not selected:
        raise EmptySelectionError(
            f"no dead letter matches {selection.describe() or 'the filters'}; nothing to purge"
        )
    click.echo(f"{len(selected)} dead letter(s) selected: {_histogram(selected)}")
    if dry_run:
        for entry in selected:
            click.echo(f"would purge {entry.id}")
        click.echo("dry run: nothing was changed")
        return
    if not yes:
        click.confirm("purge them (the records stay on their topics)?", abort=True, err=True)
    audit_id = tool.purge(selected, actor=_actor(), command_line=_command_line(), selection=selection)
    if metrics_file is not None:
        tool.metrics.write(metrics_file)
    click.echo(f"purged {len(selected)}; audit #{audit_id}")


@dlq.command("audit")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True, help="Newest rows to show.")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def audit_command(limit: int, as_json: bool) -> None:
    """Every replay and purge: who, when, command, filter, records, outcome."""
    rows = _tool().audit_rows(limit=limit)
    if as_json:
        echo_json([row.as_dict() for row in rows])
        return
    if not rows:
        click.echo("no replay or purge recorded yet")
    for row in rows:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(row.counts.items()) if v)
        when = f"{row.started_at:%Y-%m-%d %H:%M:%S%z}"
        patched = " patched" if row.patch is not None else ""
        summary = f"{row.record_count} record(s){patched}: {row.outcome}" + (f" ({counts})" if counts else "")
        click.echo(f"#{row.audit_id} {when} {row.actor} {row.action} {summary}")
        click.echo(f"    {row.command_line}")
