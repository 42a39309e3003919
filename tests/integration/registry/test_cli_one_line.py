"""Errors that used to end in a traceback: each is now one line on stderr and exit 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

BASE = {k: v for k, v in os.environ.items() if not k.startswith("REVSTREAM_") and k != "DATABASE_URL"}
DOWN = {
    "REVSTREAM_PROFILE": "external",
    "REVSTREAM_KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
    "REVSTREAM_REGISTRY_URL": "http://127.0.0.1:1",
}


def one_line(args: list[str], env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "revstream", *args],
        env={**BASE, **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("revstream: error: "), result.stderr
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ["schemas", "check"],
        ["schemas", "register"],
        ["schemas", "diff", "revstream.events.usage_recorded-value"],
    ],
)
def test_schemas_commands_with_the_registry_down(args: list[str], tmp_path: Path) -> None:
    line = one_line(args, DOWN, tmp_path)
    assert "the schema registry at http://127.0.0.1:1/ did not answer (ConnectError" in line


@pytest.mark.parametrize("args", [["topics", "list"], ["gateway"], ["ledger", "report"]])
def test_invalid_json_in_a_nested_variable_names_it(args: list[str], tmp_path: Path) -> None:
    line = one_line(args, {**DOWN, "REVSTREAM_GATEWAY_TOKENS": '{"tok": {"source": "billing",'}, tmp_path)
    assert line.startswith("revstream: error: REVSTREAM_GATEWAY_TOKENS: not valid JSON (Expecting")


def test_registry_credentials_in_the_url_and_the_username(tmp_path: Path) -> None:
    env = {
        **DOWN,
        "REVSTREAM_REGISTRY_URL": "http://reg:pw-in-url@127.0.0.1:1",
        "REVSTREAM_REGISTRY_USERNAME": "reg",
    }
    line = one_line(["gateway"], env, tmp_path)
    assert "credentials are given twice" in line and "pw-in-url" not in line
