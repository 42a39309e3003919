"""Registries of their own: restarts keep ids, registry-wide modes, basic auth, a lost store.

Each test runs `revstream registry serve` processes on a fresh database, so registry-wide settings
and outages never reach the stack's registry that the rest of the session uses.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import psycopg
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from streams.settings import Settings
from streams.stack import EmbeddedStack
from tests.integration.registry.conftest import RegistryProcess, client_for, record

Spawn = Callable[..., RegistryProcess]


def schema(name: str, *extra: dict[str, object]) -> str:
    return record(name, [{"name": "id", "type": "string"}, *extra])


def test_restart_keeps_ids_versions_and_settings(fresh_database: str, spawn_registry: Spawn) -> None:
    first = spawn_registry(fresh_database)
    with client_for(first.url) as http:
        ids = {
            name: http.post(f"/subjects/{name}-value/versions", json={"schema": schema(name)}).json()["id"]
            for name in ("quote", "order", "invoice")
        }
        evolved = schema("invoice", {"name": "amount_minor", "type": "long", "default": 0})
        ids["invoice-v2"] = http.post("/subjects/invoice-value/versions", json={"schema": evolved}).json()[
            "id"
        ]
        http.post("/subjects/shared-value/versions", json={"schema": schema("quote")}).raise_for_status()
        http.delete("/subjects/order-value/versions/1").raise_for_status()
        http.put("/config/invoice-value", json={"compatibility": "FULL"}).raise_for_status()
    assert len(set(ids.values())) == 4
    first.stop()

    second = spawn_registry(fresh_database)
    with client_for(second.url) as http:
        assert http.get("/subjects").json() == ["invoice-value", "quote-value", "shared-value"]
        assert http.get("/subjects/invoice-value/versions/2").json()["id"] == ids["invoice-v2"]
        assert http.get("/subjects/shared-value/versions/1").json()["id"] == ids["quote"]
        assert (
            http.post("/subjects/quote-value", json={"schema": schema("quote")}).json()["id"] == ids["quote"]
        )
        assert http.get("/subjects/order-value/versions", params={"deleted": "true"}).json() == [1]
        assert http.get("/config/invoice-value").json() == {"compatibilityLevel": "FULL"}
        for name, schema_id in ids.items():
            assert http.get(f"/schemas/ids/{schema_id}").status_code == 200, name
        # Re-registering is idempotent across the restart; new schemas get fresh ids.
        again = http.post("/subjects/quote-value/versions", json={"schema": schema("quote")}).json()
        assert (again["id"], again["version"]) == (ids["quote"], 1)
        fresh = http.post("/subjects/payment-value/versions", json={"schema": schema("payment")}).json()["id"]
        assert fresh not in ids.values()


def test_two_registries_on_one_database_agree(fresh_database: str, spawn_registry: Spawn) -> None:
    left, right = spawn_registry(fresh_database), spawn_registry(fresh_database)
    names = [f"event{i}" for i in range(12)]

    def register(index: int) -> tuple[str, int]:
        url = (left if index % 2 else right).url
        name = names[index // 2]  # each schema registered once through each registry, concurrently
        with client_for(url) as http:
            response = http.post(f"/subjects/{name}-value/versions", json={"schema": schema(name)})
            response.raise_for_status()
            return name, response.json()["id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(register, range(len(names) * 2)))
    by_name: dict[str, set[int]] = {}
    for name, schema_id in results:
        by_name.setdefault(name, set()).add(schema_id)
    assert all(len(found) == 1 for found in by_name.values()), by_name
    assert len({next(iter(found)) for found in by_name.values()}) == len(names)
    with client_for(left.url) as http:
        assert all(http.get(f"/subjects/{name}-value/versions").json() == [1] for name in names)


def test_registry_wide_mode_and_level(fresh_database: str, spawn_registry: Spawn) -> None:
    registry = spawn_registry(fresh_database)
    with client_for(registry.url) as http:
        assert http.get("/config").json() == {"compatibilityLevel": "BACKWARD"}
        http.post("/subjects/a-value/versions", json={"schema": schema("a")}).raise_for_status()
        no_default = schema("a", {"name": "n", "type": "int"})
        assert http.post("/subjects/a-value/versions", json={"schema": no_default}).status_code == 409

        assert http.put("/config", json={"compatibility": "NONE"}).json() == {"compatibility": "NONE"}
        assert http.get("/config/a-value", params={"defaultToGlobal": "true"}).json() == {
            "compatibilityLevel": "NONE"
        }
        assert http.post("/subjects/a-value/versions", json={"schema": no_default}).json()["version"] == 2
        assert http.delete("/config").json() == {"compatibilityLevel": "NONE"}
        assert http.get("/config").json() == {"compatibilityLevel": "BACKWARD"}

        assert http.put("/mode", json={"mode": "READONLY"}).json() == {"mode": "READONLY"}
        refused = http.post("/subjects/b-value/versions", json={"schema": schema("b")})
        assert (refused.status_code, refused.json()["error_code"]) == (422, 42205)
        assert http.get("/mode/b-value", params={"defaultToGlobal": "true"}).json() == {"mode": "READONLY"}

        refused = http.put("/mode", json={"mode": "IMPORT"})
        assert (refused.status_code, refused.json()["error_code"]) == (422, 42205)
        assert "force=true" in refused.json()["message"]
        assert http.put("/mode", params={"force": "true"}, json={"mode": "IMPORT"}).json() == {
            "mode": "IMPORT"
        }
        http.put("/mode", json={"mode": "READWRITE"}).raise_for_status()


def test_import_mode_keeps_given_ids(fresh_database: str, spawn_registry: Spawn) -> None:
    registry = spawn_registry(fresh_database)
    with client_for(registry.url) as http:
        assert http.put("/mode", json={"mode": "IMPORT"}).json() == {"mode": "IMPORT"}
        imported = {"schema": schema("imported"), "id": 500, "version": 3}
        assert http.post("/subjects/imported-value/versions", json=imported).json()["id"] == 500
        assert http.get("/subjects/imported-value/versions").json() == [3]
        assert http.get("/schemas/ids/500").status_code == 200

        cases = {
            "no id outside READWRITE": {"schema": schema("other")},
            "id taken by another schema": {"schema": schema("other"), "id": 500, "version": 1},
            "version taken": {"schema": schema("other"), "id": 501, "version": 3},
        }
        for case, request in cases.items():
            refused = http.post("/subjects/imported-value/versions", json=request)
            assert (refused.status_code, refused.json()["error_code"]) == (422, 42205), case
        mismatch = http.post("/subjects/copy-value/versions", json={**imported, "id": 777})
        assert (mismatch.status_code, mismatch.json()["error_code"]) == (422, 42207)

        http.put("/mode", json={"mode": "READWRITE"}).raise_for_status()
        after = http.post("/subjects/next-value/versions", json={"schema": schema("next")}).json()
        assert after["id"] > 500  # new ids never collide with imported ones


def test_basic_auth(fresh_database: str, spawn_registry: Spawn) -> None:
    registry = spawn_registry(fresh_database, users="ops:s3cret,ci:other")
    assert httpx.get(f"{registry.url}/healthz").status_code == 200
    for auth in (None, ("ops", "wrong"), ("nobody", "s3cret")):
        response = httpx.get(f"{registry.url}/subjects", auth=auth)
        assert response.status_code == 401
        assert response.json()["error_code"] == 401
        assert response.headers["www-authenticate"].startswith("Basic")
    assert httpx.get(f"{registry.url}/metrics").status_code == 401

    with client_for(registry.url, auth=("ci", "other")) as http:
        assert http.get("/subjects").json() == []
    client = SchemaRegistryClient({"url": registry.url, "basic.auth.user.info": "ops:s3cret"})
    assert client.register_schema("authed-value", Schema(schema("authed"), "AVRO")) > 0
    anonymous = SchemaRegistryClient({"url": registry.url})
    with pytest.raises(SchemaRegistryError) as denied:
        anonymous.get_subjects()
    assert denied.value.http_status_code == 401


def test_lost_store_answers_50001(
    fresh_database: str, spawn_registry: Spawn, stack_settings: Settings
) -> None:
    registry = spawn_registry(fresh_database)
    name = psycopg.conninfo.conninfo_to_dict(fresh_database)["dbname"]
    with psycopg.connect(stack_settings.database.conninfo(), autocommit=True) as connection:
        connection.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
    with client_for(registry.url) as http:
        response = http.get("/subjects")
        assert (response.status_code, response.json()["error_code"]) == (500, 50001)
        assert "REVSTREAM_DATABASE_URL" in response.json()["message"]
        assert http.get("/healthz").status_code == 503


def test_serve_without_a_database_is_one_line() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSTREAM_")}
    env.update(
        {"REVSTREAM_PROFILE": "external", "REVSTREAM_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none"}
    )
    result = subprocess.run(
        [sys.executable, "-m", "revstream", "registry", "serve", "--port=1"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("revstream: error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "REVSTREAM_DATABASE_URL" in errors[0]


def test_stack_starts_a_registry_with_basic_auth(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The stack's readiness probe gets a 401 then; it must still see the registry as up.
    monkeypatch.setenv("REVSTREAM_REGISTRY_SERVER_USERS", "ops:s3cret")
    stack = EmbeddedStack(tmp_path_factory.mktemp("authstack"))
    try:
        statuses = stack.up()
        assert statuses["registry"].state == "running"
        url = statuses["registry"].endpoint
        assert httpx.get(f"{url}/subjects").status_code == 401
        assert httpx.get(f"{url}/subjects", auth=("ops", "s3cret")).json() == []
    finally:
        stack.down()
