"""Every process's metrics, the shipped alert rules and dashboard, against a real Prometheus.

One worker, the sink, the gateway and the lag exporter run as subprocesses on a namespace of this
module. ``promtool`` and ``prometheus`` come from the Debian package ``prometheus`` (``make test``
installs it as root); without it these tests skip and say so.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka.admin import AdminClient

from connectors.ledger.database import create_database, drop_database
from connectors.ledger.migrate import migrate
from streams.provisioning import ensure_topics
from streams.serde import AvroSerde
from streams.settings import Settings
from streams.stack import free_port
from streams.topics import TopicCatalog
from tests.conftest import wait_for
from tests.integration.lag.conftest import Member, produce_batched
from tests.integration.lag.monitoring import (
    Pipeline,
    check_metrics,
    exported_names,
    promtool,
    scrape,
    start_pipeline,
)
from tests.integration.sink.helpers import produce_commands
from tests.unit.ledger.commands_factory import command, journal_entry

ROOT = Path(__file__).resolve().parents[3]
RULES = ROOT / "deploy/prometheus/rules/revstream.yml"
DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
NO_PROMETHEUS = "the Debian package 'prometheus' is not installed (as root, make test installs it)"
# PromQL words that are not metric names.
_PROMQL = {
    "sum", "min", "max", "avg", "count", "rate", "irate", "increase", "histogram_quantile", "scalar",
    "by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "vector",
    "absent", "topk", "bottomk", "delta", "deriv", "abs", "clamp_min", "clamp_max", "time", "bool",
}  # fmt: skip


@pytest.fixture(scope="module")
def pipeline(
    stack_settings: Settings, admin: AdminClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pipeline]:
    if not stack_settings.registry.url or stack_settings.database.url is None:
        pytest.skip("needs the schema registry and PostgreSQL")
    namespace = f"mon-{uuid.uuid4().hex[:8]}"
    ensure_topics(admin, TopicCatalog(namespace, 3, 1).specs())
    server = stack_settings.database.conninfo()
    database = namespace.replace("-", "_")
    ledger = create_database(server, database)
    migrate(ledger)
    started = start_pipeline(stack_settings, namespace, ledger, Path(tmp_path_factory.mktemp("monitoring")))
    try:
        wait_for(
            lambda: all(c.ready() or not c.running() for c in started.all()), 90, "the processes' /metrics"
        )
        for child in started.all():
            assert child.running(), f"{child.name} stopped:\n{child.log_tail()}"
        yield started
    finally:
        for child in started.all():
            child.stop()
        drop_database(server, database)


@pytest.fixture(scope="module")
def expositions(pipeline: Pipeline, stack_settings: Settings) -> dict[str, str]:
    pages = {child.name: scrape(child.metrics_port) for child in pipeline.all()}
    if stack_settings.embedded:  # revstream's own registry; Confluent's exports no /metrics
        with urllib.request.urlopen(
            f"{stack_settings.registry.require_url()}/metrics", timeout=5
        ) as response:
            pages["registry"] = response.read().decode()
    return pages


def test_every_process_exposition_passes_promtool_check_metrics(expositions: dict[str, str]) -> None:
    if promtool() is None:
        pytest.skip(NO_PROMETHEUS)
    for name, text in expositions.items():
        checked = check_metrics(text)
        assert checked.returncode == 0, f"{name}: {checked.stdout}{checked.stderr}"


def test_the_shipped_rules_pass_promtool_check_rules() -> None:
    tool = promtool()
    if tool is None:
        pytest.skip(NO_PROMETHEUS)
    checked = subprocess.run([tool, "check", "rules", str(RULES)], capture_output=True, text=True, timeout=30)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS" in checked.stdout


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects."""
    bare = re.sub(r'"[^"]*"', "", expr)
    bare = re.sub(r"\{[^}]*\}", "", bare)
    bare = re.sub(r"\[[^\]]*\]", "", bare)
    bare = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", bare)
    words = set(re.findall(r"[a-zA-Z_:][a-zA-Z0-9_:]*", bare))
    return {w for w in words if w not in _PROMQL and not re.fullmatch(r"\d+[smhdwy]?", w)}


def panel_queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    found = []
    for panel in dashboard["panels"]:
        for inner in [panel, *panel.get("panels", [])]:
            found += [(inner["title"], t["expr"]) for t in inner.get("targets", []) if t.get("expr")]
    return found


def test_every_dashboard_query_names_a_metric_a_process_exports(expositions: dict[str, str]) -> None:
    exported = exported_names(expositions.values())
    assert DASHBOARDS
    for path in DASHBOARDS:
        queries = panel_queries(json.loads(path.read_text()))
        assert queries, f"{path.name} has no queries"
        for title, expr in queries:
            names = metric_names(expr)
            assert names, f"{path.name} / {title}: no metric in {expr!r}"
            missing = names - exported
            assert not missing, f"{path.name} / {title}: {sorted(missing)} is exported by no process"


def test_every_alert_names_a_metric_a_process_exports(expositions: dict[str, str]) -> None:
    exported = exported_names(expositions.values()) | {"up"}
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            missing = metric_names(rule["expr"]) - exported
            assert not missing, f"{rule['alert']}: {sorted(missing)} is exported by no process"


def fast_rules(tmp: Path) -> Path:
    """The shipped rules with every ``for:`` cut to one second, so alerts fire within the test."""
    text = re.sub(r"(?m)^(\s*for:\s*)\S+", r"\g<1>1s", RULES.read_text())
    path = tmp / "rules.yml"
    path.write_text(text)
    return path


@pytest.fixture
def prometheus(pipeline: Pipeline, tmp_path: Path) -> Iterator[Callable[[str, dict[str, str]], Any]]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip(NO_PROMETHEUS)
    port = free_port()
    jobs = {"revstream-lag": pipeline.lag.metrics_port, "revstream-worker": pipeline.worker.metrics_port}
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(fast_rules(tmp_path))],
        "scrape_configs": [
            {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
            for job, port in jobs.items()
        ],
    }
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary, f"--config.file={tmp_path / 'prometheus.yml'}",
            f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip

    def api(path: str, params: dict[str, str]) -> Any:
        url = f"http://127.0.0.1:{port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return body["data"]

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/-/ready", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return process.poll() is not None

    try:
        wait_for(ready, 60, "prometheus to be ready")
        assert process.poll() is None, (tmp_path / "prometheus.log").read_text()
        yield api
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        log.close()


def test_prometheus_scrapes_the_exporter_and_a_worker_and_fires_for_a_stopped_group(
    pipeline: Pipeline,
    prometheus: Callable[[str, dict[str, str]], Any],
    stack_settings: Settings,
    topic_factory: Callable[..., str],
) -> None:
    group, topic = f"{pipeline.namespace}-stopped", topic_factory("mon", partitions=1)
    produce_batched(stack_settings, topic, {0: 10})
    member = Member(stack_settings, group, topic)
    member.commit({0: 4})
    member.close()

    def series(query: str) -> list[dict[str, Any]]:
        return list(prometheus("query", {"query": query})["result"])

    def targets_up() -> bool:
        return len(series('up{job=~"revstream-lag|revstream-worker"} == 1')) == 2

    wait_for(targets_up, 30, "both targets up in prometheus")
    lag_query = f'kafka_consumergroup_group_lag{{group="{group}"}}'
    wait_for(lambda: bool(series(lag_query)), 30, f"{lag_query} in prometheus")
    [lag] = series(lag_query)
    assert lag["metric"]["topic"] == topic and lag["metric"]["partition"] == "0"
    assert float(lag["value"][1]) == 6

    def firing() -> list[dict[str, Any]]:
        alerts = prometheus("alerts", {})["alerts"]
        return [
            a for a in alerts
            if a["labels"]["alertname"] == "ConsumerGroupStopped" and a["labels"].get("group") == group
            and a["state"] == "firing"
        ]  # fmt: skip

    wait_for(lambda: bool(firing()), 45, f"ConsumerGroupStopped to fire for {group}")
    [alert] = firing()
    assert alert["labels"]["severity"] == "critical" and alert["labels"]["status"] == "STOP"
    assert group in alert["annotations"]["summary"]
    others = {a["labels"]["alertname"] for a in prometheus("alerts", {})["alerts"] if a["state"] == "firing"}
    assert "WorkerDown" not in others and "LagExporterDown" not in others


def test_the_sink_measures_event_time_to_ledger_commit_and_the_exporter_sees_it_drained(
    pipeline: Pipeline, stack_settings: Settings
) -> None:
    catalog = TopicCatalog(pipeline.namespace, 3, 1)
    issued = datetime.now(UTC) - timedelta(seconds=30)
    commands = [
        command(f"{pipeline.namespace}-je-{i}", journal_entry(f"je-{i}", 100 + i), issued_at=issued)
        for i in range(3)
    ]
    produce_commands(
        stack_settings, AvroSerde.from_settings(stack_settings.registry), catalog.commands_topic, commands
    )

    def applied() -> bool:
        return pipeline.sink.metric("revstream_sink_latency_event_time_seconds_count") == 3

    wait_for(applied, 60, "the sink to apply the three commands")
    total = pipeline.sink.metric("revstream_sink_latency_event_time_seconds_sum")
    assert 3 * 30 <= total < 3 * 120, total
    assert pipeline.sink.metric("revstream_sink_latency_event_time_seconds_bucket", le="10.0") == 0
    assert pipeline.sink.metric("revstream_sink_latency_event_time_seconds_bucket", le="300.0") == 3

    group = f"{pipeline.namespace}-sink"

    def drained() -> bool:
        try:
            body = json.loads(scrape(pipeline.lag.metrics_port, f"/api/groups/{group}"))
        except urllib.error.HTTPError:
            return False  # not measured yet
        return bool(body["sum_lag"] == 0 and sum(p["committed"] for p in body["partitions"]) == 3)

    wait_for(drained, 30, f"{group} committed at the end of the three commands")
