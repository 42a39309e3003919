"""When was a partition's log end at a given offset: kafka-lag-exporter's lookup table.

Every poll adds one point (log-end offset, time) per partition; the table keeps the newest
``limit`` points. The time at which the log end passed a group's committed offset is interpolated
between the two points around it (or extrapolated from the oldest and newest points when it is
older than the table), and the group's lag in seconds is *now* minus that time: how long ago the
first record the group has not processed was appended. Like kafka-lag-exporter, a run of points
with the same offset is kept as its two ends (the right one moving), so an idle partition does not
push the history out of the window.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from dataclasses import dataclass

__all__ = ["LookupTable", "Point"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Point:
    """The log-end offset of a partition, observed at ``time`` (Unix seconds)."""

    offset: int
    time: float


class LookupTable:
    """The (offset, time) points of one partition, oldest first."""

    def __init__(self, limit: int = 60) -> None:
        if limit < 2:
            msg = "a lookup table needs room for at least two points"
            raise ValueError(msg)
        self.points: deque[Point] = deque(maxlen=limit)

    def add(self, point: Point) -> None:
        """Add an observation; out-of-order or decreasing ones are ignored (the offsets only grow)."""
        if self.points:
            newest = self.points[-1]
            if point.time <= newest.time or point.offset < newest.offset:
                return
            flat = len(self.points) > 1 and self.points[-2].offset == newest.offset
            if point.offset == newest.offset and flat:
                self.points[-1] = point
                return
        self.points.append(point)

    def lag_seconds(self, committed: int, now: float) -> float:
        """Return how many seconds the group at ``committed`` is behind, or NaN when it cannot be told.

        0 when ``committed`` is the newest log end seen (caught up). NaN with fewer than two points
        (the first poll after start, or a new partition), and when the log end never moved in the
        table while the group is behind it (no rate to interpolate with).
        """
        if self.points and committed >= self.points[-1].offset:
            return 0.0
        if len(self.points) < 2:
            return math.nan
        left, right = self._segment(committed)
        if right.offset == left.offset:
            return math.nan
        slope = (right.time - left.time) / (right.offset - left.offset)
        produced_at = right.time - (right.offset - committed) * slope
        return max(0.0, now - produced_at)

    def _segment(self, offset: int) -> tuple[Point, Point]:
        points = list(self.points)
        for left, right in zip(reversed(points[:-1]), reversed(points[1:]), strict=True):
            if left.offset <= offset <= right.offset and right.offset > left.offset:
                return left, right
        # Older than the table: extrapolate along the widest trend line there is.
        return points[0], points[-1]
