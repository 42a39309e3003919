"""Smoke test of ``make bench``'s harness: tiny sizes, one run, every contender, ratio and output.

No timing assertions: on a shared 2-core machine the figures of a few hundred records say nothing.
What is checked is what a reader of the results relies on: every contender measured (records/s,
and CPU and peak RSS for those that run in their own process), every ratio present with its target
verdict, the latencies measured, and the JSON, Markdown table and PNG plot written.

The peers (Quix Streams, Bytewax) run when their virtualenvs are already built (``make bench``
builds them under ``bench/.peers/``; ``REVSTREAM_BENCH_PEERS=build`` makes this test build them,
from PyPI, about a minute): building them is not made a condition of the suite.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import cast

from bench.harness import PEER_RATIOS, QUICK, RATIOS, TARGETS, benchmark
from bench.peer_bench import PEERS, PeerMode
from bench.report import LABELS, PEER_LABELS, RATIO_LABELS, write
from streams.settings import Settings

OWN_PROCESS = ("raw", "faust", "full_1w", "full_2w")


def test_quick_bench_measures_every_contender_and_writes_every_output(
    stack_settings: Settings, tmp_path: Path
) -> None:
    mode = cast(PeerMode, os.environ.get("REVSTREAM_BENCH_PEERS", "existing"))
    results = benchmark(stack_settings, QUICK, runs=1, logs=tmp_path / "logs", peers=mode)
    paths = write(results, tmp_path / "results")

    saved = json.loads(paths["latest_json"].read_text())
    assert saved == json.loads(paths["json"].read_text())
    summary = saved["summary"]
    ran = set(saved["peers"])
    assert ran <= {peer.name for peer in PEERS}
    assert set(summary["throughput"]) == (set(LABELS) - set(PEER_LABELS)) | ran
    for name, figures in summary["throughput"].items():
        assert figures["records_per_s"]["median"] > 0, name
    # Every peer that ran, and revstream, did the whole workload: counted back against the truth.
    assert summary["checks"] == dict.fromkeys({"full_1w", "full_2w"} | ran, True), saved["runs"][0]
    for name in (*OWN_PROCESS, *ran):
        assert summary["throughput"][name]["cpu_s_per_1000"]["median"] > 0, name
        assert summary["throughput"][name]["peak_rss_mb"]["median"] > 20, name
    run = saved["runs"][0]
    assert run["contenders"]["full_1w"]["records"] == saved["sizes"]["full_path_records"]
    assert sum(run["contenders"]["full_2w"]["settled_per_worker"]) == saved["sizes"]["full_path_records"]
    peer_ratios = {r for r in PEER_RATIOS if any(r.endswith(f"_vs_{peer}") for peer in ran)}
    assert set(summary["ratios"]) == set(RATIOS) | peer_ratios
    assert set(summary["met"]) == set(TARGETS) & set(summary["ratios"])
    latency = run["latency"]
    assert latency["to_command_topic_first_pass"]["count"] > 0
    assert latency["to_ledger_first_pass"]["count"] > 0
    assert latency["to_command_topic_first_pass"]["p50_ms"] > 0

    table = paths["markdown"].read_text()
    for name in summary["throughput"]:
        assert f"| {LABELS[name]} |" in table, name
    for name in summary["ratios"]:
        assert f"| {RATIO_LABELS[name]} |" in table, name
    assert paths["plot"].read_bytes().startswith(b"\x89PNG")
