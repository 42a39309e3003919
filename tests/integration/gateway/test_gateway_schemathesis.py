"""Schemathesis against the gateway's own OpenAPI document: every check, a fixed seed, bounded.

The run is the hostile client the contract must survive: generated valid and invalid bodies, wrong
methods, missing auth, every declared status and response schema held to the document. It ends
with 0 server errors and 0 response-schema violations, or this test fails with schemathesis' report.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from schemas.names import EVENT_TYPES
from streams.settings import GatewaySettings, Settings
from streams.topics import TopicCatalog
from tests.integration.gateway.conftest import serving

FUZZ_TOKEN = "schemathesis-token-0123456789"
SEED = 20261203
MAX_EXAMPLES = 12


@pytest.fixture
def fuzzed_gateway(stack_settings: Settings, catalog: TopicCatalog) -> Iterator[str]:
    gateway = GatewaySettings(
        tokens={FUZZ_TOKEN: {"source": "fuzz", "event_types": list(EVENT_TYPES)}},  # type: ignore[arg-type]
        max_request_bytes=65_536,
        max_batch_items=20,
        delivery_timeout_ms=3000,
    )
    with serving(stack_settings.model_copy(update={"gateway": gateway}), catalog) as url:
        yield url


def test_schemathesis_finds_no_server_error_and_no_schema_violation(
    fuzzed_gateway: str, tmp_path: Path
) -> None:
    command = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(Path(__file__).with_name("schemathesis.toml")),
        "run",
        f"{fuzzed_gateway}/openapi.json",
        "--checks",
        "all",
        "--seed",
        str(SEED),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--workers",
        "1",
        "--request-timeout",
        "10",
        "--header",
        f"Authorization: Bearer {FUZZ_TOKEN}",
        "--report",
        "junit",
        "--report-dir",
        str(tmp_path),
        "--no-color",
    ]
    env = {**os.environ, "SCHEMATHESIS_TELEMETRY": "false"}
    # In the test's own directory: schemathesis keeps a cache of its findings in the working directory.
    result = subprocess.run(
        command, capture_output=True, text=True, timeout=400, env=env, cwd=tmp_path, check=False
    )
    report = result.stdout[-6000:] + result.stderr[-2000:]
    assert result.returncode == 0, report
    assert "Server error" not in result.stdout, report
    generated = [line.strip() for line in result.stdout.splitlines() if "generated" in line]
    print("schemathesis:", *generated)  # the run's size, shown with pytest -s
