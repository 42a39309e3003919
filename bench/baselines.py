"""The two reference points every revstream figure is divided by, run on the same machine.

- ``raw``: the machine's practical limit for an Avro pass-through: one process, confluent-kafka
  consumer → fastavro decode → small transform → fastavro encode → confluent-kafka producer,
  batched, schemas parsed once. Nothing of revstream is on its path.
- ``faust``: what a user would write with the peer framework: a plain faust-streaming agent doing
  the same pass-through with one awaited send per event.

``prepare`` fills a source topic with ~300-byte Confluent-framed Avro records; each contender then
runs as ``python -m bench.baselines raw|faust …`` in its own process and prints one JSON line.
"""

from __future__ import annotations

import argparse
import io
import logging
import os
import sys
import uuid
from datetime import UTC, date, datetime
from typing import Any

import fastavro

from bench.common import Stopwatch, emit
from schemas.loader import schema_for_event
from schemas.models.enums import LineKind
from schemas.models.events import InvoiceLine, InvoicePosted
from streams.clients import admin_client, consumer, producer
from streams.provisioning import ensure_topics
from streams.serde import AvroSerde
from streams.settings import EMBEDDED_SESSION_TIMEOUT_MS, KafkaSettings, Settings
from streams.topics import TopicSpec
from streams.wire import frame, unframe

__all__ = ["prepare", "sample_invoice"]

logger = logging.getLogger(__name__)

PARTITIONS = 3
BATCH = 2000


def sample_invoice(i: int) -> InvoicePosted:
    """Return the i-th benchmark record: an invoice of two lines (~300 bytes of Avro)."""
    customer = f"C{i % 500:05d}"
    lines = tuple(
        InvoiceLine(
            line_id=f"L{n}",
            kind=LineKind.SUBSCRIPTION if n == 0 else LineKind.USAGE,
            product_id=f"P{n}",
            metric=None if n == 0 else "api_calls",
            quantity=10 + n,
            unit_price_minor=1250,
            amount_minor=(10 + n) * 1250,
            period_start=date(2026, 1, 1),
            period_end=date(2026, 2, 1),
        )
        for n in range(2)
    )
    return InvoicePosted(
        event_id=f"bench-{i:09d}",
        occurred_at=datetime(2026, 1, 31, tzinfo=UTC),
        source="billing",
        customer_id=customer,
        legal_entity="LE-US",
        correlation_id=f"corr-{i}",
        invoice_id=f"INV-{i:09d}",
        subscription_id=f"S-{customer}",
        currency="USD",
        issued_on=date(2026, 1, 31),
        due_date=date(2026, 3, 2),
        total_minor=sum(line.amount_minor for line in lines),
        lines=lines,
    )


def prepare(settings: Settings, n: int) -> tuple[str, int]:
    """Create a source topic holding ``n`` framed records; return its name and the schema id."""
    topic = f"bench-src-{uuid.uuid4().hex[:8]}"
    ensure_topics(
        admin_client(settings.kafka), [TopicSpec(topic, "canonical", PARTITIONS, 1, key="customer_id")]
    )
    serde = AvroSerde.from_settings(settings.registry)
    kafka = producer(settings.kafka, **{"linger.ms": 20})
    schema_id = 0
    for i in range(n):
        event = sample_invoice(i)
        value = serde.serialize(topic, event)
        if i == 0:
            schema_id = unframe(value)[0]
        kafka.produce(topic, key=event.customer_id.encode(), value=value)
        if i % 10_000 == 0:
            kafka.poll(0)
    kafka.flush(120)
    return topic, schema_id


def new_sink_topic(settings: Settings) -> str:
    """Create an empty output topic for one contender run."""
    topic = f"bench-out-{uuid.uuid4().hex[:8]}"
    ensure_topics(
        admin_client(settings.kafka), [TopicSpec(topic, "canonical", PARTITIONS, 1, key="customer_id")]
    )
    return topic


def _read(body: bytes, schema: dict[str, Any]) -> dict[str, Any]:
    record: dict[str, Any] = fastavro.schemaless_reader(io.BytesIO(body), schema, None)  # type: ignore[assignment]
    return record


def _transform(record: dict[str, Any]) -> dict[str, Any]:
    record["total_minor"] = sum(line["amount_minor"] for line in record["lines"])
    record["source"] = "bench"
    return record


def raw_passthrough(kafka: KafkaSettings, source: str, sink: str, n: int, schema_id: int) -> None:
    """Move ``n`` records from ``source`` to ``sink`` the fastest plain way; print the figures."""
    schema = schema_for_event("invoice_posted").parsed
    reader = consumer(kafka, f"bench-raw-{uuid.uuid4().hex[:8]}", **{"fetch.min.bytes": 65536})
    writer = producer(kafka, **{"linger.ms": 5, "enable.idempotence": False, "acks": 1})
    reader.subscribe([source])
    watch = Stopwatch()
    moved = 0
    while moved < n:
        batch = reader.consume(BATCH, timeout=1.0)
        if not batch:
            continue
        if moved == 0:
            watch.start()
        for message in batch:
            if message.error():
                continue
            _, body = unframe(message.value() or b"")
            record = _transform(_read(body, schema))
            out = io.BytesIO()
            fastavro.schemaless_writer(out, schema, record)
            writer.produce(sink, key=message.key(), value=frame(schema_id, out.getvalue()))
            moved += 1
        writer.poll(0)
    writer.flush(60)
    emit(watch.stop(moved), contender="raw")
    reader.close()


def plain_faust(kafka: KafkaSettings, source: str, sink: str, n: int, schema_id: int) -> None:
    """The same pass-through as a plain Faust agent awaiting one send per event."""
    import faust

    schema = schema_for_event("invoice_posted").parsed
    app = faust.App(
        f"bench-faust-{uuid.uuid4().hex[:8]}",
        broker=kafka.faust_broker_urls(),
        value_serializer="raw",
        key_serializer="raw",
        broker_session_timeout=EMBEDDED_SESSION_TIMEOUT_MS / 1000,
        producer_linger_ms=5,
        web_enabled=False,
        topic_partitions=PARTITIONS,
    )
    source_topic = app.topic(source, value_serializer="raw", key_serializer="raw")
    sink_topic = app.topic(sink, value_serializer="raw", key_serializer="raw")
    watch = Stopwatch()
    state = {"moved": 0}

    @app.agent(source_topic)
    async def passthrough(stream: Any) -> None:
        async for event in stream.events():
            if state["moved"] == 0:
                watch.start()
            _, body = unframe(event.value)
            record = _transform(_read(body, schema))
            out = io.BytesIO()
            fastavro.schemaless_writer(out, schema, record)
            await sink_topic.send(key=event.key, value=frame(schema_id, out.getvalue()))
            state["moved"] += 1
            if state["moved"] == n:
                emit(watch.stop(n), contender="faust")
                # The figure is out; a graceful Faust shutdown only adds seconds of rebalancing
                # and can hang on the embedded broker, and there is nothing left to keep.
                os._exit(0)

    # Faust writes terminal control codes to its stdout even when it is not a terminal; they would
    # land in front of the one JSON line the harness reads.
    worker = faust.Worker(app, loglevel="warning", quiet=True, redirect_stdouts=False, stdout=sys.stderr)
    logging.getLogger().setLevel(logging.WARNING)
    worker.execute_from_commandline()


def main() -> None:
    """Run one contender: ``python -m bench.baselines raw|faust --bootstrap … --source … …``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("contender", choices=["raw", "faust"])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--sink", required=True)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--schema-id", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("librdkafka").setLevel(logging.CRITICAL)
    kafka = KafkaSettings(
        bootstrap_servers=args.bootstrap,
        session_timeout_ms=EMBEDDED_SESSION_TIMEOUT_MS,
        heartbeat_interval_ms=1000,
    )
    run = raw_passthrough if args.contender == "raw" else plain_faust
    run(kafka, args.source, args.sink, args.n, args.schema_id)


if __name__ == "__main__":
    main()
