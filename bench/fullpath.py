"""revstream's full processing path on a realistic simulator mix: throughput of one or more workers.

The simulated company (duplicates, conflicts, corrupt records, late and missing master data
included) is published into a fresh namespace first; then the workers start. A record counts as
processed when a worker's metrics count it at dedupe (passed, dropped, redelivered, conflict) or as
a decode dead letter: every canonical record is counted exactly once there, and the batch path
takes it through every later stage (policy, enrich, reconcile, recognise, encode, produce) in the
same batch, before the counters move. Parked records are processed (parked is their outcome);
their later retries are not part of the span.

The span runs from the first output the workers produced (the earliest Kafka timestamp on any
output topic: commands, exceptions, retry, dead letters) to the last one, once the metrics show
every input record through (polled every ``POLL_S``), so a worker's start-up and group join are
not counted as processing time. Both ends are Kafka timestamps, not poll times: a scrape costs a
worker a few milliseconds of CPU, and polling often enough to time the span by it (10 a second)
took 4 % of the worker's samples in a profile; Prometheus scrapes every 15 s or so. CPU is the
workers' own, interpolated to that span.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from bench.peer_truth import Truth, check_revstream
from bench.pipeline import (
    ProcessSampler,
    check_running,
    consumed,
    first_output_time,
    last_output_time,
    namespace,
    output_topics,
    scrape,
    settled,
    start_workers,
    stop_all,
    total,
)
from connectors.simulator import SimulationConfig, simulate
from connectors.simulator.config import BusinessRates, FaultRates
from connectors.simulator.output import publish_simulation
from connectors.simulator.simulate import Simulation
from revstream.demo.services import ChildService
from streams.settings import Settings

__all__ = ["input_records", "realistic_mix", "run"]

logger = logging.getLogger(__name__)

POLL_S = 0.5
DEADLINE_S = 300.0


def realistic_mix(months: int, customers: int, seed: int = 7) -> Simulation:
    """The simulated company whose records the full path processes.

    Every event-level fault and business twist is on (duplicates, id conflicts, corrupt records,
    unknown schema ids, billing mismatches, late usage, failed payments, amendments…). Master data
    is complete and on time: in a running business it is slowly changing and already loaded, and a
    record that waits for master data that never comes measures the retry back-off, not the path.
    """
    config = SimulationConfig(
        months=months,
        seed=seed,
        customers=customers,
        faults=FaultRates(missing_master=0.0),
        business=BusinessRates(late_master=0.0),
    )
    return simulate(config)


def input_records(simulation: Simulation) -> int:
    """Records the simulation puts on canonical topics (events, their copies and raw faults)."""
    return sum(1 for emission in simulation.emissions if emission.kind in ("event", "raw"))


def run(
    settings: Settings, simulation: Simulation, workers: int, logs: Path, truth: Truth | None = None
) -> dict[str, Any]:
    """Process the simulation with ``workers`` workers; return records/s, CPU/1000 and peak RSS.

    With ``truth``, the workers' own counts of repeats, conflicts and undecodable records are
    checked against it (``check``).

    Raises:
        RuntimeError: when a worker exits or the records are not through before the deadline.
    """
    with namespace(settings) as ns:
        counts = publish_simulation(simulation, settings, ns.catalog)
        n = counts["events"] + counts["raw"]
        children = start_workers(settings, ns, workers, logs)
        try:
            sampler = ProcessSampler([c.process.pid for c in children if c.process is not None])
            first_pass_at, settled_at, first_pass_parked = _follow(children, sampler, n)
            started_at = first_output_time(settings, output_topics(ns.catalog))
            ended_at = last_output_time(settings, output_topics(ns.catalog))
            if started_at is None or ended_at is None:
                raise RuntimeError("the workers produced no output at all")
            # The last output leaves with the last batch, before its records count as settled.
            settled_at = min(settled_at, ended_at)
            pages = [scrape(c) for c in children]
        finally:
            stop_all(children)
    seconds = max(settled_at - started_at, 1e-6)
    first_pass_seconds = max(first_pass_at - started_at, 1e-6)
    cpu = sampler.cpu_between(started_at, settled_at)
    rss = sampler.figures()["peak_rss_mb"]
    return {
        "records": n,
        "seconds": round(seconds, 3),
        "cpu_seconds": round(cpu, 3),
        "peak_rss_mb": max(rss),
        "peak_rss_mb_per_worker": rss,
        "records_per_s": round(n / seconds, 1),
        "cpu_s_per_1000": round(cpu * 1000 / n, 4),
        "first_pass_records_per_s": round(n / first_pass_seconds, 1),
        "parked_in_first_pass": int(first_pass_parked),
        "parked_total": int(sum(total(p, "revstream_processor_parked_total") for p in pages)),
        "workers": workers,
        "settled_per_worker": [int(settled(p)) for p in pages],
        "erp_commands": int(sum(total(p, "revstream_processor_erp_commands_total") for p in pages)),
        "master_records": counts["master"],
        **({"check": check_revstream(truth, pages)} if truth is not None else {}),
    }


def _follow(children: list[ChildService], sampler: ProcessSampler, n: int) -> tuple[float, float, float]:
    """Poll the workers until every record is settled; return (first pass done, settled, parked by then)."""
    deadline = time.monotonic() + DEADLINE_S
    first_pass_at: float | None = None
    parked = 0.0
    through = 0.0
    while time.monotonic() < deadline:
        check_running(children)
        sampler.sample()
        pages = [scrape(c) for c in children]
        now = time.time()
        if first_pass_at is None and sum(consumed(p) for p in pages) >= n:
            first_pass_at = now
            parked = sum(total(p, "revstream_processor_parked_total") for p in pages)
        through = sum(settled(p) for p in pages)
        if first_pass_at is not None and through >= n:
            sampler.sample()
            return first_pass_at, now, parked
        time.sleep(POLL_S)
    raise RuntimeError(f"{len(children)} worker(s) settled {through:.0f} of {n} records in {DEADLINE_S:g}s")
