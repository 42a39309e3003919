"""The gateway's OpenAPI document declares every answer with a schema, so response checks can fail."""

from __future__ import annotations

from typing import Any

import pytest

from connectors.gateway import create_app
from schemas.names import EVENT_TYPES
from streams.settings import GatewaySettings, Settings

TOKENS = {"meter-token-0123456789ab": {"source": "meter", "event_types": ["usage_recorded"]}}


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    # Building the app touches nothing: the publisher is made when the app starts serving.
    settings = Settings(
        profile="external",
        kafka={"bootstrap_servers": "127.0.0.1:1"},  # type: ignore[arg-type]
        registry={"url": "http://127.0.0.1:1"},  # type: ignore[arg-type]
        gateway=GatewaySettings(tokens=TOKENS, max_batch_items=7),  # type: ignore[arg-type]
    )
    return create_app(settings).openapi()


def test_every_json_answer_of_every_operation_has_a_schema(document: dict[str, Any]) -> None:
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            for status, answer in operation["responses"].items():
                content = answer.get("content", {})
                assert content, f"{method} {path} {status} declares no content"
                for media, body in content.items():
                    if media == "application/json":
                        assert body.get("schema"), f"{method} {path} {status} has no schema"


def test_the_events_routes_declare_their_statuses(document: dict[str, Any]) -> None:
    single = document["paths"]["/v1/events/usage_recorded"]["post"]["responses"]
    assert set(single) == {"202", "400", "401", "403", "409", "413", "422", "500", "503"}
    batch = document["paths"]["/v1/events/usage_recorded:batch"]["post"]
    assert {"202", "207", "413"} <= set(batch["responses"])
    body = batch["requestBody"]["content"]["application/json"]["schema"]
    assert (body["minItems"], body["maxItems"], body["items"]["type"]) == (1, 7, "object")
    unknown = document["paths"]["/v1/events/{event_type}"]["post"]
    assert "404" in unknown["responses"]
    excluded = unknown["parameters"][0]["schema"]["not"]["enum"]
    assert set(excluded) == {*EVENT_TYPES, *(f"{name}:batch" for name in EVENT_TYPES)}


def test_the_body_schema_says_what_the_gateway_fills_in(document: dict[str, Any]) -> None:
    usage = document["components"]["schemas"]["UsageRecorded"]
    assert usage["properties"]["event_type"] == {"const": "usage_recorded"}
    assert usage["properties"]["source"] == {"enum": ["meter"]}
    assert not {"event_type", "source"} & set(usage["required"])
    assert usage["properties"]["quantity"]["type"] == "integer"
