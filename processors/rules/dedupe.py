"""Deduplication by ``event_id``: a stable fingerprint of the payload and a pure decision.

Within the horizon (default 7 days) a repeat of an event id with the same fingerprint is a
duplicate (dropped, counted); the same id with a different fingerprint is a conflict (dead letter
``DUPLICATE_ID_CONFLICT``), and the first payload stays the one remembered. Once the horizon has
passed since the id was first seen, the id is forgotten and the event is processed again.

The horizon is measured from the first sighting, not refreshed by repeats, so a producer that keeps
retrying cannot keep an entry alive forever and the state stays bounded.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import Enum, StrEnum
from typing import Any, Final

from processors.rules.ids import epoch_millis
from schemas.models import AvroRecord

__all__ = [
    "DEFAULT_HORIZON",
    "VOLATILE_FIELDS",
    "Decision",
    "Seen",
    "decide",
    "fingerprint",
    "is_expired",
    "observe",
]

logger = logging.getLogger(__name__)

DEFAULT_HORIZON: Final = timedelta(days=7)

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)
_JSON: Final = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=True)

VOLATILE_FIELDS: Final = frozenset({"schema_version"})
"""Top-level fields left out of the fingerprint: they describe the encoding, not the business fact.

A producer that re-sends an event after upgrading to a newer schema version re-sends the same fact.
"""


class Decision(StrEnum):
    """What to do with an event given what was seen under its id."""

    NEW = "NEW"
    """Never seen (inside the horizon): process it and remember it."""
    DUPLICATE = "DUPLICATE"
    """Seen with the same payload inside the horizon: drop it and count it."""
    CONFLICT = "CONFLICT"
    """Seen with a different payload inside the horizon: dead-letter it, keep the first payload."""
    EXPIRED = "EXPIRED"
    """Seen, but longer ago than the horizon: forget the old sighting, process it as new."""

    @property
    def passes(self) -> bool:
        """Whether the event goes on to the next stage (and replaces what is remembered)."""
        return self in (Decision.NEW, Decision.EXPIRED)


@dataclass(frozen=True)
class Seen:
    """What the dedupe state remembers per event id."""

    fingerprint: str
    first_seen_at: datetime


def _canonical(value: Any) -> Any:
    # One JSON form for the same fact whether it comes from a model's to_avro() or from fastavro's
    # reader: instants as epoch milliseconds, dates as ISO days, enums as symbols, records as sorted
    # objects. Null fields are left out, so an optional field added to the schema later (read as
    # null from old data) does not change the fingerprint of old events. Exact type checks first:
    # this runs on every event, and fastavro's dicts hold nothing but these types.
    kind = type(value)
    if kind is str or kind is int:
        return value
    if kind is dict:
        return {key: _canonical(item) for key, item in value.items() if item is not None}
    if kind is list or kind is tuple:
        return [_canonical(item) for item in value]
    if kind is datetime:
        return {"ts_ms": (value - _EPOCH) // _MILLISECOND} if value.tzinfo else {"naive": value.isoformat()}
    if kind is date:
        return {"date": value.isoformat()}
    return _canonical_other(value)


def _canonical_other(value: Any) -> Any:
    if isinstance(value, AvroRecord):
        return _canonical(value.to_avro())
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(key): _canonical(item) for key, item in value.items() if item is not None}
    if isinstance(value, list | tuple):
        return [_canonical(item) for item in value]
    if isinstance(value, datetime):
        return {"ts_ms": epoch_millis(value)} if value.tzinfo else {"naive": value.isoformat()}
    if isinstance(value, date):
        return {"date": value.isoformat()}
    if isinstance(value, bytes):
        return {"bytes": value.hex()}
    return value


def fingerprint(record: AvroRecord | Mapping[str, Any]) -> str:
    """Return a stable SHA-256 hex digest of the record's business payload.

    Accepts a model or the dict fastavro decoded; both give the same digest for the same event.
    Fields in :data:`VOLATILE_FIELDS` and null fields are ignored.
    """
    body = record.to_avro() if isinstance(record, AvroRecord) else record
    payload = {
        key: _canonical(value)
        for key, value in body.items()
        if value is not None and key not in VOLATILE_FIELDS
    }
    return hashlib.sha256(_JSON.encode(payload).encode("ascii")).hexdigest()


def decide(
    seen_fingerprint: str | None,
    fingerprint: str,
    seen_at: datetime | None,
    now: datetime,
    horizon: timedelta = DEFAULT_HORIZON,
) -> Decision:
    """Decide what an event is, given what was remembered under its id.

    ``seen_at`` is when the id was first seen; an event is inside the horizon while
    ``now - seen_at < horizon`` (an event that seems older than what was seen, e.g. from clock skew,
    is inside).
    """
    if seen_fingerprint is None:
        return Decision.NEW
    if seen_at is not None and now - seen_at >= horizon:
        return Decision.EXPIRED
    if seen_fingerprint == fingerprint:
        return Decision.DUPLICATE
    return Decision.CONFLICT


def observe(
    seen: Seen | None, fingerprint: str, now: datetime, horizon: timedelta = DEFAULT_HORIZON
) -> tuple[Decision, Seen]:
    """Decide about an event and return what to remember under its id afterwards."""
    decision = decide(
        seen.fingerprint if seen else None, fingerprint, seen.first_seen_at if seen else None, now, horizon
    )
    if decision.passes:
        return decision, Seen(fingerprint, now)
    assert seen is not None  # only a remembered sighting can be a duplicate or a conflict
    return decision, seen


def is_expired(seen: Seen, now: datetime, horizon: timedelta = DEFAULT_HORIZON) -> bool:
    """Whether a remembered sighting is past the horizon and can be purged from the state."""
    return now - seen.first_seen_at >= horizon
