"""Fixtures of the dead-letter tool's tests: a catalog and an audit database per test, the CLI in-process."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest
from click.testing import CliRunner
from confluent_kafka.admin import AdminClient
from psycopg.conninfo import conninfo_to_dict
from pydantic import SecretStr

from connectors.errors import ConnectorError
from connectors.ledger.database import drop_database
from streams.clients import producer as make_producer
from streams.deadletter import Failure, SourceRecord, dead_letter_headers
from streams.provisioning import ensure_topics
from streams.serde import AvroSerde
from streams.settings import DatabaseSettings, Settings, TopicsSettings
from streams.topics import TopicCatalog
from tests.integration.processors.harness import read_topic
from tests.integration.sink.helpers import new_ledger


@dataclass(frozen=True)
class Ran:
    """What one ``revstream`` run printed and how it exited."""

    code: int
    out: str
    err: str


@dataclass
class Deployment:
    """A topic namespace of the test's own, its audit database, and ``revstream`` pointed at both."""

    settings: Settings
    catalog: TopicCatalog
    conninfo: str
    env: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.env = {
            "REVSTREAM_PROFILE": "embedded" if self.settings.embedded else "external",
            "REVSTREAM_HOME": "/nonexistent-revstream-home",
            "REVSTREAM_KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka.require_bootstrap(),
            "REVSTREAM_REGISTRY_URL": self.settings.registry.require_url(),
            "REVSTREAM_DATABASE_URL": self.conninfo,
            "REVSTREAM_TOPICS_NAMESPACE": self.catalog.namespace,
            "REVSTREAM_TOPICS_PARTITIONS": str(self.catalog.partitions),
        }

    def cli(self, *args: str, input: str | None = None, **env: str) -> Ran:
        """Run ``revstream ARGS`` in this process, as ``main()`` does (errors as one line, exit codes)."""
        from revstream.cli import main

        runner = CliRunner()
        overrides = {**self.env, **env}
        with runner.isolation(input=input, env=overrides) as (out, err, _):
            saved = sys.argv
            sys.argv = ["revstream", *args]
            code = 0
            try:
                main()
            except SystemExit as exc:
                code = int(exc.code or 0)
            finally:
                sys.argv = saved
            return Ran(code, out.getvalue().decode(), err.getvalue().decode())

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        """Start ``python -m revstream ARGS`` as a user would (for kill tests)."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("REVSTREAM_") and k != "DATABASE_URL"}
        env.update(self.env)
        return subprocess.Popen(
            [sys.executable, "-m", "revstream", *args],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
        )  # fmt: skip

    def dead_letter(
        self,
        stage: str,
        source_topic: str,
        reason: str,
        *,
        key: bytes | None = b"C1",
        value: bytes | None = b"value",
        headers: Sequence[tuple[str, bytes | None]] = (),
        partition: int = 0,
        offset: int = 7,
        group: str | None = None,
    ) -> None:
        """Write one dead letter as a stage does: original record plus the error context."""
        source = SourceRecord(source_topic, partition, offset, key, value, tuple(headers))
        failure = Failure.from_exception(stage, reason, ValueError(f"{reason} in test"), consumer_group=group)
        producer = make_producer(self.settings.kafka)
        producer.produce(
            self.catalog.deadletter_topic(stage),
            value,
            key,
            partition=0,  # predictable ids in the tests; a stage lets the partitioner pick
            headers=list(dead_letter_headers(source, failure)),
        )
        assert producer.flush(30) == 0

    def service_settings(self) -> Settings:
        """The session's settings for this namespace and its database (to run the sink in-process)."""
        return self.settings.model_copy(
            update={
                "database": DatabaseSettings(url=SecretStr(self.conninfo)),
                "topics": TopicsSettings(
                    namespace=self.catalog.namespace, partitions=self.catalog.partitions
                ),
            }
        )

    def read(self, topic: str) -> list[Any]:
        return read_topic(self.settings, topic)


@pytest.fixture(scope="module")
def serde(stack_settings: Settings) -> AvroSerde:
    return AvroSerde.from_settings(stack_settings.registry)


@pytest.fixture(scope="module")
def audit_db(stack_settings: Settings) -> Iterator[str]:
    """A migrated ledger database (it holds the audit table) for this test module."""
    conninfo = new_ledger(stack_settings)
    yield conninfo
    with contextlib.suppress(ConnectorError):
        drop_database(stack_settings.database.conninfo(), str(conninfo_to_dict(conninfo)["dbname"]))


def new_deployment(stack_settings: Settings, admin: AdminClient, conninfo: str) -> Deployment:
    catalog = TopicCatalog(namespace=f"dlq-{uuid.uuid4().hex[:10]}", partitions=3, replication_factor=1)
    ensure_topics(admin, catalog.specs())
    return Deployment(stack_settings, catalog, conninfo)


@pytest.fixture
def deployment(stack_settings: Settings, admin: AdminClient, audit_db: str) -> Deployment:
    """A fresh namespace per test (dead letters of its own), sharing the module's audit database."""
    return new_deployment(stack_settings, admin, audit_db)
