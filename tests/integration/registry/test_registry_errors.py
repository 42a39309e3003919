"""Bad input gets Confluent's status and error code, and a message that says what to do."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from tests.integration.registry.conftest import record


def error(response: httpx.Response) -> tuple[int, int, str]:
    payload = response.json()
    assert set(payload) == {"error_code", "message"}
    assert "\n" not in payload["message"]
    return response.status_code, payload["error_code"], payload["message"]


@pytest.fixture
def registered(http: httpx.Client, subject: str) -> str:
    """A subject holding one version of a record; returns that schema."""
    schema = record(
        "Ledger", [{"name": "entry_id", "type": "string"}], f"revstream.test.n{uuid.uuid4().hex[:12]}"
    )
    http.post(f"/subjects/{subject}/versions", json={"schema": schema}).raise_for_status()
    return schema


def test_invalid_avro_names_the_parsers_reason(http: httpx.Client, subject: str) -> None:
    unknown_type = record("Bad", [{"name": "amount_minor", "type": "money"}])
    status, code, message = error(http.post(f"/subjects/{subject}/versions", json={"schema": unknown_type}))
    assert (status, code) == (422, 42201)
    assert "money" in message

    wrong_default = record("Bad", [{"name": "qty", "type": "int", "default": "ten"}])
    status, code, message = error(http.post(f"/subjects/{subject}/versions", json={"schema": wrong_default}))
    assert (status, code) == (422, 42201)
    assert "Default value <ten> must match schema type: int" in message

    status, code, message = error(http.post(f"/subjects/{subject}/versions", json={"schema": "{not json"}))
    assert (status, code) == (422, 42201)
    assert "Error parsing JSON" in message

    assert error(http.post(f"/subjects/{subject}/versions", json={}))[:2] == (422, 42201)
    protobuf = {"schema": 'syntax = "proto3";', "schemaType": "PROTOBUF"}
    status, code, message = error(http.post(f"/subjects/{subject}/versions", json=protobuf))
    assert (status, code) == (422, 42201)
    assert "AVRO" in message
    references = {"schema": '"string"', "references": [{"name": "x", "subject": "y", "version": 1}]}
    assert error(http.post(f"/subjects/{subject}/versions", json=references))[:2] == (422, 42201)
    # Nothing was registered by any of these.
    assert error(http.get(f"/subjects/{subject}/versions"))[:2] == (404, 40401)


def test_body_that_is_not_json(http: httpx.Client, subject: str) -> None:
    response = http.post(f"/subjects/{subject}/versions", content=b"{")
    assert error(response)[:2] == (400, 400)


def test_unknown_subject_version_and_schema(http: httpx.Client, subject: str, registered: str) -> None:
    missing = f"{subject}-missing"
    for response in (
        http.get(f"/subjects/{missing}/versions"),
        http.get(f"/subjects/{missing}/versions/latest"),
        http.post(f"/subjects/{missing}", json={"schema": registered}),
        http.delete(f"/subjects/{missing}"),
        http.delete(f"/subjects/{missing}/versions/1"),
        http.post(f"/compatibility/subjects/{missing}/versions/1", json={"schema": registered}),
    ):
        status, code, message = error(response)
        assert (status, code) == (404, 40401), response.request.url
        assert missing in message

    assert error(http.get(f"/subjects/{subject}/versions/7"))[:2] == (404, 40402)
    assert error(http.delete(f"/subjects/{subject}/versions/7"))[:2] == (404, 40402)
    assert error(http.post(f"/compatibility/subjects/{subject}/versions/7", json={"schema": registered}))[
        :2
    ] == (
        404,
        40402,
    )
    assert error(http.post(f"/subjects/{subject}", json={"schema": '"bytes"'}))[:2] == (404, 40403)
    assert error(http.get("/schemas/ids/2147483000"))[:2] == (404, 40403)
    assert error(http.get("/schemas/ids/2147483000/versions"))[:2] == (404, 40403)
    assert error(http.get(f"/schemas/guids/{uuid.uuid4()}"))[:2] == (404, 40403)
    assert error(http.get("/no/such/route"))[:2] == (404, 404)


@pytest.mark.parametrize("version", ["0", "-2", "two", "2147483648"])
def test_invalid_version(http: httpx.Client, subject: str, registered: str, version: str) -> None:
    status, code, message = error(http.get(f"/subjects/{subject}/versions/{version}"))
    assert (status, code) == (422, 42202)
    assert f"'{version}'" in message and "latest" in message
    assert error(http.delete(f"/subjects/{subject}/versions/{version}"))[:2] == (422, 42202)


def test_incompatible_names_field_version_and_kind(http: httpx.Client, subject: str, registered: str) -> None:
    fields = json.loads(registered)["fields"]
    evolved = json.loads(registered) | {"fields": [*fields, {"name": "amount_minor", "type": "long"}]}
    status, code, message = error(
        http.post(f"/subjects/{subject}/versions", json={"schema": json.dumps(evolved)})
    )
    assert (status, code) == (409, 409)
    assert subject in message
    assert "READER_FIELD_MISSING_DEFAULT_VALUE at /fields/1 (amount_minor) against version 1" in message
    assert "give the field a default" in message


def test_invalid_level_and_mode(http: httpx.Client, subject: str) -> None:
    status, code, message = error(http.put(f"/config/{subject}", json={"compatibility": "SIDEWAYS"}))
    assert (status, code) == (422, 42203)
    assert "FULL_TRANSITIVE" in message
    assert error(http.put(f"/config/{subject}", json={}))[:2] == (422, 42203)
    assert error(http.put(f"/config/{subject}", json={"compatibility": None}))[:2] == (422, 42203)
    status, code, message = error(http.put(f"/mode/{subject}", json={"mode": "WRITEONLY"}))
    assert (status, code) == (422, 42204)
    assert "READWRITE" in message


def test_read_only_subject_refuses_writes(http: httpx.Client, subject: str, registered: str) -> None:
    http.put(f"/mode/{subject}", json={"mode": "READONLY"}).raise_for_status()
    other = record("Other", [{"name": "x", "type": "int"}], f"revstream.test.n{uuid.uuid4().hex[:12]}")
    try:
        for response in (
            http.post(f"/subjects/{subject}/versions", json={"schema": other}),
            http.delete(f"/subjects/{subject}/versions/1"),
            http.delete(f"/subjects/{subject}"),
        ):
            status, code, message = error(response)
            assert (status, code) == (422, 42205)
            assert "read-only" in message
        assert http.get(f"/subjects/{subject}/versions").json() == [1]
    finally:
        http.delete(f"/mode/{subject}")


def test_explicit_ids_need_import_mode(http: httpx.Client, subject: str) -> None:
    schema = record("Imported", [{"name": "x", "type": "int"}], f"revstream.test.n{uuid.uuid4().hex[:12]}")
    request = {"schema": schema, "id": 2_000_000_000, "version": 1}
    status, code, message = error(http.post(f"/subjects/{subject}/versions", json=request))
    assert (status, code) == (422, 42205)
    assert "import mode" in message

    # IMPORT on a subject with live versions needs force.
    http.post(f"/subjects/{subject}/versions", json={"schema": schema}).raise_for_status()
    assert error(http.put(f"/mode/{subject}", json={"mode": "IMPORT"}))[:2] == (422, 42205)
