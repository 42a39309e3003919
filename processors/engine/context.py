"""A batch's context and a source record's coordinates, as the pipeline's stages pass them on."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from processors.metrics import BatchTally
from processors.rules.reconcile import ReconKey, SourcePosition
from schemas.models import EventEnvelope
from streams.deadletter import SourceRecord

__all__ = ["BatchContext", "Headers", "epoch_millis_of", "header_tuple", "source_position", "source_record"]

logger = logging.getLogger(__name__)

Headers = Sequence[tuple[str, bytes | None]]


@dataclass
class BatchContext:
    """What one batch accumulates besides its outputs: counts and per-record latencies."""

    state: Any
    """The batch's :class:`processors.engine.state.StateBatch`."""
    tally: BatchTally = field(default_factory=BatchTally.empty)
    event_times: list[float] = field(default_factory=list)
    """Event times (epoch seconds) of records that produced outputs or finished."""
    ingest_times: list[float] = field(default_factory=list)
    """Kafka timestamps (epoch seconds) of the same records."""
    touched: dict[tuple[int, ReconKey], tuple[EventEnvelope, bool]] = field(default_factory=dict)
    """(partition, reconciliation key) → the last event of the batch that changed it, and whether
    its difference departed from the reported one at any point of the batch."""
    triggers: dict[str, SourceRecord] = field(default_factory=dict)
    """Event id → source record of the events in :attr:`touched` (dead-lettered if its report fails)."""


def source_record(message: Any) -> SourceRecord:
    """The record as it was read: coordinates, key, value and headers."""
    return SourceRecord(
        message.topic,
        message.partition,
        message.offset,
        message.key,
        message.value,
        header_tuple(message.headers),
    )


def source_position(source: SourceRecord) -> SourcePosition:
    """Where the record was first read (for a retried record: its origin, from its retry headers)."""
    return SourcePosition(source.topic, source.partition, source.offset)


def header_tuple(headers: Headers | None) -> tuple[tuple[str, bytes | None], ...]:
    """The headers as a tuple, values untouched."""
    # A null header value stays null in the dead letter: a replay gives back the record as read.
    return tuple(headers or ())


def epoch_millis_of(timestamp_s: float | None) -> int:
    """A Kafka timestamp in epoch milliseconds (now when the record has none)."""
    if timestamp_s is None or timestamp_s <= 0:
        return int(time.time() * 1000)
    return int(timestamp_s * 1000)
