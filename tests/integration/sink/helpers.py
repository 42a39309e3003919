"""Helpers of the ledger and sink tests: extra ledger databases, snapshots and counts."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psycopg
from confluent_kafka import OFFSET_BEGINNING, Message, TopicPartition
from pydantic import SecretStr

from connectors.ledger.database import create_database
from connectors.ledger.migrate import migrate
from connectors.ledger.rows import COLUMNS
from connectors.sink.sink import ErpSink, SinkConfig
from schemas.models.erp import ErpCommand
from streams.clients import consumer as make_consumer
from streams.clients import producer as make_producer
from streams.deadletter import DeadLetter, parse_dead_letter
from streams.serde import AvroSerde
from streams.settings import DatabaseSettings, Settings

# Columns that record when or through which group a row was written, not what the ledger says.
VOLATILE = {"applied_at", "updated_at", "consumer_group"}
LEDGER_TABLES = (*COLUMNS, "sink_offsets")


def new_ledger(stack_settings: Settings) -> str:
    """Create and migrate a ledger database of its own; return its conninfo."""
    conninfo = create_database(stack_settings.database.conninfo(), f"ledger_{uuid.uuid4().hex[:12]}")
    migrate(conninfo)
    return conninfo


def snapshot(conninfo: str, tables: tuple[str, ...] = LEDGER_TABLES) -> dict[str, list[tuple[Any, ...]]]:
    """Every ledger table's rows, sorted, without the columns that record time of writing."""
    result = {}
    with psycopg.connect(conninfo) as connection:
        for table in tables:
            columns = [
                str(row[0])
                for row in connection.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s "
                    "ORDER BY ordinal_position",
                    (table,),
                ).fetchall()
                if row[0] not in VOLATILE
            ]
            rows = connection.execute(f"SELECT {', '.join(columns)} FROM {table}").fetchall()
            result[table] = sorted(rows, key=repr)
    return result


def count(conninfo: str, table: str, where: str = "true") -> int:
    with psycopg.connect(conninfo) as connection:
        row = connection.execute(f"SELECT count(*) FROM {table} WHERE {where}").fetchone()
    assert row is not None
    return int(row[0])


def truncate_all(conninfo: str) -> None:
    with psycopg.connect(conninfo) as connection:
        connection.execute(f"TRUNCATE {', '.join(LEDGER_TABLES)}")


def ledger_settings(stack_settings: Settings, conninfo: str) -> Settings:
    """The session's settings pointing at ledger database ``conninfo``."""
    return stack_settings.model_copy(update={"database": DatabaseSettings(url=SecretStr(conninfo))})


def produce_commands(
    stack_settings: Settings, serde: AvroSerde, topic: str, commands: Sequence[ErpCommand]
) -> list[bytes]:
    """Publish ``commands`` keyed by customer id as Confluent-framed Avro; return the values sent."""
    producer = make_producer(stack_settings.kafka)
    values = []
    for command in commands:
        value = serde.serialize(topic, command)
        values.append(value)
        producer.produce(topic, key=command.customer_id.encode(), value=value)
        producer.poll(0)
    assert producer.flush(30) == 0
    return values


def produce_raw(
    stack_settings: Settings, topic: str, records: Sequence[tuple[bytes | None, bytes | None]]
) -> None:
    producer = make_producer(stack_settings.kafka)
    for key, value in records:
        producer.produce(topic, key=key, value=value)
    assert producer.flush(30) == 0


def make_sink(
    stack_settings: Settings,
    conninfo: str,
    topic: str,
    group: str,
    serde: AvroSerde | None = None,
    **options: Any,
) -> ErpSink:
    """A sink on ``topic`` into ledger ``conninfo``, dead-lettering to ``<topic>.dlq``."""
    options.setdefault("until_idle_s", 1.5)
    return ErpSink(
        ledger_settings(stack_settings, conninfo),
        SinkConfig(group_id=group, topic=topic, deadletter_topic=f"{topic}.dlq", **options),
        serde=serde,
    )


def run_sink(
    stack_settings: Settings,
    conninfo: str,
    topic: str,
    group: str,
    serde: AvroSerde | None = None,
    **options: Any,
) -> ErpSink:
    """Run a sink in this process until the topic stays idle; return it (stats, metrics)."""
    sink = make_sink(stack_settings, conninfo, topic, group, serde, **options)
    sink.run()
    return sink


def read_all(stack_settings: Settings, topic: str, expected: int, timeout_s: float = 30.0) -> list[Message]:
    """Read ``expected`` records from ``topic`` from the beginning (fails the test if they don't come)."""
    consumer = make_consumer(stack_settings.kafka, f"reader-{uuid.uuid4().hex[:8]}")
    # Assigning the partitions directly skips the group join (seconds on the embedded broker).
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    messages: list[Message] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(messages) < expected and time.monotonic() < deadline:
            messages += [
                m for m in consumer.consume(expected - len(messages), timeout=0.5) if m.error() is None
            ]
    finally:
        consumer.close()
    assert len(messages) == expected, f"read {len(messages)} of {expected} records from {topic}"
    return messages


def metric(sink: ErpSink, name: str, labels: dict[str, str] | None = None) -> float:
    value = sink.metrics.registry.get_sample_value(name, labels or {})
    return 0.0 if value is None else value


def dead_letter(message: Message) -> DeadLetter:
    """Parse a record read from a dead-letter topic."""
    raw = message.headers() or []
    pairs = list(raw.items()) if isinstance(raw, dict) else raw
    headers = [(k, v.encode() if isinstance(v, str) else v) for k, v in pairs]
    return parse_dead_letter(message.key(), message.value(), headers)


def sink_process(
    stack_settings: Settings, conninfo: str, topic: str, group: str, *args: str, cwd: str | None = None
) -> subprocess.Popen[str]:
    """Start ``python -m revstream sink`` on ``topic`` into ledger ``conninfo``, as a user would."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSTREAM_") and k != "DATABASE_URL"}
    env.update(
        REVSTREAM_PROFILE="external",
        REVSTREAM_KAFKA_BOOTSTRAP_SERVERS=stack_settings.kafka.require_bootstrap(),
        REVSTREAM_KAFKA_SESSION_TIMEOUT_MS=str(stack_settings.kafka.session_timeout_ms or 6000),
        REVSTREAM_KAFKA_HEARTBEAT_INTERVAL_MS=str(stack_settings.kafka.heartbeat_interval_ms or 1000),
        REVSTREAM_REGISTRY_URL=stack_settings.registry.require_url(),
        REVSTREAM_DATABASE_URL=conninfo,
    )
    command = [sys.executable, "-m", "revstream", "sink", "--group", group, "--topic", topic]
    command += ["--batch-size", "100", *args]
    return subprocess.Popen(
        command, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


def start_postgres_again(stack_home: Path) -> None:
    """``EmbeddedStack.start_postgres()`` in a fresh process.

    pgserver caches its server handle per data directory for the life of a process, so in the
    process that started it, ``get_server`` after a stop returns the stale handle instead of
    starting PostgreSQL (measured); a new process has no such cache.
    """
    code = "import sys; from pathlib import Path; from streams.stack import EmbeddedStack; "
    code += "EmbeddedStack(Path(sys.argv[1])).start_postgres()"
    subprocess.run([sys.executable, "-c", code, str(stack_home)], check=True, timeout=60)
