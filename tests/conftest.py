"""Test harness: one embedded stack per test session, unique names per test.

Integration tests take broker, registry and database addresses from the environment when
``REVSTREAM_PROFILE=external`` is set (a real cluster), else they start the embedded stack once for
the whole run in a temporary state directory and tear it down even when tests fail. Every test gets
its own topic namespace and group ids, so tests never see each other's records.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from streams.clients import admin_client
from streams.provisioning import ensure_topics
from streams.settings import Settings, load_settings
from streams.stack import EmbeddedStack
from streams.topics import TopicCatalog, TopicSpec


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests under tests/integration are integration tests; everything else is a unit test.
    for item in items:
        if "integration" in item.path.parts or item.get_closest_marker("integration"):
            item.add_marker(pytest.mark.integration)
        else:
            item.add_marker(pytest.mark.unit)


@pytest.fixture(scope="session")
def stack_home() -> Iterator[Path]:
    # Not under pytest's basetemp: another pytest session on the machine resets that tree to
    # 0700, after which PostgreSQL's own user can no longer reach its data directory to stop.
    # Short, too: pgserver puts its unix socket in the data directory (sun_path limit).
    home = Path(tempfile.mkdtemp(prefix="rs-stack-"))
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.fixture(scope="session")
def stack_settings(stack_home: Path) -> Iterator[Settings]:
    """Settings pointing at a usable broker, registry and database for the whole session."""
    if os.environ.get("REVSTREAM_PROFILE") == "external":
        yield load_settings()
        return
    embedded = EmbeddedStack(stack_home)
    try:
        embedded.up()
        yield load_settings(profile="embedded", home=stack_home).with_embedded_endpoints()
    finally:
        embedded.down()


@pytest.fixture(scope="session")
def embedded_stack(stack_settings: Settings) -> EmbeddedStack:
    """The embedded stack itself, for tests that stop or restart one of its services."""
    if not stack_settings.embedded:
        pytest.skip("needs the embedded stack")
    return EmbeddedStack(stack_settings.home)


@pytest.fixture(scope="session")
def admin(stack_settings: Settings) -> AdminClient:
    return admin_client(stack_settings.kafka)


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Return a factory of names unique to this test (topics, groups, subjects)."""
    token = uuid.uuid4().hex[:10]

    def make(prefix: str) -> str:
        return f"{prefix}-{token}-{uuid.uuid4().hex[:6]}"

    return make


@pytest.fixture
def topic_factory(admin: AdminClient, unique: Callable[[str], str]) -> Callable[..., str]:
    """Create a fresh topic for this test and return its name."""

    def make(prefix: str = "test", partitions: int = 1, config: dict[str, str] | None = None) -> str:
        name = unique(prefix)
        spec = TopicSpec(
            name, "canonical", partitions, 1, key="test", extra_config=tuple((config or {}).items())
        )
        ensure_topics(admin, [spec])
        return name

    return make


@pytest.fixture
def catalog(stack_settings: Settings, admin: AdminClient, unique: Callable[[str], str]) -> TopicCatalog:
    """A whole topic catalog, provisioned under a namespace of this test's own."""
    catalog = TopicCatalog(namespace=unique("ns"), partitions=3, replication_factor=1)
    ensure_topics(admin, catalog.specs())
    return catalog


def wait_for(condition: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> None:
    """Poll ``condition`` until it holds; fail the test with ``what`` after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout_s:g}s waiting for {what}")
