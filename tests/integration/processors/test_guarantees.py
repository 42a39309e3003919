"""Processing guarantees: ``exactly_once`` is refused on every profile, in one line.

The worker's outputs and changelog records are not produced in Kafka transactions, so Faust's
``exactly_once`` (transactional offset commits) would promise what the worker does not do. The
refusal does not depend on the broker, so this holds on the embedded stack and on
``REVSTREAM_PROFILE=external`` alike.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.processors.harness import Harness, WorkerProcess


@pytest.mark.parametrize("profile", ["embedded", "external"])
def test_exactly_once_is_refused_in_one_line(harness: Harness, tmp_path: Path, profile: str):
    worker = WorkerProcess(
        harness.settings,
        harness.catalog.namespace,
        tmp_path / "data",
        tmp_path / "worker.log",
        env_overrides={"REVSTREAM_WORKER_PROCESSING_GUARANTEE": "exactly_once", "REVSTREAM_PROFILE": profile},
    )
    result = subprocess.run(
        [sys.executable, "-m", "revstream", "worker"],
        env=worker.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )

    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("revstream: error: REVSTREAM_WORKER_PROCESSING_GUARANTEE=exactly_once")
    assert "at_least_once" in lines[0] and "transactions" in lines[0]
