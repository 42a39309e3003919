"""Deterministic identifiers: the same inputs give the same id in every process and on every replay.

Commands, journal entries, schedules and business exceptions are identified by what caused them
(source event id, what was derived, its position), never by a clock or a random number. A replay
after a crash therefore produces byte-identical records, and the sink or the exceptions queue
applies each of them exactly once.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from datetime import UTC, datetime, timedelta
from typing import Final

__all__ = ["REVSTREAM_ID_NAMESPACE", "derive_id", "epoch_millis"]

logger = logging.getLogger(__name__)

REVSTREAM_ID_NAMESPACE: Final = uuid.UUID("6f1d0c1e-5b2a-5d0e-9c4f-726576737472")
"""The UUIDv5 namespace of every id revstream derives (a constant: changing it changes every id)."""

_NAMESPACE_BYTES: Final = REVSTREAM_ID_NAMESPACE.bytes
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_SEPARATOR: Final = "\x1f"  # ASCII unit separator: cannot occur in ids, so parts never run together


def derive_id(kind: str, *parts: str | int) -> str:
    """Return a UUIDv5 (as its 36-character string) derived from ``kind`` and ``parts``.

    ``kind`` names what is identified (``"command"``, ``"exception"``, ...), so that two kinds of
    record derived from the same event never share an id.
    """
    name = _SEPARATOR.join([kind, *(str(part) for part in parts)])
    # uuid.uuid5 spelled out (RFC 4122 §4.3): the same 36 characters without building UUID
    # objects, which cost more than the hashing on the worker's hot path (several ids per event).
    # SHA-1 is what UUIDv5 is defined with; it names records here, it secures nothing.
    sha1 = hashlib.sha1(_NAMESPACE_BYTES + name.encode("utf-8"), usedforsecurity=False)
    digest = bytearray(sha1.digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def epoch_millis(moment: datetime) -> int:
    """Return ``moment`` (timezone-aware) as integer milliseconds since the Unix epoch, exactly.

    Used where an instant orders versions (e.g. a subscription's ``version``): integer arithmetic,
    so no float rounding can make two replays disagree.
    """
    return (moment - _EPOCH) // timedelta(milliseconds=1)
