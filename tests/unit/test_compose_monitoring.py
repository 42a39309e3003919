"""The compose file, the Prometheus scrape targets, the rules and the dashboards stay in step.

No Docker engine runs here: this reads docker-compose.yml and deploy/ as files, and resolves every
revstream service's command against the real CLI.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from revstream.cli import cli

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
PROMETHEUS = yaml.safe_load((ROOT / "deploy/prometheus/prometheus.yml").read_text())
OURS = {name: s for name, s in SERVICES.items() if str(s.get("image", "")).startswith("revstream:")}
EXPOSING = {
    name: int(s["labels"]["revstream.metrics"])
    for name, s in OURS.items()
    if "revstream.metrics" in (s.get("labels") or {})
}
# Where each kind of process takes its listening port from.
PORT_VARIABLE = {
    "worker": "REVSTREAM_WORKER_WEB_PORT",
    "gateway": "REVSTREAM_GATEWAY_PORT",
    "lag": "REVSTREAM_LAG_PORT",
}


def targets() -> dict[str, set[str]]:
    return {
        job["job_name"]: {t for config in job.get("static_configs", []) for t in config["targets"]}
        for job in PROMETHEUS["scrape_configs"]
    }


def mounts(service: str) -> dict[str, str]:
    pairs = (str(v).split(":")[:2] for v in SERVICES[service].get("volumes", []))
    return {target: source for source, target in pairs}


def test_every_service_that_serves_metrics_is_scraped_and_nothing_else() -> None:
    scraped = {t for job in targets().values() for t in job}
    assert scraped == {f"{name}:{port}" for name, port in EXPOSING.items()}
    assert all(job.startswith("revstream-") for job in targets())


@pytest.mark.parametrize("name", sorted(EXPOSING))
def test_the_labelled_port_is_the_port_the_process_listens_on_and_is_healthchecked(name: str) -> None:
    service, port = OURS[name], EXPOSING[name]
    command = service["command"]
    flag = next((f for f in ("--metrics-port", "--port") if f in command), None)
    if flag is not None:
        listened = int(command[command.index(flag) + 1])
        assert command[command.index(flag.replace("port", "host")) + 1] == "0.0.0.0"
    else:
        kind = "lag" if command[1] == "lag" else command[1]
        listened = int(service["environment"][PORT_VARIABLE[kind]])
        host = PORT_VARIABLE[kind].replace("_PORT", "_HOST")
        assert service["environment"][host] == "0.0.0.0", f"{name} listens on loopback only"
    assert listened == port
    assert f"127.0.0.1:{port}/" in " ".join(service["healthcheck"]["test"])


@pytest.mark.parametrize("name", sorted(OURS))
def test_every_revstream_command_exists_in_the_cli(name: str) -> None:
    command = OURS[name]["command"]
    assert command[0] == "revstream"
    group: click.Command = cli
    for word in command[1:]:
        if word.startswith("-"):
            break
        assert isinstance(group, click.Group), f"{name}: {word} is not a subcommand"
        found = group.get_command(click.Context(group), word)
        assert found is not None, f"{name} runs `{' '.join(command)}`, which the CLI does not have"
        group = found


def test_the_app_profile_runs_the_whole_product() -> None:
    commands = {name: " ".join(s["command"][1:3]) for name, s in OURS.items()}
    assert all(s.get("profiles") == ["app"] for s in OURS.values())
    for wanted in (
        "topics apply",
        "schemas register",
        "ledger migrate",
        "sink --metrics-host",
        "gateway",
        "lag serve",
    ):
        assert wanted in commands.values() or any(c.startswith(wanted) for c in commands.values()), wanted
    workers = [name for name, c in commands.items() if c == "worker"]
    assert len(workers) >= 2
    states = [mounts(w)["/data/worker"] for w in workers]
    assert len(set(states)) == len(workers), "workers share a state volume"
    assert set(states) <= set(COMPOSE["volumes"])
    for worker in workers:
        assert OURS[worker]["environment"]["REVSTREAM_WORKER_DATA_DIR"] == "/data/worker"


def test_prometheus_loads_the_shipped_rules_and_grafana_the_shipped_dashboards() -> None:
    rules = mounts("prometheus")["/etc/prometheus/rules"]
    assert (ROOT / rules).is_dir() and list((ROOT / rules).glob("*.yml"))
    assert PROMETHEUS["rule_files"] == ["/etc/prometheus/rules/*.yml"]
    assert mounts("prometheus")["/etc/prometheus/prometheus.yml"] == "./deploy/prometheus/prometheus.yml"
    dashboards = mounts("grafana")["/var/lib/grafana/dashboards"]
    provider = yaml.safe_load((ROOT / "deploy/grafana/provisioning/dashboards/revstream.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    files = list((ROOT / dashboards).glob("*.json"))
    assert files
    for file in files:
        assert json.loads(file.read_text())["panels"]
