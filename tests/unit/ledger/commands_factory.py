"""ERP commands for ledger and sink tests: valid by construction, deterministic per index."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from schemas.models.enums import CollectionsCaseStatus, CommandType, LineKind, SubscriptionStatus
from schemas.models.erp import (
    CollectionsCase,
    ErpCommand,
    Invoice,
    JournalEntry,
    JournalLine,
    Payload,
    PaymentApplication,
    RevenueSchedule,
    ScheduleEntry,
    Subscription,
)
from schemas.models.events import InvoiceLine

BASE_TIME = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)
ENTITIES = (("LE-US", "USD"), ("LE-DE", "EUR"))


def command(
    command_id: str,
    payload: Payload,
    customer_id: str = "C1",
    legal_entity: str = "LE-US",
    issued_at: datetime = BASE_TIME,
    source_event_id: str | None = None,
) -> ErpCommand:
    return ErpCommand(
        command_id=command_id,
        command_type=_TYPES[type(payload)],
        source_event_id=source_event_id or f"evt-{command_id}",
        correlation_id=f"corr-{customer_id}",
        customer_id=customer_id,
        legal_entity=legal_entity,
        issued_at=issued_at,
        payload=payload,
    )


_TYPES = {
    JournalEntry: CommandType.JOURNAL_ENTRY,
    Invoice: CommandType.INVOICE,
    PaymentApplication: CommandType.PAYMENT_APPLICATION,
    RevenueSchedule: CommandType.REVENUE_SCHEDULE,
    Subscription: CommandType.SUBSCRIPTION,
    CollectionsCase: CommandType.COLLECTIONS_CASE,
}


def journal_entry(
    entry_id: str,
    amount: int,
    debit: str = "1200",
    credit: str = "4100",
    currency: str = "USD",
    posting_date: date = date(2026, 1, 31),
    credit_amount: int | None = None,
) -> JournalEntry:
    return JournalEntry(
        entry_id=entry_id,
        posting_date=posting_date,
        currency=currency,
        description=f"entry {entry_id}",
        lines=(
            JournalLine(account=debit, debit_minor=amount, credit_minor=0),
            JournalLine(
                account=credit,
                debit_minor=0,
                credit_minor=amount if credit_amount is None else credit_amount,
                memo="credit",
            ),
        ),
    )


def invoice(invoice_id: str, amount: int, currency: str = "USD") -> Invoice:
    tax = amount // 10
    return Invoice(
        invoice_id=invoice_id,
        subscription_id=f"sub-{invoice_id}",
        currency=currency,
        issued_on=date(2026, 1, 1),
        due_date=date(2026, 1, 31),
        total_minor=amount + tax,
        lines=(
            InvoiceLine(
                line_id="L1",
                kind=LineKind.SUBSCRIPTION,
                product_id="P1",
                quantity=1,
                unit_price_minor=amount,
                amount_minor=amount,
                period_start=date(2026, 1, 1),
                period_end=date(2026, 2, 1),
            ),
            InvoiceLine(
                line_id="L2",
                kind=LineKind.TAX,
                quantity=1,
                unit_price_minor=tax,
                amount_minor=tax,
                period_start=date(2026, 1, 1),
                period_end=date(2026, 2, 1),
            ),
        ),
    )


def payment(
    payment_id: str, invoice_id: str, amount: int, applied: int, currency: str = "USD"
) -> PaymentApplication:
    return PaymentApplication(
        payment_id=payment_id,
        invoice_id=invoice_id,
        currency=currency,
        amount_minor=amount,
        applied_minor=applied,
        excess_minor=amount - applied,
        received_at=BASE_TIME + timedelta(days=3),
    )


def schedule(schedule_id: str, amounts: tuple[int, ...], currency: str = "USD") -> RevenueSchedule:
    months = [(f"2026-{m:02d}", date(2026, m + 1, 1) - timedelta(days=1)) for m in range(1, len(amounts) + 1)]
    return RevenueSchedule(
        schedule_id=schedule_id,
        subscription_id="sub-1",
        invoice_id="inv-1",
        line_id="L1",
        currency=currency,
        total_minor=sum(amounts),
        entries=tuple(
            ScheduleEntry(month=month, recognition_date=day, amount_minor=amount)
            for (month, day), amount in zip(months, amounts, strict=True)
        ),
    )


def subscription(
    subscription_id: str, version: int, status: SubscriptionStatus = SubscriptionStatus.ACTIVE
) -> Subscription:
    return Subscription(
        subscription_id=subscription_id,
        order_id=f"ord-{subscription_id}",
        status=status,
        currency="USD",
        term_start=date(2026, 1, 1),
        term_end=date(2027, 1, 1) + timedelta(days=version),
        version=version,
    )


def case(case_id: str, attempt: int, status: CollectionsCaseStatus) -> CollectionsCase:
    return CollectionsCase(
        case_id=case_id,
        invoice_id="inv-1",
        payment_id=f"pay-{attempt}",
        status=status,
        attempt=attempt,
        amount_minor=5_000,
        currency="USD",
        reason="card_declined",
    )


def mixed_commands(n: int, prefix: str = "cmd") -> list[ErpCommand]:
    """``n`` valid commands of every type over 20 customers in two legal entities."""
    commands = []
    for i in range(n):
        customer = f"C{i % 20}"
        entity, currency = ENTITIES[i % 20 % 2]
        kind = i % 6
        cid = f"{prefix}-{i}"
        payload: Payload
        if kind == 0:
            payload = invoice(f"inv-{prefix}-{i}", 10_000 + i, currency)
        elif kind == 1:
            payload = journal_entry(f"je-{prefix}-{i}", 10_000 + i, "1200", "2400", currency)
        elif kind == 2:
            payload = payment(f"pay-{prefix}-{i}", f"inv-{prefix}-{i - 2}", 5_000 + i, 5_000, currency)
        elif kind == 3:
            payload = schedule(f"sch-{prefix}-{i}", (3_000, 3_000, 3_001), currency)
        elif kind == 4:
            payload = subscription(f"sub-{customer}", i)
        else:
            payload = journal_entry(
                f"je-{prefix}-{i}", 3_000 + i, "2400", "4000", currency, date(2026, 1 + i % 12, 28)
            )
        commands.append(command(cid, payload, customer, entity, BASE_TIME + timedelta(seconds=i)))
    return commands
