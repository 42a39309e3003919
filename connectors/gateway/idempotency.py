"""Idempotency on ``event_id`` inside one gateway process.

A producer that did not hear the gateway's answer sends the same event again. The gateway keeps the
fingerprint of every event id it accepted (or is publishing) in a bounded, least-recently-used
cache: the same id with the same content is answered 202 again without publishing it twice (a
retry that arrives while the first copy is still in flight waits for that copy's outcome); the same
id with other content is a conflict (409). An id whose publication failed is forgotten, so the
retry publishes it.

The cache is per process and bounded: a retry reaching another gateway process, or arriving after
a restart or after its entry was evicted, is published again, and the pipeline's own dedupe on
``event_id`` drops it downstream (or dead-letters it as ``DUPLICATE_ID_CONFLICT`` when the content
differs). The gateway narrows the window for duplicates; the pipeline closes it.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any, Literal

from schemas.models import EventEnvelope

__all__ = ["Claim", "IdempotencyCache", "fingerprint"]

logger = logging.getLogger(__name__)


def fingerprint(event: EventEnvelope) -> str:
    """Return a digest of the event's content (after validation: key order and spacing do not count)."""
    return hashlib.sha256(event.model_dump_json().encode()).hexdigest()


@dataclass
class _Entry:
    fingerprint: str
    pending: Future[Any] | None


@dataclass(frozen=True)
class Claim:
    """What the cache says about an event id: publish it, it is a repeat, or it conflicts.

    ``pending`` is the future of an identical event still being published, for a repeat to wait on.
    """

    outcome: Literal["new", "repeat", "conflict"]
    pending: Future[Any] | None = None


class IdempotencyCache:
    """Fingerprints of accepted and in-flight event ids, at most ``size`` of them (LRU)."""

    def __init__(self, size: int) -> None:
        """Remember at most ``size`` event ids (0 turns the cache off)."""
        self.size = size
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def claim(self, event_id: str, digest: str) -> Claim:
        """Say what to do with ``event_id`` of content ``digest``; a new id is recorded as pending."""
        entry = self._entries.get(event_id)
        if entry is None:
            if self.size:
                self._entries[event_id] = _Entry(digest, None)
                self._entries.move_to_end(event_id)
                while len(self._entries) > self.size:
                    self._entries.popitem(last=False)
            return Claim("new")
        self._entries.move_to_end(event_id)
        if entry.fingerprint != digest:
            return Claim("conflict")
        return Claim("repeat", entry.pending)

    def publishing(self, event_id: str, future: Future[Any]) -> None:
        """Record the future of the copy being published, for identical retries to wait on."""
        entry = self._entries.get(event_id)
        if entry is not None:
            entry.pending = future

    def accepted(self, event_id: str) -> None:
        """Record that the broker acknowledged ``event_id``."""
        entry = self._entries.get(event_id)
        if entry is not None:
            entry.pending = None

    def failed(self, event_id: str) -> None:
        """Forget ``event_id``: its publication failed, so a retry must publish it."""
        self._entries.pop(event_id, None)
