"""The exporter's numbers against a group whose commits the test controls, on the real broker."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from collections.abc import Callable

from streams.lag.collector import LagCollector
from streams.lag.model import GroupLag, Snapshot
from streams.lag.status import Status
from streams.settings import Settings
from tests.conftest import wait_for
from tests.integration.lag.conftest import Member, produce_batched


def only(snapshot: Snapshot, group: str) -> GroupLag:
    found = snapshot.group(group)
    assert found is not None, f"{group} not measured: {[g.group for g in snapshot.groups]}"
    return found


def by_partition(group: GroupLag) -> dict[int, tuple[int, int, int]]:
    return {p.partition: (p.committed, p.end, p.lag) for p in group.partitions}


def until_status(
    collector: LagCollector, group: str, wanted: Status, keep_alive: Callable[[], None]
) -> GroupLag:
    seen: list[str] = []

    def reached() -> bool:
        keep_alive()
        measured = only(collector.poll(), group)
        seen.append(measured.status.name)
        return measured.status is wanted

    wait_for(reached, 30, f"{group} to be {wanted.name} (saw {seen[-5:]})")
    return only(collector.poll(), group)


def test_lag_is_exact_per_partition_and_statuses_follow_the_consumer(
    stack_settings: Settings,
    topic_factory: Callable[..., str],
    unique: Callable[[str], str],
    member_factory: Callable[[str, str], Member],
    collector_for: Callable[..., LagCollector],
) -> None:
    topic, group = topic_factory("lag", partitions=2), unique("lag-group")
    started = time.time()
    produce_batched(stack_settings, topic, {0: 30, 1: 20})
    member = member_factory(group, topic)
    member.commit({0: 12, 1: 5})
    collector = collector_for(group)

    first = only(collector.poll(), group)
    assert by_partition(first) == {0: (12, 30, 18), 1: (5, 20, 15)}
    assert first.sum_lag == 33 and first.max_lag == 18
    assert all(math.isnan(p.lag_seconds) for p in first.partitions), "one point cannot give seconds"

    produce_batched(stack_settings, topic, {0: 10})
    wait_for(lambda: by_partition(only(collector.poll(), group))[0] == (12, 40, 28), 20, "the new end")
    behind = only(collector.poll(), group)
    seconds = {p.partition: p.lag_seconds for p in behind.partitions}
    assert 0 < seconds[0] <= time.time() - started + 1, seconds

    # Alive, committing the same offsets while behind: STALL.
    stalled = until_status(collector, group, Status.STALL, lambda: member.commit({0: 12, 1: 5}))
    assert stalled.state == "STABLE" and stalled.sum_lag == 43

    # Catches up: OK at once, lag 0 records and 0 seconds.
    member.commit({0: 40, 1: 20})
    caught_up = only(collector.poll(), group)
    assert caught_up.status is Status.OK
    assert by_partition(caught_up) == {0: (40, 40, 0), 1: (20, 20, 0)}
    assert caught_up.max_lag_seconds == 0.0

    # New records, one commit of progress, then the consumer goes away: STOP.
    produce_batched(stack_settings, topic, {1: 5})
    member.commit({1: 22})
    member.close()
    stopped = until_status(collector, group, Status.STOP, lambda: None)
    assert by_partition(stopped) == {0: (40, 40, 0), 1: (22, 25, 3)}
    assert [p.status for p in stopped.partitions] == [Status.OK, Status.STOP]


def test_cli_once_json_and_exit_codes(
    stack_settings: Settings,
    topic_factory: Callable[..., str],
    unique: Callable[[str], str],
    member_factory: Callable[[str, str], Member],
    run_cli: Callable[..., subprocess.CompletedProcess[str]],
) -> None:
    topic, group = topic_factory("lagcli", partitions=1), unique("lagcli-group")
    produce_batched(stack_settings, topic, {0: 8})
    member = member_factory(group, topic)
    member.commit({0: 8})
    ok = run_cli("lag", "--once", "--group", group, "--interval", "0.2")
    assert ok.returncode == 0, ok.stderr
    assert group in ok.stdout and "OK" in ok.stdout

    produce_batched(stack_settings, topic, {0: 4})
    member.commit({0: 9})
    member.close()
    stopped = run_cli("lag", "--json", "--group", group, "--interval", "0.3")
    assert stopped.returncode == 1, stopped.stderr
    body = json.loads(stopped.stdout)
    [measured] = body["groups"]
    assert measured["group"] == group and measured["status"] == "STOP"
    assert measured["partitions"] == [
        {"topic": topic, "partition": 0, "committed": 9, "end": 12, "lag": 3,
         "lag_seconds": measured["partitions"][0]["lag_seconds"], "status": "STOP"}
    ]  # fmt: skip

    bad = run_cli("lag", "--once", "--group", "(")
    assert bad.returncode != 0
    assert bad.stderr.count("\n") == 1 and "regular expression" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_falling_behind_is_warn_and_going_back_is_rewind(
    stack_settings: Settings,
    topic_factory: Callable[..., str],
    unique: Callable[[str], str],
    member_factory: Callable[[str, str], Member],
    collector_for: Callable[..., LagCollector],
) -> None:
    topic, group = topic_factory("lagwarn", partitions=1), unique("lagwarn-group")
    produce_batched(stack_settings, topic, {0: 10})
    member = member_factory(group, topic)
    collector = collector_for(group)
    seen = []
    for committed in (2, 4, 6):
        member.commit({0: committed})
        produce_batched(stack_settings, topic, {0: 10})
        seen.append(only(collector.poll(), group))
    assert [g.sum_lag for g in seen] == [18, 26, 34]
    assert seen[-1].status is Status.WARN

    member.commit({0: 3})
    rewound = only(collector.poll(), group)
    assert rewound.status is Status.REWIND and rewound.sum_lag == 37


def test_the_live_table_redraws_until_interrupted(
    stack_settings: Settings,
    topic_factory: Callable[..., str],
    unique: Callable[[str], str],
    member_factory: Callable[[str, str], Member],
    cli_env: dict[str, str],
) -> None:
    topic, group = topic_factory("lagtop", partitions=1), unique("lagtop-group")
    produce_batched(stack_settings, topic, {0: 5})
    member_factory(group, topic).commit({0: 5})
    live = subprocess.Popen(
        [sys.executable, "-m", "revstream", "lag", "--group", group, "--interval", "0.2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        seen = ""
        assert live.stdout is not None
        while time.monotonic() < deadline and seen.count("revstream lag  ") < 3:
            seen += live.stdout.readline()
        assert seen.count("revstream lag  ") >= 3, seen
        assert f"{group} " in seen and "OK" in seen
    finally:
        live.send_signal(signal.SIGINT)
        _, err = live.communicate(timeout=30)
    assert live.returncode == 130
    assert err.strip() == "aborted"  # the CLI's one line for Ctrl-C
