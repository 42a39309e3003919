"""The sink as an operator runs it: metrics over HTTP, graceful SIGTERM, and a rebalance mid-stream."""

from __future__ import annotations

import re
import signal
import threading
import urllib.request

from connectors.ledger.rows import COLUMNS
from streams.serde import AvroSerde
from streams.settings import Settings
from streams.stack import free_port
from tests.conftest import wait_for
from tests.integration.sink.helpers import (
    count,
    make_sink,
    new_ledger,
    produce_commands,
    run_sink,
    sink_process,
    snapshot,
)
from tests.unit.ledger import commands_factory as f


def _scrape(port: int) -> str:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            return str(response.read().decode())
    except OSError:
        return ""


def test_metrics_endpoint_and_graceful_sigterm(
    stack_settings: Settings, serde: AvroSerde, topic_factory, unique, tmp_path
) -> None:
    topic = topic_factory("erp", partitions=2)
    produce_commands(stack_settings, serde, topic, f.mixed_commands(500, prefix="term"))
    ledger = new_ledger(stack_settings)
    port = free_port()
    process = sink_process(
        stack_settings, ledger, topic, unique("g"), "--metrics-port", str(port), cwd=str(tmp_path)
    )
    try:
        wait_for(lambda: count(ledger, "applied_commands") == 500, 60, "the sink to apply the backlog")
        wait_for(lambda: "revstream_sink_commands_applied_total" in _scrape(port), 10, "the metrics endpoint")
        metrics = _scrape(port)
        applied = sum(
            float(value)
            for value in re.findall(r"^revstream_sink_commands_applied_total\{[^}]*\} (\S+)$", metrics, re.M)
        )
        assert applied == 500
        assert re.search(r"^revstream_sink_db_up 1\.0$", metrics, re.M)
        assert re.search(r'^revstream_sink_committed_offset\{[^}]*partition="\d"[^}]*\} [1-9]', metrics, re.M)
        assert "revstream_sink_apply_seconds_bucket" in metrics
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert "500 read, 500 applied, 0 duplicates, 0 dead-lettered" in stderr


def test_a_rebalance_mid_stream_applies_every_command_once(
    stack_settings: Settings, serde: AvroSerde, topic_factory, unique
) -> None:
    topic = topic_factory("erp", partitions=3)
    total = 15_000
    commands = f.mixed_commands(total, prefix="rebalance")
    head, tail = commands[:5_000], commands[5_000:]
    produce_commands(stack_settings, serde, topic, head)
    ledger = new_ledger(stack_settings)
    group = unique("g")
    first = make_sink(stack_settings, ledger, topic, group, serde, batch_size=200, until_idle_s=None)
    second = make_sink(stack_settings, ledger, topic, group, serde, batch_size=200, until_idle_s=None)
    threads = [threading.Thread(target=s.run, name=f"sink-{i}") for i, s in enumerate((first, second))]
    threads[0].start()
    try:
        wait_for(lambda: count(ledger, "applied_commands") >= 1_000, 60, "the first sink to be under way")
        threads[1].start()  # joins the group: partitions move between the two mid-stream
        # The first sink would drain any backlog before the join completes; feed the rest in small
        # chunks, each once the previous one is applied, until the second sink is consuming.
        produced = len(head)
        for start in range(0, len(tail), 100):
            chunk = tail[start : start + 100]
            produce_commands(stack_settings, serde, topic, chunk)
            produced += len(chunk)
            if second.stats.consumed == 0:

                def caught_up(done: int = produced) -> bool:
                    return second.stats.consumed > 0 or count(ledger, "applied_commands") >= done

                wait_for(caught_up, 60, "the sinks to keep up with the paced commands")
        wait_for(lambda: second.stats.consumed > 0, 60, "the second sink to get partitions")
        first.stop()  # leaves the group: the second sink takes every partition
        threads[0].join(30)
        wait_for(lambda: count(ledger, "applied_commands") == total, 120, "the backlog to be applied")
    finally:
        first.stop()
        second.stop()
        for thread in threads:
            if thread.is_alive() or thread.ident is not None:
                thread.join(30)
    assert first.stats.applied > 0 and second.stats.applied > 0
    assert first.stats.applied + second.stats.applied == total
    assert first.stats.dead_lettered == second.stats.dead_lettered == 0
    undisturbed = new_ledger(stack_settings)
    run_sink(stack_settings, undisturbed, topic, unique("reference"), serde)
    assert snapshot(ledger, tuple(COLUMNS)) == snapshot(undisturbed, tuple(COLUMNS))
