"""The lookup table's lag in seconds, kafka-lag-exporter style."""

from __future__ import annotations

import math

import pytest

from streams.lag.table import LookupTable, Point


def table(*points: tuple[int, float], limit: int = 60) -> LookupTable:
    built = LookupTable(limit)
    for offset, time in points:
        built.add(Point(offset, time))
    return built


def test_interpolates_between_the_two_points_around_the_committed_offset() -> None:
    # End went 100 -> 200 between t=10 and t=20: offset 150 was appended at t=15.
    assert table((100, 10.0), (200, 20.0)).lag_seconds(150, now=20.0) == pytest.approx(5.0)


def test_picks_the_segment_that_holds_the_offset() -> None:
    lookup = table((0, 0.0), (100, 10.0), (110, 20.0), (310, 30.0))
    assert lookup.lag_seconds(105, now=30.0) == pytest.approx(15.0)
    assert lookup.lag_seconds(210, now=30.0) == pytest.approx(5.0)


def test_extrapolates_when_the_offset_is_older_than_the_table() -> None:
    # 10 records/s over the table: offset 50 is 5 s before the oldest point.
    assert table((100, 10.0), (200, 20.0)).lag_seconds(50, now=20.0) == pytest.approx(15.0)


def test_caught_up_is_zero_even_with_one_point() -> None:
    assert table((100, 10.0)).lag_seconds(100, now=50.0) == 0.0


def test_cannot_estimate_with_one_point_or_without_any_rate() -> None:
    assert math.isnan(table((100, 10.0)).lag_seconds(50, now=20.0))
    assert math.isnan(table((100, 10.0), (100, 20.0)).lag_seconds(50, now=20.0))


def test_flat_runs_keep_their_two_ends_and_out_of_order_points_are_ignored() -> None:
    lookup = table((100, 1.0), (200, 2.0), (200, 3.0), (200, 4.0), (200, 5.0), (150, 6.0), (300, 4.5))
    assert [(p.offset, p.time) for p in lookup.points] == [(100, 1.0), (200, 2.0), (200, 5.0)]


def test_keeps_only_the_newest_points() -> None:
    lookup = table(*[(i * 10, float(i)) for i in range(10)], limit=3)
    assert [p.offset for p in lookup.points] == [70, 80, 90]


def test_a_table_needs_two_points_of_room() -> None:
    with pytest.raises(ValueError, match="two points"):
        LookupTable(1)
