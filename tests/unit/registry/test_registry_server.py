"""The HTTP layer's answer to a defect: Confluent's error shape, logged, and counted."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from fastapi.testclient import TestClient
from pydantic import SecretStr

from streams.registry.server import create_app
from streams.registry.store import RegistryStore, StoreTx
from streams.settings import DatabaseSettings, Settings


class BrokenStore(RegistryStore):
    """A store whose every transaction hits a bug (not a database error)."""

    def initialize(self) -> None:
        pass

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[StoreTx]:
        raise RuntimeError("bug")
        yield  # pragma: no cover


def test_a_defect_answers_500_in_confluents_shape_and_is_counted() -> None:
    settings = Settings(database=DatabaseSettings(url=SecretStr("postgresql://unused@/none")))
    app = create_app(settings, store=BrokenStore("postgresql://unused@/none"))
    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/subjects")
        assert response.status_code == 500
        assert response.json() == {
            "error_code": 50001,
            "message": "internal error (RuntimeError); see the registry's log",
        }
        metrics = client.get("/metrics").text
    assert 'revstream_registry_requests_total{endpoint="/subjects",method="GET",status="500"} 1.0' in metrics
