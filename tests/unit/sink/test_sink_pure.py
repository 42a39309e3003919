"""The sink's pure parts: back-off, offsets to store, rebalance filtering, reasons, metrics."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from connectors.ledger.writer import reason_for
from connectors.sink.backoff import Backoff
from connectors.sink.batch import next_offsets, without_partitions
from connectors.sink.metrics import SinkMetrics


@dataclass
class Record:
    t: str
    p: int
    o: int

    def topic(self) -> str:
        return self.t

    def partition(self) -> int:
        return self.p

    def offset(self) -> int:
        return self.o


def test_backoff_doubles_from_half_a_second_to_ten_and_resets() -> None:
    backoff = Backoff()
    assert [backoff.next_delay() for _ in range(8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    for _ in range(5000):  # a very long outage stays capped and never overflows
        assert backoff.next_delay() == 10.0
    backoff.reset()
    assert backoff.next_delay() == 0.5


def test_backoff_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="initial_s"):
        Backoff(initial_s=5, max_s=1)


def test_next_offsets_is_the_highest_offset_plus_one_per_partition() -> None:
    records = [Record("a", 0, 5), Record("a", 1, 2), Record("a", 0, 9), Record("a", 0, 7), Record("b", 0, 0)]
    assert next_offsets(records) == {("a", 0): 10, ("a", 1): 3, ("b", 0): 1}
    assert next_offsets([]) == {}


def test_revoked_partitions_drop_their_unapplied_records() -> None:
    records = [Record("a", 0, 1), Record("a", 1, 1), Record("a", 2, 1)]
    assert without_partitions(records, [("a", 1), ("b", 0)]) == [Record("a", 0, 1), Record("a", 2, 1)]


@pytest.mark.parametrize(
    ("sqlstate", "constraint", "reason"),
    [
        ("23514", "journal_entry_balanced", "UNBALANCED_ENTRY"),
        ("23505", "invoices_pkey", "DUPLICATE_KEY"),
        ("23503", "invoice_lines_invoice_id_fkey", "MISSING_REFERENCE"),
        ("23502", None, "MISSING_VALUE"),
        ("23514", "payments_amount_minor_check", "CONSTRAINT_VIOLATION"),
        ("22003", None, "BAD_DATA"),
        ("XX000", None, "REJECTED_BY_DATABASE"),
        (None, None, "REJECTED_BY_DATABASE"),
    ],
)
def test_reason_codes_of_database_rejections(
    sqlstate: str | None, constraint: str | None, reason: str
) -> None:
    assert reason_for(sqlstate, constraint) == reason


def test_each_sink_gets_metrics_of_its_own() -> None:
    first, second = SinkMetrics.create(), SinkMetrics.create()
    first.applied.labels("INVOICE").inc(3)
    first.dead_lettered.labels("UNBALANCED_ENTRY").inc()
    first.apply_seconds.observe(0.02)
    assert (
        first.registry.get_sample_value("revstream_sink_commands_applied_total", {"command_type": "INVOICE"})
        == 3
    )
    assert (
        second.registry.get_sample_value("revstream_sink_commands_applied_total", {"command_type": "INVOICE"})
        is None
    )
    assert first.registry.get_sample_value("revstream_sink_apply_seconds_count") == 1
