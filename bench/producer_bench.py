"""SDK publish throughput against a raw confluent-kafka producer, in the same run, on the same broker.

The raw producer gets the records already Avro-encoded (by the project's serde, outside the timed
part) and sends them with the same producer configuration (``acks=all``; idempotent except on the
embedded profile, like the SDK's), the same keys and headers and a delivery callback, polling as a
well-behaved producer does. The SDK gets the same events as models and does everything itself:
encoding, headers, delivery reports. Rounds alternate raw / SDK so that a noisy neighbour hurts
both alike; the best round of each counts.

    python -m bench.producer_bench [--n 50000] [--rounds 3]

uses the running embedded stack (or ``REVSTREAM_*`` settings), else starts a temporary one.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import KafkaError, Message

from bench.common import bench_settings
from connectors.producers.publisher import Publisher
from schemas.loader import schema_for_model
from schemas.models import UsageRecorded
from streams.clients import admin_client, producer
from streams.provisioning import ensure_topics
from streams.serde import AvroSerde
from streams.settings import RegistrySettings, Settings
from streams.topics import TopicCatalog

__all__ = ["make_events", "run"]

logger = logging.getLogger(__name__)

START = datetime(2026, 1, 1, tzinfo=UTC)


def make_events(n: int, customers: int = 200) -> list[UsageRecorded]:
    """Return ``n`` distinct usage events spread over ``customers`` keys."""
    return [
        UsageRecorded(
            event_id=f"bench-{i:09d}",
            occurred_at=START + timedelta(seconds=i),
            source="meter",
            customer_id=f"C-{i % customers:05d}",
            legal_entity="LE-US",
            correlation_id=f"SUB-{i % customers:05d}",
            subscription_id=f"SUB-{i % customers:05d}",
            metric="api_calls",
            quantity=1000 + i % 977,
            window_start=START + timedelta(hours=i // customers),
            window_end=START + timedelta(hours=i // customers + 1),
        )
        for i in range(n)
    ]


def _raw_round(
    settings: Settings,
    topic: str,
    records: list[tuple[bytes, bytes, list[Any]]],
    events: list[UsageRecorded] | None = None,
    serde: AvroSerde | None = None,
) -> float:
    """Time a raw producer; with ``events`` and ``serde`` it encodes each record itself (timed)."""
    errors: list[str] = []

    def on_delivery(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            errors.append(error.str())

    raw = producer(settings.kafka)
    key, value, headers = records[0]
    raw.produce(topic, value, key, headers=headers, on_delivery=on_delivery)  # connect, not timed
    raw.flush(30)
    started = time.perf_counter()
    for index, (key, value, headers) in enumerate(records):
        if events is not None and serde is not None:
            value = serde.serialize(topic, events[index])
        while True:
            try:
                raw.produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                break
            except BufferError:
                raw.poll(0.05)
        raw.poll(0)
    raw.flush()
    elapsed = time.perf_counter() - started
    if errors:
        raise RuntimeError(f"raw producer: {len(errors)} records failed, first: {errors[0]}")
    return elapsed


def _sdk_round(
    settings: Settings, catalog: TopicCatalog, events: list[UsageRecorded], futures: bool
) -> float:
    with Publisher(settings, catalog=catalog) as publisher:
        publisher.publish(events[0]).result(timeout=30)  # schema lookup and connection, not timed
        started = time.perf_counter()
        if futures:
            for event in events:
                publisher.publish(event)
        else:
            for event in events:
                publisher.send(event)
        publisher.flush()
        return time.perf_counter() - started


def _encode_round(events: list[UsageRecorded]) -> float:
    """Time the Avro encoding alone (the SDK's serde, no producer): the part raw does not pay."""
    serde = AvroSerde.from_settings(RegistrySettings(url="mock://bench-encode"))
    serialize = serde.serialize
    serialize("bench", events[0])  # the schema id, once: not timed
    started = time.perf_counter()
    for event in events:
        serialize("bench", event)
    return time.perf_counter() - started


def run(settings: Settings, n: int = 50_000, rounds: int = 3) -> dict[str, Any]:
    """Measure raw and SDK throughput (records/s) on a fresh topic; return the figures and ratios."""
    catalog = TopicCatalog(namespace=f"bench-{uuid.uuid4().hex[:8]}", partitions=3, replication_factor=1)
    topic = catalog.event_topic("usage_recorded")
    ensure_topics(admin_client(settings.kafka), [catalog.spec(topic)])
    events = make_events(n)
    serde = AvroSerde.from_settings(settings.registry)
    schema_id = str(
        serde.schema_id(serde.subject_for(topic, events[0]), schema_for_model(UsageRecorded))
    ).encode()
    records = [
        (
            event.customer_id.encode(),
            serde.serialize(topic, event),
            [
                ("event_type", b"usage_recorded"),
                ("source", event.source.encode()),
                ("correlation_id", event.correlation_id.encode()),
                ("schema_id", schema_id),
            ],
        )
        for event in events
    ]
    best = {name: float("inf") for name in ("raw", "raw_serde", "sdk_send", "sdk_publish", "encode")}
    for _ in range(rounds):
        best["encode"] = min(best["encode"], _encode_round(events))
        best["raw"] = min(best["raw"], _raw_round(settings, topic, records))
        best["raw_serde"] = min(best["raw_serde"], _raw_round(settings, topic, records, events, serde))
        best["sdk_send"] = min(best["sdk_send"], _sdk_round(settings, catalog, events, futures=False))
        best["sdk_publish"] = min(best["sdk_publish"], _sdk_round(settings, catalog, events, futures=True))
    rates = {name: n / seconds for name, seconds in best.items()}
    return {
        "n": n,
        "rounds": rounds,
        "raw_records_per_s": round(rates["raw"]),
        "raw_encoding_with_serde_records_per_s": round(rates["raw_serde"]),
        "sdk_send_records_per_s": round(rates["sdk_send"]),
        "sdk_publish_records_per_s": round(rates["sdk_publish"]),
        "ratio": round(rates["sdk_send"] / rates["raw"], 3),
        "ratio_with_futures": round(rates["sdk_publish"] / rates["raw"], 3),
        "ratio_vs_raw_encoding_with_serde": round(rates["sdk_send"] / rates["raw_serde"], 3),
        # What the SDK could reach if encoding were all it added: raw time / (raw time + encode time).
        "encode_only_records_per_s": round(rates["encode"]),
        "ratio_ceiling_given_encoding": round(best["raw"] / (best["raw"] + best["encode"]), 3),
        "target": 0.8,
    }


def main() -> None:
    """Run the benchmark and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="records per round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds; the best of each side counts")
    args = parser.parse_args()
    logging.getLogger("librdkafka").setLevel(logging.CRITICAL)
    with bench_settings() as settings:
        print(json.dumps(run(settings, args.n, args.rounds), indent=2))


if __name__ == "__main__":
    main()
