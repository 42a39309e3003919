"""When the committed offset of a partition may advance: only over acknowledgements from its start."""

from __future__ import annotations

from typing import NamedTuple

from processors.engine.consumer import acknowledged_from


class Interval(NamedTuple):
    """An offset range as Faust keeps its gaps (``intervaltree.Interval``: begin, end exclusive)."""

    begin: int
    end: int


def test_a_record_waiting_at_the_committed_offset_holds_the_commit():
    # Faust itself would commit 13 here: the run 11-12 begins one past the committed offset.
    assert not acknowledged_from(10, [11, 12], [])


def test_acknowledgements_from_the_committed_offset_advance_it():
    assert acknowledged_from(10, [10, 11, 12], [])


def test_nothing_committed_yet_counts_from_the_first_offset_read():
    assert not acknowledged_from(0, [5, 6], [])
    assert acknowledged_from(5, [5, 6], [])


def test_offsets_that_hold_no_record_count_as_acknowledged():
    assert acknowledged_from(10, [14], [Interval(10, 14)])
    assert not acknowledged_from(10, [14], [Interval(11, 14)])


def test_a_partition_with_no_known_start_never_advances():
    assert not acknowledged_from(None, [3, 4], [])
