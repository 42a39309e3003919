"""What one poll of the lag exporter measured: per partition, per group, and as JSON for scripts."""

from __future__ import annotations

import logging
import math
import re
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from streams.errors import SettingsError
from streams.lag.status import Status, worst

__all__ = ["GroupFilter", "GroupLag", "PartitionLag", "Snapshot"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GroupFilter:
    """Which consumer groups to measure: those matching ``allow`` and not matching ``deny`` (full match)."""

    allow: str = ".*"
    deny: str | None = None

    def __post_init__(self) -> None:
        """Fail at start on a pattern that is not a regular expression.

        Raises:
            SettingsError: naming the pattern and what is wrong with it.
        """
        for pattern in (self.allow, self.deny):
            if pattern is not None:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise SettingsError(
                        f"group pattern {pattern!r} is not a regular expression ({exc})"
                    ) from exc

    def wants(self, group: str) -> bool:
        """Whether ``group`` is measured."""
        if re.fullmatch(self.allow, group) is None:
            return False
        return self.deny is None or re.fullmatch(self.deny, group) is None


@dataclass(frozen=True)
class PartitionLag:
    """One partition a group consumes, as of one poll."""

    topic: str
    partition: int
    committed: int
    """The group's committed offset: the next record it will read."""
    end: int
    """The log-end offset (high watermark): the offset the next record appended will get."""
    earliest: int
    lag: int
    """Records appended that the group has not committed: ``end - committed``."""
    lag_seconds: float
    """How long ago the first unprocessed record was appended (NaN: not known yet, see table.py)."""
    status: Status


@dataclass(frozen=True)
class GroupLag:
    """One consumer group, as of one poll."""

    group: str
    state: str
    members: int
    partitions: tuple[PartitionLag, ...]
    error: str | None = None

    @property
    def status(self) -> Status:
        """The worst of the partitions' statuses (ERR when the group's offsets could not be read)."""
        if self.error is not None:
            return Status.ERR
        return worst([p.status for p in self.partitions])

    @property
    def sum_lag(self) -> int:
        """Records behind over all partitions."""
        return sum(p.lag for p in self.partitions)

    @property
    def max_lag(self) -> int:
        """Records behind on the partition furthest behind."""
        return max((p.lag for p in self.partitions), default=0)

    @property
    def max_lag_seconds(self) -> float:
        """Seconds behind on the partition furthest behind in time (NaN when none is known)."""
        known = [p.lag_seconds for p in self.partitions if not math.isnan(p.lag_seconds)]
        return max(known) if known else (0.0 if self.max_lag == 0 else math.nan)

    def topic_sum_lag(self) -> dict[str, int]:
        """Records behind per topic."""
        sums: dict[str, int] = defaultdict(int)
        for p in self.partitions:
            sums[p.topic] += p.lag
        return dict(sums)


@dataclass(frozen=True)
class Snapshot:
    """Everything one poll measured."""

    cluster: str
    taken_at: float
    poll_seconds: float
    groups: tuple[GroupLag, ...]
    offsets: dict[tuple[str, int], tuple[int, int]] = field(default_factory=dict)
    """(topic, partition) → (earliest, latest) of every partition of a consumed topic."""

    def group(self, name: str) -> GroupLag | None:
        """The group named ``name``, if measured."""
        return next((g for g in self.groups if g.group == name), None)

    def failing(self) -> list[GroupLag]:
        """Groups whose status is ERR, STOP or STALL."""
        return [g for g in self.groups if g.status.failing]

    def to_json(self) -> dict[str, Any]:
        """Return the snapshot as plain JSON types (NaN seconds become null)."""
        return {
            "cluster": self.cluster,
            "taken_at": self.taken_at,
            "poll_seconds": round(self.poll_seconds, 4),
            "groups": [group_json(g) for g in self.groups],
        }


def _seconds(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


def group_json(group: GroupLag) -> dict[str, Any]:
    """One group as plain JSON types."""
    return {
        "group": group.group,
        "state": group.state,
        "members": group.members,
        "status": group.status.name,
        "error": group.error,
        "sum_lag": group.sum_lag,
        "max_lag": group.max_lag,
        "max_lag_seconds": _seconds(group.max_lag_seconds),
        "partitions": [
            {
                "topic": p.topic,
                "partition": p.partition,
                "committed": p.committed,
                "end": p.end,
                "lag": p.lag,
                "lag_seconds": _seconds(p.lag_seconds),
                "status": p.status.name,
            }
            for p in group.partitions
        ],
    }
