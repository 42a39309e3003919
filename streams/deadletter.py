"""Dead-letter records: the original key, value and headers untouched (unless too large), plus context.

The context travels in headers so the record itself stays byte-identical and can be replayed.
The header names follow Kafka Connect's ``__connect.errors.*`` convention, so tools built for
Connect's dead-letter queues read revstream's as well; revstream adds its own ``revstream.dlq.*``
headers for what Connect has no name for (reason code, attempts, failure times, consumer group).

A dead letter can never be too large to produce. When the record with its context would exceed
:data:`MAX_RECORD_BYTES`, :func:`dead_letter_record` keeps its full coordinates (the Connect
``topic``, ``partition`` and ``offset`` headers: the whole record can be read there while the
source topic retains it), the first :data:`VALUE_PREFIX_BYTES` of the value, the first
:data:`KEY_PREFIX_BYTES` of the key, the original headers up to :data:`HEADER_BUDGET_BYTES`, the
reason ``RECORD_TOO_LARGE`` and these headers:

- ``revstream.dlq.truncated``: ``true``;
- ``revstream.dlq.original_reason``: the reason the record failed with before it was cut;
- ``revstream.dlq.value_bytes`` / ``revstream.dlq.value_sha256``: the whole value's length and
  SHA-256 (hex; empty for a null value), and the same ``key_bytes`` / ``key_sha256`` for the key;
- ``revstream.dlq.headers_dropped``: how many original headers did not fit the budget.

A cut record is evidence, not something to replay: the prefix is not the record.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Final

from streams.errors import RecordTooLargeError

__all__ = [
    "CONNECT_PREFIX",
    "HEADER_BUDGET_BYTES",
    "KEY_PREFIX_BYTES",
    "MAX_RECORD_BYTES",
    "RECORD_TOO_LARGE",
    "REVSTREAM_PREFIX",
    "VALUE_PREFIX_BYTES",
    "DeadLetter",
    "DeadLetterRecord",
    "Failure",
    "Headers",
    "SourceRecord",
    "dead_letter_headers",
    "dead_letter_record",
    "oversized",
    "parse_dead_letter",
    "record_bytes",
]

logger = logging.getLogger(__name__)

Headers = list[tuple[str, bytes | None]]
"""Kafka headers as confluent-kafka gives them: a value may be null, which is not an empty value."""

CONNECT_PREFIX = "__connect.errors."
REVSTREAM_PREFIX = "revstream.dlq."
MAX_MESSAGE_BYTES = 4096

MAX_RECORD_BYTES: Final = 900_000
"""The largest record (key, value and headers) a worker or the sink copies to its topics intact.

librdkafka refuses to produce more than ``message.max.bytes`` (1,000,000 by default) and Kafka's
topics take 1,048,588 bytes by default: what stays below this limit still fits with the retry or
dead-letter context added (a few hundred bytes, the exception message at most 4 KiB).
"""
VALUE_PREFIX_BYTES: Final = 16_384
"""How much of an oversized record's value its dead letter keeps."""
KEY_PREFIX_BYTES: Final = 1_024
"""How much of an oversized record's key its dead letter keeps (keys are ids, normally short)."""
HEADER_BUDGET_BYTES: Final = 65_536
"""How many bytes of an oversized record's own headers (names and values) its dead letter keeps."""
RECORD_TOO_LARGE: Final = "RECORD_TOO_LARGE"


@dataclass(frozen=True)
class SourceRecord:
    """Where a failed record was read, and the record exactly as it was read."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()


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
class DeadLetterRecord:
    """What to produce to a dead-letter topic: key, value and headers, within :data:`MAX_RECORD_BYTES`."""

    key: bytes | None
    value: bytes | None
    headers: Headers
    reason_code: str
    """The reason it carries: the failure's, or ``RECORD_TOO_LARGE`` when it was cut."""


@dataclass(frozen=True)
class DeadLetter:
    """A dead-letter record as read back: the original record and its failure."""

    source: SourceRecord
    failure: Failure


def _millis(moment: datetime | None) -> bytes:
    moment = moment or datetime.now(UTC)
    return str(int(moment.timestamp() * 1000)).encode()


def _from_millis(raw: bytes | None) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromtimestamp(int(raw) / 1000, UTC)
    except (OverflowError, OSError) as exc:
        # A forged or corrupt header (found by make fuzz): refused like any other bad header.
        raise ValueError(f"failure time {raw[:40]!r} is not a time in milliseconds: {exc}") from None


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


def record_bytes(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]] = ()
) -> int:
    """Return the bytes a record's key, value and headers (names and values) take."""
    size = len(key or b"") + len(value or b"")
    return size + sum(len(name.encode("utf-8", "replace")) + len(data or b"") for name, data in headers)


def oversized(source: SourceRecord, limit: int = MAX_RECORD_BYTES) -> RecordTooLargeError | None:
    """Return why ``source`` is too large to be copied to another topic intact, or ``None`` if it is not."""
    size = record_bytes(source.key, source.value, source.headers)
    if size <= limit:
        return None
    return RecordTooLargeError(
        f"{source.topic}[{source.partition}]@{source.offset} is {size} bytes with its key and headers,"
        f" more than the {limit} a record may have here; split it at its source"
    )


def dead_letter_record(
    source: SourceRecord, failure: Failure, class_name: str = "revstream", limit: int = MAX_RECORD_BYTES
) -> DeadLetterRecord:
    """Return the dead letter of ``source``: the record untouched, or cut to fit ``limit`` (module doc)."""
    headers = dead_letter_headers(source, failure, class_name)
    if record_bytes(source.key, source.value, headers) <= limit:
        return DeadLetterRecord(source.key, source.value, headers, failure.reason_code)
    size = record_bytes(source.key, source.value, source.headers)
    originals = [(name, data) for name, data in source.headers if not _is_context(name)]
    kept: list[tuple[str, bytes | None]] = []
    budget = HEADER_BUDGET_BYTES
    for name, data in originals:
        cost = record_bytes(None, None, [(name, data)])
        if cost <= budget:
            kept.append((name, data))
            budget -= cost
    value = None if source.value is None else source.value[:VALUE_PREFIX_BYTES]
    key = None if source.key is None else source.key[:KEY_PREFIX_BYTES]
    message = (
        f"the record is {size} bytes with its key and headers, more than the {limit} a dead letter may"
        f" have: kept {len(value or b'')} of {len(source.value or b'')} value bytes and {len(key or b'')}"
        f" of {len(source.key or b'')} key bytes with their SHA-256; read it whole at its source"
        f" coordinates. It failed as {failure.reason_code}: {failure.error_message}"
    )
    cut = replace(
        failure,
        reason_code=RECORD_TOO_LARGE,
        error_class=f"{RecordTooLargeError.__module__}.{RecordTooLargeError.__qualname__}",
        error_message=message,
    )
    context = dead_letter_headers(replace(source, key=key, value=value, headers=tuple(kept)), cut, class_name)
    context += [
        (f"{REVSTREAM_PREFIX}truncated", b"true"),
        (f"{REVSTREAM_PREFIX}original_reason", failure.reason_code.encode()),
        (f"{REVSTREAM_PREFIX}value_bytes", str(len(source.value or b"")).encode()),
        (f"{REVSTREAM_PREFIX}value_sha256", _sha256(source.value)),
        (f"{REVSTREAM_PREFIX}key_bytes", str(len(source.key or b"")).encode()),
        (f"{REVSTREAM_PREFIX}key_sha256", _sha256(source.key)),
        (f"{REVSTREAM_PREFIX}headers_dropped", str(len(originals) - len(kept)).encode()),
    ]
    return DeadLetterRecord(key, value, context, RECORD_TOO_LARGE)


def _sha256(data: bytes | None) -> bytes:
    return b"" if data is None else hashlib.sha256(data).hexdigest().encode()


def _is_context(name: str) -> bool:
    return name.startswith(CONNECT_PREFIX) or name.startswith(REVSTREAM_PREFIX)


def parse_dead_letter(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]] | None
) -> DeadLetter:
    """Split a dead letter read from Kafka back into its original record and failure.

    Raises:
        ValueError: when the record carries no revstream dead-letter context.
    """
    pairs = list(headers or [])
    # Only the context headers are read as text; the original ones stay exactly as read, a null
    # value null (a replay must give the consumer the record it would have had).
    context = {k: v or b"" for k, v in pairs if _is_context(k)}
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
