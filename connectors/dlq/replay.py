"""Re-publishing dead letters: the plan (pure), and a run that sends each record once, even if killed.

Each selected dead letter goes back to its original topic and partition (or ``--to``) with its
original key, value and headers plus lineage headers (``revstream.replay.*``). One that was
already replayed ``max_replays`` times and failed again goes to the parking topic instead.

**Once, across interruptions.** The state lives in the compacted ``<ns>.dlq-state`` topic, keyed
by dead-letter id, next to the data it describes (any operator with Kafka access sees it; the
audit table is the human record, not the position). A Kafka transaction spanning the records and
their markers would be the textbook answer, but the embedded broker delivers aborted records to
``read_committed`` consumers (measured), so the run uses a write-ahead marker instead, which holds
on any broker: per chunk, (1) a ``pending`` marker naming the replay id and the target partitions'
true end offsets, (2) the records, flushed, (3) a ``replayed``/``parked`` marker with the offset.
A run that meets a ``pending`` marker (the previous one died between 1 and 3) looks for the replay
id in the target partitions from those offsets on: found, it records it and does not send again.
The replay id is derived from the dead letter's coordinates, so it is the same on every attempt.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Literal

from confluent_kafka import KafkaError, Message

from connectors.dlq.entries import (
    LINEAGE_PREFIX,
    Entry,
    Lineage,
    Marker,
    Record,
    lineage_headers,
    replay_id_for,
)
from connectors.dlq.errors import ReplayError
from connectors.dlq.metrics import DlqMetrics
from connectors.dlq.reader import Partition, end_offsets, read_records
from streams.clients import producer as make_producer
from streams.deadletter import REVSTREAM_PREFIX, Headers
from streams.settings import KafkaSettings

__all__ = ["DEFAULT_CHUNK", "Planned", "Replayer", "Sent", "plan"]

logger = logging.getLogger(__name__)

DEFAULT_CHUNK: Final = 200
DELIVERY_TIMEOUT_S: Final = 30.0
PARKED_REASON: Final = f"{REVSTREAM_PREFIX}parked_reason"
PARKED_ID: Final = f"{REVSTREAM_PREFIX}parked_replay_id"
"""The replay id of the run that parked a record (its lineage headers are the dead letter's own)."""


@dataclass(frozen=True)
class Planned:
    """What a replay does with one dead letter."""

    entry: Entry
    action: Literal["replay", "park"]
    topic: str
    partition: int | None
    """``None``: the producer's partitioner picks by key (``--to`` a topic laid out differently)."""
    value: bytes | None
    headers: Headers
    lineage: Lineage


@dataclass(frozen=True)
class Sent:
    """One dead letter a run published (or found already published by an interrupted run)."""

    planned: Planned
    partition: int
    offset: int
    recovered: bool = False


def plan(
    entries: Sequence[Entry],
    *,
    partitions: Mapping[str, int],
    parked_topic: str,
    to: str | None,
    max_replays: int,
    actor: str,
    now_ms: int,
    values: Mapping[str, bytes] | None = None,
) -> list[Planned]:
    """Decide, per dead letter, where it goes and with which headers.

    ``partitions`` gives each target topic's partition count; ``values`` replaces the value of the
    entries it names (a patched value).
    """
    planned = []
    for entry in entries:
        record = entry.record
        lineage = Lineage(
            replay_id=replay_id_for(record.topic, record.partition, record.offset),
            count=entry.replay_count + 1,
            at_ms=now_ms,
            by=actor,
            dead_letter_id=entry.id,
        )
        value = (values or {}).get(entry.id, record.value)
        if entry.replay_count >= max_replays:
            reason = (
                f"replayed {entry.replay_count} times (--max-replays {max_replays}) and failed every time; "
                f"last reason {entry.letter.failure.reason_code}"
            )
            headers = [
                *record.headers,
                (PARKED_REASON, reason.encode()),
                (PARKED_ID, lineage.replay_id.encode()),
            ]
            planned.append(Planned(entry, "park", parked_topic, None, record.value, headers, lineage))
            continue
        topic = to or entry.letter.source.topic
        source_partition = entry.letter.source.partition
        # The original partition keeps the record with the worker that owns its customer's state.
        partition = source_partition if to is None and 0 <= source_partition < partitions[topic] else None
        headers = lineage_headers(
            entry.letter.source.headers, lineage, (record.topic, record.partition, record.offset)
        )
        if values and entry.id in values:
            headers.append((f"{LINEAGE_PREFIX}patched", b"true"))
        planned.append(Planned(entry, "replay", topic, partition, value, headers, lineage))
    return planned


class Replayer:
    """Publishes a plan in chunks with write-ahead markers (see the module docstring)."""

    def __init__(
        self, kafka: KafkaSettings, state_topic: str, metrics: DlqMetrics, partitions: Mapping[str, int]
    ):
        """Publish through ``kafka``, markers to ``state_topic``; ``partitions`` per target topic."""
        self.kafka = kafka
        self.state_topic = state_topic
        self.metrics = metrics
        self.partitions = partitions
        self._producer = make_producer(kafka, **{"linger.ms": 5})
        self._errors: list[str] = []

    def run(
        self,
        planned: Sequence[Planned],
        *,
        rate: float | None = None,
        progress: Callable[[int], None] = lambda _n: None,
        crash_after_chunks: int | None = None,
    ) -> list[Sent]:
        """Publish every planned record once; return what was sent (or found sent), in order.

        Raises:
            ReplayError: when records or markers were not delivered (run again: nothing is sent twice).
        """
        sent = self._recover([p for p in planned if _pending(p.entry.marker)])
        if sent:
            progress(len(sent))
        todo = [p for p in planned if p.entry.id not in {s.planned.entry.id for s in sent}]
        chunk = max(1, min(DEFAULT_CHUNK, int(rate))) if rate else DEFAULT_CHUNK
        started, published = time.monotonic(), 0
        for number, start in enumerate(range(0, len(todo), chunk), start=1):
            items = todo[start : start + chunk]
            since = self._ends(items)
            self._markers([(p, _intent(p, since)) for p in items])
            delivered = self._publish(items)
            if crash_after_chunks == number:
                logger.warning("fault injection: killing the replay after publishing chunk %d", number)
                os.kill(os.getpid(), signal.SIGKILL)
            self._markers([(s.planned, _done(s)) for s in delivered])
            for item in delivered:
                self._count(item.planned)
            sent += delivered
            published += len(items)
            progress(len(items))
            if rate and published < len(todo):
                # Throttle to `rate` records/s on average since the start.
                time.sleep(max(0.0, started + published / rate - time.monotonic()))
        return sent

    def _recover(self, pending: Sequence[Planned]) -> list[Sent]:
        """Find the records an interrupted run published after writing their pending marker."""
        if not pending:
            return []
        starts: dict[Partition, int | None] = {}
        for item in pending:
            marker = item.entry.marker
            assert marker is not None
            for name, offset in marker.since.items():
                topic, _, partition = name.rpartition(":")
                key = Partition(topic, int(partition))
                known = starts.get(key)
                starts[key] = offset if known is None else min(known, offset)
        found: dict[str, Record] = {}
        for record in read_records(self.kafka, starts):
            replay_id = record.header(PARKED_ID) or record.header(f"{LINEAGE_PREFIX}id")
            if replay_id is not None:
                found.setdefault(replay_id.decode(), record)
        recovered = []
        for item in pending:
            copy = found.get(item.lineage.replay_id)
            if copy is None:
                continue
            # What the interrupted run did, read from the record itself (its limits may have differed).
            action: Literal["replay", "park"] = "park" if copy.header(PARKED_REASON) is not None else "replay"
            done = replace(item, topic=copy.topic, action=action)
            logger.info("%s was published by an interrupted run at %s[%d]@%d",
                        item.entry.id, copy.topic, copy.partition, copy.offset)  # fmt: skip
            recovered.append(Sent(done, copy.partition, copy.offset, recovered=True))
        self._markers([(s.planned, _done(s)) for s in recovered])
        return recovered

    def _ends(self, items: Sequence[Planned]) -> dict[Partition, int]:
        wanted: set[Partition] = set()
        for item in items:
            if item.partition is not None:
                wanted.add(Partition(item.topic, item.partition))
            else:
                wanted.update(Partition(item.topic, p) for p in range(self.partitions[item.topic]))
        return end_offsets(self.kafka, wanted)

    def _publish(self, items: Sequence[Planned]) -> list[Sent]:
        results: dict[int, tuple[int, int]] = {}

        def delivered(index: int) -> Callable[[KafkaError | None, Message], None]:
            def report(error: KafkaError | None, message: Message) -> None:
                if error is not None:
                    self._errors.append(f"{message.topic()}: {error.str()}")
                else:
                    results[index] = (int(message.partition() or 0), int(message.offset() or 0))

            return report

        for index, item in enumerate(items):
            key = item.entry.record.key
            self._produce(item.topic, key, item.value, item.headers, delivered(index), item.partition)
        self._flush()
        return [Sent(item, *results[index]) for index, item in enumerate(items)]

    def _markers(self, markers: Sequence[tuple[Planned, Marker]]) -> None:
        self.mark([(item.entry.id, marker) for item, marker in markers])

    def mark(self, markers: Sequence[tuple[str, Marker]]) -> None:
        """Write ``(dead-letter id, marker)`` pairs to the state topic and wait for them.

        Raises:
            ReplayError: when the broker did not acknowledge them.
        """
        for entry_id, marker in markers:
            self._produce(self.state_topic, entry_id.encode(), marker.encode(), None, None)
        if markers:
            self._flush()

    def _produce(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        headers: Headers | None,
        on_delivery: Callable[[KafkaError | None, Message], None] | None,
        partition: int | None = None,
    ) -> None:
        def failed(error: KafkaError | None, message: Message) -> None:
            if error is not None:
                self._errors.append(f"{message.topic()}: {error.str()}")

        while True:
            try:
                kwargs: dict[str, Any] = {
                    "headers": list(headers or ()),
                    "on_delivery": on_delivery or failed,
                }
                if partition is not None:
                    kwargs["partition"] = partition
                self._producer.produce(topic, value, key, **kwargs)
                return
            except BufferError:
                self._producer.poll(0.05)

    def _flush(self) -> None:
        left = self._producer.flush(DELIVERY_TIMEOUT_S)
        if left or self._errors:
            problems = "; ".join(self._errors[:3]) or f"{left} still queued after {DELIVERY_TIMEOUT_S:g}s"
            raise ReplayError(
                f"the broker did not acknowledge every record ({problems}); nothing is lost: run the same "
                "replay again, records already published are not sent twice"
            )

    def _count(self, item: Planned) -> None:
        failure = item.entry.letter.failure
        counter = self.metrics.parked if item.action == "park" else self.metrics.replayed
        counter.labels(item.entry.stage, failure.reason_code).inc()


def _pending(marker: Marker | None) -> bool:
    return marker is not None and marker.state == "pending" and bool(marker.replay_id)


def _intent(item: Planned, ends: Mapping[Partition, int]) -> Marker:
    previous = item.entry.marker or Marker()
    return replace(
        previous,
        state="pending",
        replay_id=item.lineage.replay_id,
        target=item.topic,
        since=_since_for(item, ends),
        at_ms=item.lineage.at_ms,
        by=item.lineage.by,
    )


def _since_for(item: Planned, ends: Mapping[Partition, int]) -> dict[str, int]:
    mine = [tp for tp in ends if tp.topic == item.topic and item.partition in (None, tp.partition)]
    return {f"{tp.topic}:{tp.partition}": ends[tp] for tp in mine}


def _done(sent: Sent) -> Marker:
    item = sent.planned
    previous = item.entry.marker or Marker()
    return replace(
        previous,
        state="parked" if item.action == "park" else "replayed",
        replay_id=item.lineage.replay_id,
        target=item.topic,
        partition=sent.partition,
        offset=sent.offset,
        since={},
        at_ms=item.lineage.at_ms,
        by=item.lineage.by,
    )
