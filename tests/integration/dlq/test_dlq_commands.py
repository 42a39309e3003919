"""``revstream dlq`` on the real broker, registry and PostgreSQL, with dead letters made as stages make them.

These tests need no worker: the dead letters are produced with the same headers a stage gives
them, and the replayed records are read back from their topics.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable

from confluent_kafka import Message

from tests.integration.dlq.conftest import Deployment


def replay_ids(messages: list[Message]) -> Counter[str]:
    found: Counter[str] = Counter()
    for message in messages:
        value = dict(message.headers() or []).get("revstream.replay.id")
        found[value.decode() if isinstance(value, bytes) else ""] += 1
    return found


def seed(deployment: Deployment, count: int = 3, reason: str = "MASTER_DATA_MISSING") -> str:
    topic = deployment.catalog.event_topic("invoice_posted")
    for number in range(count):
        deployment.dead_letter(
            "enrich", topic, reason, key=f"C{number}".encode(), value=f"v{number}".encode(),
            partition=number % 3, offset=number, group=f"{deployment.catalog.namespace}-processors",
            headers=[("trace", b"t-%d" % number), ("nullable", None)],
        )  # fmt: skip
    return topic


def test_list_shows_stable_ids_and_filters(deployment: Deployment) -> None:
    topic = seed(deployment, 2)
    deployment.dead_letter(
        "decode", deployment.catalog.event_topic("usage_recorded"), "CORRUPT_RECORD", key=b"K9"
    )

    listed = deployment.cli("dlq", "list", "--json")
    assert listed.code == 0, listed.err
    rows = json.loads(listed.out)
    assert sorted(r["id"] for r in rows) == ["decode:0:0", "enrich:0:0", "enrich:0:1"]
    by_id = {r["id"]: r for r in rows}
    assert by_id["enrich:0:1"]["source"] == {"topic": topic, "partition": 1, "offset": 1}
    assert by_id["enrich:0:1"]["event_type"] == "invoice_posted"

    only = json.loads(deployment.cli("dlq", "list", "--json", "--reason", "CORRUPT_RECORD").out)
    assert [r["id"] for r in only] == ["decode:0:0"]
    assert [r["key"] for r in json.loads(deployment.cli("dlq", "list", "--json", "--key", "C1").out)] == [
        "C1"
    ]
    assert len(json.loads(deployment.cli("dlq", "list", "--json", "--event-type", "invoice_posted").out)) == 2
    assert (
        len(json.loads(deployment.cli("dlq", "list", "--json", "--stage", "decode", "--limit", "1").out)) == 1
    )
    future = json.loads(deployment.cli("dlq", "list", "--json", "--since", "2999-01-01T00:00:00Z").out)
    assert future == []

    table = deployment.cli("dlq", "list")
    assert (
        "enrich:0:1" in table.out and "MASTER_DATA_MISSING" in table.out and "3 dead letter(s)" in table.out
    )


def test_stats_counts_by_stage_reason_and_markers(deployment: Deployment) -> None:
    seed(deployment, 3)
    deployment.dead_letter("decode", deployment.catalog.event_topic("usage_recorded"), "CORRUPT_RECORD")
    assert deployment.cli("dlq", "purge", "decode:0:0", "--yes").code == 0

    stats = json.loads(deployment.cli("dlq", "stats", "--json").out)
    assert stats["total"] == 3
    assert stats["by_stage"] == {"enrich": 3}
    assert stats["by_reason"] == {"MASTER_DATA_MISSING": 3}
    assert stats["by_age"] == {"<1h": 3}
    assert stats["purged"] == 1 and stats["replayed"] == 0
    assert stats["oldest"] is not None and stats["oldest"] <= stats["newest"]
    text = deployment.cli("dlq", "stats").out
    assert "dead letters: 3" in text and "by reason: MASTER_DATA_MISSING 3" in text


def test_replay_republishes_key_value_and_headers_exactly_plus_lineage(deployment: Deployment) -> None:
    topic = seed(deployment, 3)

    ran = deployment.cli("dlq", "replay", "--reason", "MASTER_DATA_MISSING", "--yes")
    assert ran.code == 0, ran.err
    assert "replayed 3, parked 0" in ran.out

    replayed = sorted(deployment.read(topic), key=lambda m: m.key())
    assert [(m.key(), m.value(), m.partition()) for m in replayed] == [
        (b"C0", b"v0", 0), (b"C1", b"v1", 1), (b"C2", b"v2", 2)
    ]  # fmt: skip
    headers = replayed[1].headers()
    assert headers[:2] == [("trace", b"t-1"), ("nullable", None)]  # null stays null
    lineage = dict(headers[2:])
    assert lineage["revstream.replay.count"] == b"1"
    assert lineage["revstream.replay.dead_letter"] == b"enrich:0:1"
    assert lineage["revstream.replay.dlq_topic"] == deployment.catalog.deadletter_topic("enrich").encode()
    assert lineage["revstream.replay.by"] and lineage["revstream.replay.at_ms"]
    assert not [k for k, _ in headers if k.startswith(("__connect.errors.", "revstream.dlq."))]

    # A repeated replay selects nothing: every record was sent once.
    again = deployment.cli("dlq", "replay", "--reason", "MASTER_DATA_MISSING", "--yes")
    assert again.code == 1
    assert again.err.startswith(
        "revstream: error: no dead letter waiting for a replay matches reasons=MASTER_DATA_MISSING"
    )
    assert len(again.err.strip().splitlines()) == 1
    assert sum(replay_ids(deployment.read(topic)).values()) == 3
    listed = json.loads(deployment.cli("dlq", "list", "--all", "--json").out)
    assert {r["status"] for r in listed} == {"replayed"}


def test_dry_run_sends_nothing_and_confirmation_is_required(deployment: Deployment) -> None:
    topic = seed(deployment, 2)

    dry = deployment.cli("dlq", "replay", "--dry-run")
    assert dry.code == 0, dry.err
    assert "2 dead letter(s) selected: enrich/MASTER_DATA_MISSING 2" in dry.out
    assert f"would replay enrich:0:0 -> {topic}[0] (replay 1)" in dry.out
    assert "dry run: nothing was sent" in dry.out

    refused = deployment.cli("dlq", "replay", input="n\n")
    assert refused.code == 130
    assert deployment.read(topic) == []
    assert deployment.cli("dlq", "replay", input="y\n").code == 0
    assert len(deployment.read(topic)) == 2


def test_to_sends_to_another_topic(deployment: Deployment, topic_factory: Callable[..., str]) -> None:
    seed(deployment, 2)
    missing = deployment.cli("dlq", "replay", "--to", "no-such-topic-anywhere", "--yes", "enrich:0:0")
    assert missing.code == 1 and "no-such-topic-anywhere does not exist" in missing.err
    other = topic_factory("dlq-to", partitions=1)
    assert deployment.cli("dlq", "replay", "--to", other, "--yes").code == 0
    assert sorted(m.key() for m in deployment.read(other)) == [b"C0", b"C1"]
    again = deployment.cli("dlq", "replay", "enrich:0:0", "--yes")
    assert again.code == 1
    assert "enrich:0:0 was already replayed" in again.err


def test_follow_reports_still_pending_at_its_deadline(deployment: Deployment) -> None:
    topic = deployment.catalog.event_topic("usage_recorded")
    deployment.dead_letter(
        "decode", topic, "CORRUPT_RECORD", key=b"K1", group=f"{deployment.catalog.namespace}-idle"
    )

    ran = deployment.cli("dlq", "replay", "--follow", "--timeout", "2", "--yes")
    assert ran.code == 3, ran.out + ran.err
    assert f"group {deployment.catalog.namespace}-idle has not committed past it yet" in ran.out
    assert "0 processed, 0 dead-lettered again, 1 still pending" in ran.out
    assert "following: 0 processed, 0 failed again, 1 pending" in ran.err  # progress while it waits
    (row,) = json.loads(deployment.cli("dlq", "audit", "--json").out)[-1:]
    assert row["outcome"] == "pending" and row["counts"]["pending"] == 1
