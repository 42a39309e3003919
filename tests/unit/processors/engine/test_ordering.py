"""Which fetched records go first: master data, then timestamp order per partition number."""

from __future__ import annotations

from dataclasses import dataclass

from processors.engine.ordering import InputBuffer
from tests.unit.processors.engine.fakes import TP


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    timestamp: float


INVOICES = TP("invoices", 0)
USAGE = TP("usage", 0)
OTHER = TP("usage", 1)


def records(tp: TP, *times: float) -> list[Record]:
    return [Record(tp.topic, tp.partition, t) for t in times]


def stamps(released: list[Record]) -> list[tuple[str, float]]:
    return [(r.topic, r.timestamp) for r in released]


def test_nothing_is_held_when_no_input_has_unread_records():
    buffer = InputBuffer()
    buffer.add(INVOICES, records(INVOICES, 5, 9))
    buffer.add(USAGE, records(USAGE, 1, 7))
    assert stamps(buffer.release({}, master_lagging=False, now=0)) == [
        ("usage", 1),
        ("invoices", 5),
        ("usage", 7),
        ("invoices", 9),
    ]
    assert len(buffer) == 0


def test_a_lagging_input_holds_back_later_records_of_its_partition_number_only():
    buffer = InputBuffer()
    buffer.add(INVOICES, records(INVOICES, 5, 30))
    buffer.add(USAGE, records(USAGE, 1, 10))
    buffer.add(OTHER, records(OTHER, 50))

    first = buffer.release({USAGE: 5000}, master_lagging=False, now=0)

    # Usage up to 10 is fetched and more is coming: the invoice at 30 waits; partition 1 is free.
    assert stamps(first) == [("usage", 1), ("invoices", 5), ("usage", 10), ("usage", 50)]
    buffer.add(USAGE, records(USAGE, 20, 40))
    assert stamps(buffer.release({}, master_lagging=False, now=0)) == [
        ("usage", 20),
        ("invoices", 30),
        ("usage", 40),
    ]


def test_an_unread_input_with_nothing_fetched_holds_back_for_the_idle_time_only():
    buffer = InputBuffer(max_idle_s=2.0)
    buffer.add(INVOICES, records(INVOICES, 5))
    assert buffer.release({USAGE: 5000}, master_lagging=False, now=100.0) == []
    assert buffer.release({USAGE: 5000}, master_lagging=False, now=101.0) == []
    buffer.rearm(now=101.5)  # a batch just finished: the fetcher only now got its turn
    assert buffer.release({USAGE: 5000}, master_lagging=False, now=103.0) == []
    assert stamps(buffer.release({USAGE: 5000}, master_lagging=False, now=103.6)) == [("invoices", 5)]


def test_events_wait_for_master_data_up_to_a_bound():
    buffer = InputBuffer(max_held=3)
    buffer.add(INVOICES, records(INVOICES, 1, 2))
    assert buffer.release({}, master_lagging=True, now=0) == []
    buffer.add(USAGE, records(USAGE, 3))
    assert len(buffer.release({}, master_lagging=True, now=0)) == 3


def test_only_the_partition_number_whose_customers_lag_waits_for_them():
    buffer = InputBuffer(max_held=4)
    buffer.add(USAGE, records(USAGE, 1, 2))
    buffer.add(OTHER, records(OTHER, 3))
    # Customers partition 0 has unread records: partition 0's events wait, partition 1's go.
    assert stamps(buffer.release({}, master_lagging=False, now=0, master_partitions={0})) == [("usage", 3)]
    assert buffer.release({}, master_lagging=False, now=0, master_partitions={0}) == []
    assert stamps(buffer.release({}, master_lagging=False, now=0)) == [("usage", 1), ("usage", 2)]


def test_a_partition_waiting_for_customers_is_bounded_too():
    buffer = InputBuffer(max_held=2)
    buffer.add(USAGE, records(USAGE, 1, 2))
    assert len(buffer.release({}, master_lagging=False, now=0, master_partitions={0})) == 2


def test_a_partitions_own_order_is_kept_even_when_timestamps_go_back():
    buffer = InputBuffer()
    buffer.add(USAGE, records(USAGE, 5, 3, 8))
    buffer.add(INVOICES, records(INVOICES, 4))
    released = buffer.release({}, master_lagging=False, now=0)
    assert [r.timestamp for r in released if r.topic == "usage"] == [5, 3, 8]


def test_a_few_records_in_flight_hold_nothing_back():
    buffer = InputBuffer(min_lag=1000)
    buffer.add(INVOICES, records(INVOICES, 30))
    buffer.add(USAGE, records(USAGE, 10))
    assert stamps(buffer.release({USAGE: 3}, master_lagging=False, now=0)) == [
        ("usage", 10),
        ("invoices", 30),
    ]
    buffer.add(INVOICES, records(INVOICES, 40))
    assert stamps(buffer.release({USAGE: -1}, master_lagging=False, now=0)) == []


def test_dropped_partitions_are_forgotten():
    buffer = InputBuffer()
    buffer.add(USAGE, records(USAGE, 1))
    buffer.add(INVOICES, records(INVOICES, 2))
    buffer.drop([USAGE])
    assert stamps(buffer.release({}, master_lagging=False, now=0)) == [("invoices", 2)]
