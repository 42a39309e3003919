"""A hostile client against the real gateway: each input that used to get a 500 (or a 202 for an
event never published) now gets the 4xx that names why, and nothing of it reaches the topic."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from streams.settings import Settings
from streams.topics import TopicCatalog
from tests.integration.gateway.conftest import METER_TOKEN, gateway_settings, serving, usage_body
from tests.integration.producers.helpers import Read, read_back

Auth = Callable[[str], dict[str, str]]

# Under the gateway's body limit, over librdkafka's 1,000,000-byte message.max.bytes once encoded.
HUGE_METRIC = "m" * 1_100_000


@pytest.fixture
def roomy_gateway(stack_settings: Settings, catalog: TopicCatalog) -> Iterator[str]:
    with serving(gateway_settings(stack_settings, max_request_bytes=4 * 1_048_576), catalog) as url:
        yield url


def event_ids(records: list[Read]) -> list[str]:
    return [r.value["event_id"] for r in records if r.value]


def test_an_unpublishable_event_is_413_every_time_and_never_a_duplicate(
    roomy_gateway: str, auth: Auth, stack_settings: Settings, catalog: TopicCatalog
) -> None:
    url = f"{roomy_gateway}/v1/events/usage_recorded"
    huge = usage_body("huge-1", metric=HUGE_METRIC)
    with httpx.Client(timeout=30) as client:
        for _ in range(2):  # the retry must not be answered 202 "duplicate": the event is not on the topic
            answer = client.post(url, json=huge, headers=auth(METER_TOKEN))
            assert answer.status_code == 413, answer.text
            assert answer.json()["error"] == "record_too_large"
            assert "bytes" in answer.json()["detail"]

        batch = [usage_body("before-1"), huge, usage_body("after-1")]
        mixed = client.post(f"{url}:batch", json=batch, headers=auth(METER_TOKEN))
        assert mixed.status_code == 207, mixed.text
        assert [item["status"] for item in mixed.json()["items"]] == [202, 413, 202]
        assert mixed.json()["rejected"] == 1 and mixed.json()["accepted"] == 2
        assert client.post(url, json=usage_body("sentinel-h"), headers=auth(METER_TOKEN)).status_code == 202
        metrics = client.get(f"{roomy_gateway}/metrics").text
        assert (
            'revstream_gateway_events_total{event_type="usage_recorded",outcome="too_large"} 3.0' in metrics
        )

    records = read_back(
        stack_settings,
        [catalog.event_topic("usage_recorded")],
        lambda got: "sentinel-h" in event_ids(got),
    )
    assert sorted(event_ids(records)) == ["after-1", "before-1", "sentinel-h"]


NESTED = b'{"event_id": ' + b"[" * 1000 + b"]" * 1000 + b"}"
BIG_INTEGER = b'{"event_id": "e", "quantity": ' + b"7" * 5000 + b"}"


@pytest.mark.parametrize(
    ("body", "status", "field", "reason"),
    [
        ({"occurred_at": "0001-01-01T00:30:00+01:00"}, 422, "occurred_at", "outside the years 1 to 9999"),
        ({"occurred_at": "9999-12-31T23:30:00-01:00"}, 422, "occurred_at", "outside the years 1 to 9999"),
        ({"quantity": True}, 422, "quantity", "valid integer"),
        ({"quantity": "10"}, 422, "quantity", "valid integer"),
        ({"quantity": 10.5}, 422, "quantity", "valid integer"),
        ({"window_start": 0}, 422, "window_start", "not a number"),
        ({"metric": "\ud800"}, 422, "metric", "lone surrogate"),
        (NESTED, 400, None, "nested deeper than 32 levels"),
        (BIG_INTEGER, 400, None, "integer literal over 4,300 digits"),
        (b'{"metric": "\xff\xfe"}', 400, None, "not valid"),
    ],
)
def test_inputs_that_were_500s_are_4xx_naming_why(
    roomy_gateway: str,
    auth: Auth,
    body: dict[str, Any] | bytes,
    status: int,
    field: str | None,
    reason: str,
) -> None:
    url = f"{roomy_gateway}/v1/events/usage_recorded"
    with httpx.Client(timeout=30) as client:
        if isinstance(body, bytes):
            answer = client.post(url, content=body, headers=auth(METER_TOKEN))
        else:
            # json= would refuse the lone surrogate; send it the way a hostile client does, escaped.
            content = json.dumps(usage_body("hostile-1", **body)).encode()
            answer = client.post(url, content=content, headers=auth(METER_TOKEN))
    assert answer.status_code == status, answer.text
    if field is not None:
        problems = {p["field"]: p["reason"] for p in answer.json()["problems"]}
        assert reason in problems[field], problems
    else:
        assert reason in answer.json()["detail"]


def test_unknown_paths_and_methods_answer_in_the_error_shape(gateway_url: str, auth: Auth) -> None:
    with httpx.Client(timeout=30) as client:
        missing = client.get(f"{gateway_url}/v2/nothing")
        assert missing.status_code == 404
        assert missing.json() == {"error": "not_found", "detail": "Not Found"}
        wrong = client.delete(f"{gateway_url}/v1/events/usage_recorded", headers=auth(METER_TOKEN))
        assert wrong.status_code == 405
        assert wrong.json()["error"] == "method_not_allowed"
        stray = client.post(
            f"{gateway_url}/v1/events/usage_recorded:batch",
            json=[usage_body("s-1"), 7],
            headers=auth(METER_TOKEN),
        )
        assert stray.status_code == 400
        assert "item 1 is not an object" in stray.json()["detail"]
