"""Crash tests: `kill -9` the sink process mid-run; after a restart every command is applied exactly once."""

from __future__ import annotations

import re
import signal

from confluent_kafka import TopicPartition

from connectors.ledger.rows import COLUMNS
from streams.clients import consumer as make_consumer
from streams.serde import AvroSerde
from streams.settings import Settings
from tests.conftest import wait_for
from tests.integration.sink.helpers import (
    count,
    new_ledger,
    produce_commands,
    run_sink,
    sink_process,
    snapshot,
)
from tests.unit.ledger import commands_factory as f

PARTITIONS = 3


def _summary(stderr: str) -> dict[str, int]:
    match = re.search(r"(\d+) read, (\d+) applied, (\d+) duplicates, (\d+) dead-lettered", stderr)
    assert match, f"no summary line in the sink's output:\n{stderr}"
    return dict(
        zip(("read", "applied", "duplicates", "dead_lettered"), map(int, match.groups()), strict=True)
    )


def _reference(stack_settings: Settings, serde: AvroSerde, topic: str, unique) -> dict:
    """The ledger an undisturbed sink builds from the same topic."""
    ledger = new_ledger(stack_settings)
    run_sink(stack_settings, ledger, topic, unique("reference"), serde)
    return snapshot(ledger, tuple(COLUMNS))


def test_kill_9_mid_run_then_restart_applies_every_command_once(
    stack_settings: Settings, serde: AvroSerde, topic_factory, unique, tmp_path
) -> None:
    topic = topic_factory("erp", partitions=PARTITIONS)
    total = 12_000
    produce_commands(stack_settings, serde, topic, f.mixed_commands(total, prefix="crash"))
    ledger = new_ledger(stack_settings)
    group = unique("g")

    process = sink_process(stack_settings, ledger, topic, group, cwd=str(tmp_path))
    try:
        wait_for(lambda: count(ledger, "applied_commands") >= 1_000, 90, "the sink to apply some commands")
    finally:
        process.send_signal(signal.SIGKILL)
        process.communicate(timeout=30)
    assert process.returncode == -signal.SIGKILL
    at_kill = count(ledger, "applied_commands")
    assert 1_000 <= at_kill < total, "the kill must land mid-run for this test to mean anything"

    restarted = sink_process(stack_settings, ledger, topic, group, "--until-idle", "2", cwd=str(tmp_path))
    _, stderr = restarted.communicate(timeout=180)
    assert restarted.returncode == 0, stderr
    summary = _summary(stderr)
    assert summary["dead_lettered"] == 0
    # The restart reads on from the ledger's offsets: only what the killed run had not committed.
    assert summary["read"] == total - at_kill and summary["applied"] == total - at_kill

    assert count(ledger, "applied_commands") == total
    assert snapshot(ledger, tuple(COLUMNS)) == _reference(stack_settings, serde, topic, unique)


def test_crash_between_database_and_kafka_commit_resumes_from_the_ledger(
    stack_settings: Settings, serde: AvroSerde, topic_factory, unique, tmp_path
) -> None:
    topic = topic_factory("erp", partitions=PARTITIONS)
    total = 1_500
    produce_commands(stack_settings, serde, topic, f.mixed_commands(total, prefix="window"))
    ledger = new_ledger(stack_settings)
    group = unique("g")

    # The sink SIGKILLs itself right after its third database commit, before the Kafka commit.
    crashed = sink_process(
        stack_settings, ledger, topic, group, "--crash-after-batches", "3", cwd=str(tmp_path)
    )
    _, stderr = crashed.communicate(timeout=120)
    assert crashed.returncode == -signal.SIGKILL, stderr
    in_ledger = count(ledger, "applied_commands")
    assert in_ledger == 300  # three batches of 100, committed with their offsets
    probe = make_consumer(stack_settings.kafka, group)
    try:
        committed = probe.committed([TopicPartition(topic, p) for p in range(PARTITIONS)], timeout=10)
    finally:
        probe.close()
    in_kafka = sum(max(tp.offset, 0) for tp in committed)
    assert in_kafka <= 200 < in_ledger  # Kafka never heard of the third batch

    restarted = sink_process(stack_settings, ledger, topic, group, "--until-idle", "2", cwd=str(tmp_path))
    _, stderr = restarted.communicate(timeout=120)
    assert restarted.returncode == 0, stderr
    # Resuming from Kafka's offsets would re-read the third batch (100 duplicates, at least);
    # the ledger's offsets make the restart read exactly the rest.
    assert _summary(stderr) == {
        "read": total - 300,
        "applied": total - 300,
        "duplicates": 0,
        "dead_lettered": 0,
    }
    assert count(ledger, "applied_commands") == total
    assert snapshot(ledger, tuple(COLUMNS)) == _reference(stack_settings, serde, topic, unique)
