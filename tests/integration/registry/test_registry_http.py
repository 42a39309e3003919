"""Every endpoint of the stack's registry over plain HTTP, the way curl users and other clients call it."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.integration.registry.conftest import MEDIA_TYPE, record


@pytest.fixture
def namespace() -> str:
    # Schema ids are global: a namespace of the test's own keeps its schemas its own.
    return f"revstream.test.n{uuid.uuid4().hex[:12]}"


def body(schema: str) -> dict[str, object]:
    return {"schema": schema, "schemaType": "AVRO", "references": []}


def error(response: httpx.Response) -> tuple[int, int]:
    payload = response.json()
    assert set(payload) == {"error_code", "message"}
    assert payload["message"]
    return response.status_code, payload["error_code"]


def test_register_fetch_and_lookup(http: httpx.Client, subject: str, namespace: str) -> None:
    v1 = record("Order", [{"name": "order_id", "type": "string"}], namespace)
    registered = http.post(f"/subjects/{subject}/versions", json=body(v1))
    assert registered.status_code == 200
    assert registered.headers["content-type"].startswith(MEDIA_TYPE)
    schema_id = registered.json()["id"]
    assert registered.json()["version"] == 1

    assert subject in http.get("/subjects").json()
    assert subject in http.get("/subjects", params={"subjectPrefix": subject[:12]}).json()
    assert http.get("/subjects", params={"subjectPrefix": "no-such-prefix-"}).json() == []
    assert http.get(f"/subjects/{subject}/versions").json() == [1]

    for version in ("1", "latest", "-1"):
        got = http.get(f"/subjects/{subject}/versions/{version}").json()
        assert (got["subject"], got["version"], got["id"]) == (subject, 1, schema_id)
        assert json.loads(got["schema"]) == json.loads(v1)
    raw = http.get(f"/subjects/{subject}/versions/1/schema")
    assert json.loads(raw.text) == json.loads(v1)
    assert http.get(f"/subjects/{subject}/versions/1/referencedby").json() == []

    looked_up = http.post(f"/subjects/{subject}", json={"schema": json.dumps(json.loads(v1), indent=2)})
    assert (looked_up.status_code, looked_up.json()["id"], looked_up.json()["version"]) == (200, schema_id, 1)

    by_id = http.get(f"/schemas/ids/{schema_id}").json()
    assert json.loads(by_id["schema"]) == json.loads(v1)
    assert json.loads(http.get(f"/schemas/ids/{schema_id}/schema").text) == json.loads(v1)
    assert http.get(f"/schemas/ids/{schema_id}/subjects").json() == [subject]
    assert http.get(f"/schemas/ids/{schema_id}/versions").json() == [{"subject": subject, "version": 1}]
    assert http.get(f"/schemas/guids/{by_id['guid']}").json()["id"] == schema_id
    assert http.get("/schemas/types").json() == ["AVRO"]


@pytest.mark.parametrize("content_type", [MEDIA_TYPE, "application/json", "application/octet-stream"])
def test_content_types_accepted(http: httpx.Client, subject: str, namespace: str, content_type: str) -> None:
    schema = record("Typed", [{"name": "a", "type": "int"}], namespace)
    response = http.post(
        f"/subjects/{subject}/versions",
        content=json.dumps({"schema": schema}).encode(),
        headers={"Content-Type": content_type},
    )
    assert response.status_code == 200, response.text


def test_compatibility_endpoints(http: httpx.Client, subject: str, namespace: str) -> None:
    v1 = record("Payment", [{"name": "payment_id", "type": "string"}], namespace)
    breaking = record(
        "Payment",
        [{"name": "payment_id", "type": "string"}, {"name": "amount_minor", "type": "long"}],
        namespace,
    )
    fine = record(
        "Payment",
        [{"name": "payment_id", "type": "string"}, {"name": "amount_minor", "type": "long", "default": 0}],
        namespace,
    )
    # Nothing registered yet: anything is compatible with "latest".
    assert http.post(f"/compatibility/subjects/{subject}/versions/latest", json=body(v1)).json() == {
        "is_compatible": True
    }
    http.post(f"/subjects/{subject}/versions", json=body(v1)).raise_for_status()

    for path in (
        f"/compatibility/subjects/{subject}/versions/1",
        f"/compatibility/subjects/{subject}/versions",
    ):
        assert http.post(path, json=body(fine)).json() == {"is_compatible": True}
        assert http.post(path, json=body(breaking)).json() == {"is_compatible": False}
        verbose = http.post(path, json=body(breaking), params={"verbose": "true"}).json()
        assert verbose["is_compatible"] is False
        [message] = verbose["messages"]
        assert message.startswith(
            "READER_FIELD_MISSING_DEFAULT_VALUE at /fields/1 (amount_minor) against version 1"
        )
    assert http.post(
        f"/compatibility/subjects/{subject}/versions/latest", json=body(fine), params={"verbose": "true"}
    ).json() == {"is_compatible": True, "messages": []}


def test_subject_config_and_mode(http: httpx.Client, subject: str) -> None:
    assert http.get("/config").json()["compatibilityLevel"] in {
        "NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"
    }  # fmt: skip
    assert error(http.get(f"/config/{subject}")) == (404, 40408)
    assert (
        http.get(f"/config/{subject}", params={"defaultToGlobal": "true"}).json()
        == http.get("/config").json()
    )

    assert http.put(f"/config/{subject}", json={"compatibility": "full_transitive"}).json() == {
        "compatibility": "FULL_TRANSITIVE"
    }
    assert http.get(f"/config/{subject}").json() == {"compatibilityLevel": "FULL_TRANSITIVE"}
    assert http.delete(f"/config/{subject}").json() == {"compatibilityLevel": "FULL_TRANSITIVE"}
    assert error(http.delete(f"/config/{subject}")) == (404, 40401)

    assert http.get("/mode").json() == {"mode": "READWRITE"}
    assert error(http.get(f"/mode/{subject}")) == (404, 40409)
    assert http.get(f"/mode/{subject}", params={"defaultToGlobal": "true"}).json() == {"mode": "READWRITE"}
    assert http.put(f"/mode/{subject}", json={"mode": "READONLY"}).json() == {"mode": "READONLY"}
    assert http.get(f"/mode/{subject}").json() == {"mode": "READONLY"}
    assert http.delete(f"/mode/{subject}").json() == {"mode": "READONLY"}
    assert error(http.delete(f"/mode/{subject}")) == (404, 40401)


def test_soft_and_permanent_deletes(http: httpx.Client, subject: str, namespace: str) -> None:
    v1 = record("Usage", [{"name": "metric", "type": "string"}], namespace)
    v2 = record(
        "Usage",
        [{"name": "metric", "type": "string"}, {"name": "qty", "type": "long", "default": 0}],
        namespace,
    )
    http.post(f"/subjects/{subject}/versions", json=body(v1)).raise_for_status()
    v2_id = http.post(f"/subjects/{subject}/versions", json=body(v2)).json()["id"]

    assert http.delete(f"/subjects/{subject}/versions/2").json() == 2
    assert error(http.delete(f"/subjects/{subject}/versions/2")) == (404, 40406)
    assert error(http.get(f"/subjects/{subject}/versions/2")) == (404, 40402)
    assert http.get(f"/subjects/{subject}/versions/2", params={"deleted": "true"}).json()["id"] == v2_id
    assert http.get(f"/subjects/{subject}/versions", params={"deletedOnly": "true"}).json() == [2]
    assert error(http.post(f"/subjects/{subject}", json=body(v2))) == (404, 40403)
    assert http.post(f"/subjects/{subject}", json=body(v2), params={"deleted": "true"}).json()["version"] == 2
    assert http.get(f"/schemas/ids/{v2_id}/subjects").json() == []
    assert http.get(f"/schemas/ids/{v2_id}/subjects", params={"deleted": "true"}).json() == [subject]

    assert error(http.delete(f"/subjects/{subject}/versions/1", params={"permanent": "true"})) == (404, 40407)
    assert http.delete(f"/subjects/{subject}/versions/2", params={"permanent": "true"}).json() == 2
    assert error(http.get(f"/subjects/{subject}/versions/2", params={"deleted": "true"})) == (404, 40402)

    assert error(http.delete(f"/subjects/{subject}", params={"permanent": "true"})) == (404, 40405)
    assert http.delete(f"/subjects/{subject}").json() == [1]
    assert error(http.delete(f"/subjects/{subject}")) == (404, 40404)
    assert error(http.get(f"/subjects/{subject}/versions")) == (404, 40401)
    assert subject in http.get("/subjects", params={"deletedOnly": "true"}).json()
    assert http.delete(f"/subjects/{subject}", params={"permanent": "true"}).json() == [1]
    assert subject not in http.get("/subjects", params={"deleted": "true"}).json()

    # Registering a deleted schema again gives a new version, never a reused number.
    http.post(f"/subjects/{subject}/versions", json=body(v1)).raise_for_status()
    again = http.post(f"/subjects/{subject}/versions", json=body(v2)).json()
    assert (again["id"], again["version"]) == (v2_id, 2)
    http.delete(f"/subjects/{subject}/versions/2").raise_for_status()
    assert http.post(f"/subjects/{subject}/versions", json=body(v2)).json() == {
        "id": v2_id,
        "version": 3,
        "guid": again["guid"],
    }
    assert http.get(f"/subjects/{subject}/versions", params={"deleted": "true"}).json() == [1, 3]


def test_health_and_metrics(http: httpx.Client, subject: str) -> None:
    assert http.get("/healthz").json() == {"status": "ok"}
    http.get(f"/subjects/{subject}/versions")  # a 404, counted under its route template
    metrics = http.get("/metrics").text
    assert (
        'revstream_registry_requests_total{endpoint="/subjects/{subject}/versions",method="GET",status="404"}'
        in metrics
    )
    assert subject not in metrics
    assert "revstream_registry_request_duration_seconds_bucket" in metrics


@pytest.mark.parametrize(
    ("level", "accepted"),
    [
        ("NONE", True),
        ("BACKWARD", True),
        ("BACKWARD_TRANSITIVE", False),
        ("FORWARD_TRANSITIVE", True),
        ("FULL", True),
        ("FULL_TRANSITIVE", False),
    ],
)
def test_levels_on_register(
    http: httpx.Client, subject: str, namespace: str, level: str, accepted: bool
) -> None:
    http.put(f"/config/{subject}", json={"compatibility": level}).raise_for_status()
    key = {"name": "quote_id", "type": "string"}
    v1 = record("Quote", [key], namespace)
    v2 = record("Quote", [key, {"name": "discount_bp", "type": "int", "default": 0}], namespace)
    v3 = record("Quote", [key, {"name": "discount_bp", "type": "int"}], namespace)  # v1 data lacks it
    for schema in (v1, v2):
        http.post(f"/subjects/{subject}/versions", json=body(schema)).raise_for_status()

    response = http.post(f"/subjects/{subject}/versions", json=body(v3))
    if accepted:
        assert response.json()["version"] == 3
    else:
        assert error(response) == (409, 409)
        message = response.json()["message"]
        assert f"under {level}" in message
        assert "READER_FIELD_MISSING_DEFAULT_VALUE at /fields/1 (discount_bp) against version 1" in message
        assert "version 2" not in message
        assert http.get(f"/subjects/{subject}/versions").json() == [1, 2]
