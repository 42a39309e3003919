"""`revstream demo`, the main job, as a user runs it: whole pipeline, readable report, clean exit."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from revstream.demo.run import outcome_problem
from streams.stack import EmbeddedStack


def run_demo(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """Run ``revstream demo`` as a user does, in a home of its own; the stack is down afterwards."""
    home = Path(tmp_path / "h")
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSTREAM_")}
    env["REVSTREAM_HOME"] = str(home)
    try:
        return subprocess.run(
            [sys.executable, "-m", "revstream", "demo", *options],
            capture_output=True, text=True, env=env, timeout=400, cwd=tmp_path,
        )  # fmt: skip
    finally:
        EmbeddedStack(home).down()


def test_demo_runs_the_pipeline_and_matches_the_ground_truth(tmp_path: Path) -> None:
    home = Path(tmp_path / "h")
    result = run_demo(tmp_path, "--months", "2", "--customers", "12", "--deadline", "240")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = result.stdout
    for section in ("Trial balance", "Revenue by month", "Pipeline", "Process intelligence"):
        assert section in report
    checks = [line for line in report.splitlines() if line.startswith("  [")]
    assert len(checks) == 7
    assert all(line.startswith("  [ok  ]") for line in checks), "\n".join(checks)
    assert "deadline reached" not in report
    assert "==> shutting down" in report
    assert not (home / "stack.json").exists()


def test_a_demo_that_does_not_drain_exits_non_zero_in_one_line(tmp_path: Path) -> None:
    home = Path(tmp_path / "h")
    result = run_demo(tmp_path, "--months", "1", "--customers", "2", "--deadline", "0.1")
    assert result.returncode == 1, result.stdout[-3000:] + result.stderr[-3000:]
    assert "deadline reached before drained" in result.stdout
    assert (
        result.stderr.strip().splitlines()[-1]
        == ("revstream: error: the streams were not drained before the deadline")
        or "not drained" in result.stderr.strip().splitlines()[-1]
    )
    assert not (home / "stack.json").exists()


def test_the_demo_verdict_names_every_check_that_differs() -> None:
    report = "\n".join(
        ["  [ok  ] duplicates dropped", "  [DIFF] revenue per entity: {}", "  [DIFF] cash per entity: x"]
    )
    assert outcome_problem(report, drained=True) == (
        "2 check(s) differ from the simulator's ground truth (revenue per entity; cash per entity)"
    )
    assert outcome_problem("  [ok  ] all", drained=True) is None
    assert "not drained" in (outcome_problem("  [ok  ] all", drained=False) or "")
