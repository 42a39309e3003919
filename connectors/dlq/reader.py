"""Reading dead-letter topics and the tool's state topic, each partition to its end.

"The end" is where the broker's fetch responses say a partition ends (end-of-partition events),
never ``get_watermark_offsets()`` alone: on the embedded broker ``ListOffsets`` under-reports after
batched produce (ARCHITECTURE.md). Where the tool needs an end offset up front (``--follow`` reads
what was dead-lettered after a replay), it takes :func:`streams.offsets.true_end_offsets`.
Consumers here only assign partitions (no group join, no commits), so reading never moves a group.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from connectors.dlq.entries import PARKED_STAGE, Entry, Lineage, Marker, Record
from connectors.dlq.errors import DlqError
from streams.clients import cluster_metadata
from streams.clients import consumer as make_consumer
from streams.deadletter import parse_dead_letter
from streams.errors import BrokerUnreachableError
from streams.offsets import true_end_offsets
from streams.settings import KafkaSettings
from streams.topics import TopicCatalog

__all__ = ["Partition", "Store", "end_offsets", "fetch_record", "partitions_of", "read_records"]

logger = logging.getLogger(__name__)

READ_TIMEOUT_S: Final = 30.0


class Partition(NamedTuple):
    """One topic partition (what ``true_end_offsets`` takes)."""

    topic: str
    partition: int


def partitions_of(kafka: KafkaSettings, topics: Iterable[str]) -> list[Partition]:
    """Return every partition of ``topics``.

    Raises:
        BrokerUnreachableError: when no broker answers.
        DlqError: when a topic does not exist (run ``revstream topics apply``).
    """
    metadata = cluster_metadata(kafka)
    found = []
    for topic in topics:
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            raise DlqError(
                f"topic {topic} does not exist; create the catalog's topics with `revstream topics apply`"
            )
        found += [Partition(topic, p) for p in sorted(described.partitions)]
    return found


def end_offsets(kafka: KafkaSettings, partitions: Iterable[Partition]) -> dict[Partition, int]:
    """Return the true end offset of each partition (see the module docstring).

    Raises:
        BrokerUnreachableError: when the broker does not answer.
    """
    wanted = list(partitions)
    if not wanted:
        return {}
    consumer = make_consumer(kafka, f"revstream-dlq-{uuid.uuid4().hex[:8]}")
    try:
        reported = {}
        for tp in wanted:
            _, high = consumer.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), timeout=10)
            reported[tp] = int(high)
    except KafkaException as exc:
        raise BrokerUnreachableError(f"could not read the end offsets of {wanted[0].topic}: {exc}") from exc
    finally:
        consumer.close()
    return true_end_offsets(kafka, reported)


def read_records(
    kafka: KafkaSettings, starts: Mapping[Partition, int | None], timeout_s: float = READ_TIMEOUT_S
) -> list[Record]:
    """Return every record of the partitions from their start offset (``None``: the beginning) to the end.

    Raises:
        BrokerUnreachableError: when a partition does not reach its end within ``timeout_s``.
    """
    if not starts:
        return []
    consumer = make_consumer(
        kafka,
        f"revstream-dlq-{uuid.uuid4().hex[:8]}",
        **{"enable.partition.eof": True, "fetch.wait.max.ms": 50},
    )
    records: list[Record] = []
    try:
        consumer.assign(
            [
                TopicPartition(tp.topic, tp.partition, OFFSET_BEGINNING if start is None else start)
                for tp, start in starts.items()
            ]
        )
        pending = set(starts)
        deadline = time.monotonic() + timeout_s
        while pending and time.monotonic() < deadline:
            for message in consumer.consume(1000, timeout=0.2):
                error = message.error()
                where = Partition(str(message.topic()), int(message.partition() or 0))
                if error is None:
                    records.append(_record(message))
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(where)
                elif error.fatal() or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    raise DlqError(f"cannot read {where.topic}[{where.partition}]: {error.str()}")
        if pending:
            first = min(pending)
            raise BrokerUnreachableError(
                f"could not read {first.topic}[{first.partition}] to its end within {timeout_s:g}s; "
                "check that the broker is reachable (REVSTREAM_KAFKA_BOOTSTRAP_SERVERS)"
            )
    finally:
        consumer.close()
    return records


def fetch_record(
    kafka: KafkaSettings, where: Partition, offset: int, timeout_s: float = 10.0
) -> Record | None:
    """Return the record at ``offset`` of ``where``, or ``None`` when the topic no longer has it.

    Raises:
        BrokerUnreachableError: when the partition does not answer within ``timeout_s``.
    """
    consumer = make_consumer(
        kafka,
        f"revstream-dlq-{uuid.uuid4().hex[:8]}",
        **{"enable.partition.eof": True, "fetch.wait.max.ms": 50},
    )
    try:
        consumer.assign([TopicPartition(where.topic, where.partition, offset)])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for message in consumer.consume(1, timeout=0.2):
                error = message.error()
                if error is None:
                    # Past it: deleted by retention or compaction (the consumer moved to the earliest).
                    return _record(message) if message.offset() == offset else None
                if error.code() == KafkaError._PARTITION_EOF:
                    return None
                if error.fatal() or error.code() == KafkaError.UNKNOWN_TOPIC_OR_PART:
                    return None
        raise BrokerUnreachableError(
            f"could not read {where.topic}[{where.partition}]@{offset} within {timeout_s:g}s; "
            "check that the broker is reachable (REVSTREAM_KAFKA_BOOTSTRAP_SERVERS)"
        )
    finally:
        consumer.close()


def _record(message: Any) -> Record:
    timestamp = message.timestamp()
    raw = message.headers() or []
    return Record(
        topic=str(message.topic()),
        partition=int(message.partition()),
        offset=int(message.offset()),
        timestamp_ms=int(timestamp[1]) if timestamp and timestamp[1] > 0 else 0,
        key=message.key(),
        value=message.value(),
        headers=[(str(k), v.encode() if isinstance(v, str) else v) for k, v in raw],
    )


@dataclass
class Store:
    """The dead letters of one catalog and the tool's markers, read once per command."""

    kafka: KafkaSettings
    catalog: TopicCatalog

    @property
    def stage_topics(self) -> dict[str, str]:
        """Stage → dead-letter topic, for every dead-letter topic of the catalog and the parking topic."""
        topics = {
            spec.name.rsplit(".", 1)[-1]: spec.name
            for spec in self.catalog.specs()
            if spec.kind == "deadletter"
        }
        topics[PARKED_STAGE] = self.catalog.parked_topic
        return topics

    def markers(self) -> dict[str, Marker]:
        """Return the newest marker of every dead-letter id (a compacted topic: the last one wins)."""
        state = self.catalog.dlq_state_topic
        return _markers(read_records(self.kafka, dict.fromkeys(partitions_of(self.kafka, [state]))))

    def entries(self, stages: Iterable[str] = ()) -> list[Entry]:
        """Return every dead letter of ``stages`` (all by default) with its lineage and marker.

        Raises:
            BrokerUnreachableError: when the broker does not answer.
            DlqError: when a catalog topic is missing.
        """
        wanted = set(stages)
        topics = {stage: topic for stage, topic in self.stage_topics.items() if not wanted or stage in wanted}
        stage_of = {topic: stage for stage, topic in topics.items()}
        state = self.catalog.dlq_state_topic
        # One read for the dead letters and their markers: every read waits for each partition's end.
        records = read_records(
            self.kafka, dict.fromkeys(partitions_of(self.kafka, [*topics.values(), state]))
        )
        markers = _markers([r for r in records if r.topic == state])
        entries = []
        for record in records:
            if record.topic == state:
                continue
            try:
                letter = parse_dead_letter(record.key, record.value, record.headers)
            except ValueError:
                logger.warning(
                    "%s[%d]@%d carries no revstream dead-letter headers; left out",
                    record.topic, record.partition, record.offset,
                )  # fmt: skip
                continue
            stage = stage_of[record.topic]
            entry_id = f"{stage}:{record.partition}:{record.offset}"
            entries.append(
                Entry(
                    entry_id,
                    stage,
                    record,
                    letter,
                    Lineage.from_headers(record.headers),
                    markers.get(entry_id),
                )
            )
        return entries


def _markers(records: Iterable[Record]) -> dict[str, Marker]:
    markers: dict[str, Marker] = {}
    for record in records:
        key = (record.key or b"").decode("utf-8", "replace")
        if record.value is None:
            markers.pop(key, None)
            continue
        try:
            markers[key] = Marker.decode(record.value)
        except (ValueError, TypeError) as exc:  # written by something else, or damaged
            logger.warning("ignoring an unreadable marker for %s in %s: %s", key, record.topic, exc)
    return markers
