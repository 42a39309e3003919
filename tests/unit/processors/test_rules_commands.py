"""ERP commands per event: DOMAIN.md's accounting rules, balanced entries, deterministic ids."""

from __future__ import annotations

import io
from collections import defaultdict
from datetime import date, timedelta

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from processors.errors import InvalidPeriodError, MissingAmountError, RuleInputError, UnbalancedEntryError
from processors.rules.commands import (
    CommandBuilder,
    case_id,
    command_id,
    invoice_posted_commands,
    invoice_schedules,
    payment_failed_commands,
    payment_received_commands,
    schedule_id,
    service_activated_commands,
)
from processors.rules.contracts import (
    contract_renewed_commands,
    fold_respreads,
    order_accepted_commands,
    respread_of,
    respread_schedule,
)
from processors.rules.ids import epoch_millis
from processors.rules.money import ratable_by_month
from processors.rules.recognition import TrackedSchedule
from schemas.loader import schema_for_model
from schemas.models import (
    CollectionsCase,
    CollectionsCaseStatus,
    CommandType,
    ErpCommand,
    Invoice,
    InvoicePosted,
    JournalEntry,
    LineKind,
    PaymentApplication,
    RevenueSchedule,
    Subscription,
    SubscriptionStatus,
)
from tests.unit.processors import factories as f


def _entries(commands: list[ErpCommand]) -> list[JournalEntry]:
    return [c.payload for c in commands if isinstance(c.payload, JournalEntry)]


def _sides(entry: JournalEntry) -> list[tuple[str, int, int]]:
    return [(line.account, line.debit_minor, line.credit_minor) for line in entry.lines]


def _assert_balanced(entry: JournalEntry) -> None:
    assert sum(line.debit_minor for line in entry.lines) == sum(line.credit_minor for line in entry.lines)
    for line in entry.lines:
        assert line.debit_minor >= 0 and line.credit_minor >= 0
        assert (line.debit_minor == 0) != (line.credit_minor == 0)


def _assert_envelopes(commands: list[ErpCommand], event_id: str = "E1", scope: str | None = None) -> None:
    id_base = event_id if scope is None else f"{event_id}|{scope}"
    for position, command in enumerate(commands):
        assert command.command_id == command_id(id_base, command.command_type, position)
        assert command.source_event_id == event_id
        assert (command.customer_id, command.legal_entity, command.correlation_id) == (
            "C1",
            "LE-DE",
            "CORR-1",
        )
        assert command.issued_at == f.T0


# --- invoice posted ---------------------------------------------------------------------------


def test_invoice_posted_gives_invoice_entry_schedule_and_monthly_recognition() -> None:
    event = f.invoice(
        lines=(
            f.invoice_line(
                "SUB", amount_minor=9_000, period_start=date(2024, 1, 15), period_end=date(2024, 4, 15)
            ),
            f.invoice_line("SRV", kind="SERVICES", amount_minor=2_000),
            f.usage_line("USE", quantity=100, unit_price_minor=3),
            f.invoice_line("TAX", kind="TAX", product_id=None, amount_minor=1_000),
        )
    )
    commands = invoice_posted_commands(event)
    assert [c.command_type for c in commands] == [
        CommandType.INVOICE,
        CommandType.JOURNAL_ENTRY,
        CommandType.REVENUE_SCHEDULE,
        CommandType.JOURNAL_ENTRY,
        CommandType.JOURNAL_ENTRY,
        CommandType.JOURNAL_ENTRY,
        CommandType.JOURNAL_ENTRY,
    ]
    _assert_envelopes(commands)
    invoice = commands[0].payload
    assert isinstance(invoice, Invoice) and invoice.lines == event.lines and invoice.total_minor == 12_300
    posting = commands[1].payload
    assert isinstance(posting, JournalEntry) and posting.posting_date == event.issued_on
    assert _sides(posting) == [
        ("1200", 12_300, 0),
        ("2400", 0, 9_000),
        ("2410", 0, 2_000),
        ("4100", 0, 300),
        ("2200", 0, 1_000),
    ]
    schedule = commands[2].payload
    assert isinstance(schedule, RevenueSchedule)
    assert schedule.schedule_id == schedule_id("S1", "INV1", "SUB")
    # 17 + 29 + 31 + 14 = 91 days: 1681.3, 2868.1, 3065.9, 1384.6 -> largest remainders get the units.
    assert [(e.month, e.recognition_date, e.amount_minor) for e in schedule.entries] == [
        ("2024-01", date(2024, 1, 31), 1_681),
        ("2024-02", date(2024, 2, 29), 2_868),
        ("2024-03", date(2024, 3, 31), 3_066),
        ("2024-04", date(2024, 4, 30), 1_385),
    ]
    monthly = _entries(commands)[1:]
    assert [(e.posting_date, _sides(e)) for e in monthly] == [
        (entry.recognition_date, [("2400", entry.amount_minor, 0), ("4000", 0, entry.amount_minor)])
        for entry in schedule.entries
    ]
    assert len({e.entry_id for e in _entries(commands)}) == 5


def test_a_month_whose_share_rounds_to_zero_gets_no_entry_but_stays_in_the_schedule() -> None:
    line = f.invoice_line(amount_minor=1, period_start=date(2024, 1, 1), period_end=date(2024, 3, 1))
    commands = invoice_posted_commands(f.invoice(lines=(line,)))
    schedule = commands[2].payload
    assert isinstance(schedule, RevenueSchedule)
    assert [e.amount_minor for e in schedule.entries] == [1, 0]
    assert [e.posting_date for e in _entries(commands)[1:]] == [date(2024, 1, 31)]


def test_an_unbalanced_invoice_is_refused_not_posted() -> None:
    event = f.invoice(lines=(f.invoice_line(amount_minor=100),), total_minor=101)
    with pytest.raises(UnbalancedEntryError, match="debits 101 != credits 100"):
        invoice_posted_commands(event)


def test_invoice_schedules_are_what_the_commands_carry() -> None:
    event = f.invoice(lines=(f.invoice_line("A"), f.usage_line(), f.invoice_line("B", amount_minor=7)))
    tracked = invoice_schedules(event)
    carried = [c.payload for c in invoice_posted_commands(event) if isinstance(c.payload, RevenueSchedule)]
    assert [t.schedule for t in tracked] == carried
    assert [t.schedule.line_id for t in tracked] == ["A", "B"]


kinds = st.sampled_from([LineKind.SUBSCRIPTION, LineKind.SERVICES, LineKind.USAGE, LineKind.TAX])


@st.composite
def invoices(draw: st.DrawFn, min_amount: int = -(10**10)) -> InvoicePosted:
    lines = []
    for i in range(draw(st.integers(1, 6))):
        start = draw(st.dates(min_value=date(2019, 1, 1), max_value=date(2030, 12, 31)))
        lines.append(
            f.invoice_line(
                f"L{i}",
                kind=draw(kinds),
                amount_minor=draw(st.integers(min_amount, 10**10)),
                period_start=start,
                period_end=start + timedelta(days=draw(st.integers(1, 800))),
            )
        )
    return f.invoice(lines=tuple(lines), envelope={"event_id": draw(st.sampled_from(["E1", "E2"]))})


@settings(max_examples=150, deadline=None)
@given(invoices())
def test_every_entry_from_arbitrary_invoices_balances_and_schedules_sum_to_their_lines(
    event: InvoicePosted,
) -> None:
    commands = invoice_posted_commands(event)
    for entry in _entries(commands):
        _assert_balanced(entry)
    per_account: dict[str, int] = defaultdict(int)
    for entry in _entries(commands):
        if entry.description == f"invoice {event.invoice_id}":
            for journal_line in entry.lines:
                per_account[journal_line.account] += journal_line.debit_minor - journal_line.credit_minor
    assert per_account["1200"] == event.total_minor
    for kind, account in (("SUBSCRIPTION", "2400"), ("SERVICES", "2410"), ("USAGE", "4100"), ("TAX", "2200")):
        assert -per_account[account] == sum(line.amount_minor for line in event.lines if line.kind == kind)
    subscription_lines = {line.line_id: line for line in event.lines if line.kind is LineKind.SUBSCRIPTION}
    schedules = [c.payload for c in commands if isinstance(c.payload, RevenueSchedule)]
    assert {s.line_id for s in schedules} == set(subscription_lines)
    recognised: dict[str, int] = defaultdict(int)
    for entry in _entries(commands):
        if entry.description == f"invoice {event.invoice_id}":
            continue
        (deferred, revenue) = entry.lines
        assert {deferred.account, revenue.account} == {"2400", "4000"}
        assert entry.posting_date.month != (entry.posting_date + timedelta(days=1)).month
        recognised[entry.lines[0].memo or ""] += deferred.debit_minor - deferred.credit_minor
    for schedule in schedules:
        line = subscription_lines[schedule.line_id]
        assert schedule.total_minor == line.amount_minor == sum(e.amount_minor for e in schedule.entries)
        assert recognised[schedule.line_id] == line.amount_minor
    # Deterministic: the same event gives the same commands, ids included, every time.
    assert invoice_posted_commands(event) == commands
    assert len({c.command_id for c in commands}) == len(commands)


@settings(max_examples=50, deadline=None)
@given(invoices(min_amount=0))
def test_commands_survive_an_avro_round_trip_through_the_shipped_schema(event: InvoicePosted) -> None:
    parsed = schema_for_model(ErpCommand).parsed
    for command in invoice_posted_commands(event):
        buffer = io.BytesIO()
        fastavro.schemaless_writer(buffer, parsed, command.to_avro())
        buffer.seek(0)
        decoded = fastavro.schemaless_reader(buffer, parsed, parsed)
        assert isinstance(decoded, dict)
        assert ErpCommand.from_avro(decoded) == command


def test_ids_differ_between_events_and_stay_put_across_calls() -> None:
    first = invoice_posted_commands(f.invoice(envelope={"event_id": "E1"}))
    second = invoice_posted_commands(f.invoice(envelope={"event_id": "E2"}))
    assert not {c.command_id for c in first} & {c.command_id for c in second}
    # The schedule id belongs to the line, not to the event that carried it.
    assert first[2].payload == second[2].payload


# --- services, payments, collections ----------------------------------------------------------


def test_a_services_milestone_moves_deferred_services_revenue_to_revenue() -> None:
    commands = service_activated_commands(f.activation())
    _assert_envelopes(commands)
    (entry,) = _entries(commands)
    assert entry.posting_date == date(2024, 3, 5)
    assert _sides(entry) == [("2410", 5_000, 0), ("4010", 0, 5_000)]


def test_a_milestone_without_an_amount_takes_the_invoiced_one_or_is_refused() -> None:
    event = f.activation(milestone_amount_minor=None)
    (entry,) = _entries(service_activated_commands(event, services_amount_minor=700))
    assert _sides(entry) == [("2410", 700, 0), ("4010", 0, 700)]
    with pytest.raises(MissingAmountError, match="no amount"):
        service_activated_commands(event)
    assert service_activated_commands(f.activation(line_kind="SUBSCRIPTION")) == []


@pytest.mark.parametrize(
    ("amount", "open_amount", "applied", "excess"),
    [
        (1_000, 1_000, 1_000, 0),
        (600, 1_000, 600, 0),
        (1_500, 1_000, 1_000, 500),
        (300, 0, 0, 300),
        (300, -50, 0, 300),
    ],
)
def test_payment_is_applied_up_to_the_open_amount_and_the_excess_is_a_credit(
    amount: int, open_amount: int, applied: int, excess: int
) -> None:
    commands = payment_received_commands(f.payment(amount), open_amount)
    _assert_envelopes(commands)
    application = commands[0].payload
    assert isinstance(application, PaymentApplication)
    assert (application.amount_minor, application.applied_minor, application.excess_minor) == (
        amount,
        applied,
        excess,
    )
    (entry,) = _entries(commands)
    _assert_balanced(entry)
    assert entry.posting_date == date(2024, 2, 3)
    expected = [("1000", amount, 0), ("1200", 0, applied), ("2300", 0, excess)]
    assert _sides(entry) == [side for side in expected if side[1] or side[2]]


def test_a_zero_payment_applies_nothing_and_a_negative_one_is_refused() -> None:
    commands = payment_received_commands(f.payment(0), 100)
    assert [c.command_type for c in commands] == [CommandType.PAYMENT_APPLICATION]
    with pytest.raises(RuleInputError, match="negative"):
        payment_received_commands(f.payment(-1), 100)


def test_failed_payments_open_then_escalate_one_case_per_invoice_without_an_entry() -> None:
    first = payment_failed_commands(f.payment_failed(1))
    later = payment_failed_commands(f.payment_failed(3, envelope={"event_id": "E2"}))
    _assert_envelopes(first)
    cases = [c.payload for c in (*first, *later)]
    assert all(isinstance(c, CollectionsCase) for c in cases)
    assert [(c.case_id, c.status, c.attempt) for c in cases if isinstance(c, CollectionsCase)] == [
        (case_id("INV1"), CollectionsCaseStatus.OPEN, 1),
        (case_id("INV1"), CollectionsCaseStatus.ESCALATED, 3),
    ]
    assert _entries([*first, *later]) == []


# --- subscriptions and re-spreads -------------------------------------------------------------


def test_order_and_renewal_give_subscription_versions_ordered_by_event_time() -> None:
    (created,) = order_accepted_commands(f.order())
    renewed_event = f.renewal(envelope={"event_id": "E2", "occurred_at": f.T0 + timedelta(days=300)})
    (renewed,) = contract_renewed_commands(renewed_event)
    assert isinstance(created.payload, Subscription) and isinstance(renewed.payload, Subscription)
    assert (created.payload.status, created.payload.order_id, created.payload.term_start) == (
        SubscriptionStatus.ACTIVE,
        "O1",
        date(2024, 1, 1),
    )
    assert (renewed.payload.status, renewed.payload.term_start, renewed.payload.term_end) == (
        SubscriptionStatus.RENEWED,
        date(2025, 1, 1),
        date(2026, 1, 1),
    )
    assert created.payload.version == epoch_millis(f.T0) < renewed.payload.version
    with pytest.raises(InvalidPeriodError):
        order_accepted_commands(f.order(term_end=date(2024, 1, 1)))


def _year_schedule() -> list:
    line = f.invoice_line(
        "IL1", amount_minor=36_500, period_start=date(2023, 1, 1), period_end=date(2024, 1, 1)
    )
    other = f.invoice_line(
        "IL2",
        product_id="P2",
        amount_minor=36_500,
        period_start=date(2023, 1, 1),
        period_end=date(2024, 1, 1),
    )
    return invoice_schedules(f.invoice(lines=(line, other)))


def _lumpy(tracked: TrackedSchedule) -> TrackedSchedule:
    """The same schedule with a plan that is not even per day: January 14,500, then 2,000 a month."""
    entries = tuple(
        entry.model_copy(update={"amount_minor": 14_500 if entry.month == "2023-01" else 2_000})
        for entry in tracked.schedule.entries
    )
    return tracked.model_copy(update={"schedule": tracked.schedule.model_copy(update={"entries": entries})})


def _amend(event, schedules):
    """What the ledger does on an amendment: each of the subscription's schedules re-spread."""
    commands, updated = [], []
    for tracked in schedules:
        if tracked.schedule.subscription_id != event.subscription_id:
            continue
        produced, new = respread_schedule(tracked, (respread_of(event),))
        commands.extend(produced)
        if new != tracked:
            updated.append(new)
    return commands, updated


def test_an_amendment_from_mid_month_keeps_what_was_earned_before_and_respreads_the_rest() -> None:
    schedules = [_lumpy(schedules) for schedules in _year_schedule()]
    event = f.amendment(effective_date=date(2023, 7, 16), lines=(f.order_line("IL1", product_id="P9"),))
    commands, updated = _amend(event, schedules)
    _assert_envelopes(commands, scope=schedules[0].schedule.schedule_id)
    assert [t.schedule.line_id for t in updated] == ["IL1"]
    new = updated[0].schedule
    assert commands[0].payload == new and new.schedule_id == schedules[0].schedule.schedule_id
    months = {e.month: e.amount_minor for e in new.entries}
    # Earned before 16 July: January to June as planned, and July's 2,000 x 15/31 days, rounded down.
    assert [months[f"2023-{m:02d}"] for m in range(1, 7)] == [14_500, *[2_000] * 5]
    earned_in_july = 2_000 * 15 // 31
    rest = ratable_by_month(36_500 - 24_500 - earned_in_july, date(2023, 7, 16), date(2024, 1, 1))
    assert months["2023-07"] == earned_in_july + rest[0].amount_minor
    assert [months[f"2023-{m:02d}"] for m in range(8, 13)] == [share.amount_minor for share in rest[1:]]
    assert sum(months.values()) == 36_500
    old = {e.month: e.amount_minor for e in schedules[0].schedule.entries}
    differences = {e.posting_date.strftime("%Y-%m"): e for e in _entries(commands)}
    assert sorted(differences) == [m for m in months if months[m] != old[m]]
    for entry in differences.values():
        _assert_balanced(entry)
        month = entry.posting_date.strftime("%Y-%m")
        delta = months[month] - old[month]
        deferred, revenue = entry.lines
        assert deferred.account == "2400" and deferred.debit_minor - deferred.credit_minor == delta
        assert revenue.account == "4000" and revenue.credit_minor - revenue.debit_minor == delta
    assert sum(e.lines[0].debit_minor - e.lines[0].credit_minor for e in differences.values()) == 0


def test_a_mid_month_amendment_of_an_even_plan_moves_nothing_but_is_remembered() -> None:
    # 100 a day all year: what is earned before 16 July and what is left give the same months again.
    schedules = _year_schedule()
    event = f.amendment(effective_date=date(2023, 7, 16), lines=(f.order_line("IL1", product_id="P9"),))
    commands, updated = _amend(event, schedules)
    assert commands == []
    assert [t.applied for t in updated] == [(event.event_id,)]
    assert updated[0].schedule.entries == schedules[0].schedule.entries


def test_an_amendment_matches_schedules_by_product_too_and_ignores_other_subscriptions() -> None:
    schedules = [_lumpy(schedules) for schedules in _year_schedule()]
    by_product = f.amendment(effective_date=date(2023, 7, 16), lines=(f.order_line("OL-7", product_id="P2"),))
    _, updated = _amend(by_product, schedules)
    assert [t.schedule.line_id for t in updated] == ["IL2"]
    elsewhere = f.amendment(subscription_id="S2", effective_date=date(2023, 7, 16))
    assert _amend(elsewhere, schedules) == ([], [])


def test_respreads_fold_in_event_time_order_whatever_order_they_arrive_in() -> None:
    tracked = _lumpy(_year_schedule()[0])
    early = f.adjustment(effective_date=date(2023, 4, 10), envelope={"event_id": "A1", "occurred_at": f.T0})
    late = f.adjustment(
        effective_date=date(2023, 9, 20), envelope={"event_id": "A2", "occurred_at": f.T0 + timedelta(days=1)}
    )
    items = (respread_of(early), respread_of(late))
    assert fold_respreads(tracked, items) == fold_respreads(tracked, items[::-1])
    # Applied one after the other as they arrive, the later one first, they end in the same plan.
    late_commands, after_late = respread_schedule(tracked, items[1:])
    early_commands, after_both = respread_schedule(after_late, items[::-1])
    assert after_both.schedule == fold_respreads(tracked, items).schedule
    # Posted out of order, the adjusting entries still add up to the folded plan, month by month.
    posted = {e.month: e.amount_minor for e in tracked.schedule.entries}
    for entry in _entries([*late_commands, *early_commands]):
        month = entry.posting_date.strftime("%Y-%m")
        posted[month] += entry.lines[1].credit_minor - entry.lines[1].debit_minor
    assert posted == {e.month: e.amount_minor for e in after_both.schedule.entries}
    # An invoice issued after a re-spread happened is not changed by it.
    newer = tracked.model_copy(update={"invoiced_at_ms": respread_of(late).occurred_ms + 1})
    assert fold_respreads(newer, items).schedule == newer.schedule


def test_a_respreads_commands_are_its_own_whichever_event_brought_them_out() -> None:
    # Applied when it arrives or when its invoice arrives later, the commands are the same: traced
    # to the re-spread, with ids scoped by the schedule, never by the invoice's own positions.
    tracked = _lumpy(_year_schedule()[0])
    adjustment = f.adjustment(effective_date=date(2023, 7, 16), envelope={"event_id": "ADJ-1"})
    commands, _ = respread_schedule(tracked, (respread_of(adjustment),))
    assert commands and {c.source_event_id for c in commands} == {"ADJ-1"}
    scoped = CommandBuilder(adjustment, scope=tracked.schedule.schedule_id)
    scoped.add(commands[0].payload)
    assert scoped.commands[0].command_id == commands[0].command_id


def test_a_schedule_adjustment_respreads_every_running_schedule_of_the_subscription() -> None:
    schedules = [_lumpy(schedules) for schedules in _year_schedule()]
    adjustment = f.adjustment(effective_date=date(2023, 7, 16))
    commands, updated = _amend(adjustment, schedules)
    assert [t.schedule.line_id for t in updated] == ["IL1", "IL2"]
    assert [c.command_type for c in commands].count(CommandType.REVENUE_SCHEDULE) == 2
    assert len({c.command_id for c in commands}) == len(commands)
    past_the_end = f.adjustment(effective_date=date(2024, 2, 1))
    assert [t.schedule for t in _amend(past_the_end, schedules)[1]] == [t.schedule for t in schedules]
    assert _amend(past_the_end, schedules)[0] == []
    # The same adjustment again (a redelivery) changes nothing further.
    assert _amend(adjustment, updated) == ([], [])
