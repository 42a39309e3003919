"""The tool's safety: purge markers, audit rows, rate limit, loop guard, resume after a kill, bad input."""

from __future__ import annotations

import json
import signal
import time
from collections import Counter
from pathlib import Path

import psycopg

from connectors.sink.sink import ErpSink, SinkConfig
from schemas.models.erp import ErpCommand
from streams.clients import producer as make_producer
from streams.deadletter import Failure, SourceRecord, dead_letter_record
from streams.serde import AvroSerde
from streams.wire import frame
from tests.conftest import wait_for
from tests.integration.dlq.conftest import Deployment
from tests.integration.dlq.test_dlq_commands import replay_ids, seed
from tests.unit.ledger import commands_factory as cf


def test_purge_hides_records_by_a_marker_and_keeps_the_data(deployment: Deployment) -> None:
    seed(deployment, 3)
    dry = deployment.cli("dlq", "purge", "--key", "C1", "--dry-run")
    assert dry.code == 0 and "would purge enrich:0:1" in dry.out
    assert len(json.loads(deployment.cli("dlq", "list", "--json").out)) == 3
    assert deployment.cli("dlq", "purge", "--key", "C1", input="n\n").code == 130

    purged = deployment.cli("dlq", "purge", "--key", "C1", "--yes")
    assert purged.code == 0, purged.err
    assert "purged 1; audit #" in purged.out

    assert [r["id"] for r in json.loads(deployment.cli("dlq", "list", "--json").out)] == [
        "enrich:0:0",
        "enrich:0:2",
    ]
    everything = {
        r["id"]: r["status"] for r in json.loads(deployment.cli("dlq", "list", "--all", "--json").out)
    }
    assert everything["enrich:0:1"] == "purged"
    assert len(deployment.read(deployment.catalog.deadletter_topic("enrich"))) == 3  # nothing deleted
    replay = deployment.cli("dlq", "replay", "--yes")
    assert "replayed 2" in replay.out  # the purged one is not replayed
    assert "purged" in deployment.cli("dlq", "show", "enrich:0:1").out


def test_every_replay_and_purge_is_audited(deployment: Deployment) -> None:
    seed(deployment, 2)
    assert deployment.cli("dlq", "replay", "enrich:0:0", "--yes").code == 0
    assert deployment.cli("dlq", "purge", "enrich:0:1", "--yes").code == 0

    rows = json.loads(deployment.cli("dlq", "audit", "--json").out)
    assert [(r["action"], r["record_ids"], r["record_count"], r["outcome"]) for r in rows] == [
        ("replay", ["enrich:0:0"], 1, "completed"),
        ("purge", ["enrich:0:1"], 1, "completed"),
    ]
    assert rows[0]["counts"]["replayed"] == 1
    assert rows[0]["command_line"] == "revstream dlq replay enrich:0:0 --yes"
    assert rows[0]["filter"] == {"ids": ["enrich:0:0"]}
    assert "@" in rows[0]["actor"] and rows[0]["finished_at"] is not None
    text = deployment.cli("dlq", "audit").out
    assert "replay 1 record(s): completed" in text and "revstream dlq purge enrich:0:1 --yes" in text
    shown = deployment.cli("dlq", "show", "enrich:0:0").out
    assert "history:" in shown and "replay: completed" in shown


def test_rate_limit_spreads_the_records(deployment: Deployment) -> None:
    topic = deployment.catalog.event_topic("usage_recorded")
    for number in range(9):
        deployment.dead_letter("decode", topic, "CORRUPT_RECORD", key=b"K%d" % number, offset=number)
    started = time.monotonic()
    assert deployment.cli("dlq", "replay", "--rate", "3/s", "--yes").code == 0
    assert time.monotonic() - started >= 2.0
    stamps = sorted(m.timestamp()[1] for m in deployment.read(topic))
    assert len(stamps) == 9 and stamps[-1] - stamps[0] >= 1900  # three chunks of 3, a second apart
    assert deployment.cli("dlq", "replay", "--rate", "fast", "--yes").code == 2  # click usage error


def test_loop_guard_parks_a_record_replayed_too_often(deployment: Deployment, tmp_path: Path) -> None:
    topic = deployment.catalog.event_topic("invoice_posted")
    lineage = [("revstream.replay.id", b"rp-x"), ("revstream.replay.count", b"3")]
    deployment.dead_letter("enrich", topic, "MASTER_DATA_MISSING", key=b"C7", headers=lineage)
    deployment.dead_letter("enrich", topic, "MASTER_DATA_MISSING", key=b"C8", offset=8)
    metrics = tmp_path / "dlq.prom"

    ran = deployment.cli("dlq", "replay", "--yes", "--max-replays", "3", "--metrics-file", str(metrics))
    assert ran.code == 0, ran.err
    assert "replayed 1, parked 1" in ran.out
    (parked,) = deployment.read(deployment.catalog.parked_topic)
    assert parked.key() == b"C7"
    reason = dict(parked.headers())["revstream.dlq.parked_reason"].decode()
    assert reason.startswith("replayed 3 times (--max-replays 3)") and "MASTER_DATA_MISSING" in reason
    assert [m.key() for m in deployment.read(topic)] == [b"C8"]
    listed = json.loads(deployment.cli("dlq", "list", "--stage", "parked", "--json").out)
    assert [(r["id"], r["replay_count"]) for r in listed] == [(f"parked:{parked.partition()}:0", 3)]
    text = metrics.read_text()
    assert 'revstream_dlq_replayed_total{reason="MASTER_DATA_MISSING",stage="enrich"} 1.0' in text
    assert 'revstream_dlq_parked_total{reason="MASTER_DATA_MISSING",stage="enrich"} 1.0' in text

    # Once its cause is fixed, a parked record is taken back with a higher limit, to its original topic.
    back = deployment.cli("dlq", "replay", "--stage", "parked", "--max-replays", "5", "--yes")
    assert back.code == 0 and "replayed 1, parked 0" in back.out, back.out + back.err
    (again,) = [m for m in deployment.read(topic) if m.key() == b"C7"]
    headers = dict(again.headers())
    assert headers["revstream.replay.count"] == b"4"
    assert not [k for k in headers if k.startswith(("revstream.dlq.", "__connect.errors."))]


def test_a_replay_killed_after_publishing_resumes_without_sending_twice(deployment: Deployment) -> None:
    topic = deployment.catalog.event_topic("usage_recorded")
    for number in range(6):
        deployment.dead_letter("decode", topic, "CORRUPT_RECORD", key=b"K%d" % number, offset=number)
    # Dies after the second chunk's records were delivered, before their markers were written.
    crashed = deployment.spawn("dlq", "replay", "--yes", "--rate", "2", "--crash-after-chunks", "2")
    crashed.wait(60)
    assert crashed.returncode == -signal.SIGKILL
    assert len(deployment.read(topic)) == 4

    resumed = deployment.cli("dlq", "replay", "--yes")
    assert resumed.code == 0, resumed.err
    assert "replayed 4, parked 0 (2 already published by an interrupted run)" in resumed.out
    counts = replay_ids(deployment.read(topic))
    assert len(counts) == 6 and set(counts.values()) == {1}


def test_a_replay_killed_half_way_resumes_each_record_once(deployment: Deployment) -> None:
    topic = deployment.catalog.event_topic("usage_recorded")
    for number in range(12):
        deployment.dead_letter("decode", topic, "CORRUPT_RECORD", key=b"K%d" % number, offset=number)
    running = deployment.spawn("dlq", "replay", "--yes", "--rate", "4/s")
    wait_for(lambda: len(deployment.read(topic)) >= 4, 60, "the first records replayed")
    running.send_signal(signal.SIGKILL)
    running.wait(10)
    sent_before = len(deployment.read(topic))
    assert 4 <= sent_before < 12

    assert deployment.cli("dlq", "replay", "--yes").code == 0
    counts = replay_ids(deployment.read(topic))
    assert len(counts) == 12 and set(counts.values()) == {1}
    assert Counter(r["status"] for r in json.loads(deployment.cli("dlq", "list", "--all", "--json").out)) == {
        "replayed": 12
    }


def test_bad_input_is_one_line_and_a_non_zero_exit(deployment: Deployment, tmp_path: Path) -> None:
    seed(deployment, 1)
    not_json = tmp_path / "patch.json"
    not_json.write_text("{currency: EUR")
    cases = {
        ("dlq", "show", "enrich:0:99"): "no dead letter enrich:0:99",
        ("dlq", "show", "nonsense"): "'nonsense' is not a dead-letter id",
        (
            "dlq",
            "replay",
            "--reason",
            "NO_SUCH_REASON",
            "--yes",
        ): "no dead letter waiting for a replay matches",
        ("dlq", "purge", "--reason", "NO_SUCH_REASON", "--yes"): "nothing to purge",
        ("dlq", "replay", "--patch", str(not_json), "--yes"): "is not JSON",
    }
    for args, message in cases.items():
        ran = deployment.cli(*args)
        assert ran.code == 1, (args, ran)
        assert ran.err.startswith("revstream: error: ") and message in ran.err, (args, ran.err)
        assert len(ran.err.strip().splitlines()) == 1 and "Traceback" not in ran.err

    broker = deployment.cli("dlq", "list", REVSTREAM_KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1")
    assert broker.code == 1 and "no Kafka broker answered at 127.0.0.1:1" in broker.err
    framed = frame(424242, b"\x02")  # a value whose schema only the registry can give
    deployment.dead_letter(
        "decode", deployment.catalog.event_topic("usage_recorded"), "UNKNOWN_SCHEMA_ID", value=framed
    )
    registry = deployment.cli("dlq", "show", "decode:0:0", REVSTREAM_REGISTRY_URL="http://127.0.0.1:1")
    assert registry.code == 1 and "schema registry unreachable" in registry.err
    assert len(registry.err.strip().splitlines()) == 1
    down = "postgresql://u@127.0.0.1:1/x"
    inspect = deployment.cli("dlq", "show", "enrich:0:0", REVSTREAM_DATABASE_URL=down)
    assert inspect.code == 0 and "history:    unavailable (the ledger database is unreachable" in inspect.out
    database = deployment.cli("dlq", "replay", "--yes", REVSTREAM_DATABASE_URL=down)
    assert database.code == 1 and "database is unreachable" in database.err
    assert deployment.read(deployment.catalog.event_topic("invoice_posted")) == []  # not audited: not sent


def test_a_sink_dead_letter_is_listed_and_shown(deployment: Deployment, serde: AvroSerde) -> None:
    topic = deployment.catalog.commands_topic
    unbalanced = cf.command(
        "cmd-unbalanced", cf.journal_entry("JE-1", 1000, credit_amount=900), customer_id="C5"
    )
    producer_value = serde.serialize(topic, unbalanced)
    producer = make_producer(deployment.settings.kafka)
    producer.produce(topic, producer_value, b"C5", partition=1, headers=[("nullable", None)])
    assert producer.flush(30) == 0
    ErpSink(
        deployment.service_settings(),
        SinkConfig(group_id=f"{deployment.catalog.namespace}-sink", until_idle_s=1.5),
    ).run()

    (row,) = json.loads(deployment.cli("dlq", "list", "--stage", "sink", "--json").out)
    assert row["reason"] == "UNBALANCED_ENTRY"
    assert row["source"]["topic"] == topic and row["source"]["partition"] == 1
    assert row["consumer_group"] == f"{deployment.catalog.namespace}-sink"
    shown = deployment.cli("dlq", "show", row["id"])
    assert shown.code == 0, shown.err
    assert "reason:     UNBALANCED_ENTRY at stage sink" in shown.out
    assert "  nullable = (null)" in shown.out  # the sink kept the null header value
    assert (
        f"value ({ErpCommand.avro_full_name()}" in shown.out and '"command_id": "cmd-unbalanced"' in shown.out
    )
    as_json = json.loads(deployment.cli("dlq", "show", row["id"], "--json").out)
    assert as_json["value"]["record"]["payload"]["entry_id"] == "JE-1"


def test_show_gives_hex_and_the_error_for_a_value_that_does_not_decode(deployment: Deployment) -> None:
    deployment.dead_letter("decode", deployment.catalog.event_topic("usage_recorded"), "CORRUPT_RECORD",
                           value=b"\x07not-avro", headers=[("n", None)])  # fmt: skip
    shown = deployment.cli("dlq", "show", "decode:0:0")
    assert shown.code == 0, shown.err
    assert "value: does not decode:" in shown.out and "hex: " + b"\x07not-avro".hex() in shown.out
    assert "n = (null)" in shown.out


def test_two_replays_of_one_namespace_cannot_run_at_once(deployment: Deployment) -> None:
    topic = seed(deployment, 1)
    with psycopg.connect(deployment.conninfo, autocommit=True) as other_run:
        other_run.execute(
            "SELECT pg_advisory_lock(%s, hashtext(%s))", (0x646C71, deployment.catalog.namespace)
        )
        refused = deployment.cli("dlq", "replay", "--yes")
        assert refused.code == 1
        assert "another `revstream dlq replay` or `purge` is running on namespace" in refused.err
        assert deployment.read(topic) == []
    assert deployment.cli("dlq", "replay", "--yes").code == 0  # the lock went with the other session
    assert len(deployment.read(topic)) == 1


def test_a_cut_dead_letter_is_replayed_whole_from_its_source_or_refused(deployment: Deployment) -> None:
    topic = deployment.catalog.event_topic("usage_recorded")
    big = b"x" * 5000
    producer = make_producer(deployment.settings.kafka)
    producer.produce(topic, big, b"K-big", partition=0, headers=[("trace", b"t"), ("nullable", None)])
    producer.produce(topic, b"small", b"K-other", partition=0)
    assert producer.flush(30) == 0
    # What a stage writes for a record too large to copy: a prefix, the digests, the coordinates.
    for offset in (0, 1):
        source = SourceRecord(topic, 0, offset, b"K-big", big, (("trace", b"t"), ("nullable", None)))
        cut = dead_letter_record(
            source, Failure.from_exception("decode", "CORRUPT_RECORD", ValueError("x")), limit=1000
        )
        producer.produce(deployment.catalog.deadletter_topic("decode"), cut.value, cut.key, partition=0,
                         headers=list(cut.headers))  # fmt: skip
    assert producer.flush(30) == 0
    listed = {r["id"]: r["reason"] for r in json.loads(deployment.cli("dlq", "list", "--json").out)}
    assert listed == {"decode:0:0": "RECORD_TOO_LARGE", "decode:0:1": "RECORD_TOO_LARGE"}

    # decode:0:1 points at a record that is not the one it was cut from: refused, nothing sent.
    refused = deployment.cli("dlq", "replay", "decode:0:1", "--yes")
    assert refused.code == 1 and "holds only a prefix of a record too large to copy" in refused.err
    ran = deployment.cli("dlq", "replay", "decode:0:0", "--to", deployment.catalog.enriched_topic, "--yes")
    assert ran.code == 0, ran.err
    (whole,) = deployment.read(deployment.catalog.enriched_topic)
    assert (whole.key(), whole.value()) == (b"K-big", big)
    assert (whole.headers() or [])[:2] == [("trace", b"t"), ("nullable", None)]
