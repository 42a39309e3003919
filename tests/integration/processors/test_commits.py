"""Committed offsets never pass a record that is not finished, whatever order records finish in.

A parked record waits on the retry topic until it is due, unacknowledged, while later records of
the same partition that are due sooner finish first. The group's committed offset must stay at the
waiting record, so that a worker killed before it is due leaves it to the next one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from confluent_kafka import TopicPartition

from processors.stages.retry import Parked, park_headers
from streams.clients import consumer as make_consumer
from streams.clients import producer as make_producer
from streams.deadletter import DeadLetter
from tests.integration.processors.harness import Harness, WorkerProcess, wait_until

WAIT_S = 60.0
NOT_AVRO = b"{not avro}"
WAITS_S = 45.0
"""How long the first parked record waits: past the kill of the first worker, with a margin."""
LONG_WAITS = {"REVSTREAM_WORKER_MASTER_RETRY_BACKOFF_MAX": "120"}
FAST_COMMITS = {"REVSTREAM_WORKER_COMMIT_INTERVAL": "0.5"}
"""A worker holds a parked record at most its longest back-off: longer than the wait here."""


def _letters(harness: Harness, key: bytes) -> Callable[[], list[DeadLetter]]:
    return lambda: [letter for letter in harness.dead_letters("decode") if letter.source.key == key]


def _headers(parked: Parked) -> list[tuple[str, str | bytes | None]]:
    return list(park_headers([], parked))


def _committed(harness: Harness, group_id: str, topic: str) -> int | None:
    probe = make_consumer(harness.settings.kafka, group_id)
    try:
        (position,) = probe.committed([TopicPartition(topic, 0)], timeout=10)
    finally:
        probe.close()
    return position.offset if position.offset >= 0 else None


def test_a_parked_record_waiting_for_its_due_time_survives_a_crash_after_later_ones_finished(
    harness: Harness, worker_factory: Callable[..., WorkerProcess]
):
    catalog = harness.catalog
    retry, events = catalog.retry_topic, catalog.event_topic("usage_recorded")
    now_ms = int(time.time() * 1000)
    # Both fail to decode once due (a dead letter each): the waiting one first on the partition.
    waiting = Parked(
        1, now_ms + int(WAITS_S * 1000), now_ms, ("customer:C-1",), "MASTER_DATA_MISSING", events, 0, 1
    )
    due = Parked(1, now_ms, now_ms, ("customer:C-1",), "MASTER_DATA_MISSING", events, 0, 2)
    producer = make_producer(harness.settings.kafka)
    producer.produce(retry, key=b"waiting", value=NOT_AVRO, headers=_headers(waiting), partition=0)
    producer.produce(retry, key=b"due", value=NOT_AVRO, headers=_headers(due), partition=0)
    assert producer.flush(30) == 0
    (waiting_offset,) = [m.offset() or 0 for m in harness.read(retry) if m.key() == b"waiting"]

    first = worker_factory(catalog.namespace, "w1", **FAST_COMMITS, **LONG_WAITS).wait_ready()
    group_id = f"{catalog.namespace}-processors"
    wait_until(_letters(harness, b"due"), WAIT_S, "the due parked record's dead letter", first)
    # A record finished after the due one, and its offset committed: a commit computed after the
    # due record was acknowledged has happened.
    producer.produce(events, key=b"after", value=NOT_AVRO, partition=0)
    assert producer.flush(30) == 0
    (after_offset,) = [m.offset() or 0 for m in harness.read(events) if m.key() == b"after"]
    wait_until(
        lambda: (_committed(harness, group_id, events) or 0) > after_offset,
        WAIT_S,
        "the offset of the record after it committed",
        first,
    )
    assert not _letters(harness, b"waiting")(), "the parked record came due before the kill; raise WAITS_S"
    retry_committed = _committed(harness, group_id, retry)
    first.kill()

    assert retry_committed is None or retry_committed <= waiting_offset, (
        f"the group committed {retry} at {retry_committed}, past the parked record at {waiting_offset} "
        "that was still waiting for its due time"
    )
    second = worker_factory(catalog.namespace, "w2", **LONG_WAITS).wait_ready()
    (letter,) = wait_until(
        _letters(harness, b"waiting"),
        WAITS_S + WAIT_S,
        "the waiting record's dead letter after the crash",
        second,
    )
    assert (letter.source.topic, letter.source.partition, letter.source.offset) == (events, 0, 1)
    assert letter.failure.reason_code == "CORRUPT_RECORD"
