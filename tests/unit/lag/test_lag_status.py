"""Burrow's status rules over a window of commits."""

from __future__ import annotations

import pytest

from streams.errors import SettingsError
from streams.lag.model import GroupFilter, GroupLag, PartitionLag
from streams.lag.status import CommitWindow, Status, evaluate, worst


def window(*entries: tuple[int, float, int], active: bool = True, size: int = 10) -> CommitWindow:
    built = CommitWindow(size)
    for offset, time, lag in entries:
        built.observe(offset, lag, time, active)
    return built


def test_zero_lag_now_or_anywhere_in_the_window_is_ok() -> None:
    assert evaluate(window((10, 1, 5), (10, 2, 5)), lag=0, now=3) is Status.OK
    assert evaluate(window((10, 1, 0), (10, 2, 5)), lag=5, now=3) is Status.OK


def test_an_offset_going_back_is_a_rewind() -> None:
    assert evaluate(window((10, 1, 5), (20, 2, 5), (15, 3, 9)), lag=9, now=3) is Status.REWIND


def test_commits_that_stopped_for_longer_than_the_window_span_are_a_stop() -> None:
    stopped = window((10, 1, 8), (20, 2, 5), active=False)
    assert evaluate(stopped, lag=5, now=2.5) is Status.OK
    assert evaluate(stopped, lag=5, now=3.5) is Status.STOP


def test_an_inactive_group_adds_no_entry_when_its_offset_stands_still() -> None:
    stopped = window((10, 1, 5), (10, 2, 5), (10, 3, 5), active=False)
    assert len(stopped.entries) == 1


def test_commits_without_progress_are_a_stall() -> None:
    assert evaluate(window((10, 1, 5), (10, 2, 6), (10, 3, 7)), lag=7, now=3) is Status.STALL


def test_progress_with_lag_never_going_down_is_a_warning() -> None:
    assert evaluate(window((10, 1, 5), (20, 2, 5), (30, 3, 8)), lag=8, now=3) is Status.WARN


def test_progress_that_reduces_lag_is_ok() -> None:
    assert evaluate(window((10, 1, 50), (40, 2, 30), (70, 3, 31)), lag=31, now=3) is Status.OK


def test_one_entry_is_not_enough_to_call_a_stall() -> None:
    assert evaluate(window((10, 1, 5)), lag=5, now=1) is Status.OK


def test_the_window_slides() -> None:
    slid = window((10, 1, 0), (10, 2, 5), (10, 3, 5), (10, 4, 5), size=3)
    assert evaluate(slid, lag=5, now=4) is Status.STALL


def test_a_group_is_as_bad_as_its_worst_partition_and_err_when_unreadable() -> None:
    assert worst([Status.OK, Status.STALL, Status.WARN]) is Status.STALL
    assert worst([Status.STOP, Status.ERR]) is Status.ERR
    assert worst([]) is Status.OK
    p = PartitionLag("t", 0, 5, 10, 0, 5, 1.0, Status.WARN)
    assert GroupLag("g", "STABLE", 1, (p,)).status is Status.WARN
    assert GroupLag("g", "STABLE", 1, (p,), error="timed out").status is Status.ERR
    assert {s.name for s in Status if s.failing} == {"ERR", "STOP", "STALL"}


def test_group_filter_matches_whole_ids() -> None:
    only = GroupFilter(allow=r"demo-.*", deny=r".*-sink")
    assert only.wants("demo-1-processors")
    assert not only.wants("demo-1-sink")
    assert not only.wants("x-demo-1")


def test_a_consumer_that_caught_up_and_then_left_goes_to_stop_when_records_arrive() -> None:
    left = window((10, 1, 0), active=False)
    assert evaluate(left, lag=0, now=5) is Status.OK
    assert evaluate(left, lag=7, now=5) is Status.STOP


def test_a_bad_group_pattern_fails_with_its_name() -> None:
    with pytest.raises(SettingsError, match=r"'\(' is not a regular expression"):
        GroupFilter(allow="(")
