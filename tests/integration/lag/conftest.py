"""Fixtures of the lag tests: batched producing, a live group member, the CLI and the exporter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition

from streams.clients import admin_client, consumer, producer
from streams.lag.collector import LagCollector, LagConfig
from streams.lag.model import GroupFilter
from streams.settings import Settings
from tests.conftest import wait_for


def produce_batched(settings: Settings, topic: str, counts: dict[int, int]) -> None:
    """Append ``counts[partition]`` records to each partition, batched (one flush at the end)."""
    out = producer(settings.kafka, **{"linger.ms": 100, "batch.num.messages": 10_000})
    for partition, count in counts.items():
        for index in range(count):
            out.produce(topic, value=f"record-{index}".encode(), partition=partition)
    assert out.flush(30) == 0


class Member:
    """A consumer that joined ``group`` on ``topic`` and commits exactly the offsets it is told."""

    def __init__(self, settings: Settings, group: str, topic: str) -> None:
        self.settings, self.group, self.topic = settings, group, topic
        self.consumer: Consumer = consumer(settings.kafka, group)
        self.consumer.subscribe([topic])
        admin = admin_client(settings.kafka)

        def joined() -> bool:
            self.consumer.poll(0.2)
            if not self.consumer.assignment():
                return False
            described = admin.describe_consumer_groups([group])[group].result(timeout=5)
            return str(described.state.name) == "STABLE"

        wait_for(joined, 60, f"{group} to join")

    def commit(self, offsets: dict[int, int]) -> None:
        self.consumer.poll(0)  # keeps the member's poll interval alive
        self.consumer.commit(
            offsets=[TopicPartition(self.topic, p, o) for p, o in offsets.items()], asynchronous=False
        )

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture
def member_factory(stack_settings: Settings) -> Iterator[Callable[[str, str], Member]]:
    members: list[Member] = []

    def make(group: str, topic: str) -> Member:
        members.append(Member(stack_settings, group, topic))
        return members[-1]

    yield make
    for member in members:
        try:
            member.close()
        except RuntimeError:
            pass  # closed by the test already


@pytest.fixture
def collector_for(stack_settings: Settings) -> Iterator[Callable[..., LagCollector]]:
    collectors: list[LagCollector] = []

    def make(group: str, window: int = 3, **config: Any) -> LagCollector:
        lag_config = LagConfig(groups=GroupFilter(allow=re.escape(group)), window=window, **config)
        collectors.append(LagCollector(stack_settings.kafka, lag_config))
        return collectors[-1]

    yield make
    for collector in collectors:
        collector.close()


@pytest.fixture
def cli_env(stack_settings: Settings) -> dict[str, str]:
    """The environment a ``revstream`` child needs to reach the session's stack."""
    env = dict(os.environ)
    if stack_settings.embedded:
        env = environment_without_revstream()
        env.update(REVSTREAM_PROFILE="embedded", REVSTREAM_HOME=str(stack_settings.home))
    return env


def revstream_cli(
    env: dict[str, str], *args: str, cwd: Path | None = None, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m revstream ARGS`` as a user does, with ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "revstream", *args],
        capture_output=True, text=True, env=env, cwd=cwd, timeout=timeout_s,
    )  # fmt: skip


def environment_without_revstream() -> dict[str, str]:
    """This process's environment minus every ``REVSTREAM_*`` variable."""
    return {k: v for k, v in os.environ.items() if not k.startswith("REVSTREAM_")}


@pytest.fixture
def run_cli(cli_env: dict[str, str]) -> Callable[..., subprocess.CompletedProcess[str]]:
    def run(*args: str, timeout_s: float = 60) -> subprocess.CompletedProcess[str]:
        return revstream_cli(cli_env, *args, timeout_s=timeout_s)

    return run
