"""The benchmark's outputs: the JSON file, a Markdown table and a PNG plot, from the results alone."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = ["markdown", "plot", "write"]

logger = logging.getLogger(__name__)

LABELS = {
    "raw": "raw Avro pass-through (confluent-kafka + fastavro)",
    "faust": "plain Faust agent (one awaited send per event)",
    "full_1w": "revstream full path, 1 worker",
    "full_2w": "revstream full path, 2 workers",
    "quix": "Quix Streams app, poll timeout 0.02 s (tuned)",
    "quix_default_poll": "Quix Streams app, poll timeout 1 s (its default)",
    "bytewax": "Bytewax dataflow",
    "sink": "ERP sink (commands → ledger)",
    "copy": "raw COPY of the same rows",
    "sdk": "producer SDK (send)",
    "raw_producer": "raw confluent-kafka producer",
}
# What each contender does per record, printed next to its figure: the peers' workload is less.
WORK = {
    "raw": "decode, one field recomputed, encode, produce",
    "faust": "decode, one field recomputed, encode, one awaited send",
    "full_1w": "decode, validate, dedupe, policy, enrich, reconcile, recognise, encode, produce commands",
    "full_2w": "the same, two processes in one group",
    "quix": "decode, dedupe by id, per-customer count and sum, encode, produce",
    "quix_default_poll": "the same as Quix tuned",
    "bytewax": "decode, dedupe by id, per-customer count and sum, encode, produce",
    "sink": "decode a command, batch, one ledger transaction per flush with the offsets",
    "copy": "COPY of pre-built rows",
    "sdk": "check the event type, encode the model, headers, produce",
    "raw_producer": "produce pre-encoded bytes",
}
PEER_LABELS = ("quix", "quix_default_poll", "bytewax")
RATIO_LABELS = {
    "full_1w_vs_quix": "revstream (1 worker) / Quix tuned, records/s",
    "full_1w_vs_quix_default_poll": "revstream (1 worker) / Quix default poll, records/s",
    "cpu_full_1w_vs_quix": "revstream (1 worker) / Quix tuned, CPU s per 1,000 records",
    "full_1w_vs_bytewax": "revstream (1 worker) / Bytewax, records/s (stretch)",
    "cpu_full_1w_vs_bytewax": "revstream (1 worker) / Bytewax, CPU s per 1,000 records",
    "rss_full_1w_vs_quix": "revstream worker peak RSS / Quix's",
    "full_1w_vs_raw": "revstream (1 worker) / raw pass-through, records/s",
    "full_1w_vs_faust": "full path (1 worker) / plain Faust",
    "full_2w_vs_raw": "full path (2 workers) / raw pass-through",
    "full_2w_vs_faust": "full path (2 workers) / plain Faust",
    "full_2w_vs_1w": "2 workers / 1 worker",
    "sink_vs_copy": "sink / raw COPY",
    "sdk_vs_raw_producer": "SDK / raw producer",
    "p99_to_commands_ms": "p99 event → command topic, ms (first pass, half load)",
}


def _cell(figure: dict[str, Any] | None, digits: int = 0) -> str:
    if not figure:
        return "-"
    spread = f" ±{figure['spread_pct'] / 2:.0f}%" if figure["runs"] > 1 else ""
    return f"{figure['median']:,.{digits}f}{spread}"


def markdown(results: dict[str, Any]) -> str:
    """The results as Markdown: throughput, ratios against targets, latency."""
    summary = results["summary"]
    runs = results["summary"]["ratios"]["sink_vs_copy"]["runs"]
    lines = [
        f"Medians of {runs} run(s); ± is half the spread (max - min) relative to the median.",
        "",
        "| contender | records/s | CPU s / 1,000 records | peak RSS MB | work per record |",
        "|---|---:|---:|---:|---|",
    ]
    for name, figures in summary["throughput"].items():
        # A contender whose output disagrees with the ground truth did less: its speed is flagged.
        checked = summary.get("checks", {}).get(name)
        name_note = " (**output wrong**)" if checked is False else ""
        lines.append(
            f"| {LABELS.get(name, name)}{name_note} | {_cell(figures.get('records_per_s'))} | "
            f"{_cell(figures.get('cpu_s_per_1000'), 3)} | {_cell(figures.get('peak_rss_mb'))} | "
            f"{WORK.get(name, '')} |"
        )
    checks = summary.get("checks", {})
    if checks:
        right = ", ".join(LABELS.get(n, n) for n, ok in checks.items() if ok)
        lines += [
            "",
            f"Counted back against the simulator's ground truth in every run, and right: {right or 'none'}.",
        ]
    lines += ["", "| ratio (same run) | target | measured (median, min-max) | met |", "|---|---:|---:|:---:|"]
    targets = results["targets"]
    for name, figure in summary["ratios"].items():
        target = targets.get(name)
        goal = f"{target['sense']} {target['value']:g}" if target else ""
        met = ("yes" if summary["met"][name] else "**no**") if name in summary["met"] else ""
        lines.append(
            f"| {RATIO_LABELS.get(name, name)} | {goal} | "
            f"{figure['median']:.3g} ({figure['min']:.3g}-{figure['max']:.3g}) | {met} |"
        )
    rate = [run["latency"]["rate_achieved_per_s"] for run in results["runs"]]
    lines += [
        "",
        f"End-to-end latency at a paced load of half the 1-worker throughput ({min(rate):,.0f}-"
        f"{max(rate):,.0f} records/s), one worker and one sink:",
        "",
        "| path | p50 ms | p99 ms |",
        "|---|---:|---:|",
    ]
    names = {
        "to_command_topic_first_pass": "event produced → command produced (never parked)",
        "to_command_topic_all": "event produced → command produced (all, incl. retried)",
        "to_ledger_first_pass": "event produced → ledger commit (never parked; ≤ 20 ms poll)",
    }
    for kind, figures in summary["latency"].items():
        lines.append(f"| {names[kind]} | {_cell(figures.get('p50_ms'))} | {_cell(figures.get('p99_ms'))} |")
    return "\n".join(lines) + "\n"


def plot(results: dict[str, Any], path: Path) -> None:
    """Throughput bars (median, min-max whiskers) and the latency distribution of the last run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    throughput = results["summary"]["throughput"]
    names = [n for n in throughput if "records_per_s" in throughput[n]]
    medians = [throughput[n]["records_per_s"]["median"] for n in names]
    low = [m - throughput[n]["records_per_s"]["min"] for n, m in zip(names, medians, strict=True)]
    high = [throughput[n]["records_per_s"]["max"] - m for n, m in zip(names, medians, strict=True)]
    figure, (bars, curve) = plt.subplots(1, 2, figsize=(14, 5.5))
    colours = ["#c44e52" if n.startswith("full") else "#4c72b0" for n in names]
    bars.barh(names, medians, xerr=[low, high], color=colours)
    bars.set_xscale("log")
    bars.set_xlabel("records/s (log scale; median of runs, whiskers min-max)")
    bars.invert_yaxis()
    bars.set_title("Throughput")
    last = results["runs"][-1]["latency"]
    for kind, label in (
        ("to_command_topic_first_pass", "→ command topic"),
        ("to_ledger_first_pass", "→ ledger commit"),
    ):
        quantiles = last.get(kind, {}).get("quantiles_ms")
        if quantiles:
            curve.plot(quantiles, [i / len(quantiles) for i in range(len(quantiles))], label=label)
    curve.axvline(250, color="grey", linestyle="--", label="250 ms target")
    curve.set_xscale("log")
    curve.set_xlabel("latency from event produced, ms (log scale)")
    curve.set_ylabel("share of commands")
    curve.set_title(f"End-to-end latency at {last['rate_achieved_per_s']:,.0f} records/s (last run)")
    curve.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write(results: dict[str, Any], out: Path) -> dict[str, Path]:
    """Write ``<timestamp>.json``, ``latest.json``, ``latest.md`` and ``latest.png`` under ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    text = json.dumps(results, indent=2) + "\n"
    paths = {
        "json": out / f"{stamp}.json",
        "latest_json": out / "latest.json",
        "markdown": out / "latest.md",
        "plot": out / "latest.png",
    }
    paths["json"].write_text(text, encoding="utf-8")
    paths["latest_json"].write_text(text, encoding="utf-8")
    paths["markdown"].write_text(markdown(results), encoding="utf-8")
    plot(results, paths["plot"])
    return paths
