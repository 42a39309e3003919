"""Deterministic identifiers: the same inputs give the same id in every process and on every replay.

Commands, journal entries, schedules and business exceptions are identified by what caused them
(source event id, what was derived, its position), never by a clock or a random number. A replay
after a crash therefore produces byte-identical records, and the sink or the exceptions queue
applies each of them exactly once.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = ["REVSTREAM_ID_NAMESPACE", "derive_id", "epoch_millis"]

logger = logging.getLogger(__name__)

REVSTREAM_ID_NAMESPACE: Final = uuid.UUID("6f1d0c1e-5b2a-5d0e-9c4f-726576737472")
"""The UUIDv5 namespace of every id revstream derives (a constant: changing it changes every id)."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SEPARATOR: Final = "\x1f"  # ASCII unit separator: cannot occur in ids, so parts never run together


def derive_id(kind: str, *parts: str | int) -> str:
    """Return a UUIDv5 (as its 36-character string) derived from ``kind`` and ``parts``.

    ``kind`` names what is identified (``"command"``, ``"exception"``, ...), so that two kinds of
    record derived from the same event never share an id.
    """
    name = _SEPARATOR.join([kind, *(str(part) for part in parts)])
    return str(uuid.uuid5(REVSTREAM_ID_NAMESPACE, name))


def epoch_millis(moment: datetime) -> int:
    """Return ``moment`` (timezone-aware) as integer milliseconds since the Unix epoch, exactly.

    Used where an instant orders versions (e.g. a subscription's ``version``): integer arithmetic,
    so no float rounding can make two replays disagree.
    """
    return (moment - _EPOCH) // timedelta(milliseconds=1)
