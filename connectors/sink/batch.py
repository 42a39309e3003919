"""Pure bookkeeping of a consumed batch: what it decoded to, the offsets to store, what a rebalance drops."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol, TypeVar

from confluent_kafka import Message

from connectors.ledger.writer import ApplyOutcome, PreparedBatch
from connectors.sink.decode import DecodeFailure

__all__ = ["DecodedBatch", "InFlight", "Positioned", "next_offsets", "without_partitions"]

logger = logging.getLogger(__name__)


class Positioned(Protocol):
    """Anything read from Kafka: a confluent-kafka ``Message`` or a test double."""

    def topic(self) -> str | None: ...

    def partition(self) -> int | None: ...

    def offset(self) -> int | None: ...


def next_offsets(records: Iterable[Positioned]) -> dict[tuple[str, int], int]:
    """Return, per ``(topic, partition)``, the offset to resume from: the highest offset read + 1.

    Kafka's convention (and the ledger's ``sink_offsets.next_offset``) is the *next* offset to
    read, not the last one processed.
    """
    result: dict[tuple[str, int], int] = {}
    for record in records:
        topic, partition, offset = record.topic(), record.partition(), record.offset()
        if topic is None or partition is None or offset is None or offset < 0:
            continue
        key = (topic, partition)
        result[key] = max(result.get(key, 0), offset + 1)
    return result


P = TypeVar("P", bound=Positioned)


def without_partitions(records: Iterable[P], revoked: Iterable[tuple[str, int]]) -> list[P]:
    """Return ``records`` minus those of partitions this consumer no longer owns.

    After a rebalance the new owner resumes from the offsets in the ledger; records of a revoked
    partition that were read but not yet applied must be dropped, not applied late.
    """
    gone = set(revoked)
    return [r for r in records if (r.topic(), r.partition()) not in gone]


@dataclass(frozen=True)
class DecodedBatch:
    """A polled batch, decoded and turned into ledger rows, and the next offset of each partition."""

    messages: list[Message]
    prepared: PreparedBatch
    failures: list[DecodeFailure]
    offsets: dict[tuple[str, int], int]


@dataclass(frozen=True)
class InFlight:
    """The batch the sink's applier thread is working on."""

    batch: DecodedBatch
    outcome: Future[ApplyOutcome]
    database_bound: threading.Event
    """Set once only the database's work is left (the deferred checks, the commit), or it ended."""
