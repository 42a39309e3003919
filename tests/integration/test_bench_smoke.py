"""Smoke test of ``make bench``'s harness: tiny sizes, one run, every contender, ratio and output.

No timing assertions: on a shared 2-core machine the figures of a few hundred records say nothing.
What is checked is what a reader of the results relies on: every contender measured (records/s,
and CPU and peak RSS for those that run in their own process), every ratio present with its target
verdict, the latencies measured, and the JSON, Markdown table and PNG plot written.
"""

from __future__ import annotations

import json
from pathlib import Path

from bench.harness import QUICK, RATIOS, TARGETS, benchmark
from bench.report import LABELS, RATIO_LABELS, write
from streams.settings import Settings

OWN_PROCESS = ("raw", "faust", "full_1w", "full_2w")


def test_quick_bench_measures_every_contender_and_writes_every_output(
    stack_settings: Settings, tmp_path: Path
) -> None:
    results = benchmark(stack_settings, QUICK, runs=1, logs=tmp_path / "logs")
    paths = write(results, tmp_path / "results")

    saved = json.loads(paths["latest_json"].read_text())
    assert saved == json.loads(paths["json"].read_text())
    summary = saved["summary"]
    assert set(summary["throughput"]) == set(LABELS)
    for name, figures in summary["throughput"].items():
        assert figures["records_per_s"]["median"] > 0, name
    for name in OWN_PROCESS:
        assert summary["throughput"][name]["cpu_s_per_1000"]["median"] > 0, name
        assert summary["throughput"][name]["peak_rss_mb"]["median"] > 20, name
    run = saved["runs"][0]
    assert run["contenders"]["full_1w"]["records"] == saved["sizes"]["full_path_records"]
    assert sum(run["contenders"]["full_2w"]["settled_per_worker"]) == saved["sizes"]["full_path_records"]
    assert set(summary["ratios"]) == set(RATIOS)
    assert set(summary["met"]) == set(TARGETS)
    latency = run["latency"]
    assert latency["to_command_topic_first_pass"]["count"] > 0
    assert latency["to_ledger_first_pass"]["count"] > 0
    assert latency["to_command_topic_first_pass"]["p50_ms"] > 0

    table = paths["markdown"].read_text()
    for label in [*LABELS.values(), *RATIO_LABELS.values()]:
        assert f"| {label} |" in table, label
    assert paths["plot"].read_bytes().startswith(b"\x89PNG")
