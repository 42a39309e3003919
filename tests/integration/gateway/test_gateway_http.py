"""The ingest gateway over real HTTP: auth, every error status, idempotency, batches, docs, metrics."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx

from schemas.models import InvoicePosted
from streams.settings import Settings
from streams.topics import TopicCatalog
from tests.integration.gateway.conftest import BILLING_TOKEN, METER_TOKEN, usage_body
from tests.integration.producers.helpers import Read, read_back
from tests.unit.schemas.strategies import sample

Auth = Callable[[str], dict[str, str]]


def until_sentinel(sentinel: str) -> Callable[[list[Read]], bool]:
    return lambda got: any(r.value and r.value["event_id"] == sentinel for r in got)


def test_auth_and_every_error_status(gateway_url: str, auth: Auth) -> None:
    url = f"{gateway_url}/v1/events/usage_recorded"
    with httpx.Client(timeout=30) as client:
        missing = client.post(url, json=usage_body("e1"))
        assert missing.status_code == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert client.post(url, json=usage_body("e1"), headers=auth("not-a-token-at-all")).status_code == 401
        forbidden = client.post(url, json=usage_body("e1"), headers=auth(BILLING_TOKEN))
        assert forbidden.status_code == 403
        assert forbidden.json()["error"] == "forbidden"
        unknown = client.post(f"{gateway_url}/v1/events/shipment_sent", json={}, headers=auth(METER_TOKEN))
        assert unknown.status_code == 404

        malformed = client.post(url, content=b'{"event_id": ', headers=auth(METER_TOKEN))
        assert malformed.status_code == 400
        assert malformed.json()["error"] == "malformed_json"
        too_large = client.post(url, content=b"[" + b" " * 5000 + b"]", headers=auth(METER_TOKEN))
        assert too_large.status_code == 413

        invalid = client.post(url, json=usage_body("e1", quantity="lots", extra=1), headers=auth(METER_TOKEN))
        assert invalid.status_code == 422
        problems = {p["field"]: p["reason"] for p in invalid.json()["problems"]}
        assert set(problems) == {"quantity", "extra"}
        spoofed = client.post(url, json=usage_body("e1", source="billing"), headers=auth(METER_TOKEN))
        assert spoofed.status_code == 422
        assert [p["field"] for p in spoofed.json()["problems"]] == ["source"]

        invoice = json.loads(sample(InvoicePosted, source="billing").model_dump_json())
        invoice["lines"][0]["quantity"] = -1.5
        nested = client.post(
            f"{gateway_url}/v1/events/invoice_posted", json=invoice, headers=auth(BILLING_TOKEN)
        )
        assert nested.status_code == 422
        assert [p["field"] for p in nested.json()["problems"]] == ["lines.0.quantity"]

        batch_url = f"{url}:batch"
        assert client.post(batch_url, json={"not": "a list"}, headers=auth(METER_TOKEN)).status_code == 400
        six = [usage_body(f"b{i}") for i in range(6)]
        assert client.post(batch_url, json=six, headers=auth(METER_TOKEN)).status_code == 413


def test_retries_are_accepted_once_and_conflicts_refused(
    gateway_url: str, auth: Auth, stack_settings: Settings, catalog: TopicCatalog
) -> None:
    url = f"{gateway_url}/v1/events/usage_recorded"
    body = usage_body("retried-1")
    with httpx.Client(timeout=30) as client:
        first = client.post(url, json=body, headers=auth(METER_TOKEN))
        assert first.status_code == 202, first.text
        assert first.json()["status"] == "accepted"
        # Same event again, keys in another order: still the same event.
        reordered = dict(reversed(list(body.items())))
        for _ in range(2):
            again = client.post(url, json=reordered, headers=auth(METER_TOKEN))
            assert again.status_code == 202
            assert again.json() == {"event_id": "retried-1", "status": "duplicate"}
        conflict = client.post(url, json={**body, "quantity": 99}, headers=auth(METER_TOKEN))
        assert conflict.status_code == 409
        metrics = client.get(f"{gateway_url}/metrics").text
        outcomes = 'revstream_gateway_events_total{event_type="usage_recorded",outcome='
        assert f'{outcomes}"duplicate"}} 2.0' in metrics
        assert f'{outcomes}"conflict"}} 1.0' in metrics
        assert client.post(url, json=usage_body("sentinel-1"), headers=auth(METER_TOKEN)).status_code == 202

    records = read_back(stack_settings, [catalog.event_topic("usage_recorded")], until_sentinel("sentinel-1"))
    published = [r for r in records if r.value and r.value["event_id"] == "retried-1"]
    assert len(published) == 1
    assert published[0].offset == first.json()["offset"]
    assert published[0].headers["source"] == b"meter"
    assert published[0].value is not None and published[0].value["source"] == "meter"


def test_concurrent_identical_requests_publish_once(
    gateway_url: str, auth: Auth, stack_settings: Settings, catalog: TopicCatalog
) -> None:
    async def send_twice() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=30) as client:
            post = client.post(
                f"{gateway_url}/v1/events/usage_recorded",
                json=usage_body("twin-1"),
                headers=auth(METER_TOKEN),
            )
            again = client.post(
                f"{gateway_url}/v1/events/usage_recorded",
                json=usage_body("twin-1"),
                headers=auth(METER_TOKEN),
            )
            return list(await asyncio.gather(post, again))

    answers = asyncio.run(send_twice())
    assert sorted(r.json()["status"] for r in answers) == ["accepted", "duplicate"]
    assert all(r.status_code == 202 for r in answers)
    with httpx.Client(timeout=30) as client:
        client.post(
            f"{gateway_url}/v1/events/usage_recorded",
            json=usage_body("sentinel-2"),
            headers=auth(METER_TOKEN),
        )
    records = read_back(stack_settings, [catalog.event_topic("usage_recorded")], until_sentinel("sentinel-2"))
    assert sum(1 for r in records if r.value and r.value["event_id"] == "twin-1") == 1


def test_batch_items_succeed_or_fail_on_their_own(
    gateway_url: str, auth: Auth, stack_settings: Settings, catalog: TopicCatalog
) -> None:
    url = f"{gateway_url}/v1/events/usage_recorded:batch"
    with httpx.Client(timeout=30) as client:
        assert client.post(
            url[: -len(":batch")], json=usage_body("batch-old"), headers=auth(METER_TOKEN)
        ).is_success
        items = [
            usage_body("batch-1"),
            usage_body("batch-2", quantity="x"),
            usage_body("batch-1"),
            usage_body("batch-old", quantity=12345),
            usage_body("batch-3"),
        ]
        mixed = client.post(url, json=items, headers=auth(METER_TOKEN))
        assert mixed.status_code == 207, mixed.text
        answer = mixed.json()
        assert [item["status"] for item in answer["items"]] == [202, 422, 202, 409, 202]
        assert [item.get("outcome") for item in answer["items"]] == [
            "accepted",
            None,
            "duplicate",
            None,
            "accepted",
        ]
        assert answer["items"][1]["problems"] == [
            {
                "field": "quantity",
                "reason": "Input should be a valid integer",  # strict: text is not an integer
            }
        ]
        assert (answer["accepted"], answer["duplicates"], answer["rejected"], answer["failed"]) == (
            2,
            1,
            2,
            0,
        )
        clean = client.post(
            url, json=[usage_body("batch-4"), usage_body("sentinel-3")], headers=auth(METER_TOKEN)
        )
        assert clean.status_code == 202
    records = read_back(stack_settings, [catalog.event_topic("usage_recorded")], until_sentinel("sentinel-3"))
    ids = [r.value["event_id"] for r in records if r.value]
    assert sorted(ids) == ["batch-1", "batch-3", "batch-4", "batch-old", "sentinel-3"]


def test_openapi_docs_health_and_metrics(gateway_url: str, auth: Auth) -> None:
    with httpx.Client(timeout=30) as client:
        document = client.get(f"{gateway_url}/openapi.json").json()
        assert "/v1/events/invoice_posted" in document["paths"]
        assert "/v1/events/invoice_posted:batch" in document["paths"]
        assert "207" in document["paths"]["/v1/events/invoice_posted:batch"]["post"]["responses"]
        body = document["paths"]["/v1/events/invoice_posted"]["post"]["requestBody"]["content"][
            "application/json"
        ]
        assert body["schema"] == {"$ref": "#/components/schemas/InvoicePosted"}
        assert "InvoiceLine" in document["components"]["schemas"]
        assert "207" in document["info"]["description"]
        assert "per gateway process" in document["info"]["description"].replace("\n", " ")
        assert client.get(f"{gateway_url}/docs").status_code == 200
        health = client.get(f"{gateway_url}/healthz")
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "broker": "up"}
        client.post(
            f"{gateway_url}/v1/events/usage_recorded", json=usage_body("m-1"), headers=auth(METER_TOKEN)
        )
        client.post(f"{gateway_url}/v1/events/usage_recorded", json={}, headers=auth(METER_TOKEN))
        metrics = client.get(f"{gateway_url}/metrics").text
    assert 'revstream_gateway_requests_total{route="/v1/events/usage_recorded",status="202"} 1.0' in metrics
    assert 'revstream_gateway_events_total{event_type="usage_recorded",outcome="accepted"} 1.0' in metrics
    assert 'revstream_gateway_events_total{event_type="usage_recorded",outcome="invalid"} 1.0' in metrics
    assert "revstream_gateway_broker_up 1.0" in metrics
