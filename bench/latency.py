"""End-to-end latency of the full pipeline at a paced load: event produced → command produced → ledger.

One worker and one ERP sink run on a fresh namespace and ledger. The simulation is published
through the SDK at a steady ``rate`` (records per second, every canonical record and master record
in the simulation's order); the moment each event is handed to the producer is its produce time
(librdkafka stamps the record's CreateTime in the same call). A warm-up slice is published first
and the measured part starts only once its commands are in the ledger, so the group joins of the
worker and the sink are not counted as latency.

- to the command topic: a command record's Kafka timestamp minus its source event's produce time,
  matched by ``source_event_id``;
- to the ledger: the moment a poller (every ``LEDGER_POLL_S``) first sees the sink's committed
  offset (``sink_offsets``, moved in the transaction that applies the command) pass the command's
  record, minus the same produce time. The poll makes this an upper bound, by at most one poll
  interval; the ledger schema has no commit-time column and is not changed for a benchmark.

Commands of events that were parked on the retry topic (waiting for a dependency such as the
invoice a payment applies to) include the retry back-off by design: figures are given for every
command and for the first-pass ones (source event never parked); the 250 ms target applies to the
latter.
"""

from __future__ import annotations

import bisect
import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from confluent_kafka import OFFSET_BEGINNING, KafkaError, Message, TopicPartition

from bench.pipeline import (
    Namespace,
    Samples,
    check_running,
    namespace,
    scrape,
    settled,
    start_sink,
    start_workers,
    stop_all,
    total,
)
from connectors.ledger.database import connect
from connectors.producers.publisher import Publisher
from connectors.simulator.simulate import Simulation
from revstream.demo.services import ChildService
from schemas.models import Customer, EventEnvelope, LegalEntity, Product
from streams.clients import consumer, producer
from streams.errors import SerdeError
from streams.serde import AvroSerde
from streams.settings import Settings

__all__ = ["percentiles", "run"]

logger = logging.getLogger(__name__)

LEDGER_POLL_S = 0.02
WARMUP_SHARE = 0.05
DRAIN_DEADLINE_S = 180.0
QUANTILES = 100


def percentiles(values_s: Sequence[float]) -> dict[str, Any]:
    """p50/p90/p99/max in milliseconds, the count, and ``QUANTILES`` quantiles for the plot."""
    if not values_s:
        return {"count": 0}
    ordered = sorted(values_s)

    def at(q: float) -> float:
        return round(1000 * ordered[min(int(q * len(ordered)), len(ordered) - 1)], 1)

    return {
        "count": len(ordered),
        "p50_ms": at(0.50),
        "p90_ms": at(0.90),
        "p99_ms": at(0.99),
        "max_ms": round(1000 * ordered[-1], 1),
        "quantiles_ms": [at(i / QUANTILES) for i in range(QUANTILES)],
    }


class _LedgerPoller(threading.Thread):
    """Notes when the sink's committed offset of the command topic first passes each record.

    The sink moves ``sink_offsets`` in the transaction that applies the commands, so a command is
    in the ledger exactly when its partition's ``next_offset`` has passed it. Polling that small
    table keeps the measurement off the machine it measures: reading the applied rows themselves
    returned every row of a look-back window on every poll (thousands of rows, 50 times a second),
    which cost the two cores more than the sink did.
    """

    def __init__(self, conninfo: str, topic: str) -> None:
        super().__init__(name="ledger-poller", daemon=True)
        self.conninfo = conninfo
        self.topic = topic
        self.moves: dict[int, list[tuple[int, float]]] = {}
        """partition → [(next_offset, epoch seconds it was first seen)], in the order seen."""
        self._committed: dict[int, int] = {}
        self._stop_event = threading.Event()

    def run(self) -> None:
        with connect(self.conninfo) as connection:
            connection.autocommit = True
            while not self._stop_event.is_set():
                rows: list[tuple[int, int]] = connection.execute(  # type: ignore[assignment]
                    "SELECT kafka_partition, next_offset FROM sink_offsets WHERE topic = %s", (self.topic,)
                ).fetchall()
                now = time.time()
                for partition, next_offset in rows:
                    if next_offset > self._committed.get(partition, 0):
                        self._committed[partition] = next_offset
                        self.moves.setdefault(partition, []).append((next_offset, now))
                self._stop_event.wait(LEDGER_POLL_S)

    @property
    def committed(self) -> int:
        """Command records the sink has applied and committed so far, over every partition."""
        return sum(self._committed.values())

    def seen_at(self, partition: int, offset: int) -> float | None:
        """When the record at ``offset`` was first seen committed (``None``: not yet)."""
        moves = self.moves.get(partition, [])
        index = bisect.bisect_right([next_offset for next_offset, _ in moves], offset)
        return moves[index][1] if index < len(moves) else None

    def stop(self) -> None:
        self._stop_event.set()
        self.join(10)


def _publish_paced(
    settings: Settings,
    ns: Namespace,
    simulation: Simulation,
    rate: float,
    produced_at: dict[str, float],
    poller: _LedgerPoller,
    services: list[ChildService],
) -> tuple[int, set[str], float]:
    """Publish every emission at ``rate``.

    Returns:
        The canonical records sent, the ids of the events measured, and the rate achieved after
        the warm-up (emissions per second).
    """
    emissions = simulation.emissions
    warmup = max(int(len(emissions) * WARMUP_SHARE), 1)
    raw = producer(settings.kafka)
    measured: set[str] = set()
    canonical = 0

    def raw_failed(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            logger.warning("raw fault record not delivered: %s", error.str())

    with Publisher(settings, catalog=ns.catalog) as publisher:
        started = time.perf_counter()
        for index, emission in enumerate(emissions):
            if index == warmup:
                publisher.flush()
                raw.flush(30)
                _wait(_drained(services[0], poller, canonical), 120, "the warm-up in the ledger", services)
                started = time.perf_counter() - index / rate
            ahead = started + index / rate - time.perf_counter()
            if ahead > 0.001:
                time.sleep(ahead)
            record = emission.record
            if emission.kind == "event" and isinstance(record, EventEnvelope):
                produced_at.setdefault(record.event_id, time.time())
                if index >= warmup:
                    measured.add(record.event_id)
                publisher.send(record)
                canonical += 1
            elif emission.kind == "master" and isinstance(record, Customer | Product | LegalEntity):
                publisher.publish_master(record)
            elif emission.kind == "raw" and emission.value is not None:
                topic = ns.catalog.event_topic(emission.stream)
                raw.produce(topic, emission.value, emission.key.encode(), on_delivery=raw_failed)
                raw.poll(0)
                canonical += 1
            publisher.poll(0)
        achieved = (len(emissions) - warmup) / max(time.perf_counter() - started - warmup / rate, 1e-6)
    raw.flush(30)
    return canonical, measured, achieved


def _wait(condition: Any, timeout_s: float, what: str, services: list[ChildService]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        check_running(services)
        if condition():
            return
        time.sleep(0.1)
    raise RuntimeError(f"timed out after {timeout_s:g}s waiting for {what}")


def _drained(worker: ChildService, poller: _LedgerPoller, n: int) -> Callable[[], bool]:
    """Whether ``n`` canonical records are settled and every command emitted so far is in the ledger."""

    def check() -> bool:
        page = scrape(worker)
        commands = total(page, "revstream_processor_erp_commands_total")
        return settled(page) >= n and poller.committed >= commands

    return check


def _batches(page: Samples) -> dict[str, float]:
    """How the worker batched: count, mean records and mean seconds per batch (its own histograms)."""
    count = total(page, "revstream_processor_batch_seconds_count")
    if not count:
        return {"count": 0}
    return {
        "count": count,
        "mean_records": round(total(page, "revstream_processor_batch_size_records_sum") / count, 1),
        "mean_seconds": round(total(page, "revstream_processor_batch_seconds_sum") / count, 4),
    }


def _read_all(settings: Settings, topic: str) -> list[Message]:
    """Every record of ``topic`` from its beginning to its current end."""
    reader = consumer(settings.kafka, f"bench-read-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True})
    try:
        partitions = reader.list_topics(topic, timeout=10).topics[topic].partitions
        reader.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        pending = set(partitions)
        messages: list[Message] = []
        deadline = time.monotonic() + 60
        while pending and time.monotonic() < deadline:
            for message in reader.consume(2000, timeout=0.5):
                error = message.error()
                if error is None:
                    messages.append(message)
                elif error.code() == KafkaError._PARTITION_EOF:
                    pending.discard(message.partition())
        return messages
    finally:
        reader.close()


def _record(serde: AvroSerde, message: Message) -> dict[str, Any]:
    try:
        _, record = serde.decode(message.value() or b"")
    except SerdeError:
        return {}
    return dict(record)


def _text(record: dict[str, Any], name: str) -> str | None:
    value = record.get(name)
    return str(value) if value is not None else None


def run(settings: Settings, simulation: Simulation, rate: float, logs: Path) -> dict[str, Any]:
    """Publish the simulation at ``rate`` records/s through one worker and a sink; return latencies.

    Raises:
        RuntimeError: when a child exits or the pipeline does not drain before the deadline.
    """
    serde = AvroSerde.from_settings(settings.registry)
    produced_at: dict[str, float] = {}
    with namespace(settings, ledger=True) as ns:
        assert ns.ledger is not None
        worker = start_workers(settings, ns, 1, logs)[0]
        sink = start_sink(settings, ns, logs)
        services = [worker, sink]
        poller = _LedgerPoller(ns.ledger, ns.catalog.commands_topic)
        try:
            _wait(
                lambda: total(scrape(worker), "revstream_processor_assigned_partitions") > 0 and sink.ready(),
                120,
                "the worker to join and the sink to serve /metrics",
                services,
            )
            poller.start()
            n, measured, achieved = _publish_paced(
                settings, ns, simulation, rate, produced_at, poller, services
            )
            what = "every record settled and every command in the ledger"
            _wait(_drained(worker, poller, n), DRAIN_DEADLINE_S, what, services)
            page = scrape(worker)
        finally:
            poller.stop()
            stop_all(services)
        commands = _read_all(settings, ns.catalog.commands_topic)
        parked = {_text(_record(serde, m), "event_id") for m in _read_all(settings, ns.catalog.retry_topic)}
    to_topic: list[float] = []
    to_topic_first_pass: list[float] = []
    to_ledger: dict[str, float] = {}
    for message in commands:
        record = _record(serde, message)
        source = _text(record, "source_event_id")
        if source is None or source not in measured:
            continue
        delay = message.timestamp()[1] / 1000 - produced_at[source]
        to_topic.append(delay)
        if source in parked:
            continue
        to_topic_first_pass.append(delay)
        seen = poller.seen_at(message.partition() or 0, message.offset() or 0)
        command_id = _text(record, "command_id")
        if seen is not None and command_id is not None:
            # A retried produce can repeat a command; its first copy is the one the ledger applied.
            to_ledger.setdefault(command_id, seen - produced_at[source])
    return {
        "rate_target_per_s": round(rate, 1),
        "rate_achieved_per_s": round(achieved, 1),
        "canonical_records": n,
        "to_command_topic_first_pass": percentiles(to_topic_first_pass),
        "to_command_topic_all": percentiles(to_topic),
        "to_ledger_first_pass": percentiles(list(to_ledger.values())),
        "parked_events": len(parked - {None}),
        "worker_batches": _batches(page),
        "ledger_poll_s": LEDGER_POLL_S,
    }
