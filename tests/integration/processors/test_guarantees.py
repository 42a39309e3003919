"""Processing guarantees on the embedded broker: what exactly_once does here, measured."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from tests.integration.processors.harness import Harness, WorkerProcess


def test_exactly_once_is_refused_on_the_embedded_profile_in_one_line(harness: Harness, tmp_path: Path):
    worker = WorkerProcess(
        harness.settings,
        harness.catalog.namespace,
        tmp_path / "data",
        tmp_path / "worker.log",
        env_overrides={"REVSTREAM_WORKER_PROCESSING_GUARANTEE": "exactly_once"},
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
    assert "at_least_once" in lines[0]


def test_faust_exactly_once_fails_at_start_on_the_embedded_broker(
    harness: Harness, worker_factory: Callable[..., WorkerProcess]
):
    # Past the guard (profile "external"), Faust's exactly_once starts aiokafka transactional
    # producers; the embedded broker answers their InitProducerId with an unknown error and the
    # worker stops. If this starts to pass, the broker learned it: revisit the guard.
    worker = worker_factory(
        harness.catalog.namespace,
        "eos",
        REVSTREAM_PROFILE="external",
        REVSTREAM_WORKER_PROCESSING_GUARANTEE="exactly_once",
    )
    assert worker.process is not None
    returncode = worker.process.wait(60)

    assert returncode != 0
    log = worker.log_path.read_text()
    assert "InitProducerId" in log and "UnknownError" in log
