"""How ``revstream dlq`` prints: the list table, one dead letter, statistics and follow outcomes."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from connectors.dlq.entries import Entry
from connectors.dlq.follow import Outcome
from connectors.dlq.values import Decoded

__all__ = ["entry_row", "render_entry", "render_outcomes", "render_stats", "render_table"]

_MAX_CELL = 48


def entry_row(entry: Entry) -> dict[str, Any]:
    """Return one dead letter as JSON data (what ``list --json`` prints per record)."""
    failure, source = entry.letter.failure, entry.letter.source
    marker = entry.marker
    return {
        "id": entry.id,
        "stage": entry.stage,
        "reason": failure.reason_code,
        "status": entry.status,
        "failed_at": entry.failed_at.isoformat(),
        "first_failed_at": failure.first_failure_at.isoformat() if failure.first_failure_at else None,
        "attempts": failure.attempt,
        "source": {"topic": source.topic, "partition": source.partition, "offset": source.offset},
        "event_type": entry.event_type,
        "key": entry.record.key.decode("utf-8", "backslashreplace") if entry.record.key is not None else None,
        "consumer_group": failure.consumer_group,
        "error": {"class": failure.error_class, "message": failure.error_message},
        "replay_count": entry.replay_count,
        "replayed_from": entry.lineage.dead_letter_id if entry.lineage else None,
        "marker": None
        if marker is None
        else {k: v for k, v in marker.__dict__.items() if v not in (None, {})},
    }


def _cell(text: str, width: int = _MAX_CELL) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def render_table(entries: Sequence[Entry]) -> str:
    """Return the ``list`` table (a line saying so when there is nothing to list)."""
    if not entries:
        return "no dead letters match\n"
    rows = [("ID", "FAILED AT (UTC)", "REASON", "SOURCE", "KEY", "REPLAYS", "STATUS")]
    for e in entries:
        source = e.letter.source
        rows.append(
            (
                e.id,
                e.failed_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                e.letter.failure.reason_code,
                _cell(f"{source.topic}[{source.partition}]@{source.offset}"),
                _cell(e.key_text, 24),
                str(e.replay_count),
                e.status,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows
    ]
    return "\n".join(lines) + f"\n{len(entries)} dead letter(s)\n"


def render_entry(entry: Entry, decoded: Decoded, history: Sequence[dict[str, Any]] | str) -> str:
    """Return ``show``: where, why, headers, the decoded value (or hex and the error), history."""
    failure, source = entry.letter.failure, entry.letter.source
    lines = [
        f"{entry.id}  ({entry.record.topic}[{entry.record.partition}]@{entry.record.offset}, {entry.status})",
        f"reason:     {failure.reason_code} at stage {failure.stage} after {failure.attempt} attempt(s)",
        f"error:      {failure.error_class}: {failure.error_message}",
        f"failed:     first {_time(failure.first_failure_at)}, last {_time(failure.last_failure_at)}",
        f"source:     {source.topic}[{source.partition}]@{source.offset}",
        f"group:      {failure.consumer_group or '-'}",
        f"key:        {entry.record.key!r}",
    ]
    if entry.lineage is not None:
        lines.append(f"replayed:   {entry.lineage.count} time(s), last from {entry.lineage.dead_letter_id} "
                     f"by {entry.lineage.by} (replay id {entry.lineage.replay_id})")  # fmt: skip
    lines.append("headers:")
    for name, value in entry.record.headers:
        lines.append(f"  {name} = {'(null)' if value is None else value.decode('utf-8', 'backslashreplace')}")
    if decoded.error is None:
        lines.append(f"value ({decoded.record_name}, schema id {decoded.schema_id}):")
        lines += ["  " + line for line in json.dumps(decoded.record, indent=2, sort_keys=True).splitlines()]
    else:
        raw = entry.record.value
        lines.append(f"value: does not decode: {decoded.error}")
        lines.append(f"  hex: {raw.hex() if raw is not None else '(null)'}")
    marker = entry.marker
    if marker is not None and marker.state:
        where = f"{marker.target}[{marker.partition}]@{marker.offset}"
        lines.append(
            f"marker:     {marker.state} as {marker.replay_id} to {where} by {marker.by} "
            f"at {_time(_ms(marker.at_ms))}"
        )
    if marker is not None and marker.purged:
        lines.append(f"purged:     by {marker.purged_by} at {_time(_ms(marker.purged_at_ms))}")
    if isinstance(history, str):
        lines.append(f"history:    {history}")
        history = []
    lines.append("history:" if history else "history:    none (never replayed or purged)")
    for row in history:
        lines.append(
            f"  #{row['audit_id']} {row['started_at']} {row['actor']} {row['action']}: {row['outcome']}"
        )
        for change in (row.get("diff") or {}).get(entry.id, []):
            lines.append(f"      {change['field']}: {change['before']!r} -> {change['after']!r}")
    return "\n".join(lines) + "\n"


def render_stats(summary: dict[str, Any]) -> str:
    """Return ``stats`` as text."""
    lines = [
        f"dead letters: {summary['total']} ({summary['waiting']} waiting, {summary['replayed']} replayed, "
        f"{summary['parked']} parked away, {summary['purged']} purged and hidden)",
        f"oldest: {summary['oldest'] or '-'}   newest: {summary['newest'] or '-'}",
    ]
    for title, key in (("stage", "by_stage"), ("reason", "by_reason"), ("source topic", "by_source_topic"),
                       ("event type", "by_event_type"), ("age", "by_age")):  # fmt: skip
        counts = summary[key]
        lines.append(f"by {title}: " + (", ".join(f"{k} {v}" for k, v in counts.items()) or "-"))
    return "\n".join(lines) + "\n"


def render_outcomes(outcomes: Sequence[Outcome]) -> str:
    """Return one line per followed record and the totals."""
    lines = []
    for outcome in outcomes:
        item = outcome.sent.planned
        where = f"{item.topic}[{outcome.sent.partition}]@{outcome.sent.offset}"
        label = {"failed": "dead-lettered again", "pending": "still pending"}.get(
            outcome.status, outcome.status
        )
        lines.append(
            f"{item.entry.id} -> {where}: {label}" + (f": {outcome.detail}" if outcome.detail else "")
        )
    totals = Counter(o.status for o in outcomes)
    lines.append(
        f"{totals['processed']} processed, {totals['failed']} dead-lettered again, "
        f"{totals['pending']} still pending" + (f", {totals['parked']} parked" if totals["parked"] else "")
    )
    return "\n".join(lines) + "\n"


def _ms(value: int | None) -> datetime | None:
    return datetime.fromtimestamp(value / 1000, UTC) if value else None


def _time(moment: datetime | None) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if moment else "-"
