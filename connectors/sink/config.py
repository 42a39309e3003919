"""How one sink runs (:class:`SinkConfig`) and what a run did (:class:`SinkStats`)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

__all__ = ["SinkConfig", "SinkStats"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SinkConfig:
    """How one sink runs; topic names default to the catalog's."""

    group_id: str = "revstream-sink"
    topic: str | None = None
    deadletter_topic: str | None = None
    batch_size: int = 2000
    batch_linger_s: float = 0.2
    max_records: int | None = None
    until_idle_s: float | None = None
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 10.0
    # Fault injection for the crash test: SIGKILL this process right after the Nth database commit,
    # before the courtesy Kafka commit. Never set in production.
    crash_after_db_commits: int | None = None


@dataclass
class SinkStats:
    """What a sink run did."""

    consumed: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_lettered: int = 0
    batches: int = 0
    retries: int = 0
    rows_written: int = 0
    first_record_at: float | None = None
    """``time.perf_counter()`` when the first record arrived."""
    last_commit_at: float | None = None
    """``time.perf_counter()`` when the last batch was committed to the ledger."""

    @property
    def busy_seconds(self) -> float:
        """Seconds from the first record to the last commit (group join and idle time excluded)."""
        if self.first_record_at is None or self.last_commit_at is None:
            return 0.0
        return self.last_commit_at - self.first_record_at
