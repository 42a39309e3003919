"""Dead-letter ids, lineage, markers, filters, statistics and the replay plan (pure logic)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from connectors.dlq.entries import (
    Entry,
    Lineage,
    Marker,
    Record,
    Selection,
    age_bucket,
    lineage_headers,
    parse_id,
    replay_id_for,
    statistics,
)
from connectors.dlq.errors import UnknownDeadLetterError
from connectors.dlq.replay import plan
from streams.deadletter import Failure, SourceRecord, dead_letter_headers, parse_dead_letter

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
STAGES = ("decode", "enrich", "sink", "parked")


def entry(
    offset: int,
    stage: str = "enrich",
    reason: str = "MASTER_DATA_MISSING",
    key: bytes = b"C1",
    age: timedelta = timedelta(minutes=5),
    headers: tuple[tuple[str, bytes | None], ...] = (),
    marker: Marker | None = None,
    topic: str = "ns.events.invoice_posted",
) -> Entry:
    failed = NOW - age
    source = SourceRecord(topic, 2, 40 + offset, key, b"value", headers)
    failure = Failure(stage, reason, "E", "m", 1, failed, failed, "ns-processors")
    written = dead_letter_headers(source, failure)
    record = Record(f"ns.dlq.{stage}", 0, offset, int(failed.timestamp() * 1000), key, b"value", written)
    letter = parse_dead_letter(key, b"value", written)
    return Entry(f"{stage}:0:{offset}", stage, record, letter, Lineage.from_headers(written), marker)


def test_ids_are_stage_partition_offset() -> None:
    assert parse_id("enrich:2:17", STAGES) == ("enrich", 2, 17)
    for bad in ("enrich:2", "nosuch:0:1", "enrich:-1:3", "enrich:a:3", ""):
        with pytest.raises(UnknownDeadLetterError, match="is not a dead-letter id"):
            parse_id(bad, STAGES)


def test_a_null_header_value_stays_null_through_a_dead_letter() -> None:
    source = SourceRecord("t", 0, 1, b"k", b"v", (("nullable", None), ("empty", b"")))
    written = dead_letter_headers(source, Failure("decode", "CORRUPT_RECORD", "E", "m"))
    assert written[:2] == [("nullable", None), ("empty", b"")]
    assert parse_dead_letter(b"k", b"v", written).source.headers == (("nullable", None), ("empty", b""))


def test_lineage_replaces_an_earlier_one_and_keeps_the_original_headers() -> None:
    first = Lineage("rp-1", 1, 10, "ops@host", "enrich:0:1")
    once = lineage_headers([("trace", b"x"), ("n", None)], first, ("ns.dlq.enrich", 0, 1))
    twice = lineage_headers(once, Lineage("rp-2", 2, 20, "ops@host", "enrich:0:9"), ("ns.dlq.enrich", 0, 9))
    assert twice[:2] == [("trace", b"x"), ("n", None)]
    assert [k for k, _ in twice].count("revstream.replay.id") == 1
    assert Lineage.from_headers(twice) == Lineage("rp-2", 2, 20, "ops@host", "enrich:0:9")
    assert Lineage.from_headers([("trace", b"x")]) is None
    assert replay_id_for("t", 0, 1) == replay_id_for("t", 0, 1) != replay_id_for("t", 0, 2)


def test_markers_round_trip_and_ignore_unknown_keys() -> None:
    marker = Marker(state="pending", replay_id="rp-1", target="t", since={"t:0": 4}, at_ms=1, by="me")
    assert Marker.decode(marker.encode()) == marker
    assert Marker.decode(b'{"state": "replayed", "from_the_future": 1}') == Marker(state="replayed")
    assert Marker(state="replayed").done and not Marker(state="pending").done
    assert Marker(purged_at_ms=5).purged


def test_selection_filters_and_hides_done_purged_and_parked_records() -> None:
    entries = [
        entry(0),
        entry(1, "decode", "CORRUPT_RECORD", b"C2", timedelta(days=2), topic="ns.events.usage_recorded"),
        entry(2, marker=Marker(state="replayed")),
        entry(3, marker=Marker(purged_at_ms=1)),
        entry(4, stage="parked"),
        entry(5, marker=Marker(state="pending", replay_id="rp")),
        entry(6, topic="ns.erp.commands", stage="sink", reason="UNBALANCED_ENTRY"),
    ]
    ids = lambda selection: [e.id for e in selection.select(entries)]  # noqa: E731
    assert ids(Selection()) == ["decode:0:1", "enrich:0:0", "enrich:0:5", "sink:0:6"]  # oldest first
    assert ids(Selection(reasons=("CORRUPT_RECORD",))) == ["decode:0:1"]
    assert ids(Selection(keys=("C2",))) == ["decode:0:1"]
    assert ids(Selection(event_types=("invoice_posted",))) == ["enrich:0:0", "enrich:0:5"]
    assert ids(Selection(source_topics=("ns.erp.commands",))) == ["sink:0:6"]
    assert ids(Selection(since=NOW - timedelta(hours=1))) == ["enrich:0:0", "enrich:0:5", "sink:0:6"]
    assert ids(Selection(until=NOW - timedelta(hours=1))) == ["decode:0:1"]
    assert ids(Selection(stages=("parked",))) == ["parked:0:4"]
    assert ids(Selection(limit=1)) == ["decode:0:1"]
    assert len(ids(Selection(include_done=True, stages=("enrich",)))) == 4
    assert ids(Selection(ids=("enrich:0:2",))) == []
    assert ids(Selection(ids=("enrich:0:2",), include_done=True)) == ["enrich:0:2"]
    events = {"enrich:0:0": "E-1"}
    assert [e.id for e in Selection(event_ids=("E-1",)).select(entries, lambda e: events.get(e.id))] == [
        "enrich:0:0"
    ]
    assert Selection(reasons=("A", "B"), limit=2).summary() == "reasons=A,B limit=2"


def test_statistics_count_what_is_visible_and_the_markers() -> None:
    entries = [
        entry(0),
        entry(1, reason="CORRUPT_RECORD", stage="decode", age=timedelta(days=40)),
        entry(2, marker=Marker(state="replayed")),
        entry(3, marker=Marker(purged_at_ms=1)),
    ]
    stats = statistics(entries, NOW)
    assert stats["total"] == 3 and stats["purged"] == 1 and stats["replayed"] == 1 and stats["waiting"] == 2
    assert stats["by_stage"] == {"decode": 1, "enrich": 2}
    assert stats["by_age"] == {"<1h": 2, ">30d": 1}
    assert stats["oldest"] == (NOW - timedelta(days=40)).isoformat()
    assert age_bucket(NOW - timedelta(hours=3), NOW) == "1h-1d"


def test_plan_replays_to_the_source_partition_and_parks_after_max_replays() -> None:
    tired = entry(0, headers=(("revstream.replay.id", b"rp-old"), ("revstream.replay.count", b"3")))
    fresh = entry(1)
    planned = plan(
        [tired, fresh], partitions={"ns.events.invoice_posted": 3, "ns.dlq.parked": 3},
        parked_topic="ns.dlq.parked", to=None, max_replays=3, actor="me", now_ms=99,
    )  # fmt: skip
    assert [(p.action, p.topic, p.partition) for p in planned] == [
        ("park", "ns.dlq.parked", None),
        ("replay", "ns.events.invoice_posted", 2),
    ]
    assert (dict(planned[0].headers)["revstream.dlq.parked_reason"] or b"").startswith(b"replayed 3 times")
    # An interrupted run finds what it parked by this id (the lineage headers are the dead letter's).
    assert dict(planned[0].headers)["revstream.dlq.parked_replay_id"] == planned[0].lineage.replay_id.encode()
    assert planned[1].lineage.count == 1 and planned[1].value == b"value"
    assert not [k for k, _ in planned[1].headers if k.startswith("revstream.dlq.")]
    elsewhere = plan(
        [fresh], partitions={"other": 1}, parked_topic="p", to="other", max_replays=3, actor="me", now_ms=1,
        values={fresh.id: b"patched"},
    )  # fmt: skip
    assert (elsewhere[0].topic, elsewhere[0].partition, elsewhere[0].value) == ("other", None, b"patched")
    assert ("revstream.replay.patched", b"true") in elsewhere[0].headers


def test_a_marker_that_is_not_an_object_is_unreadable() -> None:
    for raw in (b"[1]", b"not json", b'"x"'):
        with pytest.raises(ValueError):
            Marker.decode(raw)
