"""The sink end to end: Avro ERP commands on the real broker, via the real registry, into PostgreSQL."""

from __future__ import annotations

import psycopg
import pytest

from connectors.ledger.rows import COLUMNS
from schemas.models.enums import CollectionsCaseStatus
from streams.serde import AvroSerde
from streams.settings import Settings
from streams.wire import frame
from tests.integration.sink.helpers import (
    count,
    dead_letter,
    metric,
    new_ledger,
    produce_commands,
    produce_raw,
    read_all,
    run_sink,
    snapshot,
)
from tests.unit.ledger import commands_factory as f

TYPES = (
    "JOURNAL_ENTRY",
    "INVOICE",
    "PAYMENT_APPLICATION",
    "REVENUE_SCHEDULE",
    "SUBSCRIPTION",
    "COLLECTIONS_CASE",
)


def test_every_command_type_lands_with_its_rows(
    stack_settings: Settings, serde: AvroSerde, topic_factory, unique
) -> None:
    topic = topic_factory("erp", partitions=3)
    ledger = new_ledger(stack_settings)
    commands = [
        *f.mixed_commands(120),
        f.command("c-case-1", f.case("case-9", 1, CollectionsCaseStatus.OPEN), customer_id="C9"),
        f.command("c-case-2", f.case("case-9", 2, CollectionsCaseStatus.ESCALATED), customer_id="C9"),
    ]
    produce_commands(stack_settings, serde, topic, commands)

    sink = run_sink(stack_settings, ledger, topic, unique("g"))

    assert sink.stats.consumed == len(commands) and sink.stats.applied == len(commands)
    assert sink.stats.dead_lettered == 0 and sink.stats.duplicates == 0
    assert count(ledger, "applied_commands") == len(commands)
    assert count(ledger, "invoices") == 20 and count(ledger, "invoice_lines") == 40
    assert count(ledger, "journal_entries") == 40 and count(ledger, "journal_lines") == 80
    assert count(ledger, "payments") == 20 and count(ledger, "payment_applications") == 20
    assert count(ledger, "revenue_schedules") == 20 and count(ledger, "revenue_schedule_entries") == 60
    assert count(ledger, "subscriptions") == 10  # one per subscription id: the newest version
    assert count(ledger, "customers") == 20
    with psycopg.connect(ledger) as connection:
        assert connection.execute("SELECT status, attempt FROM collections_cases").fetchall() == [
            ("ESCALATED", 2)
        ]
        # Keyed by customer, so subscription versions of one customer arrive in order on one
        # partition; the ledger holds the newest of each.
        assert connection.execute(
            "SELECT version FROM subscriptions WHERE subscription_id = 'sub-C4'"
        ).fetchone() == (64,)
        stored: dict[int, int] = dict(
            connection.execute("SELECT kafka_partition, next_offset FROM sink_offsets").fetchall()
        )
    assert sum(stored.values()) == len(commands)
    for command_type in TYPES:
        assert metric(sink, "revstream_sink_commands_applied_total", {"command_type": command_type}) > 0
    for partition, offset in stored.items():
        assert (
            metric(sink, "revstream_sink_committed_offset", {"topic": topic, "partition": str(partition)})
            == offset
        )
    assert metric(sink, "revstream_sink_batch_size_records_count") == sink.stats.batches


def test_redelivering_a_whole_batch_changes_nothing(
    stack_settings: Settings, serde: AvroSerde, topic_factory, unique
) -> None:
    topic = topic_factory("erp", partitions=2)
    ledger = new_ledger(stack_settings)
    group = unique("g")
    commands = f.mixed_commands(300, prefix="redeliver")
    produce_commands(stack_settings, serde, topic, commands)
    first = run_sink(stack_settings, ledger, topic, group)
    assert first.stats.applied == 300
    before = snapshot(ledger, tuple(COLUMNS))

    # The same batch published again (a producer retry, a replay): every command is a no-op.
    produce_commands(stack_settings, serde, topic, commands)
    again = run_sink(stack_settings, ledger, topic, group)
    assert again.stats.consumed == 300 and again.stats.applied == 0 and again.stats.duplicates == 300
    assert metric(again, "revstream_sink_commands_duplicate_total") == 300
    assert snapshot(ledger, tuple(COLUMNS)) == before

    # And the ledger forgetting its offsets (Kafka re-delivers all 600) changes nothing either.
    with psycopg.connect(ledger) as connection:
        connection.execute("DELETE FROM sink_offsets")
    replay = run_sink(stack_settings, ledger, topic, group)
    assert replay.stats.consumed == 600 and replay.stats.duplicates == 600
    assert snapshot(ledger, tuple(COLUMNS)) == before


def test_one_bad_command_in_a_thousand_is_dead_lettered_alone(
    stack_settings: Settings, serde: AvroSerde, topic_factory, unique
) -> None:
    topic = topic_factory("erp", partitions=1)
    ledger = new_ledger(stack_settings)
    commands = f.mixed_commands(999, prefix="poison")
    bad = f.command("c-unbalanced", f.journal_entry("je-unbalanced", 1_000, credit_amount=900))
    commands.insert(500, bad)
    values = produce_commands(stack_settings, serde, topic, commands)

    sink = run_sink(stack_settings, ledger, topic, unique("g"))

    assert sink.stats.applied == 999 and sink.stats.dead_lettered == 1
    assert count(ledger, "applied_commands") == 999
    assert count(ledger, "applied_commands", "command_id = 'c-unbalanced'") == 0
    assert count(ledger, "journal_entries", "entry_id = 'je-unbalanced'") == 0
    with psycopg.connect(ledger) as connection:
        assert connection.execute("SELECT next_offset FROM sink_offsets").fetchone() == (1000,)
    [letter] = read_all(stack_settings, f"{topic}.dlq", 1)
    assert letter.value() == values[500] and letter.key() == b"C1"
    parsed = dead_letter(letter)
    assert parsed.failure.reason_code == "UNBALANCED_ENTRY"
    assert parsed.failure.stage == "sink"
    assert "je-unbalanced does not balance in USD: debits 1000 <> credits 900" in parsed.failure.error_message
    assert (parsed.source.topic, parsed.source.partition, parsed.source.offset) == (topic, 0, 500)
    assert metric(sink, "revstream_sink_commands_dead_lettered_total", {"reason": "UNBALANCED_ENTRY"}) == 1


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"not avro at all", "CORRUPT_RECORD"),
        (frame(987_654, b"\x00\x02"), "UNKNOWN_SCHEMA_ID"),
        (None, "EMPTY_RECORD"),
    ],
)
def test_undecodable_records_are_dead_lettered_and_the_rest_lands(
    stack_settings: Settings, serde: AvroSerde, topic_factory, unique, value: bytes | None, reason: str
) -> None:
    topic = topic_factory("erp", partitions=1)
    ledger = new_ledger(stack_settings)
    produce_commands(stack_settings, serde, topic, f.mixed_commands(5, prefix="before"))
    produce_raw(stack_settings, topic, [(b"C1", value)])
    produce_commands(stack_settings, serde, topic, f.mixed_commands(5, prefix="after"))

    sink = run_sink(stack_settings, ledger, topic, unique("g"))

    assert sink.stats.applied == 10 and sink.stats.dead_lettered == 1
    [letter] = read_all(stack_settings, f"{topic}.dlq", 1)
    parsed = dead_letter(letter)
    assert letter.value() == value and parsed.failure.reason_code == reason
    assert parsed.source.offset == 5
    assert metric(sink, "revstream_sink_commands_dead_lettered_total", {"reason": reason}) == 1


def test_the_sink_refuses_an_unmigrated_ledger(stack_settings: Settings, serde: AvroSerde, unique) -> None:
    from connectors.errors import SchemaNotCurrentError
    from connectors.ledger.database import create_database

    bare = create_database(stack_settings.database.conninfo(), unique("bare").replace("-", "_"))
    with pytest.raises(SchemaNotCurrentError, match="run `revstream ledger migrate` first"):
        run_sink(stack_settings, bare, "unused-topic", unique("g"), serde)
