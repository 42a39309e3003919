"""The queue's rules, pure: how an exception record changes its row, routing, ageing and SLAs.

One row per exception key. A record's key is its ``exception_key`` (the revisions of one
reconciliation mismatch share it) or else its own ``exception_id``. Within a key the highest
``revision`` stands: an older or repeated revision (exceptions are delivered at least once, and
after a worker crash out of order) changes nothing. A revision with a ``resolution`` closes the
row by itself; a later revision that stands again re-opens it.

Ages are measured from when the queue first saw the exception (the Kafka timestamp of its record:
when the pipeline raised it), not from the source event's time, which may lie months back; the
due time is that moment plus the SLA of the reason's route. Every function takes ``now`` instead
of reading a clock.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, Final, Literal

from streams.queue_settings import ExceptionQueueSettings

__all__ = [
    "AGE_BUCKETS",
    "CLOSED",
    "HELD",
    "Change",
    "ExceptionRecord",
    "QueueRow",
    "age_bucket",
    "apply_record",
    "breaches_sla",
    "fold",
]

logger = logging.getLogger(__name__)

Status = Literal["open", "assigned", "resolved", "approved"]
CLOSED: Final = frozenset({"resolved", "approved"})
HELD: Final = "held"
RELEASED: Final = "released"
PIPELINE: Final = "pipeline"
"""The actor of the changes the pipeline's records make (people sign their own)."""

AGE_BUCKETS: Final = (
    ("<1d", timedelta(days=1)),
    ("1-3d", timedelta(days=3)),
    ("3-7d", timedelta(days=7)),
    (">7d", timedelta.max),
)


@dataclass(frozen=True, slots=True)
class ExceptionRecord:
    """One business exception as read from ``<ns>.exceptions``, and where and when it was read."""

    exception: Mapping[str, Any]
    """The record as fastavro reads it (``BusinessException`` fields)."""
    seen_at: datetime
    topic: str
    partition: int
    offset: int

    @property
    def key(self) -> str:
        """The queue row this record belongs to."""
        return str(self.exception.get("exception_key") or self.exception["exception_id"])

    @property
    def is_hold_notice(self) -> bool:
        """Whether it notes a record held (or released) on the exception of its key, not a revision."""
        return self.exception.get("resolution") in (HELD, RELEASED)

    @property
    def revision(self) -> int:
        """Its revision within the key (0 for a one-off exception)."""
        return int(self.exception.get("revision") or 0)


@dataclass(frozen=True, slots=True)
class QueueRow:
    """One row of the ``exceptions`` table."""

    exception_key: str
    exception_id: str
    reason_code: str
    status: Status
    customer_id: str
    legal_entity: str
    event_type: str
    source_event_id: str
    correlation_id: str
    subscription_id: str | None
    quote_id: str | None
    amount_minor: int | None
    currency: str | None
    quantity_difference: int | None
    detail: str
    revision: int
    team: str
    assignee: str | None
    first_seen: datetime
    last_seen: datetime
    due_at: datetime
    closed_at: datetime | None
    source_topic: str
    source_partition: int
    source_offset: int

    @property
    def is_open(self) -> bool:
        """Whether someone still has to act on it."""
        return self.status not in CLOSED


@dataclass(frozen=True, slots=True)
class Change:
    """A row as a record (or a person) leaves it, and the audit entry that says so."""

    row: QueueRow
    actor: str
    action: str
    from_status: Status | None
    note: str | None = None


def _status_after(record: ExceptionRecord, current: QueueRow | None) -> Status:
    resolution = record.exception.get("resolution")
    if resolution in CLOSED:
        return "resolved" if resolution == "resolved" else "approved"
    if current is not None and current.assignee:
        return "assigned"
    return "open"


def apply_record(
    current: QueueRow | None, record: ExceptionRecord, settings: ExceptionQueueSettings
) -> Change | None:
    """Return what ``record`` does to the row of its key (``None``: nothing, it is stale or a repeat)."""
    exc = record.exception
    if current is not None:
        if record.revision < current.revision:
            return None
        if record.revision == current.revision and exc["exception_id"] == current.exception_id:
            return None
    status = _status_after(record, current)
    reason = str(exc["reason_code"])
    amount = exc.get("amount_difference_minor")
    quantity = exc.get("quantity_difference")
    fields: dict[str, Any] = {
        "exception_id": str(exc["exception_id"]),
        "status": status,
        "source_event_id": str(exc["source_event_id"]),
        "event_type": str(exc["event_type"]),
        "correlation_id": str(exc["correlation_id"]),
        "subscription_id": exc.get("subscription_id"),
        "quote_id": exc.get("quote_id"),
        "amount_minor": int(amount) if amount is not None else None,
        "currency": exc.get("currency"),
        "quantity_difference": int(quantity) if quantity is not None else None,
        "detail": str(exc["detail"]),
        "revision": record.revision,
        "last_seen": record.seen_at,
        "closed_at": record.seen_at if status in CLOSED else None,
        "source_topic": record.topic,
        "source_partition": record.partition,
        "source_offset": record.offset,
    }
    if current is None:
        route = settings.route(reason)
        row = QueueRow(
            exception_key=record.key,
            reason_code=reason,
            customer_id=str(exc["customer_id"]),
            legal_entity=str(exc["legal_entity"]),
            team=route.team,
            assignee=None,
            first_seen=record.seen_at,
            due_at=record.seen_at + route.sla,
            **fields,
        )
        return Change(
            row, PIPELINE, "closed" if status in CLOSED else "raised", None, _closing_note(status, exc)
        )
    if status in CLOSED:
        action = "closed"
    elif current.status in CLOSED:
        action = "reopened"
    else:
        action = "revised"
    return Change(replace(current, **fields), PIPELINE, action, current.status, _closing_note(status, exc))


def _closing_note(status: Status, exception: Mapping[str, Any]) -> str | None:
    # What closed it, in the record's own words: who approved at which level, or the final counts.
    return str(exception["detail"]) if status in CLOSED else None


def fold(
    stored: Mapping[str, QueueRow], records: Iterable[ExceptionRecord], settings: ExceptionQueueSettings
) -> list[Change]:
    """Return the changes of a batch of records over the ``stored`` rows, in record order.

    A key may change several times in one batch; each change is audited, the last one stands.
    Hold notices change no row (:meth:`QueueStore.apply` records them apart).
    """
    rows = dict(stored)
    changes = []
    for record in records:
        if record.is_hold_notice:
            continue
        change = apply_record(rows.get(record.key), record, settings)
        if change is not None:
            rows[record.key] = change.row
            changes.append(change)
    return changes


def age_bucket(row: QueueRow, now: datetime) -> str:
    """Return the age bucket of ``row`` at ``now`` (see :data:`AGE_BUCKETS`)."""
    age = now - row.first_seen
    for label, limit in AGE_BUCKETS:
        if age < limit:
            return label
    return AGE_BUCKETS[-1][0]


def breaches_sla(row: QueueRow, now: datetime) -> bool:
    """Whether ``row`` is still open past its due time."""
    return row.is_open and now > row.due_at
