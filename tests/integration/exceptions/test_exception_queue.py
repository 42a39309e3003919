"""The queue on the embedded stack: records into rows exactly once, the CLI as a script uses it, audit."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg
import pytest

from connectors.exceptions.consumer import ExceptionQueueConsumer
from connectors.sink.config import SinkConfig
from schemas.models import BusinessException, ReasonCode
from streams.clients import producer as make_producer
from streams.queue_settings import ExceptionQueueSettings
from streams.serde import AvroSerde
from streams.settings import Settings
from streams.topics import TopicCatalog
from tests.integration.sink.helpers import count, ledger_settings, new_ledger

T0 = datetime(2026, 2, 3, 10, 0, tzinfo=UTC)
KEY = "mismatch-S1-api_calls-2026-01"


def exception(
    exception_id: str, reason: ReasonCode = ReasonCode.DISCOUNT_NOT_APPROVED, **fields: Any
) -> BusinessException:
    values: dict[str, Any] = {
        "exception_id": exception_id,
        "reason_code": reason,
        "source_event_id": f"E-{exception_id}",
        "event_type": "quote_approved",
        "customer_id": "C1",
        "legal_entity": "LE-DE",
        "correlation_id": "K1",
        "detected_at": T0,
        "detail": f"detail of {exception_id}",
        **fields,
    }
    return BusinessException(**values)


def revision(number: int, amount: int, resolution: str | None = None) -> BusinessException:
    return exception(
        f"M{number}",
        ReasonCode.USAGE_BILLING_MISMATCH,
        event_type="usage_recorded",
        exception_key=KEY,
        revision=number,
        resolution=resolution,
        amount_difference_minor=amount,
        quantity_difference=amount // 100,
        currency="EUR",
        subscription_id="S1",
        metric="api_calls",
        period="2026-01",
    )


def publish(settings: Settings, serde: AvroSerde, topic: str, records: Sequence[BusinessException]) -> None:
    producer = make_producer(settings.kafka)
    for record in records:
        producer.produce(topic, key=record.customer_id.encode(), value=serde.serialize(topic, record))
    assert producer.flush(30) == 0


def consume(settings: Settings, group: str) -> ExceptionQueueConsumer:
    consumer = ExceptionQueueConsumer(
        settings, ExceptionQueueSettings(consumer_group=group), SinkConfig(until_idle_s=1.5)
    )
    consumer.run()
    return consumer


def cli(settings: Settings, catalog: TopicCatalog, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSTREAM_")}
    env.update(
        REVSTREAM_PROFILE="external",
        REVSTREAM_KAFKA_BOOTSTRAP_SERVERS=settings.kafka.require_bootstrap(),
        REVSTREAM_REGISTRY_URL=settings.registry.require_url(),
        REVSTREAM_DATABASE_URL=settings.database.conninfo(),
        REVSTREAM_TOPICS_NAMESPACE=catalog.namespace,
    )
    return subprocess.run(
        [sys.executable, "-m", "revstream", "exceptions", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


@pytest.fixture
def queue_settings(stack_settings: Settings, catalog: TopicCatalog) -> Settings:
    settings = ledger_settings(stack_settings, new_ledger(stack_settings))
    return settings.model_copy(
        update={"topics": settings.topics.model_copy(update={"namespace": catalog.namespace})}
    )


def test_revisions_become_one_row_exactly_once_and_scripts_read_the_queue(
    queue_settings: Settings, catalog: TopicCatalog, serde: AvroSerde, unique: Any
) -> None:
    group = unique("queue")
    topic = catalog.exceptions_topic
    publish(
        queue_settings,
        serde,
        topic,
        [
            exception("D1"),
            exception("X1", ReasonCode.CURRENCY_MISMATCH),
            revision(1, 500),
            revision(2, 900),
            revision(1, 500),  # at least once: a repeat of an older revision changes nothing
        ],
    )
    metrics = consume(queue_settings, group).metrics
    assert metrics.open.labels("deal-desk", "DISCOUNT_NOT_APPROVED")._value.get() == 1
    assert metrics.open.labels("billing-ops", "USAGE_BILLING_MISMATCH")._value.get() == 1
    assert metrics.oldest_open._value.get() > 0
    listed = cli(queue_settings, catalog, "list", "--json")
    assert listed.returncode == 0, listed.stderr
    rows = {row["exception_key"]: row for row in json.loads(listed.stdout)}
    assert set(rows) == {"D1", "X1", KEY}
    assert (rows["D1"]["team"], rows["D1"]["status"]) == ("deal-desk", "open")
    assert (rows[KEY]["team"], rows[KEY]["revision"], rows[KEY]["amount_minor"]) == ("billing-ops", 2, 900)
    assert rows["X1"]["team"] == "finance"
    deal_desk = json.loads(cli(queue_settings, catalog, "list", "--team", "deal-desk", "--json").stdout)
    assert [row["exception_key"] for row in deal_desk] == ["D1"]
    assert json.loads(cli(queue_settings, catalog, "list", "--older-than", "1h", "--json").stdout) == []
    bad = cli(queue_settings, catalog, "list", "--older-than", "soon")
    assert bad.returncode == 2 and "not a duration" in bad.stderr

    stats = json.loads(cli(queue_settings, catalog, "stats", "--json").stdout)
    assert stats["open"] == 3 and stats["sla_breaches"] == 0
    assert stats["by_team"]["billing-ops"]["by_reason"] == {"USAGE_BILLING_MISMATCH": 1}
    assert stats["leakage_minor"] == {"EUR": 900}

    # The resolved revision closes the row by itself; a second consumer run re-reads nothing.
    publish(queue_settings, serde, topic, [revision(3, 0, "resolved")])
    consume(queue_settings, group)
    shown = json.loads(cli(queue_settings, catalog, "show", KEY, "--json").stdout)
    assert shown["exception"]["status"] == "resolved"
    assert shown["source_event"] is None  # these records were made up: no event raised them
    assert [entry["action"] for entry in shown["history"]] == ["raised", "revised", "closed"]
    assert count(queue_settings.database.conninfo(), "exceptions") == 3
    assert count(queue_settings.database.conninfo(), "exception_audit") == 5


def test_people_assign_and_resolve_with_an_audit_row_and_closed_rows_refuse_changes(
    queue_settings: Settings, catalog: TopicCatalog, serde: AvroSerde, unique: Any
) -> None:
    publish(queue_settings, serde, catalog.exceptions_topic, [revision(1, 400)])
    consume(queue_settings, unique("queue"))
    assigned = cli(queue_settings, catalog, "assign", "M1", "--to", "ana", "--by", "lead")
    assert assigned.returncode == 0, assigned.stderr
    resolved = cli(queue_settings, catalog, "resolve", KEY, "--note", "accepted as a credit", "--by", "ana")
    assert resolved.returncode == 0, resolved.stderr
    with psycopg.connect(queue_settings.database.conninfo()) as connection:
        audit = connection.execute(
            "SELECT actor, action, from_status, to_status, note FROM exception_audit ORDER BY audit_id"
        ).fetchall()
        status = connection.execute("SELECT status, assignee FROM exceptions").fetchall()
    assert audit == [
        ("pipeline", "raised", None, "open", None),
        ("lead", "assigned", "open", "assigned", None),
        ("ana", "resolved", "assigned", "resolved", "accepted as a credit"),
    ]
    assert status == [("resolved", "ana")]

    again = cli(queue_settings, catalog, "resolve", KEY, "--note", "twice")
    missing = cli(queue_settings, catalog, "show", "no-such-id")
    for result in (again, missing):
        assert result.returncode == 1
        assert result.stderr.startswith("revstream: error: ") and "Traceback" not in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
    assert "resolved already" in again.stderr


def test_an_unreadable_record_is_dead_lettered_and_the_rest_applied(
    queue_settings: Settings, catalog: TopicCatalog, serde: AvroSerde, unique: Any
) -> None:
    producer = make_producer(queue_settings.kafka)
    producer.produce(catalog.exceptions_topic, key=b"C1", value=b"not avro")
    assert producer.flush(30) == 0
    publish(queue_settings, serde, catalog.exceptions_topic, [exception("D2")])
    consumer = consume(queue_settings, unique("queue"))
    assert consumer.stats.dead_lettered == 1
    assert consumer.metrics.dead_lettered.labels("CORRUPT_RECORD")._value.get() == 1
    assert count(queue_settings.database.conninfo(), "exceptions") == 1
