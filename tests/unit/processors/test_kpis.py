"""Process-intelligence KPIs over hand-made pipeline outputs."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from processors.kpis import CycleEvents, OrderFacts, compute_kpis, standing_mismatches
from schemas.models import BusinessException, ErpCommand, Invoice, InvoiceLine, Subscription
from schemas.models.enums import CommandType, LineKind, ReasonCode, SubscriptionStatus

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def exception(eid: str, reason: ReasonCode, correlation: str = "c-x", **fields) -> BusinessException:
    return BusinessException(
        exception_id=eid, reason_code=reason, source_event_id=f"e-{eid}", event_type="usage_recorded",
        customer_id="C1", legal_entity="LE-US", correlation_id=correlation, detected_at=T0, detail="mismatch",
        **fields,
    )  # fmt: skip


def mismatch(eid: str, quantity: int, amount: int, period: str = "2026-01") -> BusinessException:
    return exception(
        eid, ReasonCode.USAGE_BILLING_MISMATCH, subscription_id="S1", metric="api", period=period,
        quantity_difference=quantity, amount_difference_minor=amount, currency="USD",
    )  # fmt: skip


def command(cid: str, payload) -> ErpCommand:
    kind = CommandType.SUBSCRIPTION if isinstance(payload, Subscription) else CommandType.INVOICE
    return ErpCommand(
        command_id=cid, command_type=kind, source_event_id=f"e-{cid}", correlation_id="c", customer_id="C1",
        legal_entity="LE-US", issued_at=T0, payload=payload,
    )  # fmt: skip


def subscription(sid: str) -> Subscription:
    return Subscription(
        subscription_id=sid, status=SubscriptionStatus.ACTIVE, currency="USD",
        term_start=date(2026, 1, 1), term_end=date(2027, 1, 1), version=1,
    )  # fmt: skip


def invoice(iid: str, sid: str) -> Invoice:
    line = InvoiceLine(
        line_id="L1", kind=LineKind.USAGE, metric="api", quantity=10, unit_price_minor=5, amount_minor=50,
        period_start=date(2026, 1, 1), period_end=date(2026, 2, 1),
    )  # fmt: skip
    return Invoice(
        invoice_id=iid, subscription_id=sid, currency="USD", issued_on=date(2026, 2, 1),
        due_date=date(2026, 3, 1), total_minor=50, lines=(line,),
    )  # fmt: skip


def test_the_last_revision_in_topic_order_stands() -> None:
    revisions = [mismatch("a", 5, 25), mismatch("b", 3, 15), mismatch("c", 0, 0, period="2026-02")]
    standing = standing_mismatches(revisions)
    assert list(standing) == [("S1", "api", "2026-01")]
    assert standing[("S1", "api", "2026-01")].exception_id == "b"
    assert standing_mismatches([*revisions, mismatch("d", 0, 0)]) == {}


def test_kpis_from_a_small_run() -> None:
    cycle = CycleEvents(
        orders={
            "O1": OrderFacts(T0, "S1", "c-1"),
            "O2": OrderFacts(T0, "S2", "c-2"),
        },
        activations={"O1": T0 + timedelta(days=2), "O2": T0 + timedelta(days=4)},
        first_invoices={"S1": T0 + timedelta(days=10)},
    )
    commands = [
        command("k1", subscription("S1")), command("k2", subscription("S2")),
        command("k3", invoice("I1", "S1")), command("k4", invoice("I2", "S2")),
    ]  # fmt: skip
    exceptions = [mismatch("m1", 4, 20), exception("d1", ReasonCode.DISCOUNT_NOT_APPROVED, correlation="c-2")]
    kpis = compute_kpis(
        cycle, commands, exceptions, dead_letters=3, events_consumed=200, duplicates_dropped=4
    )
    assert kpis.order_to_activation_days == (3.0, 4.0)
    assert kpis.order_to_invoice_days == (10.0, 10.0)
    # S1 has a standing mismatch, O2's chain (c-2) a discount exception: nothing was touchless.
    assert kpis.touchless_rate == 0.0
    assert kpis.exception_rate_by_reason == {"DISCOUNT_NOT_APPROVED": 0.005, "USAGE_BILLING_MISMATCH": 0.005}
    assert kpis.duplicate_rate == 0.02
    assert kpis.usage_leakage_minor == {"USD": 20}
    assert kpis.open_exceptions == 2
    assert kpis.invoice_accuracy == 0.5  # I1 bills the mismatched period of S1
    assert kpis.dead_letters == 3


def test_kpis_of_an_empty_run_are_not_invented() -> None:
    kpis = compute_kpis(CycleEvents(), [], [], dead_letters=0, events_consumed=0, duplicates_dropped=0)
    assert kpis.order_to_activation_days is None
    assert kpis.touchless_rate is None
    assert kpis.duplicate_rate is None
    assert kpis.invoice_accuracy is None


def test_a_mismatch_that_a_later_revision_resolved_does_not_make_the_order_touched() -> None:
    cycle = CycleEvents(orders={"O1": OrderFacts(T0, "S1", "c-1"), "O2": OrderFacts(T0, "S2", "c-2")})
    commands = [command("k1", subscription("S1")), command("k2", subscription("S2"))]
    resolved = [mismatch("m1", 4, 20), mismatch("m2", 0, 0)]  # S1: raised, then resolved
    other = mismatch("m3", 2, 10).model_copy(update={"subscription_id": "S2", "correlation_id": "c-2"})
    kpis = compute_kpis(cycle, commands, [*resolved, other], 0, events_consumed=10, duplicates_dropped=0)
    # S2's mismatch still stands; S1's order needed nobody once its mismatch resolved itself.
    assert kpis.touchless_rate == 0.5
    assert kpis.open_exceptions == 1
    assert kpis.exception_rate_by_reason == {"USAGE_BILLING_MISMATCH": 0.3}
