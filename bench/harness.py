"""One benchmark session: every contender side by side, several runs, ratios within each run.

A run measures, in this order on the same stack: the raw Avro pass-through and the plain Faust
agent (each in its own process, on the same ~300-byte records), revstream's full path with one and
with two workers (on the same simulated company), the ERP sink against a raw COPY, the producer SDK
against a raw producer, and finally the end-to-end latency at half the throughput the one-worker
full path reached in that run. Ratios are taken within a run; the summary gives the median of each
figure and ratio over the runs, with its spread.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import fullpath, latency, peer_bench, producer_bench, sink_bench
from bench.baselines import new_sink_topic, prepare
from bench.common import run_contender, summarise
from bench.peer_truth import Truth, ground_truth
from connectors.simulator.simulate import Simulation
from streams.settings import Settings

__all__ = ["FULL", "QUICK", "RATIOS", "TARGETS", "Sizes", "benchmark"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Sizes:
    """How much each contender moves in one run."""

    baseline_records: int
    months: int
    customers: int
    sink_commands: int
    producer_records: int


FULL = Sizes(baseline_records=20_000, months=12, customers=200, sink_commands=20_000, producer_records=50_000)
QUICK = Sizes(baseline_records=300, months=1, customers=8, sink_commands=300, producer_records=300)

# The targets of issue 18 (the peers) and the earlier ones still standing.
TARGETS: dict[str, tuple[str, float]] = {
    "full_1w_vs_quix": (">=", 1.0),
    "cpu_full_1w_vs_quix": ("<=", 1.0),
    "full_1w_vs_bytewax": (">=", 0.5),
    "rss_full_1w_vs_quix": ("<=", 1.0),
    "full_1w_vs_raw": (">=", 0.4),
    "full_1w_vs_faust": (">=", 10.0),
    "sink_vs_copy": (">=", 0.5),
    "sdk_vs_raw_producer": (">=", 0.8),
    "p99_to_commands_ms": ("<", 250.0),
}
PEER_RATIOS = (
    "full_1w_vs_quix",
    "full_1w_vs_quix_default_poll",
    "cpu_full_1w_vs_quix",
    "full_1w_vs_bytewax",
    "cpu_full_1w_vs_bytewax",
    "rss_full_1w_vs_quix",
)
"""Present when the peers ran (``--peers off``, or ``existing`` without their virtualenvs: absent)."""
RATIOS = (
    "full_1w_vs_raw",
    "full_1w_vs_faust",
    "full_2w_vs_raw",
    "full_2w_vs_faust",
    "full_2w_vs_1w",
    "sink_vs_copy",
    "sdk_vs_raw_producer",
    "p99_to_commands_ms",
)
LATENCY_KINDS = ("to_command_topic_first_pass", "to_command_topic_all", "to_ledger_first_pass")


def _baselines(settings: Settings, n: int) -> dict[str, dict[str, Any]]:
    source, schema_id = prepare(settings, n)
    bootstrap = settings.kafka.require_bootstrap()
    figures = {}
    for contender in ("raw", "faust"):
        args = [contender, "--bootstrap", bootstrap, "--source", source, "--sink", new_sink_topic(settings)]
        line = run_contender("bench.baselines", [*args, "--n", str(n), "--schema-id", str(schema_id)])
        records, seconds = int(line["records"]), float(line["seconds"])
        figures[contender] = {
            "records": records,
            "seconds": round(seconds, 3),
            "records_per_s": round(records / seconds, 1),
            "cpu_s_per_1000": round(float(line["cpu_seconds"]) * 1000 / records, 4),
            "peak_rss_mb": float(line["peak_rss_mb"]),
        }
    return figures


def one_run(
    settings: Settings,
    sizes: Sizes,
    simulation: Simulation,
    logs: Path,
    truth: Truth,
    peers: list[peer_bench.Peer],
) -> dict[str, Any]:
    """Measure every contender once and the ratios between them."""
    contenders = _baselines(settings, sizes.baseline_records)
    for workers in (1, 2):
        logger.warning("full path, %d worker(s)", workers)
        contenders[f"full_{workers}w"] = fullpath.run(settings, simulation, workers, logs, truth)
    contenders.update(peer_bench.run(settings, simulation, truth, peers))
    sink = sink_bench.run(settings, sizes.sink_commands)
    contenders["sink"] = {"records_per_s": sink["sink_commands_per_s"], "detail": sink}
    contenders["copy"] = {"records_per_s": sink["copy_commands_per_s"]}
    producer = producer_bench.run(settings, sizes.producer_records, rounds=1)
    contenders["sdk"] = {"records_per_s": producer["sdk_send_records_per_s"], "detail": producer}
    contenders["raw_producer"] = {"records_per_s": producer["raw_records_per_s"]}
    rate = contenders["full_1w"]["records_per_s"] / 2
    logger.warning("latency at %.0f records/s", rate)
    paced = latency.run(settings, simulation, rate, logs)
    speed = {name: float(figures["records_per_s"]) for name, figures in contenders.items()}
    p99 = paced["to_command_topic_first_pass"].get("p99_ms", float("nan"))
    ratios = {
        "full_1w_vs_raw": speed["full_1w"] / speed["raw"],
        "full_1w_vs_faust": speed["full_1w"] / speed["faust"],
        "full_2w_vs_raw": speed["full_2w"] / speed["raw"],
        "full_2w_vs_faust": speed["full_2w"] / speed["faust"],
        "full_2w_vs_1w": speed["full_2w"] / speed["full_1w"],
        "sink_vs_copy": float(sink["ratio"]),
        "sdk_vs_raw_producer": float(producer["ratio"]),
        "p99_to_commands_ms": float(p99),
        **_peer_ratios(contenders),
    }
    return {
        "contenders": contenders,
        "latency": paced,
        "ratios": {name: round(value, 3) for name, value in ratios.items()},
    }


def _peer_ratios(contenders: dict[str, dict[str, Any]]) -> dict[str, float]:
    """revstream's one worker against each peer that ran: records/s, CPU per record, peak RSS."""
    mine = contenders["full_1w"]
    ratios = {}
    for peer in ("quix", "quix_default_poll", "bytewax"):
        if peer in contenders:
            ratios[f"full_1w_vs_{peer}"] = mine["records_per_s"] / contenders[peer]["records_per_s"]
    for peer in ("quix", "bytewax"):
        if peer in contenders:
            ratios[f"cpu_full_1w_vs_{peer}"] = mine["cpu_s_per_1000"] / contenders[peer]["cpu_s_per_1000"]
    if "quix" in contenders:
        ratios["rss_full_1w_vs_quix"] = mine["peak_rss_mb"] / contenders["quix"]["peak_rss_mb"]
    return ratios


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    names = list(runs[0]["contenders"])
    throughput: dict[str, dict[str, Any]] = {}
    for name in names:
        figures: dict[str, Any] = {}
        for metric in ("records_per_s", "cpu_s_per_1000", "peak_rss_mb"):
            values = [run["contenders"][name][metric] for run in runs if metric in run["contenders"][name]]
            if values:
                figures[metric] = summarise(values)
        throughput[name] = figures
    latencies = {
        kind: {
            p: summarise([run["latency"][kind][p] for run in runs if p in run["latency"][kind]])
            for p in ("p50_ms", "p99_ms")
            if any(p in run["latency"][kind] for run in runs)
        }
        for kind in LATENCY_KINDS
    }
    ratios = {
        name: summarise([run["ratios"][name] for run in runs if name in run["ratios"]])
        for name in (*PEER_RATIOS, *RATIOS)
        if any(name in run["ratios"] for run in runs)
    }
    verdicts = {}
    for name, (sense, target) in TARGETS.items():
        if name not in ratios:
            continue
        median = ratios[name]["median"]
        verdicts[name] = {">=": median >= target, "<=": median <= target, "<": median < target}[sense]
    checks = {
        name: all(run["contenders"][name]["check"]["correct"] for run in runs)
        for name in names
        if all("check" in run["contenders"][name] for run in runs)
    }
    return {
        "throughput": throughput,
        "latency": latencies,
        "ratios": ratios,
        "met": verdicts,
        "checks": checks,
    }


def benchmark(
    settings: Settings, sizes: Sizes, runs: int, logs: Path, peers: peer_bench.PeerMode = "build"
) -> dict[str, Any]:
    """Run every contender ``runs`` times; return the per-run figures and their summary.

    ``peers`` says whether the peers' virtualenvs are built when missing (``build``), only the
    peers already built run (``existing``), or none (``off``).
    """
    started = datetime.now(UTC)
    running = peer_bench.available(peers)
    load_before = os.getloadavg()
    simulation = fullpath.realistic_mix(sizes.months, sizes.customers)
    truth = ground_truth(simulation)
    detail = []
    for index in range(runs):
        logger.warning("run %d of %d", index + 1, runs)
        began = time.monotonic()
        detail.append(one_run(settings, sizes, simulation, logs, truth, running))
        logger.warning("run %d took %.0fs", index + 1, time.monotonic() - began)
    return {
        "started_at": started.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "command": " ".join(["python -m bench", *sys.argv[1:]]),
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
        "sizes": {**asdict(sizes), "full_path_records": fullpath.input_records(simulation)},
        "ground_truth": {k: v for k, v in asdict(truth).items() if k != "per_customer"},
        "peers": {
            peer.name: {
                "module": peer.module,
                "args": list(peer.args),
                "requirements": peer.requirements.name,
            }
            for peer in running
        },
        "targets": {name: {"sense": sense, "value": value} for name, (sense, value) in TARGETS.items()},
        "summary": _summary(detail),
        "runs": detail,
    }
