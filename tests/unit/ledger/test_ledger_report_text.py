"""Rendering the ledger report: money placed by currency exponent, never through floats."""

from __future__ import annotations

from datetime import date

import pytest

from connectors.ledger.report import (
    AgingRow,
    LedgerReport,
    RevenueRow,
    TrialBalanceRow,
    format_minor,
    render_text,
)


@pytest.mark.parametrize(
    ("amount", "currency", "text"),
    [
        (123_456, "USD", "1,234.56"),
        (-5, "EUR", "-0.05"),
        (0, "USD", "0.00"),
        (1_000, "JPY", "1,000"),
        (1_234_567, "KWD", "1,234.567"),
        (10**20 + 1, "USD", "1,000,000,000,000,000,000.01"),
    ],
)
def test_format_minor(amount: int, currency: str, text: str) -> None:
    assert format_minor(amount, currency) == text


def test_report_as_dict_has_the_documented_shape() -> None:
    report = LedgerReport(
        as_of=date(2026, 3, 1),
        trial_balance=[TrialBalanceRow("LE-US", "USD", "1200", 500, 200)],
        revenue_by_month=[RevenueRow("LE-US", "USD", "2026-02", "4000", 300)],
        ar_aging=[AgingRow("LE-US", "USD", "1-30", 2, 300)],
    )
    data = report.as_dict()
    assert data["as_of"] == "2026-03-01"
    assert data["trial_balance"] == [
        {
            "legal_entity": "LE-US",
            "currency": "USD",
            "account": "1200",
            "debit_minor": 500,
            "credit_minor": 200,
            "balance_minor": 300,
        }
    ]
    assert data["revenue_by_month"] == [
        {
            "legal_entity": "LE-US",
            "currency": "USD",
            "month": "2026-02",
            "account": "4000",
            "amount_minor": 300,
        }
    ]
    assert data["open_collections_cases"] == [] and data["commands"] == []


def test_render_text_aligns_columns_and_handles_an_empty_ledger() -> None:
    text = render_text(LedgerReport(as_of=date(2026, 3, 1)))
    assert "Open collections cases (0)" in text
    full = render_text(
        LedgerReport(
            as_of=date(2026, 3, 1), trial_balance=[TrialBalanceRow("LE-US", "USD", "1200", 123_456, 0)]
        )
    )
    header, rule, row = full.splitlines()[2:5]
    assert len(header) == len(rule) == len(row)
    assert row.endswith("1,234.56")
    assert all(line == line.rstrip() for line in full.splitlines())
