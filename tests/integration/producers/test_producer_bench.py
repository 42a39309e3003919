"""The producer benchmark's harness runs end to end (tiny n; no timing is asserted)."""

from __future__ import annotations

from bench.producer_bench import make_events, run
from streams.settings import Settings


def test_harness_reports_rates_and_ratios(stack_settings: Settings) -> None:
    result = run(stack_settings, n=200, rounds=1)
    assert result["n"] == 200
    for name in ("raw_records_per_s", "sdk_send_records_per_s", "sdk_publish_records_per_s"):
        assert result[name] > 0
    # The ratio is of the unrounded rates; the rounded ones reproduce it closely.
    assert abs(result["ratio"] - result["sdk_send_records_per_s"] / result["raw_records_per_s"]) < 0.01
    assert result["target"] == 0.8


def test_events_are_distinct_and_spread_over_keys() -> None:
    events = make_events(500, customers=50)
    assert len({event.event_id for event in events}) == 500
    assert len({event.customer_id for event in events}) == 50
