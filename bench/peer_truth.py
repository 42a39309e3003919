"""The simulator's ground truth for the reference workload, and the count-back of a contender's output.

The truth is taken from the emissions themselves (the simulator labels each copy it injects as a
``duplicate`` or a ``conflict``; raw faults are bytes that cannot decode), not from the peers' code,
so a bug shared with a peer cannot agree with itself. A peer's outputs and dead letters are read
back from its topics and compared; revstream's full path, which writes other outputs, is compared
by its own counters (repeats dropped, conflicts and undecodable records dead-lettered).
"""

from __future__ import annotations

import io
import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import fastavro
from confluent_kafka import OFFSET_BEGINNING, KafkaError, TopicPartition

from bench.peers.workload import CONFLICT, CORRUPT, OUTPUT_SCHEMA, UNKNOWN_SCHEMA, money
from bench.pipeline import RECORDS, Samples, total
from connectors.simulator.simulate import Simulation
from schemas.models import EventEnvelope
from streams.clients import consumer
from streams.settings import Settings

__all__ = ["Truth", "check_peer", "check_revstream", "ground_truth"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Truth:
    """What a contender must make of the simulated records."""

    records: int
    unique: int
    duplicates: int
    conflicts: int
    undecodable: int
    per_customer: dict[str, tuple[int, int]] = field(repr=False)
    """customer id → (events, money sum) over the first copy of each event."""


def ground_truth(simulation: Simulation) -> Truth:
    """The expected outcome of the reference workload over the simulation's canonical records."""
    faults: Counter[str] = Counter()
    per_customer: dict[str, tuple[int, int]] = {}
    for emission in simulation.emissions:
        if emission.kind == "raw":
            faults["undecodable"] += 1
        elif emission.kind == "event" and isinstance(emission.record, EventEnvelope):
            if emission.fault is not None:
                faults[emission.fault] += 1
                continue
            event = emission.record
            count, amount = per_customer.get(event.customer_id, (0, 0))
            per_customer[event.customer_id] = (count + 1, amount + money(event.model_dump()))
    unique = sum(count for count, _ in per_customer.values())
    return Truth(
        records=unique + faults["duplicate"] + faults["conflict"] + faults["undecodable"],
        unique=unique,
        duplicates=faults["duplicate"],
        conflicts=faults["conflict"],
        undecodable=faults["undecodable"],
        per_customer=per_customer,
    )


def check_peer(settings: Settings, truth: Truth, output: str, deadletter: str) -> dict[str, Any]:
    """Read a peer's output and dead-letter topics back; return the counts and every mismatch."""
    schema = fastavro.parse_schema(OUTPUT_SCHEMA)
    outputs = 0
    last: dict[str, tuple[int, int]] = {}
    for value, _ in _read_all(settings, [output]):
        record: Any = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema, None)
        outputs += 1
        seen = last.get(record["customer_id"], (0, 0))
        # One partition per customer, in order: its highest count is its latest total.
        if record["count"] > seen[0]:
            last[record["customer_id"]] = (record["count"], record["amount_minor"])
    reasons: Counter[str] = Counter(reason for _, reason in _read_all(settings, [deadletter]))
    found = {
        "outputs": outputs,
        "conflicts": reasons[CONFLICT],
        "undecodable": reasons[CORRUPT] + reasons[UNKNOWN_SCHEMA],
        "customers_wrong": sum(1 for c, v in truth.per_customer.items() if last.get(c) != v),
    }
    expected = {"outputs": truth.unique, "conflicts": truth.conflicts, "undecodable": truth.undecodable}
    mismatches = [f"{k}: {found[k]} != {v}" for k, v in expected.items() if found[k] != v]
    if found["customers_wrong"]:
        mismatches.append(f"{found['customers_wrong']} of {len(truth.per_customer)} customers' totals wrong")
    return {**found, "correct": not mismatches, "mismatches": mismatches}


def check_revstream(truth: Truth, pages: Sequence[Samples]) -> dict[str, Any]:
    """Compare the workers' own counters with the truth (their outputs are commands, not totals)."""

    def counted(stage: str, outcome: str) -> int:
        return int(sum(total(p, RECORDS, stage=stage, outcome=outcome) for p in pages))

    found = {
        "unique": counted("dedupe", "passed") + counted("dedupe", "redelivered"),
        "duplicates": counted("dedupe", "dropped"),
        "conflicts": counted("dedupe", "dead_lettered"),
        "undecodable": counted("decode", "dead_lettered"),
    }
    expected = {
        "unique": truth.unique,
        "duplicates": truth.duplicates,
        "conflicts": truth.conflicts,
        "undecodable": truth.undecodable,
    }
    mismatches = [f"{k}: {found[k]} != {v}" for k, v in expected.items() if found[k] != v]
    return {**found, "correct": not mismatches, "mismatches": mismatches}


def _read_all(settings: Settings, topics: Sequence[str]) -> list[tuple[bytes, str]]:
    """Every record of ``topics`` to the end of each partition: (value, ``reason`` header)."""
    reader = consumer(settings.kafka, f"bench-check-{uuid.uuid4().hex[:8]}", **{"enable.partition.eof": True})
    try:
        metadata = reader.list_topics(timeout=10)
        wanted = [
            TopicPartition(topic, partition, OFFSET_BEGINNING)
            for topic in topics
            for partition in metadata.topics[topic].partitions
        ]
        reader.assign(wanted)
        pending = {(tp.topic, tp.partition) for tp in wanted}
        records: list[tuple[bytes, str]] = []
        # Partition EOF comes from the fetch's high watermark, which the embedded broker reports
        # right (its ListOffsets does not: ARCHITECTURE.md), so reading to EOF reads everything.
        while pending:
            batch = reader.consume(1000, timeout=5)
            if not batch:
                raise RuntimeError(f"no end of {sorted(pending)} within 5 s")
            for message in batch:
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        pending.discard((message.topic(), message.partition()))
                    continue
                reason = dict(message.headers() or []).get("reason")
                text = reason.decode() if isinstance(reason, bytes) else (reason or "")
                records.append((message.value() or b"", text))
        return records
    finally:
        reader.close()
