"""A source event's commands land together or not at all, on the real PostgreSQL ledger.

Issue 12: an invoice whose line period ended before it started was half posted: its journal entry
applied, its invoice refused by the ledger's period check, receivables with no invoice row.
"""

from __future__ import annotations

from datetime import date

from connectors.ledger.writer import CommandRecord, LedgerWriter
from schemas.models.erp import ErpCommand
from tests.integration.sink.helpers import count
from tests.unit.ledger import commands_factory as f

TOPIC = "erp"


def _reversed_invoice(invoice_id: str) -> ErpCommand:
    invoice = f.invoice(invoice_id, 10_000)
    line = invoice.lines[0].model_copy(
        update={"period_start": date(2026, 2, 1), "period_end": date(2026, 1, 1)}
    )
    payload = invoice.model_copy(update={"lines": (line, *invoice.lines[1:])})
    return f.command(f"c-{invoice_id}", payload, source_event_id=f"evt-{invoice_id}")


def test_an_invoice_whose_invoice_is_refused_posts_nothing_of_its_event(
    writer: LedgerWriter, ledger_db: str
) -> None:
    bad_entry = f.command(
        "c-je-bad", f.journal_entry("je-bad", 11_000, "1200", "2400"), source_event_id="evt-bad"
    )
    good = [
        f.command("c-je-ok", f.journal_entry("je-ok", 11_000, "1200", "2400"), source_event_id="evt-ok"),
        f.command("c-ok", f.invoice("inv-ok", 10_000), source_event_id="evt-ok"),
    ]
    commands = [bad_entry, good[0], _reversed_invoice("bad"), good[1]]
    records = [CommandRecord.of(c, TOPIC, 0, i) for i, c in enumerate(commands)]

    outcome = writer.apply(records, {(TOPIC, 0): len(records)}, "g1")

    assert outcome.slow_path
    assert [r.command_id for r in outcome.applied] == ["c-je-ok", "c-ok"]
    rejected = {r.command_id: (e.reason_code, str(e)) for r, e in outcome.rejected}
    assert (
        rejected["c-bad"][0] == "CONSTRAINT_VIOLATION"
        and "invoice_lines_period_order" in rejected["c-bad"][1]
    )
    assert rejected["c-je-bad"][0] == "SOURCE_EVENT_REJECTED"
    assert "c-bad" in rejected["c-je-bad"][1] and "evt-bad" in rejected["c-je-bad"][1]
    assert [(r.offset, e.offset) for r, e in outcome.rejected] == [(0, 0), (2, 2)]
    assert count(ledger_db, "journal_entries", "entry_id = 'je-bad'") == 0
    assert count(ledger_db, "applied_commands", "command_id IN ('c-je-bad', 'c-bad')") == 0
    assert count(ledger_db, "journal_entries", "entry_id = 'je-ok'") == 1
    assert count(ledger_db, "invoices", "invoice_id = 'inv-ok'") == 1


def test_a_command_the_ledger_cannot_apply_takes_its_events_other_commands_with_it(
    writer: LedgerWriter, ledger_db: str
) -> None:
    entry = f.command("c-je", f.journal_entry("je-1", 500), source_event_id="evt-1")
    unknown = f.command("c-unknown", f.invoice("inv-1", 100), source_event_id="evt-1")
    records = [CommandRecord.of(entry, TOPIC, 0, 0), CommandRecord.of(unknown, TOPIC, 0, 1)]
    records[1] = CommandRecord({**records[1].command, "command_type": "UNKNOWN"}, TOPIC, 0, 1)

    outcome = writer.apply(records, {(TOPIC, 0): 2}, "g1")

    assert outcome.applied == []
    assert [(r.command_id, e.reason_code) for r, e in outcome.rejected] == [
        ("c-je", "SOURCE_EVENT_REJECTED"),
        ("c-unknown", "UNSUPPORTED_COMMAND"),
    ]
    assert count(ledger_db, "journal_entries") == 0


def test_a_command_applied_before_stays_applied_when_its_sibling_is_refused(
    writer: LedgerWriter, ledger_db: str
) -> None:
    entry = f.command("c-je", f.journal_entry("je-1", 11_000, "1200", "2400"), source_event_id="evt-bad")
    writer.apply([CommandRecord.of(entry, TOPIC, 0, 0)], {(TOPIC, 0): 1}, "g1")
    again = [CommandRecord.of(entry, TOPIC, 0, 1), CommandRecord.of(_reversed_invoice("bad"), TOPIC, 0, 2)]

    outcome = writer.apply(again, {(TOPIC, 0): 3}, "g1")

    assert [r.command_id for r in outcome.duplicates] == ["c-je"]
    assert [(r.command_id, e.reason_code) for r, e in outcome.rejected] == [("c-bad", "CONSTRAINT_VIOLATION")]
    assert count(ledger_db, "journal_entries", "entry_id = 'je-1'") == 1
