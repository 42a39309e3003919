"""Broker unreachable: the gateway answers 503 quickly and never loses what it acknowledged."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from streams.clients import admin_client
from streams.provisioning import ensure_topics
from streams.settings import Settings, load_settings
from streams.stack import EmbeddedStack, free_port
from streams.topics import TopicCatalog
from tests.conftest import wait_for
from tests.integration.gateway.conftest import METER_TOKEN, gateway_settings, serving, usage_body
from tests.integration.producers.helpers import read_back

HEADERS = {"Authorization": f"Bearer {METER_TOKEN}"}


def test_no_broker_at_all_is_503_at_once(stack_settings: Settings, catalog: TopicCatalog) -> None:
    nowhere = stack_settings.model_copy(
        update={
            "kafka": stack_settings.kafka.model_copy(update={"bootstrap_servers": f"127.0.0.1:{free_port()}"})
        }
    )
    with serving(gateway_settings(nowhere), catalog) as url, httpx.Client(timeout=30) as client:
        started = time.monotonic()
        answer = client.post(f"{url}/v1/events/usage_recorded", json=usage_body("down-1"), headers=HEADERS)
        assert answer.status_code == 503
        assert time.monotonic() - started < 2.0
        assert answer.headers["retry-after"] == "1"
        assert answer.json()["error"] == "broker_unavailable"
        batch = client.post(
            f"{url}/v1/events/usage_recorded:batch", json=[usage_body("down-2")], headers=HEADERS
        )
        assert batch.status_code == 503
        health = client.get(f"{url}/healthz")
        assert health.status_code == 503
        assert health.json()["broker"] == "down"
        assert "revstream_gateway_broker_up 0.0" in client.get(f"{url}/metrics").text


@pytest.fixture
def own_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    # A broker of this test's own: the session broker must keep running for every other test.
    stack = EmbeddedStack(Path(tmp_path_factory.mktemp("gw")))
    stack.up()
    yield stack
    stack.down()


def test_broker_stopping_turns_answers_to_503_and_keeps_what_was_acknowledged(
    own_stack: EmbeddedStack,
) -> None:
    settings = load_settings(profile="embedded", home=own_stack.home).with_embedded_endpoints()
    catalog = TopicCatalog(namespace="gwdown", partitions=1, replication_factor=1)
    topic = catalog.event_topic("usage_recorded")
    ensure_topics(admin_client(settings.kafka), [catalog.spec(topic)])
    with serving(gateway_settings(settings), catalog) as url, httpx.Client(timeout=30) as client:
        accepted = [
            client.post(f"{url}/v1/events/usage_recorded", json=usage_body(f"kept-{i}"), headers=HEADERS)
            for i in range(3)
        ]
        assert [answer.status_code for answer in accepted] == [202, 202, 202]
        # 202 means on the broker: read it back before the broker goes away.
        records = read_back(settings, [topic], lambda got: len(got) >= 3)
        assert sorted(r.value["event_id"] for r in records if r.value) == ["kept-0", "kept-1", "kept-2"]

        own_stack.down()
        started = time.monotonic()
        answer = client.post(
            f"{url}/v1/events/usage_recorded", json=usage_body("after-stop"), headers=HEADERS
        )
        elapsed = time.monotonic() - started
        assert answer.status_code == 503, answer.text
        # At once when librdkafka already noticed, else after the 3 s delivery timeout: never minutes.
        assert elapsed < 6.0
        wait_for(
            lambda: client.get(f"{url}/healthz").status_code == 503, 10, "healthz to report the broker down"
        )
        # A retry of an event acknowledged earlier is still a duplicate, not a new publication.
        retry = client.post(f"{url}/v1/events/usage_recorded", json=usage_body("kept-0"), headers=HEADERS)
        assert retry.status_code == 202
        assert retry.json()["status"] == "duplicate"
