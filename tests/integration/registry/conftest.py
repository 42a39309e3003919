"""Fixtures for the schema registry service: the stack's registry, and registries of one's own.

Subject-scoped tests use the embedded stack's registry with unique subject names. Tests that
change registry-wide settings (global mode or level), restart a registry or turn on basic auth
get their own ``revstream registry serve`` process on a fresh PostgreSQL database, so the stack's
registry (shared with every other test of the session) never sees them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from streams.settings import Settings
from streams.stack import free_port
from tests.conftest import wait_for

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"


def record(name: str, fields: Sequence[Mapping[str, object]], namespace: str = "revstream.test") -> str:
    """Return an Avro record schema as JSON text."""
    return json.dumps({"type": "record", "name": name, "namespace": namespace, "fields": list(fields)})


@pytest.fixture(scope="session")
def registry_url(stack_settings: Settings) -> str:
    return stack_settings.registry.require_url()


@pytest.fixture
def http(registry_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=registry_url, headers={"Content-Type": MEDIA_TYPE}, timeout=10) as client:
        yield client


@pytest.fixture
def subject(unique: Callable[[str], str]) -> str:
    return unique("reg") + "-value"


@dataclass
class RegistryProcess:
    """A `revstream registry serve` process of a test's own."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=15)


@pytest.fixture
def fresh_database(stack_settings: Settings) -> Iterator[str]:
    """A new, empty database on the stack's PostgreSQL; returns its conninfo."""
    if not stack_settings.embedded:
        pytest.skip("creates databases on the embedded PostgreSQL")
    admin = stack_settings.database.conninfo()
    name = f"registry_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    yield make_conninfo(admin, dbname=name)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def spawn_registry(tmp_path: Path) -> Iterator[Callable[..., RegistryProcess]]:
    """Start `revstream registry serve` processes; all are stopped after the test."""
    started: list[RegistryProcess] = []

    def spawn(database: str, users: str | None = None) -> RegistryProcess:
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("REVSTREAM_")}
        env.update({"REVSTREAM_DATABASE_URL": database, "REVSTREAM_PROFILE": "external"})
        if users is not None:
            env["REVSTREAM_REGISTRY_SERVER_USERS"] = users
        log = tmp_path / f"registry-{port}.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [sys.executable, "-m", "revstream", "registry", "serve", f"--port={port}"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        running = RegistryProcess(f"http://127.0.0.1:{port}", process, log)
        started.append(running)

        def ready() -> bool:
            assert process.poll() is None, log.read_text()
            try:
                return httpx.get(f"{running.url}/healthz", timeout=1).status_code == 200
            except httpx.TransportError:
                return False

        wait_for(ready, 30, "the registry process to answer")
        return running

    yield spawn
    for running in started:
        running.stop()


@contextmanager
def client_for(url: str, auth: tuple[str, str] | None = None) -> Iterator[httpx.Client]:
    """An HTTP client of a registry process, sending Confluent's content type."""
    with httpx.Client(base_url=url, headers={"Content-Type": MEDIA_TYPE}, auth=auth, timeout=10) as client:
        yield client
