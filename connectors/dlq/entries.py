"""Dead letters as the tool sees them: stable ids, lineage, markers, filters and statistics.

Pure: records come in already read; nothing here touches Kafka or the database. A dead letter's id
is ``<stage>:<partition>:<offset>`` of the dead-letter topic ``<ns>.dlq.<stage>`` (``parked`` for
``<ns>.dlq.parked``): stable for as long as the record exists, and what every command accepts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from connectors.dlq.errors import UnknownDeadLetterError
from streams.deadletter import REVSTREAM_PREFIX, DeadLetter, Headers

__all__ = [
    "LINEAGE_PREFIX",
    "PARKED_STAGE",
    "Entry",
    "Lineage",
    "Marker",
    "Record",
    "Selection",
    "age_bucket",
    "lineage_headers",
    "parse_id",
    "replay_id_for",
    "statistics",
]

logger = logging.getLogger(__name__)

LINEAGE_PREFIX: Final = "revstream.replay."
PARKED_STAGE: Final = "parked"
_ID: Final = re.compile(r"^([a-z_]+):(\d+):(\d+)$")
_AGE_BUCKETS: Final = (
    (timedelta(hours=1), "<1h"),
    (timedelta(days=1), "1h-1d"),
    (timedelta(days=7), "1d-7d"),
    (timedelta(days=30), "7d-30d"),
)


def parse_id(text: str, stages: Iterable[str]) -> tuple[str, int, int]:
    """Return ``(stage, partition, offset)`` of a dead-letter id.

    Raises:
        UnknownDeadLetterError: when ``text`` is not ``<stage>:<partition>:<offset>`` of a known stage.
    """
    match = _ID.match(text.strip())
    known = tuple(stages)
    if match is None or match.group(1) not in known:
        raise UnknownDeadLetterError(
            f"{text!r} is not a dead-letter id; ids look like <stage>:<partition>:<offset> with a stage "
            f"of {', '.join(known)} (see `revstream dlq list`)"
        )
    return match.group(1), int(match.group(2)), int(match.group(3))


@dataclass(frozen=True)
class Record:
    """One record as read from a topic, headers exactly as read (a null value stays ``None``)."""

    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: Headers

    def header(self, name: str) -> bytes | None:
        """Return the last value of header ``name`` (``None`` when absent or null)."""
        found = None
        for key, value in self.headers:
            if key == name:
                found = value
        return found


@dataclass(frozen=True)
class Lineage:
    """What a replayed record carries: which replay made it and from which dead letter."""

    replay_id: str
    count: int
    at_ms: int
    by: str
    dead_letter_id: str

    @classmethod
    def from_headers(cls, headers: Headers) -> Lineage | None:
        """Read the lineage headers, or ``None`` when the record was never replayed."""
        found = {
            k[len(LINEAGE_PREFIX) :]: (v or b"").decode("utf-8", "replace")
            for k, v in headers
            if k.startswith(LINEAGE_PREFIX)
        }
        if "id" not in found:
            return None
        try:
            return cls(
                found["id"],
                int(found.get("count", "1")),
                int(found.get("at_ms", "0")),
                found.get("by", ""),
                found.get("dead_letter", ""),
            )
        except ValueError:
            return None


def replay_id_for(topic: str, partition: int, offset: int) -> str:
    """Return the replay id of the dead letter at these coordinates: the same on every attempt.

    Deterministic, so that a replay interrupted after publishing can find what it already sent.
    """
    digest = hashlib.sha256(f"{topic}:{partition}:{offset}".encode()).hexdigest()[:20]
    return f"rp-{digest}"


def lineage_headers(
    original: Iterable[tuple[str, bytes | None]], lineage: Lineage, dead_letter: tuple[str, int, int]
) -> Headers:
    """Return ``original`` without any earlier lineage, plus this replay's lineage headers."""
    kept = [(k, v) for k, v in original if not k.startswith(LINEAGE_PREFIX)]
    topic, partition, offset = dead_letter
    return [
        *kept,
        (f"{LINEAGE_PREFIX}id", lineage.replay_id.encode()),
        (f"{LINEAGE_PREFIX}count", str(lineage.count).encode()),
        (f"{LINEAGE_PREFIX}at_ms", str(lineage.at_ms).encode()),
        (f"{LINEAGE_PREFIX}by", lineage.by.encode()),
        (f"{LINEAGE_PREFIX}dead_letter", lineage.dead_letter_id.encode()),
        (f"{LINEAGE_PREFIX}dlq_topic", topic.encode()),
        (f"{LINEAGE_PREFIX}dlq_partition", str(partition).encode()),
        (f"{LINEAGE_PREFIX}dlq_offset", str(offset).encode()),
    ]


@dataclass(frozen=True)
class Marker:
    """The tool's state for one dead letter, kept in the compacted ``<ns>.dlq-state`` topic.

    ``state`` is ``pending`` (a replay was about to publish it: ``since`` is the end of the target
    partition(s) before), ``replayed`` or ``parked`` (published: where), or only ``purged`` set.
    """

    state: str | None = None
    replay_id: str | None = None
    target: str | None = None
    partition: int | None = None
    offset: int | None = None
    since: dict[str, int] = field(default_factory=dict)
    at_ms: int | None = None
    by: str | None = None
    purged_at_ms: int | None = None
    purged_by: str | None = None

    def encode(self) -> bytes:
        """Return the marker as the JSON value written to the state topic."""
        return json.dumps(
            {k: v for k, v in self.__dict__.items() if v not in (None, {})}, sort_keys=True
        ).encode()

    @classmethod
    def decode(cls, raw: bytes) -> Marker:
        """Read a marker back; unknown keys (a newer version's) are ignored.

        Raises:
            ValueError: when ``raw`` is not a JSON object.
        """
        data = json.loads(raw)
        if not isinstance(data, dict):
            raise ValueError(f"a marker is a JSON object, not {type(data).__name__}")
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    @property
    def done(self) -> bool:
        """Whether a replay already published this dead letter (to its topic or the parking topic)."""
        return self.state in ("replayed", "parked")

    @property
    def purged(self) -> bool:
        """Whether the dead letter is hidden from list, stats and replay."""
        return self.purged_at_ms is not None


@dataclass(frozen=True)
class Entry:
    """A dead letter: where it is, what failed, its lineage and the tool's marker."""

    id: str
    stage: str
    record: Record
    letter: DeadLetter
    lineage: Lineage | None
    marker: Marker | None

    @property
    def failed_at(self) -> datetime:
        """When the record (last) failed: the dead letter's own time when the header lacks it."""
        return self.letter.failure.last_failure_at or datetime.fromtimestamp(
            self.record.timestamp_ms / 1000, UTC
        )

    @property
    def event_type(self) -> str | None:
        """The canonical event type of the source topic (``<ns>.events.<type>``), else ``None``."""
        _, sep, tail = self.letter.source.topic.rpartition(".events.")
        return tail if sep else None

    @property
    def key_text(self) -> str:
        """The key as text (undecodable bytes escaped), ``""`` for a null key."""
        return (self.record.key or b"").decode("utf-8", "backslashreplace")

    @property
    def replay_count(self) -> int:
        """How many times this record's original was replayed before it failed again."""
        return self.lineage.count if self.lineage else 0

    @property
    def truncated(self) -> bool:
        """Whether the dead letter holds only a prefix of a record too large to copy (RECORD_TOO_LARGE)."""
        return self.record.header(f"{REVSTREAM_PREFIX}truncated") == b"true"

    @property
    def status(self) -> str:
        """``new``, ``pending``, ``replayed``, ``parked`` or ``purged``."""
        if self.marker is None:
            return "new"
        if self.marker.purged:
            return "purged"
        return self.marker.state or "new"


@dataclass(frozen=True)
class Selection:
    """The filters every command shares; empty means everything (parked records excepted)."""

    ids: tuple[str, ...] = ()
    stages: tuple[str, ...] = ()
    reasons: tuple[str, ...] = ()
    source_topics: tuple[str, ...] = ()
    event_types: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    event_ids: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = None
    include_done: bool = False
    """Also select records already replayed or purged (``list --all``)."""

    def describe(self) -> dict[str, Any]:
        """Return the filters that are set, for the audit row and messages."""
        return {
            k: (v.isoformat() if isinstance(v, datetime) else list(v) if isinstance(v, tuple) else v)
            for k, v in self.__dict__.items()
            if v not in ((), None, False)
        }

    def summary(self) -> str:
        """Return the filters that are set as ``name=value`` text, for messages."""
        parts = []
        for name, value in self.describe().items():
            shown = ",".join(str(v) for v in value) if isinstance(value, list) else str(value)
            parts.append(f"{name}={shown}")
        return " ".join(parts) or "(no filter)"

    def select(self, entries: Sequence[Entry], event_id_of: Any = None) -> list[Entry]:
        """Return the entries these filters select, oldest failure first, at most ``limit``.

        ``event_id_of(entry)`` gives an entry's event id (decoding its value); it is called only
        when ``event_ids`` is set.
        """
        chosen = []
        for entry in sorted(entries, key=lambda e: (e.failed_at, e.id)):
            if not self._matches(entry):
                continue
            if self.event_ids and (event_id_of is None or event_id_of(entry) not in self.event_ids):
                continue
            chosen.append(entry)
            if self.limit is not None and len(chosen) >= self.limit:
                break
        return chosen

    def _matches(self, entry: Entry) -> bool:
        if self.ids:
            return entry.id in self.ids and (self.include_done or entry.status in ("new", "pending"))
        if not self.include_done and entry.status not in ("new", "pending"):
            return False
        if entry.stage == PARKED_STAGE and PARKED_STAGE not in self.stages:
            return False
        checks = (
            (self.stages, entry.stage),
            (self.reasons, entry.letter.failure.reason_code),
            (self.source_topics, entry.letter.source.topic),
            (self.event_types, entry.event_type),
            (self.keys, entry.key_text),
        )
        if any(wanted and value not in wanted for wanted, value in checks):
            return False
        if self.since is not None and entry.failed_at < self.since:
            return False
        return self.until is None or entry.failed_at < self.until


def age_bucket(failed_at: datetime, now: datetime) -> str:
    """Return the age bucket of a dead letter that failed at ``failed_at``."""
    age = now - failed_at
    for limit, name in _AGE_BUCKETS:
        if age < limit:
            return name
    return ">30d"


def statistics(entries: Sequence[Entry], now: datetime) -> dict[str, Any]:
    """Return counts by stage, reason, source topic, event type and age; oldest/newest; markers.

    Purged records are counted only under ``purged``; replayed and parked ones are counted
    everywhere and also under ``replayed`` / ``parked``.
    """
    visible = [e for e in entries if e.status != "purged"]
    status = Counter(e.status for e in entries)
    times = sorted(e.failed_at for e in visible)

    def by(values: Iterable[str | None]) -> dict[str, int]:
        return dict(sorted(Counter(v or "-" for v in values).items()))

    return {
        "total": len(visible),
        "by_stage": by(e.stage for e in visible),
        "by_reason": by(e.letter.failure.reason_code for e in visible),
        "by_source_topic": by(e.letter.source.topic for e in visible),
        "by_event_type": by(e.event_type for e in visible),
        "by_age": by(age_bucket(e.failed_at, now) for e in visible),
        "oldest": times[0].isoformat() if times else None,
        "newest": times[-1].isoformat() if times else None,
        "waiting": status["new"] + status["pending"],
        "replayed": status["replayed"],
        "parked": status["parked"],
        "purged": status["purged"],
    }
