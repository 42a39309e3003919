"""Capped exponential back-off: how long the sink waits before trying an unreachable service again."""

from __future__ import annotations

import logging
from dataclasses import dataclass

__all__ = ["Backoff"]

logger = logging.getLogger(__name__)


@dataclass
class Backoff:
    """Delays ``initial_s``, doubling each attempt, never above ``max_s``; :meth:`reset` after a success.

    No jitter: one sink waits for one database, so there is no thundering herd to spread out, and a
    predictable schedule is easier to read in the logs.
    """

    initial_s: float = 0.5
    max_s: float = 10.0
    attempts: int = 0

    def __post_init__(self) -> None:
        if self.initial_s <= 0 or self.max_s < self.initial_s:
            raise ValueError("back-off needs 0 < initial_s <= max_s")

    def next_delay(self) -> float:
        """Return the delay before the next attempt and count the attempt."""
        # min() before the power would be cleaner, but 2**attempts overflows only after 1024
        # attempts; capping the exponent keeps it bounded regardless of how long an outage lasts.
        delay = min(self.max_s, self.initial_s * 2 ** min(self.attempts, 64))
        self.attempts += 1
        return delay

    def reset(self) -> None:
        """Start again from ``initial_s`` (the service answered)."""
        self.attempts = 0
