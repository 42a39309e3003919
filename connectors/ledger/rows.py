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
from connectors.ledger.commands import CommandDict, record_of
from schemas.models.enums import CollectionsCaseStatus, CommandType
from schemas.models.erp import ErpCommand

__all__ = [
    "CASE_STATUS_RANK",
    "COLUMNS",
    "Command",
    "INSERT_TABLES",
    "LedgerRows",
    "Row",
    "UPSERT_ORDER",
    "UPSERT_TABLES",
    "add_rows",
    "applied_row",
    "case_order",
    "customer_row",
    "first_per_key",
    "newest_per_key",
    "rows_for",
    "schedule_order",
    "subscription_order",
    "unsupported",
]

logger = logging.getLogger(__name__)

Row = tuple[Any, ...]
T = TypeVar("T")
Command = ErpCommand | CommandDict
"""A command as a model, or as the checked dict the sink decodes (``connectors.ledger.commands``)."""

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


def _record(command: Command) -> CommandDict:
    # dict first: the sink's hot path; pydantic's isinstance check costs more than it looks.
    if type(command) is dict:
        return command
    return record_of(command) if isinstance(command, ErpCommand) else command


def applied_row(command: Command, topic: str, partition: int, offset: int) -> Row:
    """Return the ``applied_commands`` row of ``command`` read at ``topic``/``partition``/``offset``."""
    record = _record(command)
    return (
        record["command_id"],
        record["command_type"],
        record["source_event_id"],
        record["correlation_id"],
        record["customer_id"],
        record["legal_entity"],
        record["issued_at"],
        topic,
        partition,
        offset,
    )


def customer_row(command: Command) -> Row:
    """Return the ``customers`` row the command's envelope implies (first one seen wins)."""
    record = _record(command)
    return (record["customer_id"], record["legal_entity"], record["command_id"])


def unsupported(command: Command) -> CommandRejectedError | None:
    """Return the rejection of a command whose type the ledger cannot apply (``UNKNOWN``), else ``None``."""
    record = _record(command)
    if record["command_type"] in _BUILDERS:
        return None
    return CommandRejectedError(
        f"command {record['command_id']} has type {record['command_type']}, which the ledger "
        "cannot apply; fix the producer, then `revstream dlq replay --reason UNSUPPORTED_COMMAND`",
        reason_code="UNSUPPORTED_COMMAND",
    )


def rows_for(command: Command) -> LedgerRows:
    """Return the ledger rows ``command`` writes, besides its applied-command and customer rows.

    Raises:
        CommandRejectedError: when the command type is not one the ledger knows (``UNKNOWN``).
    """
    rows = LedgerRows()
    add_rows(command, rows)
    return rows


def add_rows(command: Command, rows: LedgerRows) -> None:
    """Append the ledger rows of ``command`` to ``rows`` (see :func:`rows_for`).

    Raises:
        CommandRejectedError: when the command type is not one the ledger knows (``UNKNOWN``).
    """
    record = _record(command)
    rejection = unsupported(record)
    if rejection is not None:
        raise rejection
    _BUILDERS[record["command_type"]](record, record["payload"], rows.tables)


# The builders below run once per command on the sink's hot path: plain dict reads and tuple
# appends, no models (see connectors.ledger.commands).
Tables = dict[str, list[Row]]


def _journal_entry(c: CommandDict, entry: CommandDict, tables: Tables) -> None:
    command_id, source_event_id, correlation_id = c["command_id"], c["source_event_id"], c["correlation_id"]
    entry_id, currency, legal_entity, posting_date = (
        entry["entry_id"], entry["currency"], c["legal_entity"], entry["posting_date"],
    )  # fmt: skip
    tables.setdefault("journal_entries", []).append(
        (
            entry_id, c["customer_id"], legal_entity, currency, posting_date, entry["description"],
            command_id, source_event_id, correlation_id,
        )
    )  # fmt: skip
    tables.setdefault("journal_lines", []).extend(
        (
            entry_id, line_no, line["account"], line["debit_minor"], line["credit_minor"], currency,
            legal_entity, posting_date, line["memo"], source_event_id, correlation_id, command_id,
        )
        for line_no, line in enumerate(entry["lines"])
    )  # fmt: skip


def _invoice(c: CommandDict, invoice: CommandDict, tables: Tables) -> None:
    invoice_id = invoice["invoice_id"]
    tables.setdefault("invoices", []).append(
        (
            invoice_id, invoice["subscription_id"], c["customer_id"], c["legal_entity"],
            invoice["currency"], invoice["issued_on"], invoice["due_date"], invoice["total_minor"],
            c["command_id"], c["source_event_id"], c["correlation_id"],
        )
    )  # fmt: skip
    tables.setdefault("invoice_lines", []).extend(
        (
            invoice_id, line["line_id"], line["kind"], line["product_id"], line["metric"],
            line["quantity"], line["unit_price_minor"], line["amount_minor"], line["period_start"],
            line["period_end"],
        )
        for line in invoice["lines"]
    )  # fmt: skip


def _payment_application(c: CommandDict, payment: CommandDict, tables: Tables) -> None:
    command_id, payment_id, currency, amount = (
        c["command_id"], payment["payment_id"], payment["currency"], payment["amount_minor"],
    )  # fmt: skip
    tables.setdefault("payments", []).append(
        (
            payment_id, c["customer_id"], c["legal_entity"], currency, amount, payment["received_at"],
            command_id, c["source_event_id"], c["correlation_id"],
        )
    )  # fmt: skip
    tables.setdefault("payment_applications", []).append(
        (
            payment_id, payment["invoice_id"], currency, amount, payment["applied_minor"],
            payment["excess_minor"], command_id,
        )
    )  # fmt: skip


def _revenue_schedule(c: CommandDict, schedule: CommandDict, tables: Tables) -> None:
    command_id, schedule_id, currency = c["command_id"], schedule["schedule_id"], schedule["currency"]
    tables.setdefault("revenue_schedules", []).append(
        (
            schedule_id, schedule["subscription_id"], schedule["invoice_id"], schedule["line_id"],
            c["customer_id"], c["legal_entity"], currency, schedule["total_minor"], c["issued_at"],
            command_id, c["source_event_id"], c["correlation_id"],
        )
    )  # fmt: skip
    tables.setdefault("revenue_schedule_entries", []).extend(
        (command_id, schedule_id, entry["month"], entry["recognition_date"], entry["amount_minor"], currency)
        for entry in schedule["entries"]
    )


def _subscription(c: CommandDict, subscription: CommandDict, tables: Tables) -> None:
    tables.setdefault("subscriptions", []).append(
        (
            subscription["subscription_id"], c["customer_id"], c["legal_entity"],
            subscription["order_id"], subscription["status"], subscription["currency"],
            subscription["term_start"], subscription["term_end"], subscription["version"],
            c["command_id"], c["source_event_id"], c["correlation_id"],
        )
    )  # fmt: skip


def _collections_case(c: CommandDict, case: CommandDict, tables: Tables) -> None:
    status = case["status"]
    tables.setdefault("collections_cases", []).append(
        (
            case["case_id"], case["invoice_id"], case["payment_id"], c["customer_id"], c["legal_entity"],
            status, CASE_STATUS_RANK[status], case["attempt"], case["amount_minor"], case["currency"],
            case["reason"], c["command_id"], c["source_event_id"], c["correlation_id"],
        )
    )  # fmt: skip


_BUILDERS: Mapping[str, Callable[[CommandDict, CommandDict, Tables], None]] = {
    CommandType.JOURNAL_ENTRY.value: _journal_entry,
    CommandType.INVOICE.value: _invoice,
    CommandType.PAYMENT_APPLICATION.value: _payment_application,
    CommandType.REVENUE_SCHEDULE.value: _revenue_schedule,
    CommandType.SUBSCRIPTION.value: _subscription,
    CommandType.COLLECTIONS_CASE.value: _collections_case,
}
"""Row builders by command type; their keys are the command types the ledger can apply."""


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
