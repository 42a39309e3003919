"""Burrow's consumer status rules, evaluated over a sliding window of a partition's commits.

A group's committed offsets are polled; the broker does not say when an offset was committed
(``OffsetFetch`` carries no commit time), so a window entry is added when the committed offset
moved since the previous poll, or when the group has an active member at the poll (a live consumer
commits as it goes, with or without progress). A group without members whose offset stands still
adds nothing: its commits stopped. Over the window of the newest entries, Burrow's rules in
Burrow's order, except that STOP is checked before "lag was 0 in the window":

1. lag now 0 → OK;
2. the committed offset went down between two entries → REWIND;
3. the time since the newest entry is longer than the window's span → STOP (commits stopped);
4. lag 0 at any entry of the window → OK;
5. every entry has the same offset → STALL (committing, no progress), judged from two entries on;
6. the lag never went down between two entries → WARN (progressing, falling behind);
7. otherwise OK.

STOP comes before rule 4 because a group with no member adds no entries: Burrow's order would keep
a consumer that caught up and then died at OK for as long as its last commit stays in the window.

One addition: ERR for a partition whose committed offset lies outside the log (below its start:
records were deleted before the group read them; above its end) or whose offsets could not be
read. A group's status is its worst partition's, ranked OK < WARN < REWIND < STALL < STOP < ERR.
"""

from __future__ import annotations

import itertools
import logging
from collections import deque
from dataclasses import dataclass
from enum import Enum

__all__ = ["CommitWindow", "Entry", "Status", "evaluate", "worst"]

logger = logging.getLogger(__name__)


class Status(Enum):
    """A partition's or group's status, valued with Burrow's status codes."""

    OK = 1
    WARN = 2
    ERR = 3
    STOP = 4
    STALL = 5
    REWIND = 6

    @property
    def rank(self) -> int:
        """Severity: how bad it is, for the worst-of over a group's partitions."""
        return _RANK[self]

    @property
    def failing(self) -> bool:
        """Whether the status calls for someone to act (ERR, STOP, STALL)."""
        return self in (Status.ERR, Status.STOP, Status.STALL)


_RANK = {Status.OK: 0, Status.WARN: 1, Status.REWIND: 2, Status.STALL: 3, Status.STOP: 4, Status.ERR: 5}


@dataclass(frozen=True)
class Entry:
    """One commit seen in the window: the offset, when it was seen (Unix seconds) and the lag then."""

    offset: int
    time: float
    lag: int


class CommitWindow:
    """The newest commits of one group on one partition (Burrow's ``intervals``, default 10)."""

    def __init__(self, size: int = 10) -> None:
        self.entries: deque[Entry] = deque(maxlen=size)

    def observe(self, offset: int, lag: int, now: float, group_active: bool) -> None:
        """Record one poll: an entry when the offset moved or a member is active (module docstring)."""
        newest = self.entries[-1] if self.entries else None
        if newest is None or offset != newest.offset or group_active:
            self.entries.append(Entry(offset, now, lag))


def evaluate(window: CommitWindow, lag: int, now: float) -> Status:
    """Return the Burrow status of one partition given its window and its current lag."""
    entries = list(window.entries)
    if lag <= 0 or not entries:
        return Status.OK
    pairs = list(itertools.pairwise(entries))
    if any(later.offset < earlier.offset for earlier, later in pairs):
        return Status.REWIND
    if now - entries[-1].time > entries[-1].time - entries[0].time:
        return Status.STOP
    if len(entries) < 2 or any(entry.lag == 0 for entry in entries):
        return Status.OK
    if all(entry.offset == entries[0].offset for entry in entries):
        return Status.STALL
    if not any(later.lag < earlier.lag for earlier, later in pairs):
        return Status.WARN
    return Status.OK


def worst(statuses: list[Status]) -> Status:
    """Return the most severe of ``statuses`` (OK for none)."""
    return max(statuses, key=lambda status: status.rank, default=Status.OK)
