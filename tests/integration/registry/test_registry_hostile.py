"""Requests that used to get a 500 from the registry: each now gets a Confluent-style 4xx."""

from __future__ import annotations

import httpx
import pytest

from streams.registry.routes import MAX_BODY_BYTES
from tests.integration.registry.conftest import record
from tests.integration.registry.test_registry_errors import error


def nested_schema(depth: int) -> str:
    # Written out by hand: json.dumps itself cannot encode 2,000 levels.
    inner = '{"type": "array", "items": ' * depth + '"string"' + "}" * depth
    return '{"type": "record", "name": "Deep", "fields": [{"name": "f", "type": ' + inner + "}]}"


@pytest.mark.parametrize("depth", [70, 300, 2000])
def test_a_deeply_nested_schema_is_invalid_not_a_crash(http: httpx.Client, subject: str, depth: int) -> None:
    # 300 levels used to parse, and then crash the compatibility check of the next version.
    deep = {"schema": nested_schema(depth)}
    status, code, message = error(http.post(f"/subjects/{subject}/versions", json=deep))
    assert (status, code, message) == (422, 42201, "Invalid schema: it is nested deeper than 64 levels")
    checked = error(http.post(f"/compatibility/subjects/{subject}/versions/latest", json=deep))
    assert checked[:2] in ((422, 42201), (404, 40401))


def test_a_schema_under_the_depth_limit_is_registered(http: httpx.Client, subject: str) -> None:
    shallow = {"schema": nested_schema(40)}
    assert http.post(f"/subjects/{subject}/versions", json=shallow).status_code == 200


def test_a_body_nested_5000_deep_is_a_bad_request(http: httpx.Client, subject: str) -> None:
    deep_body = b'{"schema": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    status, code, _ = error(http.post(f"/subjects/{subject}/versions", content=deep_body))
    assert (status, code) == (400, 400)


def test_ids_and_versions_out_of_range_in_import_mode(http: httpx.Client, subject: str) -> None:
    assert http.put(f"/mode/{subject}", json={"mode": "IMPORT"}).status_code == 200
    schema = record("Imported", [{"name": "a", "type": "string"}])
    too_big_id = error(http.post(f"/subjects/{subject}/versions", json={"schema": schema, "id": 2**31}))
    assert too_big_id[:2] == (422, 42201) and "2^31-1" in too_big_id[2]
    too_big_version = {"schema": schema, "id": 7001, "version": 2**63}
    assert error(http.post(f"/subjects/{subject}/versions", json=too_big_version))[:2] == (422, 42202)
    assert error(http.get(f"/schemas/ids/{2**40}"))[:2] == (404, 40403)
    assert error(http.get(f"/schemas/ids/{2**40}/versions"))[:2] == (404, 40403)


def test_nul_in_a_subject_or_a_parameter(http: httpx.Client, subject: str) -> None:
    schema = record("Ok", [{"name": "a", "type": "string"}])
    assert error(http.post(f"/subjects/{subject}%00x/versions", json={"schema": schema}))[:2] == (400, 400)
    assert error(http.get(f"/subjects/{subject}%00x/versions"))[:2] == (400, 400)
    assert error(http.get("/subjects", params={"subjectPrefix": "a\x00"}))[:2] == (400, 400)


def test_bodies_over_the_limit_are_413(http: httpx.Client, subject: str) -> None:
    doc = "d" * (MAX_BODY_BYTES + 10)
    huge = record("Huge", [{"name": "a", "type": "string", "doc": doc}])
    status, code, message = error(http.post(f"/subjects/{subject}/versions", json={"schema": huge}))
    assert (status, code) == (413, 413)
    assert str(MAX_BODY_BYTES) in message
    # The registry is still there and fine.
    assert http.get("/subjects").status_code == 200
