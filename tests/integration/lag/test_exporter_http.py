"""`revstream lag serve`'s HTTP face, and what the exporter and the CLI do when the broker is gone."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from streams.lag.collector import LagCollector, LagConfig
from streams.lag.exporter import LagExporter
from streams.lag.metrics import LagMetrics
from streams.lag.model import GroupFilter
from streams.settings import KafkaSettings, RegistrySettings, Settings
from streams.stack import free_port
from tests.conftest import wait_for
from tests.integration.lag.conftest import (
    Member,
    produce_batched,
)


def get(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as response:
            body = response.read().decode()
            status = response.status
    except urllib.error.HTTPError as error:
        body, status = error.read().decode(), error.code
    return status, json.loads(body) if body.startswith("{") else body


@pytest.fixture
def exporter_factory() -> Iterator[Callable[..., tuple[LagExporter, int]]]:
    started: list[LagExporter] = []

    def start(
        kafka: KafkaSettings, allow: str, registry: RegistrySettings | None = None
    ) -> tuple[LagExporter, int]:
        collector = LagCollector(kafka, LagConfig(groups=GroupFilter(allow=allow), window=3, timeout_s=2.0))
        exporter = LagExporter(collector, LagMetrics.create(), 0.2, registry)
        started.append(exporter)
        return exporter, exporter.start("127.0.0.1", 0)

    yield start
    for exporter in started:
        exporter.stop()


def test_routes_serve_the_newest_poll(
    stack_settings: Settings,
    topic_factory: Callable[..., str],
    unique: Callable[[str], str],
    member_factory: Callable[[str, str], Member],
    exporter_factory: Callable[..., tuple[LagExporter, int]],
) -> None:
    topic, group = topic_factory("lagapi", partitions=2), unique("lagapi-group")
    produce_batched(stack_settings, topic, {0: 7, 1: 3})
    member_factory(group, topic).commit({0: 2, 1: 3})
    _, port = exporter_factory(stack_settings.kafka, re.escape(group), stack_settings.registry)

    wait_for(lambda: get(port, "/healthz")[0] == 200, 20, "a healthy exporter")
    status, health = get(port, "/healthz")
    assert health["status"] == "ok" and health["groups"] == 1
    status, everything = get(port, "/api/groups")
    assert status == 200 and [g["group"] for g in everything["groups"]] == [group]
    status, one = get(port, f"/api/groups/{group}")
    assert status == 200
    assert [(p["partition"], p["committed"], p["end"], p["lag"]) for p in one["partitions"]] == [
        (0, 2, 7, 5),
        (1, 3, 3, 0),
    ]
    assert one["sum_lag"] == 5 and one["max_lag"] == 5
    assert get(port, "/api/groups/no-such-group") == (404, {"error": "group 'no-such-group' is not measured"})
    assert get(port, "/nowhere")[0] == 404
    status, metrics = get(port, "/metrics")
    assert status == 200
    labels = f'cluster_name="revstream",group="{group}",partition="0",topic="{topic}"'
    assert f"kafka_consumergroup_group_lag{{{labels}}} 5.0" in metrics
    assert f'kafka_consumergroup_group_sum_lag{{cluster_name="revstream",group="{group}"}} 5.0' in metrics
    assert (
        f'kafka_partition_latest_offset{{cluster_name="revstream",partition="0",topic="{topic}"}} 7.0'
        in metrics
    )
    assert re.search(
        rf'revstream_consumergroup_status\{{cluster_name="revstream",group="{group}",status="\w+"\}} \d',
        metrics,
    )
    assert "revstream_registry_up 1.0" in metrics


def test_a_broker_that_is_gone_makes_healthz_fail_with_the_reason(
    exporter_factory: Callable[..., tuple[LagExporter, int]],
) -> None:
    dead = KafkaSettings(bootstrap_servers=f"127.0.0.1:{free_port()}")
    registry = RegistrySettings(url=f"http://127.0.0.1:{free_port()}")
    exporter, port = exporter_factory(dead, ".*", registry)
    wait_for(lambda: exporter.last_error is not None, 20, "the first failed poll")
    status, health = get(port, "/healthz")
    assert status == 503 and health["status"] == "failing"
    assert health["error"].startswith("the cluster at 127.0.0.1:")
    assert get(port, "/api/groups") == (503, {"error": "no poll has succeeded yet"})
    _, metrics = get(port, "/metrics")
    assert re.search(r'revstream_lag_polls_total\{outcome="failed"\} [1-9]', metrics)
    assert "revstream_registry_up 0.0" in metrics


def test_the_cli_says_in_one_line_that_the_broker_is_gone() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSTREAM_")}
    env.update(REVSTREAM_PROFILE="external", REVSTREAM_KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    result = subprocess.run(
        [sys.executable, "-m", "revstream", "lag", "--once"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.startswith("revstream: error: the cluster at 127.0.0.1:")
    assert "check REVSTREAM_KAFKA_BOOTSTRAP_SERVERS" in result.stderr
    assert result.stderr.count("\n") == 1
