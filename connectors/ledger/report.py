"""The ledger report, from SQL: trial balance, revenue by month, AR aging, open collections cases.

:func:`build_report` runs the queries and returns plain dataclasses; :meth:`LedgerReport.as_dict`
is the JSON shape scripts (and the demo) read; :func:`render_text` is what a person reads.
Amounts stay integer minor units throughout; only the text renderer places a decimal point.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import psycopg

__all__ = [
    "AGING_BUCKETS",
    "REVENUE_ACCOUNT_CLASS",
    "AgingRow",
    "CollectionsCaseRow",
    "CommandCountRow",
    "LedgerReport",
    "RevenueRow",
    "TrialBalanceRow",
    "build_report",
    "format_minor",
    "render_text",
]

logger = logging.getLogger(__name__)

REVENUE_ACCOUNT_CLASS = "4"
"""Revenue accounts are the chart's class 4 (the defaults 4000, 4010, 4100 and any product's own
``revenue_account`` numbered 4xxx): revenue by month lists every one of them."""

AGING_BUCKETS = ("current", "1-30", "31-60", "61-90", "90+")
"""Days past due of open invoice balances; ``current`` is not yet due."""

# ISO-4217 minor-unit exponents that differ from 2; only the text renderer needs them.
_EXPONENTS = {
    "JPY": 0,
    "KRW": 0,
    "CLP": 0,
    "ISK": 0,
    "VND": 0,
    "BHD": 3,
    "KWD": 3,
    "JOD": 3,
    "OMR": 3,
    "TND": 3,
}


@dataclass(frozen=True)
class TrialBalanceRow:
    """Sums of one account in one legal entity and currency."""

    legal_entity: str
    currency: str
    account: str
    debit_minor: int
    credit_minor: int

    @property
    def balance_minor(self) -> int:
        """Debits minus credits."""
        return self.debit_minor - self.credit_minor


@dataclass(frozen=True)
class RevenueRow:
    """Revenue recognised on one revenue account in one month, entity and currency (credits - debits)."""

    legal_entity: str
    currency: str
    month: str
    account: str
    amount_minor: int


@dataclass(frozen=True)
class AgingRow:
    """Open receivables of one entity and currency in one days-past-due bucket."""

    legal_entity: str
    currency: str
    bucket: str
    invoices: int
    open_minor: int


@dataclass(frozen=True)
class CollectionsCaseRow:
    """A collections case that is still open or escalated."""

    case_id: str
    customer_id: str
    legal_entity: str
    invoice_id: str
    status: str
    attempt: int
    amount_minor: int
    currency: str
    reason: str


@dataclass(frozen=True)
class CommandCountRow:
    """How many commands of one type the ledger has applied."""

    command_type: str
    applied: int


@dataclass(frozen=True)
class LedgerReport:
    """Everything ``revstream ledger report`` shows."""

    as_of: date
    trial_balance: list[TrialBalanceRow] = field(default_factory=list)
    revenue_by_month: list[RevenueRow] = field(default_factory=list)
    ar_aging: list[AgingRow] = field(default_factory=list)
    open_collections_cases: list[CollectionsCaseRow] = field(default_factory=list)
    commands: list[CommandCountRow] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """Return the report as JSON-ready data (dates as ISO strings, amounts as integers)."""
        return {
            "as_of": self.as_of.isoformat(),
            "trial_balance": [
                {**asdict(row), "balance_minor": row.balance_minor} for row in self.trial_balance
            ],
            "revenue_by_month": [asdict(row) for row in self.revenue_by_month],
            "ar_aging": [asdict(row) for row in self.ar_aging],
            "open_collections_cases": [asdict(row) for row in self.open_collections_cases],
            "commands": [asdict(row) for row in self.commands],
        }


_TRIAL_BALANCE = """
SELECT legal_entity, currency, account, sum(debit_minor)::bigint, sum(credit_minor)::bigint
  FROM journal_lines
 GROUP BY legal_entity, currency, account
 ORDER BY legal_entity, currency, account
"""

_REVENUE_BY_MONTH = """
SELECT legal_entity, currency, to_char(posting_date, 'YYYY-MM') AS month, account,
       sum(credit_minor - debit_minor)::bigint
  FROM journal_lines
 WHERE starts_with(account, %s)
 GROUP BY legal_entity, currency, month, account
 ORDER BY legal_entity, currency, month, account
"""

_AR_AGING = """
WITH open_invoices AS (
    SELECT i.legal_entity, i.currency, i.due_date,
           i.total_minor - coalesce(sum(a.applied_minor), 0) AS open_minor
      FROM invoices i
      LEFT JOIN payment_applications a ON a.invoice_id = i.invoice_id
     GROUP BY i.invoice_id
), bucketed AS (
    SELECT legal_entity, currency, open_minor,
           CASE WHEN %(as_of)s::date - due_date <= 0 THEN 0
                WHEN %(as_of)s::date - due_date <= 30 THEN 1
                WHEN %(as_of)s::date - due_date <= 60 THEN 2
                WHEN %(as_of)s::date - due_date <= 90 THEN 3
                ELSE 4 END AS bucket
      FROM open_invoices
     WHERE open_minor > 0
)
SELECT legal_entity, currency, bucket, count(*), sum(open_minor)::bigint
  FROM bucketed
 GROUP BY legal_entity, currency, bucket
 ORDER BY legal_entity, currency, bucket
"""

_OPEN_CASES = """
SELECT case_id, customer_id, legal_entity, invoice_id, status, attempt, amount_minor, currency, reason
  FROM collections_cases
 WHERE status IN ('OPEN', 'ESCALATED')
 ORDER BY legal_entity, currency, amount_minor DESC, case_id
"""

_COMMANDS = "SELECT command_type, count(*) FROM applied_commands GROUP BY command_type ORDER BY command_type"


def build_report(connection: psycopg.Connection[Any], as_of: date | None = None) -> LedgerReport:
    """Query the ledger; AR aging counts days past due as of ``as_of`` (default: today, UTC).

    Raises:
        psycopg.Error: when a query fails (the caller maps connection errors).
    """
    day = as_of or datetime.now(UTC).date()
    query = connection.execute
    return LedgerReport(
        as_of=day,
        trial_balance=[TrialBalanceRow(*row) for row in query(_TRIAL_BALANCE).fetchall()],
        revenue_by_month=[
            RevenueRow(*row) for row in query(_REVENUE_BY_MONTH, (REVENUE_ACCOUNT_CLASS,)).fetchall()
        ],
        ar_aging=[
            AgingRow(entity, currency, AGING_BUCKETS[bucket], invoices, amount)
            for entity, currency, bucket, invoices, amount in query(_AR_AGING, {"as_of": day}).fetchall()
        ],
        open_collections_cases=[CollectionsCaseRow(*row) for row in query(_OPEN_CASES).fetchall()],
        commands=[CommandCountRow(*row) for row in query(_COMMANDS).fetchall()],
    )


def format_minor(amount_minor: int, currency: str) -> str:
    """Return ``amount_minor`` in major units with the currency's decimals, e.g. ``-1,234.05``."""
    exponent = _EXPONENTS.get(currency, 2)
    sign = "-" if amount_minor < 0 else ""
    major, minor = divmod(abs(amount_minor), 10**exponent)
    return f"{sign}{major:,}" + (f".{minor:0{exponent}d}" if exponent else "")


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]], right: set[int]) -> list[str]:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: tuple[str, ...]) -> str:
        return "  ".join(
            c.rjust(w) if i in right else c.ljust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return [line(headers), line(tuple("-" * w for w in widths)), *(line(r) for r in rows)]


def render_text(report: LedgerReport) -> str:
    """Return the report as aligned text tables, one section each."""
    out: list[str] = []
    out += ["Trial balance", ""]
    out += _table(
        ("entity", "currency", "account", "debit", "credit", "balance"),
        [
            (r.legal_entity, r.currency, r.account, format_minor(r.debit_minor, r.currency),
             format_minor(r.credit_minor, r.currency), format_minor(r.balance_minor, r.currency))
            for r in report.trial_balance
        ],
        {3, 4, 5},
    )  # fmt: skip
    out += ["", "Revenue by month", ""]
    out += _table(
        ("entity", "currency", "month", "account", "revenue"),
        [
            (r.legal_entity, r.currency, r.month, r.account, format_minor(r.amount_minor, r.currency))
            for r in report.revenue_by_month
        ],
        {4},
    )
    out += ["", f"AR aging as of {report.as_of.isoformat()} (days past due)", ""]
    out += _table(
        ("entity", "currency", "bucket", "invoices", "open"),
        [
            (r.legal_entity, r.currency, r.bucket, str(r.invoices), format_minor(r.open_minor, r.currency))
            for r in report.ar_aging
        ],
        {3, 4},
    )
    out += ["", f"Open collections cases ({len(report.open_collections_cases)})", ""]
    out += _table(
        ("case", "customer", "entity", "invoice", "status", "attempt", "amount", "reason"),
        [
            (c.case_id, c.customer_id, c.legal_entity, c.invoice_id, c.status, str(c.attempt),
             f"{format_minor(c.amount_minor, c.currency)} {c.currency}", c.reason)
            for c in report.open_collections_cases
        ],
        {5, 6},
    )  # fmt: skip
    out += ["", "Commands applied", ""]
    out += _table(("type", "applied"), [(c.command_type, str(c.applied)) for c in report.commands], {1})
    return "\n".join(out) + "\n"
