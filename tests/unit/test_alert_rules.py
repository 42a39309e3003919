"""The shipped alert rules fire, and stay quiet, as intended: ``promtool test rules`` on synthetic series.

``promtool`` comes with the Debian package ``prometheus`` (``make test`` installs it as root); it
runs the rule engine offline, no server and no network.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

TESTS = Path(__file__).parent / "alerts" / "revstream_rules_test.yml"


def test_alerts_fire_on_their_conditions_and_not_before() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("the Debian package 'prometheus' is not installed (as root, make test installs it)")
    result = subprocess.run(
        [promtool, "test", "rules", str(TESTS)], capture_output=True, text=True, timeout=60, cwd=TESTS.parent
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
