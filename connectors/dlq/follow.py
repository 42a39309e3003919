"""``replay --follow``: each replayed record to its outcome, proven from Kafka rather than assumed.

A replayed record is

- **dead-lettered again** when a record carrying its replay id appears on any dead-letter topic
  after the replay started (the stages keep the original headers, lineage included);
- **processed** when the consumer group that failed it (the dead letter's
  ``revstream.dlq.consumer_group``, or ``--group``) has committed past its offset, no dead letter
  carries its replay id, and it is not waiting on the retry topic: every parked copy carrying the
  replay id is committed past too (a record waiting for master data is not processed yet);
- **pending** while neither holds; at the deadline it is reported as still pending.

Offsets are read before the dead-letter topics on each round: a worker and the sink deliver a
record's dead letter before they commit past it, so "committed past, no dead letter" read in that
order cannot miss one.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from confluent_kafka import KafkaException, TopicPartition

from connectors.dlq.entries import LINEAGE_PREFIX, PARKED_STAGE
from connectors.dlq.reader import Partition, read_records
from connectors.dlq.replay import Sent
from streams.clients import consumer as make_consumer
from streams.deadletter import parse_dead_letter
from streams.errors import BrokerUnreachableError
from streams.settings import KafkaSettings

__all__ = ["Outcome", "follow"]

logger = logging.getLogger(__name__)

ROUND_S: Final = 1.0


@dataclass(frozen=True)
class Outcome:
    """Where one replayed record ended: ``processed``, ``failed`` (again), ``parked`` or ``pending``."""

    sent: Sent
    status: str
    detail: str = ""


def follow(
    kafka: KafkaSettings,
    sent: Sequence[Sent],
    *,
    deadletter_starts: Mapping[Partition, int],
    retry_starts: Mapping[Partition, int],
    stage_of: Mapping[str, str],
    group: str | None,
    timeout_s: float,
    on_round: Callable[[Sequence[Outcome]], None] = lambda _o: None,
) -> list[Outcome]:
    """Follow every record of ``sent`` until each has an outcome or ``timeout_s`` passed.

    ``*_starts`` are the true end offsets of the dead-letter and retry topics taken before the
    replay published anything; ``stage_of`` maps a dead-letter topic to its stage.

    Raises:
        BrokerUnreachableError: when the broker stops answering.
    """
    deadline = time.monotonic() + timeout_s
    outcomes: list[Outcome] = []
    while True:
        committed = _committed(kafka, sent, retry_starts, group)
        failed = _dead_lettered_again(kafka, deadletter_starts, stage_of)
        waiting = _retry_copies(kafka, retry_starts)
        outcomes = [_outcome(s, committed, failed, waiting, group) for s in sent]
        on_round(outcomes)
        if all(o.status != "pending" for o in outcomes) or time.monotonic() >= deadline:
            return outcomes
        time.sleep(min(ROUND_S, max(0.0, deadline - time.monotonic())))


def _group_of(sent: Sent, group: str | None) -> str | None:
    return group or sent.planned.entry.letter.failure.consumer_group


def _committed(
    kafka: KafkaSettings, sent: Sequence[Sent], retry_starts: Mapping[Partition, int], group: str | None
) -> dict[tuple[str, Partition], int]:
    wanted: dict[str, set[Partition]] = defaultdict(set)
    for item in sent:
        owner = _group_of(item, group)
        if owner is not None and item.planned.action == "replay":
            wanted[owner].add(Partition(item.planned.topic, item.partition))
            wanted[owner].update(retry_starts)
    result: dict[tuple[str, Partition], int] = {}
    for owner, partitions in wanted.items():
        consumer = make_consumer(kafka, owner)  # never subscribes: reads the group's offsets only
        try:
            offsets = consumer.committed(
                [TopicPartition(tp.topic, tp.partition) for tp in partitions], timeout=10
            )
        except KafkaException as exc:
            raise BrokerUnreachableError(
                f"could not read the committed offsets of group {owner}: {exc}"
            ) from exc
        finally:
            consumer.close()
        for tp in offsets:
            result[owner, Partition(tp.topic, tp.partition)] = int(tp.offset)
    return result


def _dead_lettered_again(
    kafka: KafkaSettings, starts: Mapping[Partition, int], stage_of: Mapping[str, str]
) -> dict[str, str]:
    """Replay id → ``"<reason> (now <new id>)"`` of each dead letter written since the replay began."""
    found: dict[str, str] = {}
    for record in read_records(kafka, dict(starts)):
        replay_id = record.header(f"{LINEAGE_PREFIX}id")
        if replay_id is None:
            continue
        try:
            letter = parse_dead_letter(record.key, record.value, record.headers)
        except ValueError:
            continue
        stage = stage_of.get(record.topic, PARKED_STAGE)
        found[replay_id.decode()] = (
            f"{letter.failure.reason_code} (now {stage}:{record.partition}:{record.offset})"
        )
    return found


def _retry_copies(kafka: KafkaSettings, starts: Mapping[Partition, int]) -> dict[str, tuple[Partition, int]]:
    """Replay id → the retry-topic partition and offset of its newest parked copy."""
    found: dict[str, tuple[Partition, int]] = {}
    for record in read_records(kafka, dict(starts)):
        replay_id = record.header(f"{LINEAGE_PREFIX}id")
        if replay_id is not None:
            found[replay_id.decode()] = (Partition(record.topic, record.partition), record.offset)
    return found


def _outcome(
    sent: Sent,
    committed: Mapping[tuple[str, Partition], int],
    failed: Mapping[str, str],
    waiting: Mapping[str, tuple[Partition, int]],
    group: str | None,
) -> Outcome:
    item = sent.planned
    if item.action == "park":
        return Outcome(sent, "parked", f"on {item.topic}")
    replay_id = item.lineage.replay_id
    if replay_id in failed:
        return Outcome(sent, "failed", failed[replay_id])
    owner = _group_of(sent, group)
    if owner is None:
        return Outcome(sent, "pending", "no consumer group is known for it; pass --group")
    if committed.get((owner, Partition(item.topic, sent.partition)), -1) <= sent.offset:
        return Outcome(sent, "pending", f"group {owner} has not committed past it yet")
    copy = waiting.get(replay_id)
    if copy is not None:
        where, offset = copy
        if committed.get((owner, where), -1) <= offset:
            return Outcome(sent, "pending", f"waiting on {where.topic} (parked for its dependencies)")
    return Outcome(sent, "processed", f"group {owner} committed past it")
