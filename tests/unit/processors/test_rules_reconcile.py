"""Usage-to-billing reconciliation: mismatches, late usage, bounded idempotency, order independence."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, date, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.exceptions.queue import ExceptionRecord, apply_record
from processors.errors import RuleInputError
from processors.rules.reconcile import (
    ReconKey,
    ReconState,
    SourcePosition,
    apply_invoice_line,
    apply_usage,
    departs,
    forget_parked,
    invoice_line_key,
    note_parked,
    report,
    usage_key,
    usage_lines,
)
from schemas.models import (
    BusinessException,
    EventEnvelope,
    InvoiceLine,
    InvoicePosted,
    ReasonCode,
    UsageRecorded,
)
from streams.queue_settings import ExceptionQueueSettings
from tests.unit.processors import factories as f

KEY = ReconKey("S1", "api_calls", "2024-01")
USAGE_TOPIC = "ns.usage_recorded"


def at(offset: int, partition: int = 0, topic: str = USAGE_TOPIC) -> SourcePosition:
    return SourcePosition(topic, partition, offset)


def _invoice(quantity: int, invoice_id: str = "INV1", unit_price: int = 5, **line: Any) -> InvoicePosted:
    return f.invoice(
        lines=(f.usage_line(quantity=quantity, unit_price_minor=unit_price, **line),),
        invoice_id=invoice_id,
        envelope={"event_id": f"EV-{invoice_id}"},
    )


def _count(
    state: ReconState | None, usage: UsageRecorded, position: SourcePosition, retried: bool = False
) -> ReconState:
    updated, _ = apply_usage(state, usage, position, retried=retried)
    return updated


def _bill(state: ReconState | None, invoice: InvoicePosted) -> ReconState:
    (_, line), *_ = usage_lines(invoice)
    updated, _ = apply_invoice_line(state, line, invoice)
    return updated


def _said(
    state: ReconState, trigger: EventEnvelope, tolerance: int = 0
) -> tuple[ReconState, list[BusinessException]]:
    updated, exception = report(state, trigger, tolerance)
    return updated, [exception] if exception is not None else []


def test_keys_use_the_month_of_the_usage_window_start_in_utc_and_of_the_line_period_start() -> None:
    late_evening = datetime(2024, 1, 31, 23, 30, tzinfo=UTC)
    assert usage_key(f.usage(window_start=late_evening)) == KEY
    assert usage_key(f.usage(window_start=datetime(2024, 2, 1, tzinfo=UTC))).period == "2024-02"
    invoice = _invoice(10)
    assert invoice_line_key(invoice, invoice.lines[0]) == KEY


def test_only_usage_lines_with_a_metric_are_reconciled() -> None:
    invoice = f.invoice(lines=(f.invoice_line(), f.usage_line(metric=None), f.usage_line("U2")))
    assert [line.line_id for _, line in usage_lines(invoice)] == ["U2"]
    with pytest.raises(RuleInputError, match="not a usage line"):
        apply_invoice_line(None, invoice.lines[0], invoice)


def test_nothing_is_reported_before_invoicing_nor_when_usage_matches_the_bill() -> None:
    usage = f.usage("U1", 60)
    state = _count(None, usage, at(0))
    assert _said(state, usage) == (state, [])
    assert state.metered_quantity == 60 and not state.invoiced
    state = _count(state, f.usage("U2", 40), at(1))
    invoice = _invoice(100)
    state, raised = _said(_bill(state, invoice), invoice)
    assert raised == [] and state.difference == 0 and state.reported_difference is None


def test_under_billing_reports_the_quantity_and_money_difference() -> None:
    state = _count(None, f.usage("U1", 130), at(0))
    invoice = _invoice(100, unit_price=7)
    state, raised = _said(_bill(state, invoice), invoice)
    (exc,) = raised
    assert exc.reason_code is ReasonCode.USAGE_BILLING_MISMATCH
    assert (exc.quantity_difference, exc.amount_difference_minor, exc.currency) == (30, 210, "EUR")
    assert (exc.subscription_id, exc.metric, exc.period) == ("S1", "api_calls", "2024-01")
    assert (exc.source_event_id, exc.event_type) == ("EV-INV1", "invoice_posted")
    assert "under-billed" in exc.detail
    assert state.reported_difference == 30 and state.revision == 1


def test_late_usage_reopens_with_a_new_revision_and_id_and_resolution_closes_it() -> None:
    invoice = _invoice(100)
    state, (over,) = _said(_bill(None, invoice), invoice)
    assert over.quantity_difference == -100 and "over-billed" in over.detail
    late = f.usage("U1", 70)
    state, (updated,) = _said(_count(state, late, at(0)), late)
    assert updated.quantity_difference == -30 and updated.amount_difference_minor == -150
    assert updated.exception_id != over.exception_id and "revision 2" in updated.detail
    last = f.usage("U2", 30)
    state, (resolved,) = _said(_count(state, last, at(1)), last)
    assert resolved.quantity_difference == 0 and resolved.detail.startswith("resolved (revision 3)")
    assert state.reported_difference is None
    # A usage event of quantity zero counts (its offset moves the mark) but changes no difference.
    zero = f.usage("U3", 0)
    state, raised = _said(_count(state, zero, at(2)), zero)
    assert raised == [] and state.revision == 3 and state.mark(at(2)).offset == 2


def test_a_revision_raised_again_after_a_crash_with_other_counts_is_not_taken_for_a_repeat() -> None:
    # The first worker bills the invoice before any usage and delivers revision 1 (-100), then dies
    # before that state is stored. The next one counts the usage and the invoice in one batch:
    # revision 1 again, triggered by the same invoice, standing at -30.
    invoice = _invoice(100)
    _, (delivered,) = _said(_bill(None, invoice), invoice)
    usage = f.usage("U1", 70)
    _, (again,) = _said(_bill(_count(None, usage, at(0)), invoice), invoice)
    assert (delivered.revision, again.revision) == (1, 1)
    assert again.exception_id != delivered.exception_id
    # The queue row then stands at what the second worker counted.
    queue = ExceptionQueueSettings()
    first = apply_record(None, _queued(delivered, 0), queue)
    assert first is not None
    second = apply_record(first.row, _queued(again, 1), queue)
    assert second is not None and second.row.quantity_difference == -30
    # An exact repeat of a revision keeps its id.
    _, (repeat,) = _said(_bill(_count(None, usage, at(0)), invoice), invoice)
    assert repeat.exception_id == again.exception_id


def _queued(exception: BusinessException, offset: int) -> ExceptionRecord:
    seen = datetime(2026, 3, 1, tzinfo=UTC)
    return ExceptionRecord(exception.model_dump(mode="json"), seen, "ns.exceptions", 0, offset)


def test_a_resolved_mismatch_stays_resolved_while_the_difference_drifts_within_the_tolerance() -> None:
    invoice = _invoice(10)
    state, (over,) = _said(_bill(None, invoice), invoice, tolerance=2)
    usage = f.usage("U1", 10)
    state, (resolved,) = _said(_count(state, usage, at(0)), usage, tolerance=2)
    assert (over.quantity_difference, resolved.quantity_difference) == (-10, 0)
    assert resolved.resolution == "resolved"
    drift = f.usage("U2", 1)
    state, raised = _said(_count(state, drift, at(1)), drift, tolerance=2)
    assert raised == [] and state.difference == 1 and state.reported_difference is None


def test_a_batch_reports_only_its_final_standing_difference() -> None:
    # What the worker does: count every record of a batch, then report each touched key once.
    invoice = _invoice(100)
    state, (first,) = _said(_count(_bill(None, invoice), f.usage("U0", 90), at(0)), invoice)
    assert first.quantity_difference == -10
    usages = [f.usage(f"U{i}", 3) for i in range(1, 6)]  # -7, -4, -1, +2, +5 along the way
    for offset, usage in enumerate(usages, start=1):
        state = _count(state, usage, at(offset))
    state, (only,) = _said(state, usages[-1])
    assert (only.quantity_difference, only.amount_difference_minor) == (5, 25)
    assert (only.source_event_id, state.revision) == ("U5", 2) and "revision 2" in only.detail
    # A batch whose changes cancel out ends where the last report stood: nothing is raised...
    plus = f.usage("U6", 4)
    state = _count(state, plus, at(6))
    assert departs(state, 0)
    state = _bill(state, _invoice(4, "INV2"))
    assert not departs(state, 0) and _said(state, plus) == (state, [])
    # ...unless told that it departed on the way (a batch re-processed after a crash may have
    # delivered the departure): then the standing difference is restated as a new revision.
    restated, again = report(state, plus, 0, restate=True)
    assert again is not None and (again.quantity_difference, restated.revision) == (5, 3)


def test_tolerance_is_a_quantity_band_around_the_bill() -> None:
    invoice = _invoice(100)
    state = _bill(_count(None, f.usage("U1", 102), at(0)), invoice)
    state, raised = _said(state, invoice, tolerance=2)
    assert raised == []
    more = f.usage("U2", 1)
    state, raised = _said(_count(state, more, at(1)), more, tolerance=2)
    assert [e.quantity_difference for e in raised] == [3]
    with pytest.raises(RuleInputError, match="tolerance"):
        report(state, more, tolerance=-1)


def test_a_redelivered_record_counts_once_and_an_invoice_line_once() -> None:
    state = _count(_count(None, f.usage("U1", 10), at(5)), f.usage("U2", 7), at(9))
    # After a crash Kafka redelivers from the last commit: the same offsets, or lower ones.
    for offset, usage in ((5, f.usage("U1", 10)), (9, f.usage("U2", 7))):
        again, counted = apply_usage(state, usage, at(offset))
        assert again == state and not counted
    assert state.metered_quantity == 17
    billed = _bill(state, _invoice(4))
    again, changed = apply_invoice_line(billed, _invoice(4).lines[0], _invoice(4))
    assert again == billed and not changed and billed.billed_quantity == 4


def test_each_source_partition_has_its_own_mark() -> None:
    state = _count(None, f.usage("U1", 10), at(50, partition=1))
    state = _count(state, f.usage("U2", 5), at(3, partition=2))
    state = _count(state, f.usage("U3", 1), at(4, topic="other.usage"))
    assert state.metered_quantity == 16
    marks = {name: mark.offset for name, mark in state.sources.items()}
    assert marks == {f"{USAGE_TOPIC}/1": 50, f"{USAGE_TOPIC}/2": 3, "other.usage/0": 4}


def test_a_parked_record_counts_once_whichever_copy_comes_back_first_and_in_any_order() -> None:
    # U1 (offset 3) and U2 (offset 4) were parked for missing master data; U5 (offset 8) counted.
    state = note_parked(None, KEY, at(3))
    state = note_parked(state, KEY, at(4))
    assert state is not None and state.mark(at(0)).parked == (3, 4)
    state = _count(state, f.usage("U5", 100), at(8))
    # The retry topic hands them back in due order (back-offs differ by attempt), not offset order.
    state = _count(state, f.usage("U2", 20), at(4), retried=True)
    state = _count(state, f.usage("U1", 10), at(3), retried=True)
    assert state.metered_quantity == 130 and state.mark(at(0)).parked == ()
    # A second copy (parked twice around a crash) and a redelivered retry record count no more.
    again, counted = apply_usage(state, f.usage("U1", 10), at(3), retried=True)
    assert again == state and not counted
    # Nor the canonical record itself, redelivered after the crash.
    again, counted = apply_usage(state, f.usage("U1", 10), at(3))
    assert again == state and not counted
    # Parking a record at or below the mark registers nothing: it was processed before.
    assert note_parked(state, KEY, at(8)) is None


def test_when_every_record_of_a_key_was_parked_a_redelivery_after_the_copies_counted_adds_nothing() -> None:
    # No usage of this key on the partition counted directly, so only the parking moved the mark.
    # A worker taking the partition over re-reads it from the last commit, after the copies counted.
    state = note_parked(None, KEY, at(3))
    state = note_parked(state, KEY, at(4))
    assert state is not None and state.mark(at(0)).offset == 4
    state = _count(state, f.usage("U2", 20), at(4), retried=True)
    state = _count(state, f.usage("U1", 10), at(3), retried=True)
    for offset, usage in ((3, f.usage("U1", 10)), (4, f.usage("U2", 20))):
        again, counted = apply_usage(state, usage, at(offset))
        assert again == state and not counted
    assert state.metered_quantity == 30


def test_a_parked_record_redelivered_before_its_copy_counts_once() -> None:
    # Parked, then a crash: the canonical record comes back first, this time with its master data.
    state = note_parked(None, KEY, at(3))
    state = _count(state, f.usage("U1", 10), at(3))
    assert state.metered_quantity == 10 and state.mark(at(3)).offset == 3
    again, counted = apply_usage(state, f.usage("U1", 10), at(3), retried=True)
    assert again == state and not counted


def test_a_copy_of_a_record_whose_parking_was_never_stored_waits_for_its_redelivery() -> None:
    # The crash came before the parking's state was written: the copy is not registered and does
    # not count, but the canonical record is redelivered (its offset was never committed) and does.
    copy, counted = apply_usage(None, f.usage("U1", 10), at(3), retried=True)
    assert not counted and copy.metered_quantity == 0
    assert _count(copy, f.usage("U1", 10), at(3)).metered_quantity == 10


def test_a_dead_lettered_parked_record_is_unregistered() -> None:
    state = note_parked(None, KEY, at(3))
    state = forget_parked(state, at(3))
    assert state is not None and state.mark(at(3)).parked == ()
    assert forget_parked(state, at(3)) is None and forget_parked(None, at(3)) is None
    late_copy, counted = apply_usage(state, f.usage("U1", 10), at(3), retried=True)
    assert not counted and late_copy.metered_quantity == 0


def test_the_latest_invoice_prices_the_difference() -> None:
    state = _count(None, f.usage("U1", 50), at(0))
    later = _invoice(10, "INV2", unit_price=9).model_copy(update={"issued_on": date(2024, 2, 5)})
    state = _bill(state, later)
    # The earlier invoice arrives last; the later invoice's price still values the difference.
    earlier = _invoice(10, "INV1", unit_price=5)
    state, raised = _said(_bill(state, earlier), earlier)
    assert state.billed_quantity == 20
    assert [(e.quantity_difference, e.amount_difference_minor) for e in raised] == [(30, 270)]
    assert state.latest_line is not None and state.latest_line.invoice_id == "INV2"


def test_state_refuses_input_for_another_key_and_survives_json() -> None:
    state = note_parked(_count(None, f.usage("U1", 10), at(0)), KEY, at(7))
    assert state is not None
    state = _bill(state, _invoice(4))
    with pytest.raises(RuleInputError, match="look the state up by key"):
        apply_usage(state, f.usage("U9", metric="storage_gb"), at(1))
    with pytest.raises(RuleInputError, match="look the state up by key"):
        note_parked(state, ReconKey("S1", "storage_gb", "2024-01"), at(1))
    restored = ReconState.model_validate_json(state.model_dump_json())
    assert restored == state and restored.difference == 6 and restored.mark(at(0)).parked == (7,)


def test_the_state_does_not_grow_with_the_usage_of_a_period() -> None:
    usage = f.usage("U", 1)
    state = _count(None, usage, at(0))
    size_after_one = len(state.model_dump_json())
    for offset in range(1, 50_000):
        state, _ = apply_usage(state, usage, at(offset))
    assert state.metered_quantity == 50_000
    # Only the digits of the total and the offset grow (the old id set took ~50 bytes an event).
    assert len(state.model_dump_json()) <= size_after_one + 10


# --- order independence -----------------------------------------------------------------------

Item = tuple[UsageRecorded, SourcePosition] | InvoicePosted

invoices = st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 50), st.integers(1, 28)), max_size=3).map(
    lambda specs: [
        _invoice(q, f"INV{i}", unit_price=p).model_copy(update={"issued_on": date(2024, 2, day)})
        for i, (q, p, day) in enumerate(specs)
    ]
)


@st.composite
def deliveries(draw: st.DrawFn) -> tuple[list[Item], int, int]:
    """One arrival order: usage of two partitions in offset order, invoices anywhere, redeliveries.

    Returns the items as they arrive, the metered total and the billed total.
    """
    per_partition: list[list[tuple[UsageRecorded, SourcePosition]]] = []
    for partition in (0, 1):
        quantities = draw(st.lists(st.integers(0, 500), max_size=6))
        gaps = draw(st.lists(st.integers(1, 4), min_size=len(quantities), max_size=len(quantities)))
        offsets = [sum(gaps[: i + 1]) for i in range(len(quantities))]  # increasing, with gaps
        per_partition.append(
            [
                (f.usage(f"U{partition}-{o}", q), at(o, partition))
                for q, o in zip(quantities, offsets, strict=True)
            ]
        )
    bills = list(draw(invoices))
    next_index = [0, 0]
    arrived: list[Item] = []
    while any(next_index[p] < len(per_partition[p]) for p in (0, 1)) or bills:
        choices = [p for p in (0, 1) if next_index[p] < len(per_partition[p])]
        action = draw(st.sampled_from([*choices, "invoice"] if bills else choices))
        if action == "invoice":
            arrived.append(bills.pop(draw(st.integers(0, len(bills) - 1))))
            continue
        assert isinstance(action, int)
        records, done = per_partition[action], next_index[action]
        if done and draw(st.booleans()):
            # A crash: Kafka redelivers the partition in offset order from the last commit.
            committed = draw(st.integers(0, done - 1))
            arrived.extend(records[committed:done])
        arrived.append(records[done])
        next_index[action] = done + 1
    metered = sum(u.quantity for records in per_partition for u, _ in records)
    billed = sum(i.lines[0].quantity for i in arrived if isinstance(i, InvoicePosted))
    return arrived, metered, billed


def _fold(
    items: Sequence[Item], tolerance: int, batch: int
) -> tuple[ReconState | None, list[BusinessException]]:
    """Count the items in batches of ``batch``, reporting once at the end of each batch."""
    state: ReconState | None = None
    raised: list[BusinessException] = []
    for start in range(0, len(items), batch):
        trigger: EventEnvelope | None = None
        departed = False
        for item in items[start : start + batch]:
            if isinstance(item, InvoicePosted):
                (_, line), *_ = usage_lines(item)
                state, changed = apply_invoice_line(state, line, item)
                trigger = item if changed else trigger
            else:
                usage, position = item
                state, changed = apply_usage(state, usage, position)
                trigger = usage if changed else trigger
            departed = departed or (changed and state is not None and departs(state, tolerance))
        if state is not None and trigger is not None:
            state, exception = report(state, trigger, tolerance, restate=departed)
            raised.extend([exception] if exception is not None else [])
    return state, raised


@given(deliveries(), deliveries(), st.integers(0, 5), st.integers(1, 5))
def test_any_arrival_order_and_batching_ends_with_the_same_totals_and_standing_difference(
    first: tuple[list[Item], int, int], second: tuple[list[Item], int, int], tolerance: int, batch: int
) -> None:
    for items, metered, billed in (first, second):
        invoiced = any(isinstance(item, InvoicePosted) for item in items)
        expected = metered - billed if invoiced and abs(metered - billed) > tolerance else None
        revisions = []
        for size in (1, batch):
            state, raised = _fold(items, tolerance, size)
            if state is None:
                assert not items
                continue
            assert (state.metered_quantity, state.billed_quantity) == (metered, billed)
            assert state.reported_difference == expected
            # What was last said about the key is what stands now; every revision has its own id.
            assert state.revision == len(raised)
            if raised and raised[-1].resolution is None:
                assert raised[-1].quantity_difference == metered - billed
            elif raised:
                # Resolved stays resolved while the difference moves within the tolerance: the
                # resolution's figures are those it was raised with (no revision per unit of drift).
                assert expected is None and abs(raised[-1].quantity_difference or 0) <= tolerance
            else:
                assert expected is None
            assert len({e.exception_id for e in raised}) == len(raised)
            revisions.append(len(raised))
        # Reporting once per batch never raises more revisions than reporting after every record.
        assert revisions == sorted(revisions, reverse=True)


@given(deliveries(), st.integers(0, 20_000))
def test_usage_before_or_after_the_invoice_gives_the_same_final_result(
    case: tuple[list[Item], int, int], billed: int
) -> None:
    usages = [item for item in case[0] if not isinstance(item, InvoicePosted)]
    invoice = _invoice(billed)
    before, _ = _fold([*usages, invoice], 0, 1)
    after, _ = _fold([invoice, *usages], 0, 1)
    assert before is not None and after is not None
    assert (before.difference, before.reported_difference) == (after.difference, after.reported_difference)
    assert before.metered_quantity == case[1]


def test_line_lookup_helper_covers_a_line_model() -> None:
    # _bill picks the first reconcilable line; a typo in the factory would make every test vacuous.
    line = usage_lines(_invoice(3))[0][1]
    assert isinstance(line, InvoiceLine) and line.quantity == 3


def test_a_batch_re_processed_after_a_crash_replaces_the_revision_the_state_lost() -> None:
    # Before the crash: a batch with only the invoice raised "over-billed by 90" (delivered), and
    # the worker died before writing that batch's state. After the restart the same invoice and
    # the usage that covers it arrive in one batch: the state knows of no report, the difference
    # ends at zero, and the lost revision must still be superseded.
    invoice, usage = _invoice(90), (f.usage("U1", 90), at(0))
    _, before_crash = _fold([invoice], 0, 1)
    assert [e.quantity_difference for e in before_crash] == [-90]
    _, after_restart = _fold([invoice, usage], 0, 2)
    (resolved,) = after_restart
    assert resolved.quantity_difference == 0 and resolved.detail.startswith("resolved")
