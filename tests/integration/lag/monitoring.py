"""revstream's processes running as a user runs them, for the monitoring tests: a worker, the sink,
the gateway, the lag exporter and the KPI process on one test namespace, plus scraping and promtool
helpers."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import urllib.request
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from revstream.demo.services import ChildService
from streams.settings import Settings
from streams.stack import free_port

_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("_sum", "_count", "_created"),
    "gauge": ("",),
    "info": ("_info",),
}


def child_env(settings: Settings, namespace: str, database_url: str) -> dict[str, str]:
    """The environment of a revstream child on the session's stack and a namespace of its own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSTREAM_") and k != "DATABASE_URL"}
    env.update(
        REVSTREAM_PROFILE="embedded" if settings.embedded else "external",
        REVSTREAM_KAFKA_BOOTSTRAP_SERVERS=settings.kafka.require_bootstrap(),
        REVSTREAM_KAFKA_SESSION_TIMEOUT_MS=str(settings.kafka.session_timeout_ms or 6000),
        REVSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS=str(settings.kafka.heartbeat_interval_ms or 1000),
        REVSTREAM_REGISTRY_URL=settings.registry.require_url(),
        REVSTREAM_DATABASE_URL=database_url,
        REVSTREAM_TOPICS_NAMESPACE=namespace,
        REVSTREAM_TOPICS_PARTITIONS="3",
        REVSTREAM_LOGLEVEL="warning",
    )
    return env


@dataclass
class Pipeline:
    """The children of one test module, by role."""

    namespace: str
    worker: ChildService
    sink: ChildService
    gateway: ChildService
    lag: ChildService
    kpis: ChildService

    def all(self) -> list[ChildService]:
        return [self.worker, self.sink, self.gateway, self.lag, self.kpis]


def start_pipeline(settings: Settings, namespace: str, database_url: str, logs: Path) -> Pipeline:
    env = child_env(settings, namespace, database_url)
    tokens = json.dumps({uuid.uuid4().hex: {"source": "billing", "event_types": ["invoice_posted"]}})
    worker_port, sink_port, gateway_port, lag_port, kpis_port = (free_port() for _ in range(5))
    worker_env = {
        **env,
        "REVSTREAM_WORKER_DATA_DIR": str(logs / "worker"),
        "REVSTREAM_WORKER_WEB_PORT": str(worker_port),
    }
    worker = ChildService("worker", ["worker"], worker_env, logs / "worker.log", worker_port)
    sink = ChildService(
        "sink", ["sink", "--group", f"{namespace}-sink", "--metrics-port", str(sink_port)], env,
        logs / "sink.log", sink_port,
    )  # fmt: skip
    gateway_env = {**env, "REVSTREAM_GATEWAY_PORT": str(gateway_port), "REVSTREAM_GATEWAY_TOKENS": tokens}
    gateway = ChildService("gateway", ["gateway"], gateway_env, logs / "gateway.log", gateway_port)
    lag = ChildService(
        "lag", ["lag", "serve"],
        {
            **env, "REVSTREAM_LAG_PORT": str(lag_port), "REVSTREAM_LAG_POLL_INTERVAL": "0.5",
            "REVSTREAM_LAG_WINDOW": "3", "REVSTREAM_LAG_GROUP_ALLOW": re.escape(namespace) + ".*",
        },
        logs / "lag.log", lag_port,
    )  # fmt: skip
    kpis = ChildService(
        "kpis",
        ["kpis", "serve", "--port", str(kpis_port), "--interval", "1"],
        env,
        logs / "kpis.log",
        kpis_port,
    )
    pipeline = Pipeline(namespace, worker, sink, gateway, lag, kpis)
    for child in pipeline.all():
        child.start()
    return pipeline


def scrape(port: int, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
        return str(response.read().decode())


def exported_names(expositions: Iterable[str]) -> set[str]:
    """Every sample name the expositions can carry, from their families (labelled or not yet set)."""
    names: set[str] = set()
    for text in expositions:
        for family in text_string_to_metric_families(text):
            names |= {family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",))}
            names |= {sample.name for sample in family.samples}
    return names


def promtool() -> str | None:
    return shutil.which("promtool")


def check_metrics(text: str) -> subprocess.CompletedProcess[str]:
    tool = promtool()
    assert tool is not None
    return subprocess.run([tool, "check", "metrics"], input=text, capture_output=True, text=True, timeout=30)
