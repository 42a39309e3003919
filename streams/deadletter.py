"""Dead-letter records: the original key, value and headers untouched, plus the error context.

The context travels in headers so the record itself stays byte-identical and can be replayed.
The header names follow Kafka Connect's ``__connect.errors.*`` convention, so tools built for
Connect's dead-letter queues read revstream's as well; revstream adds its own ``revstream.dlq.*``
headers for what Connect has no name for (reason code, attempts, failure times, consumer group).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

__all__ = [
    "CONNECT_PREFIX",
    "REVSTREAM_PREFIX",
    "DeadLetter",
    "Failure",
    "Headers",
    "SourceRecord",
    "dead_letter_headers",
    "parse_dead_letter",
]

logger = logging.getLogger(__name__)

Headers = list[tuple[str, bytes]]

CONNECT_PREFIX = "__connect.errors."
REVSTREAM_PREFIX = "revstream.dlq."
MAX_MESSAGE_BYTES = 4096


@dataclass(frozen=True)
class SourceRecord:
    """Where a failed record was read, and the record exactly as it was read."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True)
class Failure:
    """Why a record could not be processed, and how often that has happened."""

    stage: str
    reason_code: str
    error_class: str
    error_message: str
    attempt: int = 1
    first_failure_at: datetime | None = None
    last_failure_at: datetime | None = None
    consumer_group: str | None = None

    @classmethod
    def from_exception(
        cls,
        stage: str,
        reason_code: str,
        exc: BaseException,
        consumer_group: str | None = None,
        attempt: int = 1,
        first_failure_at: datetime | None = None,
    ) -> Failure:
        """Describe ``exc`` as a failure of ``stage`` with ``reason_code``."""
        now = datetime.now(UTC)
        return cls(
            stage=stage,
            reason_code=reason_code,
            error_class=f"{type(exc).__module__}.{type(exc).__qualname__}",
            error_message=str(exc),
            attempt=attempt,
            first_failure_at=first_failure_at or now,
            last_failure_at=now,
            consumer_group=consumer_group,
        )


@dataclass(frozen=True)
class DeadLetter:
    """A dead-letter record as read back: the original record and its failure."""

    source: SourceRecord
    failure: Failure


def _millis(moment: datetime | None) -> bytes:
    moment = moment or datetime.now(UTC)
    return str(int(moment.timestamp() * 1000)).encode()


def _from_millis(raw: bytes | None) -> datetime | None:
    return datetime.fromtimestamp(int(raw) / 1000, UTC) if raw else None


def dead_letter_headers(source: SourceRecord, failure: Failure, class_name: str = "revstream") -> Headers:
    """Return the headers of the dead letter: the original ones first, then the error context."""
    message = failure.error_message.encode("utf-8", "replace")[:MAX_MESSAGE_BYTES]
    context: Headers = [
        (f"{CONNECT_PREFIX}topic", source.topic.encode()),
        (f"{CONNECT_PREFIX}partition", str(source.partition).encode()),
        (f"{CONNECT_PREFIX}offset", str(source.offset).encode()),
        (f"{CONNECT_PREFIX}stage", failure.stage.upper().encode()),
        (f"{CONNECT_PREFIX}class.name", class_name.encode()),
        (f"{CONNECT_PREFIX}exception.class.name", failure.error_class.encode()),
        (f"{CONNECT_PREFIX}exception.message", message),
        (f"{REVSTREAM_PREFIX}stage", failure.stage.encode()),
        (f"{REVSTREAM_PREFIX}reason", failure.reason_code.encode()),
        (f"{REVSTREAM_PREFIX}attempt", str(failure.attempt).encode()),
        (f"{REVSTREAM_PREFIX}first_failure_ms", _millis(failure.first_failure_at)),
        (f"{REVSTREAM_PREFIX}last_failure_ms", _millis(failure.last_failure_at)),
    ]
    if failure.consumer_group:
        context.append((f"{REVSTREAM_PREFIX}consumer_group", failure.consumer_group.encode()))
    original = [(k, v) for k, v in source.headers if not _is_context(k)]
    return original + context


def _is_context(name: str) -> bool:
    return name.startswith(CONNECT_PREFIX) or name.startswith(REVSTREAM_PREFIX)


def parse_dead_letter(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]] | None
) -> DeadLetter:
    """Split a dead letter read from Kafka back into its original record and failure.

    Raises:
        ValueError: when the record carries no revstream dead-letter context.
    """
    pairs = [(k, v or b"") for k, v in (headers or [])]
    context = {k: v for k, v in pairs if _is_context(k)}
    if f"{REVSTREAM_PREFIX}reason" not in context:
        raise ValueError("record has no revstream dead-letter headers")

    def text(name: str, default: str = "") -> str:
        return context.get(name, default.encode()).decode("utf-8", "replace")

    source = SourceRecord(
        topic=text(f"{CONNECT_PREFIX}topic"),
        partition=int(text(f"{CONNECT_PREFIX}partition", "-1")),
        offset=int(text(f"{CONNECT_PREFIX}offset", "-1")),
        key=key,
        value=value,
        headers=tuple((k, v) for k, v in pairs if not _is_context(k)),
    )
    failure = Failure(
        stage=text(f"{REVSTREAM_PREFIX}stage"),
        reason_code=text(f"{REVSTREAM_PREFIX}reason"),
        error_class=text(f"{CONNECT_PREFIX}exception.class.name"),
        error_message=text(f"{CONNECT_PREFIX}exception.message"),
        attempt=int(text(f"{REVSTREAM_PREFIX}attempt", "1")),
        first_failure_at=_from_millis(context.get(f"{REVSTREAM_PREFIX}first_failure_ms")),
        last_failure_at=_from_millis(context.get(f"{REVSTREAM_PREFIX}last_failure_ms")),
        consumer_group=text(f"{REVSTREAM_PREFIX}consumer_group") or None,
    )
    return DeadLetter(source, failure)
