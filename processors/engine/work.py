"""What the event agent works on: a batch's records, parked records waiting, and its limits.

Plain data; the agent (:mod:`processors.engine.batches`) decides what happens to them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from processors.engine.state import StateBatch
from processors.stages.retry import Parked

__all__ = ["BufferLimits", "FailurePolicy", "Unacknowledged", "Waiting", "Work"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BufferLimits:
    """What a worker holds in memory before it pauses the partitions that feed it.

    Like Kafka Streams' ``buffered.records.per.partition``: an input partition with this many
    records held (waiting for their turn) is paused until they are processed; the retry topic's
    partitions are paused while this many parked records wait in memory for their due time. A
    parked record whose due time lies further ahead than the longest back-off (a forged or
    corrupted header) is held only that long.
    """

    per_partition: int = 10_000
    parked: int = 20_000
    longest_wait_ms: int = 300_000


@dataclass(frozen=True)
class FailurePolicy:
    """When a failing batch stops the worker (``processors/engine/failures.py``)."""

    attempts: int = 6
    share_max: float = 0.5
    min_records: int = 100


@dataclass(order=True)
class Waiting:
    """A parked record read back before it is due, ordered by due time."""

    not_before_ms: int
    sequence: int
    message: Any = field(compare=False)
    parked: Parked = field(compare=False)
    headers: Sequence[tuple[str, bytes | None]] = field(compare=False)


@dataclass
class Unacknowledged:
    """A batch whose state is written and whose changelog records may still be in flight."""

    state: StateBatch
    messages: list[Any]


@dataclass
class Work:
    """One batch's records by kind."""

    master: list[Any] = field(default_factory=list)
    fresh: list[Any] = field(default_factory=list)
    due: list[Waiting] = field(default_factory=list)
    invalid: list[Any] = field(default_factory=list)
    generation: int = 0
    """The agent's revocation count when the records were taken (see ``EventAgent._run``)."""

    def without(self, revoked: set[tuple[str, int]]) -> Work:
        """The same work minus the records of ``revoked`` partitions."""

        def ours(message: Any) -> bool:
            return (message.topic, message.partition) not in revoked

        return Work(
            master=[m for m in self.master if ours(m)],
            fresh=[m for m in self.fresh if ours(m)],
            due=[w for w in self.due if ours(w.message)],
            invalid=[m for m in self.invalid if ours(m)],
            generation=self.generation,
        )

    @property
    def messages(self) -> list[Any]:
        """Every record of the batch (what it acknowledges when done)."""
        return [*self.master, *self.fresh, *(w.message for w in self.due), *self.invalid]

    def __bool__(self) -> bool:
        return bool(self.master or self.fresh or self.due or self.invalid)
