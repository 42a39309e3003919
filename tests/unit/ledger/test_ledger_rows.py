"""Pure mapping of ERP commands to ledger rows, and the newer-wins order per record kind."""

from __future__ import annotations

import random
from datetime import date, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connectors.errors import CommandRejectedError
from connectors.ledger.rows import (
    CASE_STATUS_RANK,
    COLUMNS,
    INSERT_TABLES,
    UPSERT_ORDER,
    UPSERT_TABLES,
    applied_row,
    customer_row,
    first_per_key,
    newest_per_key,
    rows_for,
)
from schemas.models.enums import CollectionsCaseStatus, SubscriptionStatus
from schemas.models.erp import ErpCommand
from tests.unit.ledger import commands_factory as f


def test_every_table_is_either_append_only_or_versioned() -> None:
    written = set(COLUMNS) - {"applied_commands", "customers"}
    assert set(INSERT_TABLES) | set(UPSERT_TABLES) == written
    assert not set(INSERT_TABLES) & set(UPSERT_TABLES)
    assert set(UPSERT_ORDER) == set(UPSERT_TABLES)


@pytest.mark.parametrize(
    ("payload", "tables"),
    [
        (f.journal_entry("je-1", 100), {"journal_entries": 1, "journal_lines": 2}),
        (f.invoice("inv-1", 100), {"invoices": 1, "invoice_lines": 2}),
        (f.payment("p-1", "inv-1", 100, 80), {"payments": 1, "payment_applications": 1}),
        (f.schedule("s-1", (1, 2, 3)), {"revenue_schedules": 1, "revenue_schedule_entries": 3}),
        (f.subscription("sub-1", 4), {"subscriptions": 1}),
        (f.case("k-1", 1, CollectionsCaseStatus.OPEN), {"collections_cases": 1}),
    ],
)
def test_each_command_type_maps_to_its_tables(payload, tables: dict[str, int]) -> None:
    rows = rows_for(f.command("c-1", payload))
    assert {table: len(r) for table, r in rows.tables.items()} == tables
    for table, table_rows in rows.tables.items():
        assert all(len(row) == len(COLUMNS[table]) for row in table_rows), table
    assert rows.count() == sum(tables.values())


def test_journal_lines_carry_the_trace_and_the_entry_context() -> None:
    command = f.command(
        "c-7", f.journal_entry("je-7", 1_250, "1200", "2400", "EUR", date(2026, 2, 28)), "C3", "LE-DE"
    )
    lines = [
        dict(zip(COLUMNS["journal_lines"], row, strict=True))
        for row in rows_for(command).get("journal_lines")
    ]
    assert [
        (line["line_no"], line["account"], line["debit_minor"], line["credit_minor"]) for line in lines
    ] == [
        (0, "1200", 1_250, 0),
        (1, "2400", 0, 1_250),
    ]
    for line in lines:
        assert (line["currency"], line["legal_entity"], line["posting_date"]) == (
            "EUR",
            "LE-DE",
            date(2026, 2, 28),
        )
        assert (line["command_id"], line["source_event_id"], line["correlation_id"]) == (
            "c-7",
            "evt-c-7",
            "corr-C3",
        )


def test_envelope_rows() -> None:
    command = f.command("c-9", f.subscription("sub-9", 1), "C9", "LE-US")
    assert applied_row(command, "erp", 2, 41) == (
        "c-9", "SUBSCRIPTION", "evt-c-9", "corr-C9", "C9", "LE-US", f.BASE_TIME, "erp", 2, 41,
    )  # fmt: skip
    assert customer_row(command) == ("C9", "LE-US", "c-9")


def test_an_unknown_command_type_is_rejected_before_the_database() -> None:
    known = f.command("c-u", f.journal_entry("je-u", 1))
    unknown = ErpCommand.model_validate({**dict(known), "command_type": "UNKNOWN"})
    with pytest.raises(CommandRejectedError, match="has type UNKNOWN") as caught:
        rows_for(unknown)
    assert caught.value.reason_code == "UNSUPPORTED_COMMAND"


def test_case_status_rank_follows_the_lifecycle() -> None:
    lifecycle = (CollectionsCaseStatus.OPEN, CollectionsCaseStatus.ESCALATED, CollectionsCaseStatus.RESOLVED)
    ranks = [CASE_STATUS_RANK[s] for s in lifecycle]
    assert ranks == sorted(ranks) and len(set(ranks)) == 3
    assert CASE_STATUS_RANK[CollectionsCaseStatus.UNKNOWN] < ranks[0]
    assert set(CASE_STATUS_RANK) == set(CollectionsCaseStatus)


def _versions() -> list[tuple]:
    subscriptions = [
        f.command(f"s-{v}-{tag}", f.subscription("sub-x", v, SubscriptionStatus.AMENDED))
        for v in (1, 2, 3)
        for tag in ("a", "b")
    ]
    cases = [
        f.command(f"k-{a}-{s.value}", f.case("case-x", a, s))
        for a in (1, 2)
        for s in (CollectionsCaseStatus.OPEN, CollectionsCaseStatus.ESCALATED, CollectionsCaseStatus.RESOLVED)
    ]
    schedules = [
        f.command(f"r-{d}", f.schedule("sch-x", (d, d)), issued_at=f.BASE_TIME + timedelta(days=d))
        for d in range(4)
    ]
    rows = []
    for command in [*subscriptions, *cases, *schedules]:
        for table, table_rows in rows_for(command).tables.items():
            if table in UPSERT_ORDER:
                rows += [(table, row) for row in table_rows]
    return rows


@given(st.randoms(use_true_random=False))
def test_newest_per_key_does_not_depend_on_arrival_order(rnd: random.Random) -> None:
    rows = _versions()
    shuffled = rows[:]
    rnd.shuffle(shuffled)

    def newest(items: list[tuple]) -> dict[str, tuple]:
        result = {}
        for table in UPSERT_TABLES:
            [row] = newest_per_key(
                [r for t, r in items if t == table], key=lambda r: r[0], order=UPSERT_ORDER[table]
            )
            result[table] = row
        return result

    assert newest(shuffled) == newest(rows)
    winners = {table: dict(zip(COLUMNS[table], row, strict=True)) for table, row in newest(rows).items()}
    assert winners["subscriptions"]["command_id"] == "s-3-b"  # highest version; ties by command id
    assert winners["collections_cases"]["command_id"] == "k-2-RESOLVED"
    assert winners["revenue_schedules"]["command_id"] == "r-3"


def test_first_per_key_keeps_the_first_seen() -> None:
    assert first_per_key([("a", 1), ("b", 2), ("a", 3)], key=lambda r: r[0]) == [("a", 1), ("b", 2)]
