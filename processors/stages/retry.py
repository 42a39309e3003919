"""Parking records whose dependencies have not arrived: retry headers, back-off and the verdict.

A parked record is the original record (key, value and headers untouched) on the retry topic,
in the partition it was read from, plus ``revstream.retry.*`` headers: how many attempts were
made, when the next one is due, when the first one failed, what was missing and where the record
was first read. The retry stage reads it back, waits until it is due without holding up anything
else, and tries again; after the configured number of attempts the record is dead-lettered.

Everything here is pure: times are passed in, nothing is produced.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Final

__all__ = [
    "RETRY_PREFIX",
    "Parked",
    "backoff",
    "next_attempt",
    "park_headers",
    "read_parked",
]

logger = logging.getLogger(__name__)

RETRY_PREFIX: Final = "revstream.retry."
_ATTEMPT: Final = RETRY_PREFIX + "attempt"
_NOT_BEFORE: Final = RETRY_PREFIX + "not_before_ms"
_FIRST_FAILURE: Final = RETRY_PREFIX + "first_failure_ms"
_MISSING: Final = RETRY_PREFIX + "missing"
_REASON: Final = RETRY_PREFIX + "reason"
_TOPIC: Final = RETRY_PREFIX + "topic"
_PARTITION: Final = RETRY_PREFIX + "partition"
_OFFSET: Final = RETRY_PREFIX + "offset"

HeaderList = Sequence[tuple[str, bytes | None]]


@dataclass(frozen=True)
class Parked:
    """Where a parked record stands: attempts made so far, when the next is due, and its origin."""

    attempt: int
    not_before_ms: int
    first_failure_ms: int
    missing: tuple[str, ...]
    reason: str
    topic: str
    partition: int
    offset: int


def backoff(attempt: int, base: timedelta, cap: timedelta) -> timedelta:
    """Return the wait after failed attempt number ``attempt`` (1-based): base x 2^(attempt-1), capped."""
    if attempt < 1:
        raise ValueError(f"attempt numbers start at 1, got {attempt}")
    # Bounded exponent: past 2^32 the cap has long been reached.
    return min(base * (2 ** min(attempt - 1, 32)), cap)


def next_attempt(
    previous: Parked | None,
    *,
    missing: Sequence[str],
    reason: str,
    now_ms: int,
    origin: tuple[str, int, int],
    max_attempts: int,
    base: timedelta,
    cap: timedelta,
    first_delay: timedelta | None = None,
) -> Parked | None:
    """Return the record's next parking after a failed attempt, or ``None`` when it must be dead-lettered.

    ``previous`` is the parking the record came back from (``None`` on its first failure);
    ``max_attempts`` counts every attempt, the first one included; ``first_delay``, when given,
    replaces the back-off before the second attempt.
    """
    attempt = 1 if previous is None else previous.attempt + 1
    if attempt >= max_attempts:
        return None
    wait = first_delay if previous is None and first_delay is not None else backoff(attempt, base, cap)
    delay_ms = int(wait.total_seconds() * 1000)
    return Parked(
        attempt=attempt,
        not_before_ms=now_ms + delay_ms,
        first_failure_ms=now_ms if previous is None else previous.first_failure_ms,
        missing=tuple(missing),
        reason=reason,
        topic=origin[0] if previous is None else previous.topic,
        partition=origin[1] if previous is None else previous.partition,
        offset=origin[2] if previous is None else previous.offset,
    )


def park_headers(original: HeaderList, parked: Parked) -> list[tuple[str, bytes | None]]:
    """Return the original headers (any earlier retry headers removed) plus the parking's."""
    kept = [(key, value) for key, value in original if not key.startswith(RETRY_PREFIX)]
    return [
        *kept,
        (_ATTEMPT, str(parked.attempt).encode()),
        (_NOT_BEFORE, str(parked.not_before_ms).encode()),
        (_FIRST_FAILURE, str(parked.first_failure_ms).encode()),
        (_MISSING, ",".join(parked.missing).encode()),
        (_REASON, parked.reason.encode()),
        (_TOPIC, parked.topic.encode()),
        (_PARTITION, str(parked.partition).encode()),
        (_OFFSET, str(parked.offset).encode()),
    ]


def read_parked(headers: HeaderList | None) -> tuple[list[tuple[str, bytes | None]], Parked | None]:
    """Split a retry-topic record's headers into the original ones and its parking (``None`` if absent).

    A record without complete, well-formed retry headers has no parking: the caller dead-letters it.
    """
    original: list[tuple[str, bytes | None]] = []
    retry: dict[str, str] = {}
    for key, value in headers or ():
        if key.startswith(RETRY_PREFIX):
            retry[key] = (value or b"").decode("utf-8", "replace")
        else:
            original.append((key, value))
    try:
        parked = Parked(
            attempt=int(retry[_ATTEMPT]),
            not_before_ms=int(retry[_NOT_BEFORE]),
            first_failure_ms=int(retry[_FIRST_FAILURE]),
            missing=tuple(item for item in retry.get(_MISSING, "").split(",") if item),
            reason=retry.get(_REASON, ""),
            topic=retry[_TOPIC],
            partition=int(retry[_PARTITION]),
            offset=int(retry[_OFFSET]),
        )
    except (KeyError, ValueError):
        return original, None
    return original, parked
