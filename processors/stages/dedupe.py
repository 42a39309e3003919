"""Stage 2, dedupe: what the worker remembers per event id, and the redelivery rule.

The rules (:mod:`processors.rules.dedupe`) decide new / duplicate / conflict / expired from the
payload fingerprint and the first sighting. The worker adds one fact they cannot know: *where*
the first sighting was read (topic, partition, offset). After a crash a record is delivered again
while its dedupe entry may already be in the table; that is the same record, not a repeat, and it
must be processed again (its outputs carry deterministic ids, so downstream applies them once),
or the commands it should have produced would be lost.
"""

from __future__ import annotations

import enum
import logging
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from processors.rules.dedupe import Decision, Seen, observe

__all__ = ["DEDUPE", "DedupeEntry", "Verdict", "judge"]

logger = logging.getLogger(__name__)

DEDUPE: Final = "dedupe"
_FIXED: Final = struct.Struct(">32sqiq")


@dataclass(frozen=True)
class DedupeEntry:
    """The first sighting of an event id: payload fingerprint, when, and where it was read."""

    fingerprint: str
    first_seen_ms: int
    topic: str
    partition: int
    offset: int

    def encode(self) -> bytes:
        """Return the compact bytes stored in the table."""
        return _FIXED.pack(
            bytes.fromhex(self.fingerprint), self.first_seen_ms, self.partition, self.offset
        ) + (self.topic.encode())

    @classmethod
    def decode(cls, raw: bytes) -> DedupeEntry:
        """Read an entry written by :meth:`encode`.

        Raises:
            struct.error: when ``raw`` is not such an entry.
        """
        digest, first_seen_ms, partition, offset = _FIXED.unpack_from(raw)
        return cls(digest.hex(), first_seen_ms, raw[_FIXED.size :].decode(), partition, offset)

    def same_record(self, topic: str, partition: int, offset: int) -> bool:
        """Whether this entry was written for the record at these coordinates."""
        return self.offset == offset and self.partition == partition and self.topic == topic


class Verdict(enum.Enum):
    """What the pipeline does with the record."""

    PROCESS = "process"
    """New (or seen longer ago than the horizon): process it and remember it."""
    REDELIVERED = "redelivered"
    """The very record the entry was written for, delivered again: process it again."""
    DROP = "drop"
    """An exact repeat inside the horizon: drop it and count it."""
    CONFLICT = "conflict"
    """Same id, different payload, inside the horizon: dead-letter ``DUPLICATE_ID_CONFLICT``."""


def _millis(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def judge(
    entry: DedupeEntry | None,
    fingerprint: str,
    now_ms: int,
    horizon: timedelta,
    coordinates: tuple[str, int, int],
) -> tuple[Verdict, DedupeEntry | None]:
    """Decide about a record and return the entry to store afterwards (``None``: leave it as is)."""
    topic, partition, offset = coordinates
    if entry is not None and entry.same_record(topic, partition, offset):
        return Verdict.REDELIVERED, None
    now = datetime.fromtimestamp(now_ms / 1000, UTC)
    seen = Seen(entry.fingerprint, datetime.fromtimestamp(entry.first_seen_ms / 1000, UTC)) if entry else None
    decision, remembered = observe(seen, fingerprint, now, horizon)
    if decision is Decision.DUPLICATE:
        return Verdict.DROP, None
    if decision is Decision.CONFLICT:
        return Verdict.CONFLICT, None
    return Verdict.PROCESS, DedupeEntry(
        remembered.fingerprint, _millis(remembered.first_seen_at), topic, partition, offset
    )
