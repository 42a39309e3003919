"""Fuzzing of every decoder: hypothesis-generated hostile input, counted, and 0 crashes allowed.

A crash is any exception other than the decoder's documented refusal (``CorruptRecordError`` for
a bad frame, ``SerdeError`` for an Avro body, ``ValueError`` for dead-letter headers, nothing for
retry headers, ``InputFileError`` for a file, ``SettingsError`` for the environment).

``FUZZ_SCALE`` sets how many inputs each decoder gets: unset (the unit tier's smoke run) it is a
few dozen each; ``make fuzz`` sets it so that the whole run tries at least 100,000 inputs. The
counts land in ``FUZZ_REPORT`` (JSON) when that is set, and are printed at the end of the run.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

TRIED: Counter[str] = Counter()
SCALE = float(os.environ.get("FUZZ_SCALE", "0"))


def examples(full: int) -> settings:
    """Hypothesis settings giving ``full`` inputs under ``make fuzz``, a smoke-sized run otherwise."""
    count = max(1, int(full * SCALE)) if SCALE else max(1, full // 2000)
    return settings(
        max_examples=count,
        database=None,
        deadline=None,
        derandomize=True,  # the same inputs every run: a crash found once is found again
        suppress_health_check=list(HealthCheck),
    )


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not TRIED:
        return
    failed = len(terminalreporter.stats.get("failed", []))
    total = sum(TRIED.values())
    lines = [f"  {name}: {count:,} inputs" for name, count in sorted(TRIED.items())]
    terminalreporter.write_line(f"fuzz: {total:,} inputs tried, {failed} decoders crashed")
    for line in lines:
        terminalreporter.write_line(line)
    report = os.environ.get("FUZZ_REPORT")
    if report:
        Path(report).write_text(
            json.dumps({"inputs": total, "crashed_decoders": failed, "per_decoder": dict(TRIED)}, indent=2)
        )
