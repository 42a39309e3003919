"""LedgerWriter against the real PostgreSQL: rows per command type, idempotence, newer-wins, rejections."""

from __future__ import annotations

from datetime import date, timedelta

import psycopg
import pytest

from connectors.ledger.rows import COLUMNS
from connectors.ledger.statements import ARRAY_TYPES
from connectors.ledger.writer import ApplyOutcome, CommandRecord, LedgerWriter
from schemas.models.enums import CollectionsCaseStatus, SubscriptionStatus
from tests.integration.sink.helpers import count, snapshot, truncate_all
from tests.unit.ledger import commands_factory as f

TOPIC = "erp"


def records(commands, start: int = 0, partition: int = 0) -> list[CommandRecord]:
    return [CommandRecord.of(c, TOPIC, partition, start + i) for i, c in enumerate(commands)]


def apply(writer: LedgerWriter, commands, start: int = 0) -> ApplyOutcome:
    batch = records(commands, start)
    return writer.apply(batch, {(TOPIC, 0): start + len(batch)}, "g1")


def test_every_command_type_writes_its_rows(writer: LedgerWriter, ledger_db: str) -> None:
    commands = [
        f.command("c-inv", f.invoice("inv-1", 10_000)),
        f.command("c-je", f.journal_entry("je-1", 11_000, "1200", "2400")),
        f.command("c-pay", f.payment("pay-1", "inv-1", 12_000, 11_000)),
        f.command("c-sch", f.schedule("sch-1", (3_334, 3_333, 3_333))),
        f.command("c-sub", f.subscription("sub-1", 1), customer_id="C2", legal_entity="LE-DE"),
        f.command("c-case", f.case("case-1", 1, CollectionsCaseStatus.OPEN)),
    ]
    outcome = apply(writer, commands)
    assert [r.command_id for r in outcome.applied] == [c.command_id for c in commands]
    assert outcome.duplicates == [] and outcome.rejected == [] and not outcome.slow_path
    # 6 applied-command rows, 14 payload rows, 2 new customers.
    assert outcome.rows_written == 22

    with psycopg.connect(ledger_db) as connection:
        q = connection.execute
        assert q("SELECT invoice_id, customer_id, total_minor, command_id FROM invoices").fetchall() == [
            ("inv-1", "C1", 11_000, "c-inv")
        ]
        assert q("SELECT line_id, kind, amount_minor FROM invoice_lines ORDER BY line_id").fetchall() == [
            ("L1", "SUBSCRIPTION", 10_000),
            ("L2", "TAX", 1_000),
        ]
        assert q(
            "SELECT line_no, account, debit_minor, credit_minor, currency, legal_entity, posting_date, "
            "source_event_id, correlation_id, command_id FROM journal_lines ORDER BY line_no"
        ).fetchall() == [
            (0, "1200", 11_000, 0, "USD", "LE-US", date(2026, 1, 31), "evt-c-je", "corr-C1", "c-je"),
            (1, "2400", 0, 11_000, "USD", "LE-US", date(2026, 1, 31), "evt-c-je", "corr-C1", "c-je"),
        ]
        assert q("SELECT payment_id, amount_minor FROM payments").fetchall() == [("pay-1", 12_000)]
        assert q(
            "SELECT invoice_id, amount_minor, applied_minor, excess_minor FROM payment_applications"
        ).fetchall() == [("inv-1", 12_000, 11_000, 1_000)]
        assert q("SELECT schedule_id, total_minor, command_id FROM revenue_schedules").fetchall() == [
            ("sch-1", 10_000, "c-sch")
        ]
        assert q("SELECT month, amount_minor FROM revenue_schedule_entries ORDER BY month").fetchall() == [
            ("2026-01", 3_334),
            ("2026-02", 3_333),
            ("2026-03", 3_333),
        ]
        assert q(
            "SELECT subscription_id, customer_id, legal_entity, version FROM subscriptions"
        ).fetchall() == [("sub-1", "C2", "LE-DE", 1)]
        assert q("SELECT case_id, status, attempt FROM collections_cases").fetchall() == [
            ("case-1", "OPEN", 1)
        ]
        assert q("SELECT customer_id, legal_entity FROM customers ORDER BY 1").fetchall() == [
            ("C1", "LE-US"),
            ("C2", "LE-DE"),
        ]
        assert q("SELECT count(*) FROM applied_commands").fetchone() == (6,)
        assert q("SELECT topic, kafka_partition, next_offset FROM sink_offsets").fetchall() == [(TOPIC, 0, 6)]


def test_reapplying_a_batch_changes_nothing(writer: LedgerWriter, ledger_db: str) -> None:
    commands = f.mixed_commands(60)
    first = apply(writer, commands)
    assert len(first.applied) == 60
    before = snapshot(ledger_db)
    again = apply(writer, commands)
    assert again.applied == [] and len(again.duplicates) == 60
    assert snapshot(ledger_db) == before


def test_duplicates_inside_one_batch_apply_once(writer: LedgerWriter, ledger_db: str) -> None:
    one = f.command("c-dup", f.journal_entry("je-dup", 700))
    outcome = apply(writer, [one, one, one])
    assert len(outcome.applied) == 1 and len(outcome.duplicates) == 2
    assert outcome.rows_written == 1 + 3 + 1  # applied row, entry + 2 lines, customer
    assert count(ledger_db, "journal_lines") == 2


@pytest.mark.parametrize("order", ["forward", "reverse"])
def test_newer_versions_win_whatever_the_arrival_order(
    writer: LedgerWriter, ledger_db: str, order: str
) -> None:
    versions = [
        f.command("s-1", f.subscription("sub-x", 1)),
        f.command("s-3", f.subscription("sub-x", 3, SubscriptionStatus.AMENDED)),
        f.command("s-2", f.subscription("sub-x", 2, SubscriptionStatus.RENEWED)),
        f.command("k-1", f.case("case-x", 1, CollectionsCaseStatus.OPEN)),
        f.command("k-2e", f.case("case-x", 2, CollectionsCaseStatus.ESCALATED)),
        f.command("k-2o", f.case("case-x", 2, CollectionsCaseStatus.OPEN)),
        f.command("r-old", f.schedule("sch-x", (100, 100)), issued_at=f.BASE_TIME),
        f.command("r-new", f.schedule("sch-x", (150, 50)), issued_at=f.BASE_TIME + timedelta(days=30)),
    ]
    if order == "reverse":
        versions.reverse()
    # One command per batch: the database, not the batch, decides.
    for i, command in enumerate(versions):
        apply(writer, [command], start=i)
    with psycopg.connect(ledger_db) as connection:
        assert connection.execute("SELECT status, version FROM subscriptions").fetchall() == [("AMENDED", 3)]
        assert connection.execute("SELECT status, attempt FROM collections_cases").fetchall() == [
            ("ESCALATED", 2)
        ]
        assert connection.execute(
            "SELECT e.month, e.amount_minor FROM revenue_schedules s JOIN revenue_schedule_entries e "
            "USING (command_id) ORDER BY e.month"
        ).fetchall() == [("2026-01", 150), ("2026-02", 50)]
    # And the same when all versions arrive in one batch.
    truncate_all(ledger_db)
    apply(writer, versions)
    with psycopg.connect(ledger_db) as connection:
        assert connection.execute("SELECT status, version FROM subscriptions").fetchall() == [("AMENDED", 3)]
        assert connection.execute("SELECT status, attempt FROM collections_cases").fetchall() == [
            ("ESCALATED", 2)
        ]


def test_a_rejected_command_leaves_the_rest_of_the_batch(writer: LedgerWriter, ledger_db: str) -> None:
    good = f.mixed_commands(30)
    unbalanced = f.command("c-bad", f.journal_entry("je-bad", 1_000, credit_amount=999))
    batch = [*good[:10], unbalanced, *good[10:]]
    seen: list[ApplyOutcome] = []
    outcome = apply_with_hook(writer, batch, seen)
    assert outcome.slow_path
    assert len(outcome.applied) == 30
    [(record, rejection)] = outcome.rejected
    assert record.command_id == "c-bad" and record.offset == 10
    assert rejection.reason_code == "UNBALANCED_ENTRY"
    assert "je-bad does not balance" in str(rejection)
    assert seen == [outcome]  # the hook saw the rejection before commit
    assert count(ledger_db, "applied_commands") == 30
    assert count(ledger_db, "journal_entries", "entry_id = 'je-bad'") == 0
    with psycopg.connect(ledger_db) as connection:
        assert connection.execute("SELECT next_offset FROM sink_offsets").fetchone() == (31,)


def test_a_second_command_for_the_same_invoice_is_rejected(writer: LedgerWriter) -> None:
    apply(writer, [f.command("c-a", f.invoice("inv-same", 100))])
    outcome = apply(writer, [f.command("c-b", f.invoice("inv-same", 200))], start=1)
    [(_, rejection)] = outcome.rejected
    assert rejection.reason_code == "DUPLICATE_KEY"
    assert "invoices_pkey" in str(rejection)


def test_offsets_never_move_backwards(writer: LedgerWriter) -> None:
    writer.apply([], {(TOPIC, 0): 50, (TOPIC, 1): 7}, "g1")
    writer.apply([], {(TOPIC, 0): 20}, "g1")
    assert writer.stored_offsets("g1", TOPIC) == {0: 50, 1: 7}
    assert writer.stored_offsets("other", TOPIC) == {}


def apply_with_hook(writer: LedgerWriter, commands, seen: list[ApplyOutcome]) -> ApplyOutcome:
    batch = records(commands)
    return writer.apply(batch, {(TOPIC, 0): len(batch)}, "g1", before_commit=seen.append)


def test_the_arrays_a_batch_is_bound_as_match_the_column_types(ledger_db: str) -> None:
    # char(n) travels as text (the insert's cast enforces the length); every other type must be the
    # column's own, or a batch would be cast (and perhaps rounded or refused) on the way in.
    aliases = {"integer": "int4", "bigint": "int8", "timestamp with time zone": "timestamptz"}
    with psycopg.connect(ledger_db) as connection:
        for table, types in ARRAY_TYPES.items():
            declared: dict[str, str] = dict(
                connection.execute(
                    "SELECT attname, format_type(atttypid, NULL) FROM pg_attribute "
                    "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped",
                    (table,),
                ).fetchall()
            )
            expected = [aliases.get(declared[c], declared[c]) for c in COLUMNS[table]]
            assert [
                "text" if d == "character" and t == "text" else d
                for d, t in zip(expected, types, strict=True)
            ] == list(types), table
