"""A worker's RSS while its dedupe state grows to millions of distinct event ids.

A small simulated company is published first (its master data and subscriptions); then ``ids``
copies of one of its usage events, each with a new event id, are published while one worker
processes them. Every 100 copies get a new metric name, so that each reconciliation key
(subscription, metric, month), which keeps the usage ids it counted, stays the size a real one has.
The worker's resident memory (VmRSS) is read at every tenth of the way, and its peak (VmHWM) at the
end. The target: 5 million distinct ids keep the worker under 500 MB, because the dedupe entries
live in the on-disk store, not on the heap.

    python -m bench --dedupe-rss [--dedupe-ids 5000000]
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import psutil

from bench.fullpath import input_records, realistic_mix
from bench.pipeline import check_running, namespace, scrape, settled, start_workers, stop_all
from connectors.producers.publisher import Publisher
from connectors.simulator.output import publish_simulation
from schemas.models import UsageRecorded
from streams.settings import Settings

__all__ = ["TARGET_MB", "run"]

logger = logging.getLogger(__name__)

TARGET_MB = 500.0
CHECKPOINTS = 10
DEADLINE_S_PER_MILLION = 1800.0


def _rss_mb(pid: int, field: str) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1]) / 1024
    return float(psutil.Process(pid).memory_info().rss) / (1024 * 1024)


def run(settings: Settings, ids: int, logs: Path) -> dict[str, Any]:
    """Push ``ids`` distinct event ids through one worker; return its RSS along the way.

    Raises:
        RuntimeError: when the worker exits or falls behind the deadline.
    """
    simulation = realistic_mix(months=2, customers=3)
    template = next(
        e.record
        for e in simulation.emissions
        if e.kind == "event" and isinstance(e.record, UsageRecorded) and e.fault is None
    )
    assert isinstance(template, UsageRecorded)
    with namespace(settings) as ns:
        publish_simulation(simulation, settings, ns.catalog)
        base = input_records(simulation)
        worker = start_workers(settings, ns, 1, logs)[0]
        assert worker.process is not None
        pid = worker.process.pid
        checkpoints: list[dict[str, float]] = []
        started = time.monotonic()
        deadline = started + DEADLINE_S_PER_MILLION * max(ids / 1_000_000, 0.1)
        try:
            with Publisher(settings, catalog=ns.catalog) as publisher:
                step = max(ids // CHECKPOINTS, 1)
                for i in range(ids):
                    # A reconciliation key (subscription, metric, month) keeps every usage id it
                    # counted; 100 per key keeps that state realistic while the dedupe state grows.
                    event_id, metric = f"{template.event_id}-{i:08d}", f"{template.metric}-{i // 100}"
                    copy = {"event_id": event_id, "metric": metric}
                    publisher.send(template.model_copy(update=copy))
                    if (i + 1) % step == 0:
                        publisher.flush()
                        checkpoints.append(_checkpoint(worker, pid, base, i + 1 - step, started, deadline))
            checkpoints.append(_checkpoint(worker, pid, base, ids, started, deadline))
            peak = _rss_mb(pid, "VmHWM")
        finally:
            stop_all([worker])
    return {
        "distinct_ids": ids,
        "checkpoints": checkpoints,
        "peak_rss_mb": round(peak, 1),
        "target_mb": TARGET_MB,
        "met": peak < TARGET_MB,
        "seconds": round(time.monotonic() - started, 1),
    }


def _checkpoint(
    worker: Any, pid: int, base: int, ids: int, started: float, deadline: float
) -> dict[str, float]:
    """Wait until ``ids`` copies (and the company) are settled; return the worker's RSS then."""
    while time.monotonic() < deadline:
        check_running([worker])
        if settled(scrape(worker)) >= base + ids:
            point = {
                "ids": ids,
                "rss_mb": round(_rss_mb(pid, "VmRSS"), 1),
                "elapsed_s": round(time.monotonic() - started, 1),
            }
            logger.warning("dedupe state: %s", point)
            return point
        time.sleep(0.5)
    raise RuntimeError(f"the worker did not settle {ids} distinct ids before the deadline")
