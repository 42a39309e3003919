"""Pure mapping from ERP commands to ledger rows, and which of two versions of a record wins.

Everything here is plain data: a command becomes tuples in the column order of :data:`COLUMNS`,
ready for ``COPY`` or ``executemany``. The database writer only moves these rows.

"Newer wins" is decided by a total order per record kind, so the ledger converges to the same
state whatever order the versions arrive in (a replay after a crash, a rebalance, a late record):
subscriptions by ``(version, command_id)``, collections cases by ``(attempt, status rank,
command_id)``, revenue schedules by ``(issued_at, command_id)``. The command id only breaks ties
between two different commands claiming the same version, so the outcome never depends on timing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from connectors.errors import CommandRejectedError
from schemas.models.enums import CollectionsCaseStatus
from schemas.models.erp import (
    PAYLOAD_TYPES,
    CollectionsCase,
    ErpCommand,
    Invoice,
    JournalEntry,
    PaymentApplication,
    RevenueSchedule,
    Subscription,
)

__all__ = [
    "CASE_STATUS_RANK",
    "COLUMNS",
    "INSERT_TABLES",
    "LedgerRows",
    "Row",
    "UPSERT_ORDER",
    "UPSERT_TABLES",
    "applied_row",
    "case_order",
    "customer_row",
    "first_per_key",
    "newest_per_key",
    "rows_for",
    "schedule_order",
    "subscription_order",
]

logger = logging.getLogger(__name__)

Row = tuple[Any, ...]
T = TypeVar("T")

COLUMNS: Mapping[str, tuple[str, ...]] = {
    "applied_commands": (
        "command_id", "command_type", "source_event_id", "correlation_id", "customer_id",
        "legal_entity", "issued_at", "topic", "kafka_partition", "kafka_offset",
    ),
    "customers": ("customer_id", "legal_entity", "first_command_id"),
    "subscriptions": (
        "subscription_id", "customer_id", "legal_entity", "order_id", "status", "currency",
        "term_start", "term_end", "version", "command_id", "source_event_id", "correlation_id",
    ),
    "invoices": (
        "invoice_id", "subscription_id", "customer_id", "legal_entity", "currency", "issued_on",
        "due_date", "total_minor", "command_id", "source_event_id", "correlation_id",
    ),
    "invoice_lines": (
        "invoice_id", "line_id", "kind", "product_id", "metric", "quantity", "unit_price_minor",
        "amount_minor", "period_start", "period_end",
    ),
    "payments": (
        "payment_id", "customer_id", "legal_entity", "currency", "amount_minor", "received_at",
        "command_id", "source_event_id", "correlation_id",
    ),
    "payment_applications": (
        "payment_id", "invoice_id", "currency", "amount_minor", "applied_minor", "excess_minor",
        "command_id",
    ),
    "journal_entries": (
        "entry_id", "customer_id", "legal_entity", "currency", "posting_date", "description",
        "command_id", "source_event_id", "correlation_id",
    ),
    "journal_lines": (
        "entry_id", "line_no", "account", "debit_minor", "credit_minor", "currency", "legal_entity",
        "posting_date", "memo", "source_event_id", "correlation_id", "command_id",
    ),
    "revenue_schedules": (
        "schedule_id", "subscription_id", "invoice_id", "line_id", "customer_id", "legal_entity",
        "currency", "total_minor", "issued_at", "command_id", "source_event_id", "correlation_id",
    ),
    "revenue_schedule_entries": (
        "command_id", "schedule_id", "month", "recognition_date", "amount_minor", "currency",
    ),
    "collections_cases": (
        "case_id", "invoice_id", "payment_id", "customer_id", "legal_entity", "status", "status_rank",
        "attempt", "amount_minor", "currency", "reason", "command_id", "source_event_id",
        "correlation_id",
    ),
}  # fmt: skip
"""Every table the sink writes, with its columns in the order rows are built."""

# Parents before children: foreign keys are checked as each statement ends.
INSERT_TABLES: tuple[str, ...] = (
    "invoices",
    "invoice_lines",
    "payments",
    "payment_applications",
    "journal_entries",
    "journal_lines",
    "revenue_schedule_entries",
)
"""Tables a command only ever adds rows to (a second row with the same key is a rejection)."""

UPSERT_TABLES: tuple[str, ...] = ("subscriptions", "collections_cases", "revenue_schedules")
"""Tables holding one current version per key, replaced only by a newer version."""

CASE_STATUS_RANK: Mapping[CollectionsCaseStatus, int] = {
    CollectionsCaseStatus.UNKNOWN: 0,
    CollectionsCaseStatus.OPEN: 1,
    CollectionsCaseStatus.ESCALATED: 2,
    CollectionsCaseStatus.RESOLVED: 3,
}
"""A case moves OPEN -> ESCALATED -> RESOLVED; a status never goes back at the same attempt."""


@dataclass
class LedgerRows:
    """Rows per table, in :data:`COLUMNS` order."""

    tables: dict[str, list[Row]] = field(default_factory=dict)

    def add(self, table: str, row: Row) -> None:
        """Append ``row`` to ``table``."""
        self.tables.setdefault(table, []).append(row)

    def extend(self, other: LedgerRows) -> None:
        """Append every row of ``other``."""
        for table, rows in other.tables.items():
            self.tables.setdefault(table, []).extend(rows)

    def get(self, table: str) -> list[Row]:
        """Return the rows of ``table`` (empty when none)."""
        return self.tables.get(table, [])

    def count(self) -> int:
        """Return the number of rows over all tables."""
        return sum(len(rows) for rows in self.tables.values())


def applied_row(command: ErpCommand, topic: str, partition: int, offset: int) -> Row:
    """Return the ``applied_commands`` row of ``command`` read at ``topic``/``partition``/``offset``."""
    return (
        command.command_id,
        command.command_type.value,
        command.source_event_id,
        command.correlation_id,
        command.customer_id,
        command.legal_entity,
        command.issued_at,
        topic,
        partition,
        offset,
    )


def customer_row(command: ErpCommand) -> Row:
    """Return the ``customers`` row the command's envelope implies (first one seen wins)."""
    return (command.customer_id, command.legal_entity, command.command_id)


def rows_for(command: ErpCommand) -> LedgerRows:
    """Return the ledger rows ``command`` writes, besides its applied-command and customer rows.

    Raises:
        CommandRejectedError: when the command type is not one the ledger knows (``UNKNOWN``).
    """
    builder = _BUILDERS.get(type(command.payload))
    if builder is None or command.command_type not in PAYLOAD_TYPES:
        raise CommandRejectedError(
            f"command {command.command_id} has type {command.command_type.value}, which the ledger "
            "cannot apply; fix the producer and replay the dead letter",
            reason_code="UNSUPPORTED_COMMAND",
        )
    rows = LedgerRows()
    builder(command, rows)
    return rows


def _trace(command: ErpCommand) -> tuple[str, str, str]:
    return command.command_id, command.source_event_id, command.correlation_id


def _journal_entry(command: ErpCommand, rows: LedgerRows) -> None:
    entry = command.payload
    assert isinstance(entry, JournalEntry)
    command_id, source_event_id, correlation_id = _trace(command)
    rows.add(
        "journal_entries",
        (
            entry.entry_id, command.customer_id, command.legal_entity, entry.currency,
            entry.posting_date, entry.description, command_id, source_event_id, correlation_id,
        ),
    )  # fmt: skip
    for line_no, line in enumerate(entry.lines):
        rows.add(
            "journal_lines",
            (
                entry.entry_id, line_no, line.account, line.debit_minor, line.credit_minor,
                entry.currency, command.legal_entity, entry.posting_date, line.memo,
                source_event_id, correlation_id, command_id,
            ),
        )  # fmt: skip


def _invoice(command: ErpCommand, rows: LedgerRows) -> None:
    invoice = command.payload
    assert isinstance(invoice, Invoice)
    command_id, source_event_id, correlation_id = _trace(command)
    rows.add(
        "invoices",
        (
            invoice.invoice_id, invoice.subscription_id, command.customer_id, command.legal_entity,
            invoice.currency, invoice.issued_on, invoice.due_date, invoice.total_minor,
            command_id, source_event_id, correlation_id,
        ),
    )  # fmt: skip
    for line in invoice.lines:
        rows.add(
            "invoice_lines",
            (
                invoice.invoice_id, line.line_id, line.kind.value, line.product_id, line.metric,
                line.quantity, line.unit_price_minor, line.amount_minor, line.period_start,
                line.period_end,
            ),
        )  # fmt: skip


def _payment_application(command: ErpCommand, rows: LedgerRows) -> None:
    payment = command.payload
    assert isinstance(payment, PaymentApplication)
    command_id, source_event_id, correlation_id = _trace(command)
    rows.add(
        "payments",
        (
            payment.payment_id, command.customer_id, command.legal_entity, payment.currency,
            payment.amount_minor, payment.received_at, command_id, source_event_id, correlation_id,
        ),
    )  # fmt: skip
    rows.add(
        "payment_applications",
        (
            payment.payment_id, payment.invoice_id, payment.currency, payment.amount_minor,
            payment.applied_minor, payment.excess_minor, command_id,
        ),
    )  # fmt: skip


def _revenue_schedule(command: ErpCommand, rows: LedgerRows) -> None:
    schedule = command.payload
    assert isinstance(schedule, RevenueSchedule)
    command_id, source_event_id, correlation_id = _trace(command)
    rows.add(
        "revenue_schedules",
        (
            schedule.schedule_id, schedule.subscription_id, schedule.invoice_id, schedule.line_id,
            command.customer_id, command.legal_entity, schedule.currency, schedule.total_minor,
            command.issued_at, command_id, source_event_id, correlation_id,
        ),
    )  # fmt: skip
    for entry in schedule.entries:
        rows.add(
            "revenue_schedule_entries",
            (
                command_id, schedule.schedule_id, entry.month, entry.recognition_date,
                entry.amount_minor, schedule.currency,
            ),
        )  # fmt: skip


def _subscription(command: ErpCommand, rows: LedgerRows) -> None:
    subscription = command.payload
    assert isinstance(subscription, Subscription)
    command_id, source_event_id, correlation_id = _trace(command)
    rows.add(
        "subscriptions",
        (
            subscription.subscription_id, command.customer_id, command.legal_entity,
            subscription.order_id, subscription.status.value, subscription.currency,
            subscription.term_start, subscription.term_end, subscription.version,
            command_id, source_event_id, correlation_id,
        ),
    )  # fmt: skip


def _collections_case(command: ErpCommand, rows: LedgerRows) -> None:
    case = command.payload
    assert isinstance(case, CollectionsCase)
    command_id, source_event_id, correlation_id = _trace(command)
    rows.add(
        "collections_cases",
        (
            case.case_id, case.invoice_id, case.payment_id, command.customer_id, command.legal_entity,
            case.status.value, CASE_STATUS_RANK[case.status], case.attempt, case.amount_minor,
            case.currency, case.reason, command_id, source_event_id, correlation_id,
        ),
    )  # fmt: skip


_BUILDERS: Mapping[type, Callable[[ErpCommand, LedgerRows], None]] = {
    JournalEntry: _journal_entry,
    Invoice: _invoice,
    PaymentApplication: _payment_application,
    RevenueSchedule: _revenue_schedule,
    Subscription: _subscription,
    CollectionsCase: _collections_case,
}


def _column(table: str, name: str) -> int:
    return COLUMNS[table].index(name)


def subscription_order(row: Row) -> tuple[Any, ...]:
    """Rank of a ``subscriptions`` row: higher ``(version, command_id)`` is newer."""
    return (row[_column("subscriptions", "version")], row[_column("subscriptions", "command_id")])


def case_order(row: Row) -> tuple[Any, ...]:
    """Rank of a ``collections_cases`` row: higher ``(attempt, status rank, command_id)`` is newer."""
    return (
        row[_column("collections_cases", "attempt")],
        row[_column("collections_cases", "status_rank")],
        row[_column("collections_cases", "command_id")],
    )


def schedule_order(row: Row) -> tuple[Any, ...]:
    """Rank of a ``revenue_schedules`` row: higher ``(issued_at, command_id)`` is newer."""
    return (
        row[_column("revenue_schedules", "issued_at")],
        row[_column("revenue_schedules", "command_id")],
    )


UPSERT_ORDER: Mapping[str, Callable[[Row], tuple[Any, ...]]] = {
    "subscriptions": subscription_order,
    "collections_cases": case_order,
    "revenue_schedules": schedule_order,
}


def newest_per_key(rows: Iterable[T], key: Callable[[T], Hashable], order: Callable[[T], Any]) -> list[T]:
    """Keep, per key, the row that ranks highest under ``order``; first-seen order of keys."""
    best: dict[Hashable, T] = {}
    for row in rows:
        k = key(row)
        current = best.get(k)
        if current is None or order(row) > order(current):
            best[k] = row
    return list(best.values())


def first_per_key(rows: Iterable[T], key: Callable[[T], Hashable]) -> list[T]:
    """Keep the first row seen per key, in the order they came."""
    seen: dict[Hashable, T] = {}
    for row in rows:
        seen.setdefault(key(row), row)
    return list(seen.values())
