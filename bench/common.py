"""What every benchmark shares: a stack to run on, the measured record, and robust statistics.

Each contender runs in its own process and reports its own CPU time and peak RSS, so figures are
not polluted by the harness (which holds test data in memory) or by another contender.
"""

from __future__ import annotations

import contextlib
import json
import logging
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from streams.errors import StackError
from streams.settings import Settings, load_settings
from streams.stack import EmbeddedStack

__all__ = ["Measurement", "bench_settings", "run_contender", "self_measurement", "summarise"]

logger = logging.getLogger(__name__)

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Measurement:
    """One contender's run: records moved, wall seconds, CPU seconds and peak RSS."""

    records: int
    seconds: float
    cpu_seconds: float
    peak_rss_mb: float

    @property
    def records_per_s(self) -> float:
        """Throughput of the run."""
        return self.records / self.seconds if self.seconds > 0 else 0.0

    @property
    def cpu_s_per_1000(self) -> float:
        """CPU seconds spent per 1,000 records."""
        return self.cpu_seconds * 1000 / self.records if self.records else 0.0


class Stopwatch:
    """Wall and CPU time of this process from ``start()`` on."""

    def __init__(self) -> None:
        """Start unstarted; ``start()`` marks the first record."""
        self.wall = 0.0
        self.cpu = 0.0

    def start(self) -> None:
        """Mark the beginning of the measured span."""
        self.wall = time.perf_counter()
        self.cpu = time.process_time()

    def stop(self, records: int) -> Measurement:
        """End the span and return the measurement of ``records`` records."""
        return self_measurement(records, time.perf_counter() - self.wall, time.process_time() - self.cpu)


def self_measurement(records: int, seconds: float, cpu_seconds: float) -> Measurement:
    """Return a measurement of this process, with its peak RSS so far."""
    return Measurement(records, seconds, cpu_seconds, round(_peak_rss_kb() / 1024, 1))


def _peak_rss_kb() -> int:
    # Linux carries the parent's high-water mark over fork + exec into ru_maxrss, so a contender
    # started by a harness holding 270 MB reported 270 MB; VmHWM belongs to this process's memory.
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def emit(measurement: Measurement, **extra: Any) -> None:
    """Print a contender's result as the one JSON line the harness reads."""
    print(json.dumps({**asdict(measurement), **extra}), flush=True)


def run_contender(
    module: str, args: Sequence[str], timeout_s: float = 600, python: str | Path = sys.executable
) -> dict[str, Any]:
    """Run ``python -m module args`` and return the JSON line it printed last.

    ``python`` is the interpreter: revstream's own, or a peer's virtualenv's.

    Raises:
        RuntimeError: when the contender fails or prints no result.
    """
    result = subprocess.run(
        [str(python), "-m", module, *args],
        capture_output=True,
        text=True,
        timeout=timeout_s,
        cwd=REPO_ROOT,
    )
    lines = [line for line in result.stdout.splitlines() if line.startswith("{")]
    if result.returncode != 0 or not lines:
        tail = (result.stderr or result.stdout)[-2000:]
        raise RuntimeError(f"{module} {' '.join(args)} failed (exit {result.returncode}): {tail}")
    parsed: dict[str, Any] = json.loads(lines[-1])
    return parsed


def summarise(values: Sequence[float]) -> dict[str, float]:
    """Return the median of ``values`` with its spread (min, max) and the relative spread."""
    median = statistics.median(values)
    return {
        "median": round(median, 3),
        "min": round(min(values), 3),
        "max": round(max(values), 3),
        "spread_pct": round(100 * (max(values) - min(values)) / median, 1) if median else 0.0,
        "runs": len(values),
    }


@contextlib.contextmanager
def bench_settings() -> Iterator[Settings]:
    """Yield settings for a usable stack: the configured or running one, else a temporary one."""
    try:
        running = load_settings().with_embedded_endpoints()
    except StackError:
        running = None
    if running is not None:
        yield running
        return
    with tempfile.TemporaryDirectory(prefix="bench-") as home:
        stack = EmbeddedStack(Path(home))
        try:
            stack.up()
            yield load_settings(home=Path(home)).with_embedded_endpoints()
        finally:
            stack.down()
