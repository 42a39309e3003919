"""`revstream demo --keep` reports the measured lag of its groups, and `revstream lag --once` sees them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from streams.stack import EmbeddedStack
from tests.integration.lag.conftest import environment_without_revstream, revstream_cli


def test_demo_reports_measured_lag_and_lag_once_shows_both_groups(tmp_path: Path) -> None:
    home = Path(tmp_path / "h")
    env = {**environment_without_revstream(), "REVSTREAM_HOME": str(home)}

    def revstream(*args: str) -> subprocess.CompletedProcess[str]:
        return revstream_cli(env, *args, cwd=tmp_path, timeout_s=400)

    try:
        demo = revstream("demo", "--months", "2", "--customers", "8", "--deadline", "240", "--keep")
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        lines = {
            role: re.search(rf"^  consumer lag, {role} group +(.*)$", demo.stdout, re.M)
            for role in ("worker", "sink")
        }
        for role, line in lines.items():
            assert line is not None, f"no {role} lag line in the report"
            assert re.match(
                r"0 records, 0\.0 s behind over \d+ partitions: drained \(OK, demo-\w+-", line[1]
            ), line[1]
        namespace = re.search(r"\(OK, (demo-\w+)-processors\)", demo.stdout)
        assert namespace is not None

        once = revstream("lag", "--once", "--group", re.escape(namespace[1]) + "-.*", "--interval", "0.3")
        assert once.returncode == 0, once.stdout + once.stderr
        groups = [line.split()[0] for line in once.stdout.splitlines()[1:] if not line.startswith(" ")]
        assert groups == [f"{namespace[1]}-processors", f"{namespace[1]}-sink"]
        assert all(" OK" in line for line in once.stdout.splitlines()[1:])
    finally:
        EmbeddedStack(home).down()
