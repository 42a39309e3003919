"""Every process, run with a distinctive secret in every secret setting, prints it nowhere.

The database password goes in both connection-string forms (URL and libpq ``key=value``), the
registry's credentials in both forms (``user:pass@`` in the URL, and ``_USERNAME``/``_PASSWORD``),
plus the registry's own users, a gateway token, a numeric token and the SASL password. Each process
runs once where it succeeds and once where it fails (the failures that quote their input: libpq's
error on a bad ``%`` escape, settings errors, unreachable services); stdout, stderr and the logs
are searched for any part of a secret.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from schemas.names import EVENT_TYPES
from streams.settings import Settings
from streams.stack import free_port
from streams.topics import TopicCatalog
from tests.conftest import wait_for
from tests.integration.gateway.conftest import usage_body
from tests.integration.producers.helpers import usage
from tests.integration.registry.conftest import RegistryProcess

SECRET = "Qz7Wh1skyTango5531"
TOKEN = f"{SECRET}-gateway-token"
NUMERIC_TOKEN = "98765432109876543210"
FRAGMENTS = (SECRET, SECRET[:9], SECRET[-9:], NUMERIC_TOKEN)


class Runs:
    """Every process' output of this test, to be searched at the end."""

    def __init__(self, base: dict[str, str], cwd: Path) -> None:
        self.base = base
        self.cwd = cwd
        self.outputs: dict[str, str] = {}

    def env(self, **changes: str | None) -> dict[str, str]:
        env = {**self.base, **{k: v for k, v in changes.items() if v is not None}}
        return {k: v for k, v in env.items() if changes.get(k, "") is not None}

    def run(self, name: str, args: list[str], expect: int, **changes: str | None) -> str:
        result = subprocess.run(
            [sys.executable, "-m", "revstream", *args],
            env=self.env(**changes),
            cwd=self.cwd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        output = result.stdout + result.stderr
        self.outputs[name] = output
        assert result.returncode == expect, f"{name}: exit {result.returncode}\n{output}"
        return output

    def serve(
        self, name: str, args: list[str], ready: Callable[[], bool], **changes: str | None
    ) -> subprocess.Popen[str]:
        log = self.cwd / f"{name}.log"
        with log.open("w") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "revstream", *args],
                env=self.env(**changes),
                cwd=self.cwd,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )

        def up() -> bool:
            assert process.poll() is None, log.read_text()
            return ready()

        wait_for(up, 60, f"{name} to start")
        return process

    def stop(self, name: str, process: subprocess.Popen[str]) -> None:
        process.terminate()
        process.wait(timeout=30)
        self.outputs[name] = (self.cwd / f"{name}.log").read_text()


def answers(url: str, status: int = 200) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == status
        except httpx.TransportError:
            return False

    return check


def test_no_process_prints_a_secret(
    stack_settings: Settings,
    catalog: TopicCatalog,
    fresh_database: str,
    spawn_registry: Callable[..., RegistryProcess],
    tmp_path: Path,
) -> None:
    parts = conninfo_to_dict(fresh_database)
    # The embedded PostgreSQL trusts local connections: the password is sent, and ignored.
    key_value = make_conninfo(fresh_database, password=SECRET)
    url_form = (
        f"postgresql://{parts.get('user', 'postgres')}:{SECRET}@/{parts['dbname']}?host={parts['host']}"
    )
    if parts.get("port"):
        url_form += f"&port={parts['port']}"
    registry = spawn_registry(key_value, users=f"admin:{SECRET}")
    host_port = registry.url.removeprefix("http://")
    tokens = {TOKEN: {"source": "meter", "event_types": list(EVENT_TYPES)}}
    base = {k: v for k, v in os.environ.items() if not k.startswith("REVSTREAM_") and k != "DATABASE_URL"}
    base.update(
        REVSTREAM_PROFILE="external",
        REVSTREAM_LOGLEVEL="debug",
        REVSTREAM_KAFKA_BOOTSTRAP_SERVERS=stack_settings.kafka.require_bootstrap(),
        REVSTREAM_KAFKA_SESSION_TIMEOUT_MS="6000",
        REVSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS="1000",
        REVSTREAM_REGISTRY_URL=registry.url,
        REVSTREAM_REGISTRY_USERNAME="admin",
        REVSTREAM_REGISTRY_PASSWORD=SECRET,
        REVSTREAM_DATABASE_URL=url_form,
        REVSTREAM_TOPICS_NAMESPACE=catalog.namespace,
        REVSTREAM_GATEWAY_TOKENS=json.dumps(tokens),
        REVSTREAM_WORKER_DATA_DIR=str(tmp_path / "worker"),
    )
    runs = Runs(base, tmp_path)

    # -- success runs: every secret in use ---------------------------------------------------
    runs.run("ledger migrate (URL)", ["ledger", "migrate"], 0)
    runs.run("ledger report (key=value)", ["ledger", "report"], 0, REVSTREAM_DATABASE_URL=key_value)
    runs.run("schemas register", ["schemas", "register"], 0)
    runs.run(
        "schemas check (user:pass@ URL)",
        ["schemas", "check"],
        0,
        REVSTREAM_REGISTRY_URL=f"http://admin:{SECRET}@{host_port}",
        REVSTREAM_REGISTRY_USERNAME=None,
        REVSTREAM_REGISTRY_PASSWORD=None,
    )
    runs.run("dlq list", ["dlq", "list"], 0)
    runs.run("dlq audit (key=value)", ["dlq", "audit"], 0, REVSTREAM_DATABASE_URL=key_value)
    events = tmp_path / "usage.jsonl"
    events.write_text(usage("secret-run-1").model_dump_json() + "\n")
    runs.run("publish", ["publish", "usage_recorded", str(events)], 0)

    port = free_port()
    gateway = runs.serve(
        "gateway", ["gateway", "--port", str(port)], answers(f"http://127.0.0.1:{port}/healthz")
    )
    accepted = httpx.post(
        f"http://127.0.0.1:{port}/v1/events/usage_recorded",
        json=usage_body("secret-run-2"),
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=30,
    )
    assert accepted.status_code == 202, accepted.text
    refused = httpx.post(
        f"http://127.0.0.1:{port}/v1/events/usage_recorded",
        json=usage_body("secret-run-3"),
        headers={"Authorization": f"Bearer {SECRET}-wrong"},
        timeout=30,
    )
    assert refused.status_code == 401 and SECRET not in refused.text
    runs.stop("gateway", gateway)

    runs.run(
        "sink (key=value)",
        ["sink", "--group", f"secret-{catalog.namespace}", "--until-idle", "1"],
        0,
        REVSTREAM_DATABASE_URL=key_value,
    )
    web_port = free_port()
    worker = runs.serve(
        "worker",
        ["worker"],
        answers(f"http://127.0.0.1:{web_port}/metrics"),
        REVSTREAM_WORKER_WEB_PORT=str(web_port),
        REVSTREAM_LOGLEVEL="info",
    )
    time.sleep(0.5)  # let the worker's start-up lines reach its log before it is stopped
    runs.stop("worker", worker)

    # -- failure runs: the errors that quote what they could not use ------------------------
    bad_escape = f"postgresql://ledger:{SECRET}%zz@127.0.0.1:1/erp"
    dead_key_value = f"host=127.0.0.1 port=1 user=ledger password={SECRET} dbname=erp connect_timeout=2"
    runs.run("ledger migrate (bad % escape)", ["ledger", "migrate"], 1, REVSTREAM_DATABASE_URL=bad_escape)
    runs.run("ledger report (unreachable)", ["ledger", "report"], 1, REVSTREAM_DATABASE_URL=dead_key_value)
    runs.run("ledger report (bad % escape)", ["ledger", "report"], 1, REVSTREAM_DATABASE_URL=bad_escape)
    runs.run("dlq audit (bad % escape)", ["dlq", "audit"], 1, REVSTREAM_DATABASE_URL=bad_escape)
    runs.run(
        "registry serve (bad % escape)",
        ["registry", "serve", "--port", str(free_port())],
        1,
        REVSTREAM_DATABASE_URL=bad_escape,
    )
    runs.run(
        "schemas check (registry down)",
        ["schemas", "check"],
        1,
        REVSTREAM_REGISTRY_URL=f"http://admin:{SECRET}@127.0.0.1:1",
        REVSTREAM_REGISTRY_USERNAME=None,
        REVSTREAM_REGISTRY_PASSWORD=None,
    )
    runs.run(
        "schemas check (credentials twice)",
        ["schemas", "check"],
        1,
        REVSTREAM_REGISTRY_URL=f"http://admin:{SECRET}@{host_port}",
    )
    runs.run(
        "gateway (tokens not JSON)",
        ["gateway", "--port", str(free_port())],
        1,
        REVSTREAM_GATEWAY_TOKENS=f'{{"{TOKEN}": {{"source": ',
    )
    numeric = json.dumps([{"token": int(NUMERIC_TOKEN), "source": "meter", "event_types": []}])
    runs.run(
        "gateway (numeric token)",
        ["gateway", "--port", str(free_port())],
        1,
        REVSTREAM_GATEWAY_TOKENS=numeric,
    )
    runs.run(
        "publish (SASL, wrong broker)",
        ["publish", "usage_recorded", str(events)],
        1,
        REVSTREAM_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
        REVSTREAM_KAFKA_SECURITY_PROTOCOL="SASL_PLAINTEXT",
        REVSTREAM_KAFKA_SASL_MECHANISM="PLAIN",
        REVSTREAM_KAFKA_SASL_USERNAME="producer",
        REVSTREAM_KAFKA_SASL_PASSWORD=SECRET,
    )
    sink_log = tmp_path / "sink-down.log"
    with sink_log.open("w") as out:
        failing_sink = subprocess.Popen(
            [sys.executable, "-m", "revstream", "sink", "--group", f"down-{catalog.namespace}"],
            env=runs.env(REVSTREAM_DATABASE_URL=bad_escape),
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        failing_sink.wait(timeout=6)
    except subprocess.TimeoutExpired:  # still retrying: its warnings so far are what counts
        failing_sink.terminate()
        failing_sink.wait(timeout=30)
    runs.outputs["sink (bad % escape)"] = sink_log.read_text()
    runs.outputs["registry serve"] = registry.log.read_text()

    (tmp_path / "outputs.json").write_text(json.dumps(runs.outputs, indent=1))
    leaks = {name: [f for f in FRAGMENTS if f in text] for name, text in runs.outputs.items()}
    assert {name: found for name, found in leaks.items() if found} == {}
    # The failures were real failures, each told in words (not a traceback).
    for name, text in runs.outputs.items():
        assert "Traceback" not in text, f"{name}:\n{text}"
