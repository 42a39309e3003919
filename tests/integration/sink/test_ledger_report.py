"""The ledger report from SQL, and the `revstream ledger` commands a user runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date

import pytest

from connectors.ledger.database import connect, database_conninfo
from connectors.ledger.migrate import available_migrations
from connectors.ledger.report import build_report, render_text
from connectors.ledger.writer import CommandRecord, LedgerWriter
from schemas.models.enums import CollectionsCaseStatus
from streams.settings import Settings
from tests.integration.sink.helpers import new_ledger
from tests.unit.ledger import commands_factory as f

AS_OF = date(2026, 3, 15)


def _invoice(invoice_id: str, total: int, due: date, currency: str):
    return f.invoice(invoice_id, total, currency).model_copy(update={"due_date": due})


@pytest.fixture(scope="module")
def reported_ledger(stack_settings: Settings) -> str:
    ledger = new_ledger(stack_settings)
    commands = [
        f.command("i-a", _invoice("inv-A", 10_000, date(2026, 1, 31), "USD")),  # 11,000 with tax
        f.command("i-b", _invoice("inv-B", 20_000, date(2026, 3, 20), "EUR"), "C2", "LE-DE"),
        f.command("i-c", _invoice("inv-C", 1_000, date(2025, 11, 30), "USD")),  # 1,100, 105 days late
        f.command("p-a", f.payment("pay-A", "inv-A", 5_000, 5_000)),
        f.command("p-c", f.payment("pay-C", "inv-C", 1_500, 1_100)),  # paid in full, 400 excess
        f.command("j-jan", f.journal_entry("je-jan", 3_000, "2400", "4000", posting_date=date(2026, 1, 31))),
        f.command("j-feb", f.journal_entry("je-feb", 3_000, "2400", "4000", posting_date=date(2026, 2, 28))),
        f.command("j-feb2", f.journal_entry("je-feb2", 250, "2410", "4010", posting_date=date(2026, 2, 10))),
        # A product with GL accounts of its own: its revenue account shows like the defaults.
        f.command("j-own", f.journal_entry("je-own", 700, "2420", "4020", posting_date=date(2026, 2, 28))),
        f.command(
            "j-use",
            f.journal_entry("je-use", 500, "1200", "4100", "EUR", date(2026, 2, 15)),
            "C2",
            "LE-DE",
        ),
        f.command("k-open", f.case("case-open", 2, CollectionsCaseStatus.ESCALATED)),
        f.command("k-done", f.case("case-done", 1, CollectionsCaseStatus.RESOLVED)),
    ]
    with connect(ledger, autocommit=True) as connection:
        LedgerWriter(connection).apply(
            [CommandRecord.of(c, "t", 0, i) for i, c in enumerate(commands)], {("t", 0): len(commands)}, "g"
        )
    return ledger


def test_report_sections(reported_ledger: str) -> None:
    with connect(reported_ledger) as connection:
        report = build_report(connection, AS_OF)
    tb = {
        (r.legal_entity, r.currency, r.account): (r.debit_minor, r.credit_minor) for r in report.trial_balance
    }
    assert tb[("LE-US", "USD", "2400")] == (6_000, 0)
    assert tb[("LE-US", "USD", "4000")] == (0, 6_000)
    assert tb[("LE-DE", "EUR", "4100")] == (0, 500)
    assert sum(d for d, _ in tb.values()) == sum(c for _, c in tb.values())  # double entry holds
    assert [
        (r.legal_entity, r.currency, r.month, r.account, r.amount_minor) for r in report.revenue_by_month
    ] == [
        ("LE-DE", "EUR", "2026-02", "4100", 500),
        ("LE-US", "USD", "2026-01", "4000", 3_000),
        ("LE-US", "USD", "2026-02", "4000", 3_000),
        ("LE-US", "USD", "2026-02", "4010", 250),
        ("LE-US", "USD", "2026-02", "4020", 700),
    ]
    assert [(r.legal_entity, r.currency, r.bucket, r.invoices, r.open_minor) for r in report.ar_aging] == [
        ("LE-DE", "EUR", "current", 1, 22_000),
        ("LE-US", "USD", "31-60", 1, 6_000),  # inv-A: 11,000 - 5,000, 43 days past due; inv-C is paid
    ]
    assert [(c.case_id, c.status, c.attempt) for c in report.open_collections_cases] == [
        ("case-open", "ESCALATED", 2)
    ]
    assert {c.command_type: c.applied for c in report.commands}["INVOICE"] == 3
    text = render_text(report)
    assert "Trial balance" in text and "AR aging as of 2026-03-15" in text
    assert "  -60.00" in text and "220.00" in text and "case-open" in text and "case-done" not in text


def _cli(stack_settings: Settings, conninfo: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSTREAM_") and k != "DATABASE_URL"}
    env.update(REVSTREAM_PROFILE="external", REVSTREAM_DATABASE_URL=conninfo)
    return subprocess.run(
        [sys.executable, "-m", "revstream", *args], env=env, capture_output=True, text=True, timeout=120
    )


def test_report_json_for_scripts(stack_settings: Settings, reported_ledger: str) -> None:
    result = _cli(stack_settings, reported_ledger, "ledger", "report", "--json", "--as-of", "2026-03-15")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["as_of"] == "2026-03-15"
    assert {
        "legal_entity": "LE-US",
        "currency": "USD",
        "account": "4000",
        "debit_minor": 0,
        "credit_minor": 6_000,
        "balance_minor": -6_000,
    } in data["trial_balance"]
    assert {
        "legal_entity": "LE-US",
        "currency": "USD",
        "month": "2026-01",
        "account": "4000",
        "amount_minor": 3_000,
    } in data["revenue_by_month"]
    assert data["open_collections_cases"][0]["case_id"] == "case-open"


def test_migrate_command_creates_then_reports_current(stack_settings: Settings, unique) -> None:
    from connectors.ledger.database import create_database

    conninfo = create_database(stack_settings.database.conninfo(), unique("cli").replace("-", "_"))
    first = _cli(stack_settings, conninfo, "ledger", "migrate")
    assert first.returncode == 0, first.stderr
    assert "applied 0001_ledger_tables" in first.stdout and "applied 0002_balanced_entries" in first.stdout
    second = _cli(stack_settings, conninfo, "ledger", "migrate")
    assert second.returncode == 0 and "(0 applied)" in second.stdout
    report = _cli(stack_settings, conninfo, "ledger", "report")
    assert report.returncode == 0 and "Trial balance" in report.stdout


def test_commands_fail_in_one_actionable_line(stack_settings: Settings, unique) -> None:
    from connectors.ledger.database import create_database

    unmigrated = create_database(stack_settings.database.conninfo(), unique("bare").replace("-", "_"))
    result = _cli(stack_settings, unmigrated, "ledger", "report")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"revstream: error: the ledger database lacks {len(available_migrations())} migration(s) "
        "(0001_ledger_tables, ...); "
        "run `revstream ledger migrate` first"
    ]
    missing = database_conninfo(stack_settings.database.conninfo(), "no_such_ledger")
    result = _cli(stack_settings, missing, "ledger", "migrate")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert "the ledger database is unreachable" in result.stderr and "REVSTREAM_DATABASE_URL" in result.stderr
    result = _cli(stack_settings, unmigrated, "ledger", "report", "--as-of", "15/03/2026")
    assert result.returncode == 2 and "use YYYY-MM-DD" in result.stderr
