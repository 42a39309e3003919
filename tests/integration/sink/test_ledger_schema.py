"""The ledger schema against the real PostgreSQL: migrations and the guarantees the database enforces."""

from __future__ import annotations

from datetime import date

import psycopg
import pytest

from connectors.errors import MigrationError, SchemaNotCurrentError
from connectors.ledger.database import create_database, database_conninfo
from connectors.ledger.migrate import available_migrations, ensure_current, migrate
from streams.settings import Settings


def _entry(connection: psycopg.Connection, entry_id: str) -> None:
    connection.execute(
        "INSERT INTO journal_entries (entry_id, customer_id, legal_entity, currency, posting_date, "
        "description, command_id, source_event_id, correlation_id) "
        "VALUES (%s, 'C1', 'LE-US', 'USD', %s, 'test', %s, 'evt', 'corr')",
        (entry_id, date(2026, 1, 31), f"cmd-{entry_id}"),
    )


def _line(
    connection: psycopg.Connection,
    entry_id: str,
    line_no: int,
    debit: int,
    credit: int,
    currency: str = "USD",
) -> None:
    connection.execute(
        "INSERT INTO journal_lines (entry_id, line_no, account, debit_minor, credit_minor, currency, "
        "legal_entity, posting_date, source_event_id, correlation_id, command_id) "
        "VALUES (%s, %s, %s, %s, %s, %s, 'LE-US', %s, 'evt', 'corr', %s)",
        (
            entry_id,
            line_no,
            "1200" if debit else "4000",
            debit,
            credit,
            currency,
            date(2026, 1, 31),
            f"cmd-{entry_id}",
        ),
    )


def test_migrate_is_idempotent_and_recorded(ledger_db: str) -> None:
    assert migrate(ledger_db) == []
    with psycopg.connect(ledger_db) as connection:
        rows = connection.execute("SELECT version, name FROM schema_migrations ORDER BY version").fetchall()
        ensure_current(connection)
    assert rows == [(m.version, m.name) for m in available_migrations()]
    assert rows[0] == (1, "ledger_tables")


def test_fresh_database_is_not_current_until_migrated(stack_settings: Settings, unique) -> None:
    conninfo = create_database(stack_settings.database.conninfo(), unique("fresh").replace("-", "_"))
    with (
        psycopg.connect(conninfo) as connection,
        pytest.raises(SchemaNotCurrentError, match="ledger migrate"),
    ):
        ensure_current(connection)
    applied = migrate(conninfo)
    assert [m.version for m in applied] == [m.version for m in available_migrations()]
    with psycopg.connect(conninfo) as connection:
        ensure_current(connection)


def test_a_changed_migration_is_refused(ledger_db: str) -> None:
    with psycopg.connect(ledger_db, autocommit=True) as connection:
        connection.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1")
        try:
            with pytest.raises(MigrationError, match="0001_ledger_tables was changed"):
                migrate(ledger_db)
        finally:
            connection.execute(
                "UPDATE schema_migrations SET checksum = %s WHERE version = 1",
                (available_migrations()[0].checksum,),
            )


def test_unreachable_database_is_one_clear_error(stack_settings: Settings) -> None:
    from connectors.errors import LedgerUnavailableError

    bad = database_conninfo(stack_settings.database.conninfo(), "no_such_database_here")
    with pytest.raises(LedgerUnavailableError, match="REVSTREAM_DATABASE_URL"):
        migrate(bad)


def test_balanced_entry_commits(ledger_db: str) -> None:
    with psycopg.connect(ledger_db) as connection:
        _entry(connection, "je-ok")
        _line(connection, "je-ok", 0, 1_000, 0)
        _line(connection, "je-ok", 1, 0, 600)
        _line(connection, "je-ok", 2, 0, 400)
    with psycopg.connect(ledger_db) as connection:
        row = connection.execute("SELECT count(*) FROM journal_lines WHERE entry_id = 'je-ok'").fetchone()
    assert row == (3,)


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        ([(1_000, 0), (0, 999)], "does not balance in USD: debits 1000 <> credits 999"),
        ([], "has no lines"),
        # Balanced in total but not per currency.
        ([(1_000, 0, "USD"), (0, 1_000, "EUR")], "does not balance"),
    ],
)
def test_unbalanced_entry_is_refused_at_commit(ledger_db: str, lines: list, message: str) -> None:
    entry_id = f"je-bad-{len(lines)}-{len(message)}"
    connection = psycopg.connect(ledger_db)
    try:
        _entry(connection, entry_id)
        for number, line in enumerate(lines):
            _line(connection, entry_id, number, *line)
        # Every statement succeeded: the check is deferred to the end of the transaction.
        with pytest.raises(psycopg.errors.CheckViolation, match=message) as caught:
            connection.commit()
        assert caught.value.diag.constraint_name == "journal_entry_balanced"
    finally:
        connection.close()
    with psycopg.connect(ledger_db) as check:
        assert check.execute(
            "SELECT count(*) FROM journal_entries WHERE entry_id = %s", (entry_id,)
        ).fetchone() == (0,)


def test_adding_a_line_to_a_committed_entry_must_keep_it_balanced(ledger_db: str) -> None:
    with psycopg.connect(ledger_db) as connection:
        _entry(connection, "je-later")
        _line(connection, "je-later", 0, 500, 0)
        _line(connection, "je-later", 1, 0, 500)
    with psycopg.connect(ledger_db) as connection:
        _line(connection, "je-later", 2, 0, 1)
        with pytest.raises(psycopg.errors.CheckViolation, match="je-later does not balance"):
            connection.commit()


def test_negative_amounts_and_two_sided_lines_are_refused(ledger_db: str) -> None:
    with psycopg.connect(ledger_db) as connection:
        _entry(connection, "je-neg")
        with pytest.raises(psycopg.errors.CheckViolation, match="debit_minor_check"):
            _line(connection, "je-neg", 0, -5, 0)
    with psycopg.connect(ledger_db) as connection:
        _entry(connection, "je-two")
        with pytest.raises(psycopg.errors.CheckViolation, match="journal_lines_one_side"):
            _line(connection, "je-two", 0, 5, 5)
    with psycopg.connect(ledger_db) as connection, pytest.raises(psycopg.errors.CheckViolation):
        connection.execute(
            "INSERT INTO payments VALUES ('p-neg', 'C1', 'LE-US', 'USD', -1, now(), 'cmd-p', 'e', 'c')"
        )


def test_command_ids_are_unique(ledger_db: str) -> None:
    insert = (
        "INSERT INTO applied_commands (command_id, command_type, source_event_id, correlation_id, "
        "customer_id, legal_entity, issued_at, topic, kafka_partition, kafka_offset) "
        "VALUES ('cmd-u', 'INVOICE', 'e', 'c', 'C1', 'LE-US', now(), 't', 0, 0)"
    )
    with psycopg.connect(ledger_db) as connection:
        connection.execute(insert)
    with psycopg.connect(ledger_db) as connection, pytest.raises(psycopg.errors.UniqueViolation):
        connection.execute(insert)
