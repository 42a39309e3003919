"""A batch sorted out and turned into rows before its transaction, as the sink prepares it."""

from __future__ import annotations

from connectors.ledger.rows import applied_row, rows_for
from connectors.ledger.writer import CommandRecord, prepare
from schemas.models.erp import ErpCommand
from tests.unit.ledger import commands_factory as f


def test_a_prepared_batch_holds_every_applicable_commands_rows_once() -> None:
    entry = f.command("c-je", f.journal_entry("je-1", 500))
    invoice = f.command("c-inv", f.invoice("inv-1", 1_000))
    unknown = ErpCommand.model_validate(
        {**dict(entry), "command_id": "c-x", "command_type": "UNKNOWN", "source_event_id": "evt-c-x"}
    )
    records = [
        CommandRecord.of(command, "erp", 0, offset)
        for offset, command in enumerate([entry, invoice, entry, unknown])
    ]

    batch = prepare(records)

    assert batch.records == [records[0], records[1]]
    assert batch.duplicates == [records[2]]
    [(record, rejection)] = batch.rejected
    assert record is records[3]
    assert (rejection.reason_code, rejection.topic, rejection.partition, rejection.offset) == (
        "UNSUPPORTED_COMMAND",
        "erp",
        0,
        3,
    )
    assert batch.applied_rows == [applied_row(entry, "erp", 0, 0), applied_row(invoice, "erp", 0, 1)]
    expected = rows_for(entry)
    expected.extend(rows_for(invoice))
    assert batch.rows.tables == expected.tables


def test_a_command_of_unknown_type_takes_the_other_commands_of_its_source_event_with_it() -> None:
    entry = f.command("c-je", f.journal_entry("je-1", 500), source_event_id="evt-1")
    unknown = ErpCommand.model_validate({**dict(entry), "command_id": "c-x", "command_type": "UNKNOWN"})
    other = f.command("c-inv", f.invoice("inv-1", 1_000), source_event_id="evt-2")
    records = [
        CommandRecord.of(command, "erp", 0, offset) for offset, command in enumerate([entry, unknown, other])
    ]

    batch = prepare(records)

    assert batch.records == [records[2]]
    assert [(r.command_id, e.reason_code, e.offset) for r, e in batch.rejected] == [
        ("c-je", "SOURCE_EVENT_REJECTED", 0),
        ("c-x", "UNSUPPORTED_COMMAND", 1),
    ]
    assert "c-x" in str(batch.rejected[0][1]) and "evt-1" in str(batch.rejected[0][1])
