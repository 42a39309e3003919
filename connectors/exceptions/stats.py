"""What the queue adds up to: open work by team and reason, ages, SLA breaches, leakage, held orders.

Pure: computed from the rows and an explicit ``now``, so ``exceptions stats``, the demo's report
and the metrics all say the same thing.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from connectors.exceptions.queue import AGE_BUCKETS, QueueRow, age_bucket, breaches_sla
from connectors.exceptions.store import Hold

__all__ = ["QueueStats", "queue_stats"]

logger = logging.getLogger(__name__)

_LEAKAGE_REASON = "USAGE_BILLING_MISMATCH"
HELD_ORDER = "order_accepted"


@dataclass
class QueueStats:
    """Counts over the queue at ``as_of``; only open rows count, except ``closed``."""

    as_of: datetime
    open: int = 0
    closed: int = 0
    by_team: Counter[str] = field(default_factory=Counter)
    by_reason: Counter[str] = field(default_factory=Counter)
    by_team_reason: Counter[tuple[str, str]] = field(default_factory=Counter)
    by_age: Counter[str] = field(default_factory=Counter)
    by_team_age: Counter[tuple[str, str]] = field(default_factory=Counter)
    sla_breaches: Counter[str] = field(default_factory=Counter)
    """Open rows past their due time, by team."""
    oldest_open_seconds: float | None = None
    leakage_minor: Counter[str] = field(default_factory=Counter)
    """Under-billing of open usage mismatches, by currency (minor units)."""
    held: Counter[str] = field(default_factory=Counter)
    """Records waiting for an approval, by event type (``order_accepted``: held orders)."""
    held_order_value_minor: Counter[str] = field(default_factory=Counter)
    """What the held orders are worth, by currency (minor units)."""

    def as_dict(self) -> dict[str, Any]:
        """Return the stats as JSON-ready data (what ``exceptions stats --json`` prints)."""
        teams: dict[str, Any] = {}
        for team in sorted(self.by_team):
            teams[team] = {
                "open": self.by_team[team],
                "sla_breaches": self.sla_breaches[team],
                "by_reason": {r: n for (t, r), n in sorted(self.by_team_reason.items()) if t == team},
                "by_age": {label: self.by_team_age[team, label] for label, _ in AGE_BUCKETS},
            }
        return {
            "as_of": self.as_of.isoformat(),
            "open": self.open,
            "closed": self.closed,
            "sla_breaches": sum(self.sla_breaches.values()),
            "oldest_open_seconds": self.oldest_open_seconds,
            "by_team": teams,
            "by_reason": dict(sorted(self.by_reason.items())),
            "by_age": {label: self.by_age[label] for label, _ in AGE_BUCKETS},
            "leakage_minor": dict(sorted(self.leakage_minor.items())),
            "held": dict(sorted(self.held.items())),
            "held_orders": self.held[HELD_ORDER],
            "held_order_value_minor": dict(sorted(self.held_order_value_minor.items())),
        }


def queue_stats(rows: Iterable[QueueRow], now: datetime, holds: Iterable[Hold] = ()) -> QueueStats:
    """Return the stats of ``rows`` and of the records still ``holds`` holds, at ``now``."""
    stats = QueueStats(as_of=now)
    for hold in holds:
        if hold.released_at is not None:
            continue
        stats.held[hold.event_type] += 1
        if hold.event_type == HELD_ORDER and hold.amount_minor is not None and hold.currency:
            stats.held_order_value_minor[hold.currency] += hold.amount_minor
    for row in rows:
        if not row.is_open:
            stats.closed += 1
            continue
        bucket = age_bucket(row, now)
        stats.open += 1
        stats.by_team[row.team] += 1
        stats.by_reason[row.reason_code] += 1
        stats.by_team_reason[row.team, row.reason_code] += 1
        stats.by_age[bucket] += 1
        stats.by_team_age[row.team, bucket] += 1
        if breaches_sla(row, now):
            stats.sla_breaches[row.team] += 1
        age = (now - row.first_seen).total_seconds()
        stats.oldest_open_seconds = max(stats.oldest_open_seconds or 0.0, age)
        if row.reason_code == _LEAKAGE_REASON and row.amount_minor and row.amount_minor > 0 and row.currency:
            stats.leakage_minor[row.currency] += row.amount_minor
    return stats
