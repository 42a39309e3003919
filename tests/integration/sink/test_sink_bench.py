"""Smoke test of the sink benchmark harness (no timing assertions: the figures are for people)."""

from __future__ import annotations

from bench.sink_bench import make_commands, run
from connectors.ledger.rows import rows_for
from streams.serde import AvroSerde
from streams.settings import Settings


def test_generated_commands_are_valid_and_distinct() -> None:
    commands = make_commands(40)
    assert len({c.command_id for c in commands}) == 40
    assert {c.command_type.value for c in commands} == {
        "INVOICE", "JOURNAL_ENTRY", "REVENUE_SCHEDULE", "PAYMENT_APPLICATION", "SUBSCRIPTION",
    }  # fmt: skip
    assert all(rows_for(c).count() > 0 for c in commands)


def test_harness_reports_both_sides_of_the_same_rows(stack_settings: Settings, serde: AvroSerde) -> None:
    figures = run(stack_settings, n=400, batch_size=100)
    assert figures["commands"] == 400 and figures["batches"] >= 4
    assert figures["ledger_rows"] > 400
    for key in ("sink_commands_per_s", "sink_ledger_rows_per_s", "copy_ledger_rows_per_s", "ratio"):
        assert figures[key] > 0, key
