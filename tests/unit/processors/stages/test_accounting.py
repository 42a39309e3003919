"""Reconciliation and recognition as state transitions: idempotent, as a replay needs."""

from __future__ import annotations

from collections import defaultdict
from datetime import date

from processors.rules.recognition import LineAccounts, default_accounts
from processors.rules.reconcile import ReconKey, ReconState, SourcePosition, usage_key
from processors.stages.accounting import (
    CONTRACTS,
    RECON,
    InvoiceState,
    Transition,
    count_usage_and_billing,
    dependency_reason,
    missing_dependencies,
    recognise,
)
from processors.stages.mismatches import report_batch, track_parked_usage
from schemas.models import EventEnvelope, JournalEntry, PaymentApplication
from tests.unit.processors import factories as f


class Store:
    """A dict standing in for the tables (one partition), with a transition's updates applied on request."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, bytes], bytes] = {}

    def read(self, table: str, key: bytes) -> bytes | None:
        return self.data.get((table, key))

    def get(self, table: str, partition: int, key: bytes) -> bytes | None:
        return self.read(table, key)

    def put(self, table: str, partition: int, key: bytes, value: bytes | None) -> None:
        assert value is not None
        self.data[table, key] = value

    def apply(self, out: Transition) -> Transition:
        for table, key, value in out.updates:
            self.data[table, key] = value
        return out


def at(offset: int) -> SourcePosition:
    return SourcePosition("ns.usage_recorded", 0, offset)


def run(store: Store, event, offset: int = 0, retried: bool = False) -> Transition:
    """One record in a batch of its own: counted and recognised, then its touched keys reported."""
    out = Transition()
    count_usage_and_billing(event, store.read, at(offset), retried, 0, out)
    recognise(event, store.read, out)
    store.apply(out)
    touched: dict[tuple[int, ReconKey], tuple[EventEnvelope, bool]] = {
        (0, key): (event, departed) for key, departed in out.touched
    }
    out.exceptions.extend(report_batch(touched, store, 0))
    return out


def application(out: Transition) -> PaymentApplication:
    (payload,) = [c.payload for c in out.commands if isinstance(c.payload, PaymentApplication)]
    return payload


def test_payments_apply_against_what_is_open_and_a_replay_sees_the_same_open_amount():
    store = Store()
    run(store, f.invoice(lines=(f.invoice_line(amount_minor=1_000),)))
    first = f.payment(amount_minor=600, envelope={"event_id": "P-1"}, payment_id="PAY1")
    second = f.payment(amount_minor=600, envelope={"event_id": "P-2"}, payment_id="PAY2")

    one = run(store, first)
    two = run(store, second)
    replayed = run(store, first)

    assert (application(one).applied_minor, application(one).excess_minor) == (600, 0)
    assert (application(two).applied_minor, application(two).excess_minor) == (400, 200)
    assert replayed.commands == one.commands
    invoice = InvoiceState.model_validate_json(store.data[CONTRACTS, b"inv:INV1"])
    assert dict(invoice.payments) == {"PAY1": (1_000, 600), "PAY2": (400, 400)}


def _services_order() -> EventEnvelope:
    onboarding = f.order_line("OL2", product_id="P-ONB", kind="SERVICES", amount_minor=5_000)
    return f.order(lines=(f.order_line("OL1"), onboarding), envelope={"event_id": "ORD-1"})


def _services_invoice(invoice_id: str, amount: int) -> EventEnvelope:
    # The invoice's own line ids are not the order's: the milestone reaches it through the product.
    services = f.invoice_line("IL2", kind="SERVICES", product_id="P-ONB", amount_minor=amount)
    return f.invoice(lines=(services,), invoice_id=invoice_id, envelope={"event_id": f"E-{invoice_id}"})


def _journal_lines(out: Transition) -> list[tuple[str, int, int]]:
    return [
        (line.account, line.debit_minor, line.credit_minor)
        for command in out.commands
        if isinstance(command.payload, JournalEntry)
        for line in command.payload.lines
    ]


def test_a_payment_needs_its_invoice():
    store = Store()
    assert missing_dependencies(f.payment(), store.read) == ["invoice:INV1"]
    run(store, f.invoice())
    assert missing_dependencies(f.payment(), store.read) == []


def test_a_milestone_without_amount_takes_what_was_invoiced_for_its_order_lines_product():
    store = Store()
    milestone = f.activation(milestone_amount_minor=None, line_id="OL2", envelope={"event_id": "M-1"})
    assert missing_dependencies(milestone, store.read) == ["order-line:S1/OL2"]
    assert dependency_reason("order-line:S1/OL2") == "ORDER_LINE_NOT_FOUND"
    run(store, _services_order())
    assert missing_dependencies(milestone, store.read) == ["invoiced-services:S1/P-ONB"]
    assert dependency_reason("invoiced-services:S1/P-ONB") == "INVOICED_SERVICES_NOT_FOUND"
    # Two invoices of the subscription reuse the line id IL2: both count, neither overwrites the other.
    run(store, _services_invoice("INV1", 3_000))
    run(store, _services_invoice("INV2", 2_000))
    assert missing_dependencies(milestone, store.read) == []
    assert _journal_lines(run(store, milestone)) == [("2410", 5_000, 0), ("4010", 0, 5_000)]


def test_postings_use_the_products_gl_accounts():
    accounts = {"P1": LineAccounts("2450", "4050"), "P-ONB": LineAccounts("2460", "4060")}
    accounts_of = lambda product_id, kind: accounts.get(product_id) or default_accounts(product_id, kind)  # noqa: E731
    store = Store()
    run(store, _services_order())
    subscription = f.invoice_line(amount_minor=36_600)
    services = f.invoice_line("IL2", kind="SERVICES", product_id="P-ONB", amount_minor=5_000)
    invoice = f.invoice(lines=(subscription, services))
    out = Transition()
    recognise(invoice, store.read, out, accounts_of)
    store.apply(out)
    entries = [c.payload for c in out.commands if isinstance(c.payload, JournalEntry)]
    invoice_entry = {(line.account, line.debit_minor, line.credit_minor) for line in entries[0].lines}
    assert invoice_entry == {("1200", 41_600, 0), ("2450", 0, 36_600), ("2460", 0, 5_000)}
    monthly = {line.account for entry in entries[1:] for line in entry.lines}
    assert monthly == {"2450", "4050"}
    milestone = f.activation(milestone_amount_minor=None, line_id="OL2", envelope={"event_id": "M-1"})
    done = Transition()
    recognise(milestone, store.read, done, accounts_of)
    assert _journal_lines(done) == [("2460", 5_000, 0), ("4060", 0, 5_000)]


def test_an_amendment_that_arrives_before_its_invoice_is_applied_when_the_invoice_arrives():
    lumpy = (f.invoice_line(amount_minor=1_000, period_start=date(2024, 1, 1), period_end=date(2024, 4, 1)),)
    invoice = f.invoice(lines=lumpy)
    amendment = f.adjustment(effective_date=date(2024, 2, 10), envelope={"event_id": "ADJ-1"})

    def ledger(*events: EventEnvelope) -> dict[tuple[str, str], int]:
        store, months = Store(), defaultdict[tuple[str, str], int](int)
        for event in events:
            for command in run(store, event).commands:
                if isinstance(command.payload, JournalEntry):
                    for line in command.payload.lines:
                        month = command.payload.posting_date.strftime("%Y-%m")
                        months[month, line.account] += line.credit_minor - line.debit_minor
        return {key: amount for key, amount in months.items() if amount}

    in_order = ledger(invoice, amendment)
    ahead = ledger(amendment, invoice)
    assert ahead == in_order
    assert sum(amount for (_, account), amount in ahead.items() if account == "4000") == 1_000


def test_usage_is_counted_once_per_source_offset_and_mismatches_are_raised_once():
    store = Store()
    usage = f.usage("U1", quantity=100)
    invoice = f.invoice(lines=(f.usage_line(quantity=90),))

    assert run(store, usage, offset=4).exceptions == []
    (raised,) = run(store, invoice, offset=0).exceptions
    assert (raised.quantity_difference, raised.amount_difference_minor) == (10, 50)
    # Redelivered after a crash (same offset): counted once, nothing raised again.
    again = run(store, usage, offset=4)
    assert again.exceptions == [] and again.updates == [] and again.touched == []
    assert [key for table, key in store.data if table == RECON] == [b"S1\x1fapi_calls\x1f2024-01"]


def test_a_batch_reports_each_touched_key_once_with_its_last_trigger():
    store = Store()
    run(store, f.invoice(lines=(f.usage_line(quantity=90),)))  # over-billed by 90: revision 1
    out = Transition()
    usages = [f.usage(f"U{i}", quantity=30) for i in range(4)]
    for offset, usage in enumerate(usages):
        count_usage_and_billing(usage, store.read, at(offset), False, 0, out)
        store.apply(out)
    touched = {(0, key): (usages[-1], False) for key, _ in out.touched}
    (only,) = report_batch(touched, store, 0)
    assert (only.quantity_difference, only.source_event_id) == (30, "U3")
    state = ReconState.model_validate_json(store.data[RECON, b"S1\x1fapi_calls\x1f2024-01"])
    assert (state.revision, state.reported_difference) == (2, 30)
    assert report_batch(touched, store, 0) == []  # reported already: nothing new stands
    # Unless the batch's counts left the reported difference on the way: then it is restated.
    (restated,) = report_batch({key: (usages[-1], True) for key in touched}, store, 0)
    assert (restated.quantity_difference, restated.detail[:30]) == (30, "under-billed (revenue leakage)")


def test_a_parked_usage_record_counts_through_its_retry_copy_once():
    store = Store()
    parked = f.usage("U1", quantity=7)
    track_parked_usage(store, parked, at(3), dead_lettered=False)
    track_parked_usage(store, f.invoice(), at(4), dead_lettered=False)  # only usage is tracked
    run(store, f.usage("U2", quantity=5), offset=9)
    assert run(store, parked, offset=3, retried=True).touched == [(usage_key(parked), False)]
    assert run(store, parked, offset=3, retried=True).touched == []  # a second copy
    state = ReconState.model_validate_json(store.data[RECON, b"S1\x1fapi_calls\x1f2024-01"])
    assert state.metered_quantity == 12 and state.mark(at(0)).parked == ()
    # Dead-lettered after its attempts: unregistered, so no late copy counts.
    track_parked_usage(store, f.usage("U3", quantity=1), at(11), dead_lettered=False)
    track_parked_usage(store, f.usage("U3", quantity=1), at(11), dead_lettered=True)
    assert run(store, f.usage("U3", quantity=1), offset=11, retried=True).touched == []


def test_an_amendment_re_spreads_the_schedules_in_force_and_stores_the_new_version():
    # A small amount re-spread from mid-March rounds differently than the spread over the year.
    store = Store()
    run(store, f.invoice(lines=(f.invoice_line(amount_minor=7),)))
    amendment = f.amendment(effective_date=date(2024, 3, 17))
    amended = run(store, amendment)

    assert amended.commands, "the remainder is spread again from the effective date"
    assert {table for table, _, _ in amended.updates} == {CONTRACTS}
    # Processed again (a replay after its state was written), it finds nothing left to change;
    # its commands were delivered before that state was written.
    assert run(store, amendment).commands == []
