"""The demo report's lag lines and the CLI's table, from a snapshot."""

from __future__ import annotations

import math

import click

from revstream.cli.lag import render_table
from revstream.demo.report import lag_lines
from streams.lag.model import GroupLag, PartitionLag, Snapshot
from streams.lag.status import Status

GROUPS = {"worker": "ns-processors", "sink": "ns-sink"}


def snapshot(*groups: GroupLag) -> Snapshot:
    return Snapshot("revstream", 0.0, 0.01, groups)


def partition(lag: int, seconds: float, status: Status = Status.OK) -> PartitionLag:
    return PartitionLag("ns.erp.commands", 0, 100 - lag, 100, 0, lag, seconds, status)


def test_drained_groups_say_so() -> None:
    lines = lag_lines(
        snapshot(
            GroupLag("ns-processors", "STABLE", 1, (partition(0, 0.0),)),
            GroupLag("ns-sink", "STABLE", 1, (partition(0, 0.0),)),
        ),
        GROUPS,
    )
    assert [line[35:] for line in lines] == [
        "0 records, 0.0 s behind over 1 partitions: drained (OK, ns-processors)",
        "0 records, 0.0 s behind over 1 partitions: drained (OK, ns-sink)",
    ]
    assert lines[0].startswith("  consumer lag, worker group ")


def test_groups_behind_or_missing_say_not_drained_in_words() -> None:
    lines = lag_lines(
        snapshot(GroupLag("ns-processors", "EMPTY", 0, (partition(1234, 12.5, Status.STOP),))), GROUPS
    )
    assert lines[0].endswith(
        "1,234 records, 12.5 s behind over 1 partitions: not drained (STOP, ns-processors)"
    )
    assert lines[1].endswith("not measured: ns-sink has no committed offsets (not drained)")
    unknown = lag_lines(
        snapshot(GroupLag("ns-sink", "STABLE", 1, (partition(5, math.nan),))), {"sink": "ns-sink"}
    )
    assert "5 records, unknown behind" in unknown[0]


def test_the_table_has_a_line_per_group_and_per_partition() -> None:
    styled = render_table(snapshot(GroupLag("ns-sink", "STABLE", 2, (partition(5, math.nan, Status.WARN),))))
    assert "\x1b[33m" in styled[2], "WARN rows are yellow"
    table = [click.unstyle(line) for line in styled]
    assert table[0].split() == ["GROUP", "/", "TOPIC", "PART", "COMMITTED", "END", "LAG", "SECONDS", "STATUS"]
    assert "ns-sink" in table[1] and "WARN" in table[1] and "stable, 2 member(s)" in table[1]
    assert table[2].split()[-6:] == ["0", "95", "100", "5", "n/a", "WARN"]
    assert render_table(snapshot()) == ["no consumer groups match"]
