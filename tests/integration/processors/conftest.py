"""Fixtures of the processors' integration tests: a namespace per module, workers as subprocesses."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient

from streams.provisioning import ensure_topics
from streams.serde import AvroSerde
from streams.settings import Settings
from streams.topics import TopicCatalog
from tests.integration.processors.harness import Harness, WorkerProcess


@pytest.fixture(scope="module")
def serde(stack_settings: Settings) -> AvroSerde:
    if not stack_settings.registry.url:
        pytest.skip("the processors decode through the schema registry, which this stack does not run")
    return AvroSerde.from_settings(stack_settings.registry)


def new_catalog(admin: AdminClient) -> TopicCatalog:
    catalog = TopicCatalog(namespace=f"proc-{uuid.uuid4().hex[:10]}", partitions=3, replication_factor=1)
    ensure_topics(admin, catalog.specs())
    return catalog


@pytest.fixture(scope="module")
def module_catalog(admin: AdminClient) -> TopicCatalog:
    """A whole catalog under a namespace of this test module's own."""
    return new_catalog(admin)


@pytest.fixture(scope="module")
def harness(stack_settings: Settings, module_catalog: TopicCatalog, serde: AvroSerde) -> Harness:
    return Harness(stack_settings, module_catalog, serde)


@pytest.fixture(scope="module")
def workers_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return Path(tmp_path_factory.mktemp("workers"))


@pytest.fixture(scope="module")
def worker_factory(stack_settings: Settings, workers_dir: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start ``revstream worker`` subprocesses; every one still running is stopped afterwards."""
    started: list[WorkerProcess] = []

    def start(
        namespace: str, name: str = "w1", argv: tuple[str, ...] | None = None, **env: str
    ) -> WorkerProcess:
        worker = WorkerProcess(
            stack_settings,
            namespace,
            data_dir=workers_dir / namespace / name,
            log_path=workers_dir / namespace / f"{name}.log",
            env_overrides=env,
        )
        if argv is not None:
            worker.argv = argv
        started.append(worker.start())
        return worker

    yield start
    for worker in started:
        worker.stop()
