"""Reconciliation and recognition as state transitions: idempotent per event id, as a replay needs."""

from __future__ import annotations

from datetime import date

from processors.agents.ledger import (
    LEDGER,
    RECON,
    InvoiceState,
    Transition,
    missing_dependencies,
    recognise,
    reconcile,
)
from schemas.models import PaymentApplication
from tests.unit.processors import factories as f


class Store:
    """A dict standing in for the tables, with a transition's updates applied on request."""

    def __init__(self) -> None:
        self.data: dict[tuple[str, bytes], bytes] = {}

    def read(self, table: str, key: bytes) -> bytes | None:
        return self.data.get((table, key))

    def apply(self, out: Transition) -> Transition:
        for table, key, value in out.updates:
            self.data[table, key] = value
        return out


def run(store: Store, event, tolerance: int = 0) -> Transition:
    out = Transition()
    reconcile(event, store.read, tolerance, out)
    recognise(event, store.read, out)
    return store.apply(out)


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
    invoice = InvoiceState.model_validate_json(store.data[LEDGER, b"inv:INV1"])
    assert dict(invoice.payments) == {"PAY1": (1_000, 600), "PAY2": (400, 400)}


def test_a_payment_needs_its_invoice_and_a_milestone_without_amount_its_services_line():
    store = Store()
    assert missing_dependencies(f.payment(), store.read) == ["invoice:INV1"]
    milestone = f.activation(milestone_amount_minor=None, line_id="IL2")
    assert missing_dependencies(milestone, store.read) == ["invoice-line:S1/IL2"]
    run(
        store, f.invoice(lines=(f.invoice_line(), f.invoice_line("IL2", kind="SERVICES", amount_minor=5_000)))
    )
    assert missing_dependencies(f.payment(), store.read) == []
    assert missing_dependencies(milestone, store.read) == []
    assert len(run(store, milestone).commands) == 1


def test_usage_is_counted_once_per_event_id_and_mismatches_are_raised_once():
    store = Store()
    usage = f.usage("U1", quantity=100)
    invoice = f.invoice(lines=(f.usage_line(quantity=90),))

    assert run(store, usage).exceptions == []
    (raised,) = run(store, invoice).exceptions
    assert (raised.quantity_difference, raised.amount_difference_minor) == (10, 50)
    assert run(store, usage).exceptions == []
    assert [key for table, key in store.data if table == RECON] == [b"S1\x1fapi_calls\x1f2024-01"]


def test_an_amendment_re_spreads_the_schedules_in_force_and_stores_the_new_version():
    # A small amount re-spread from mid-March rounds differently than the spread over the year.
    store = Store()
    run(store, f.invoice(lines=(f.invoice_line(amount_minor=7),)))
    amendment = f.amendment(effective_date=date(2024, 3, 17))
    amended = run(store, amendment)

    assert amended.commands, "the remainder is spread again from the effective date"
    assert {table for table, _, _ in amended.updates} == {LEDGER}
    # Processed again (a replay after its state was written), it finds nothing left to change;
    # its commands were delivered before that state was written.
    assert run(store, amendment).commands == []
