"""Where a simulation goes: files on disk, or the topics (events through the SDK, faults raw).

Files (all UTF-8, ``\\n`` line ends, written in publish order, so the same simulation always gives
the same bytes): ``events/<event_type>.jsonl`` (one JSON event per line, duplicates and conflicting
copies included, as published), ``master/<kind>.jsonl``, ``raw_faults.jsonl`` (records that are
not valid Avro for their topic: ``{"event_type", "key", "fault", "schema_id", "value_base64"}``)
and ``summary.json``, the ground truth. Each events file can be published on its own with
``revstream publish <event_type> events/<event_type>.jsonl``; ``--publish`` keeps the global
order instead (master data arriving after the events that need it, faults behind their originals).
"""

from __future__ import annotations

import base64
import json
import logging
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, Message

from connectors.errors import DeliveryFailedError
from connectors.producers.publisher import Publisher
from connectors.simulator.simulate import Simulation
from schemas.models import Customer, EventEnvelope, LegalEntity, Product
from schemas.names import EVENT_TYPES, MASTER_DATA_KINDS
from streams.clients import producer
from streams.settings import Settings
from streams.topics import TopicCatalog, catalog_for

__all__ = ["publish_simulation", "summary_json", "write_files"]

logger = logging.getLogger(__name__)


def summary_json(simulation: Simulation) -> str:
    """Return the summary as stable JSON (sorted keys, two-space indent, final newline)."""
    return json.dumps(simulation.summary, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_files(simulation: Simulation, out: Path) -> list[Path]:
    """Write the simulation's records and summary under ``out``; return the files written."""
    events: dict[str, list[str]] = {event_type: [] for event_type in EVENT_TYPES}
    master: dict[str, list[str]] = {kind: [] for kind in MASTER_DATA_KINDS}
    raw: list[str] = []
    for emission in simulation.emissions:
        if emission.kind == "raw":
            assert emission.value is not None
            raw.append(
                json.dumps(
                    {
                        "event_type": emission.stream,
                        "key": emission.key,
                        "fault": emission.fault,
                        "schema_id": emission.schema_id,
                        "value_base64": base64.b64encode(emission.value).decode(),
                    },
                    sort_keys=True,
                )
            )
        elif emission.record is not None:
            target = events if emission.kind == "event" else master
            target[emission.stream].append(emission.record.model_dump_json())
    written = []
    for folder, groups in (("events", events), ("master", master)):
        (out / folder).mkdir(parents=True, exist_ok=True)
        for name, lines in groups.items():
            written.append(_write(out / folder / f"{name}.jsonl", lines))
    written.append(_write(out / "raw_faults.jsonl", raw))
    path = out / "summary.json"
    path.write_text(summary_json(simulation), encoding="utf-8", newline="\n")
    written.append(path)
    return written


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8", newline="\n")
    return path


def publish_simulation(
    simulation: Simulation, settings: Settings, catalog: TopicCatalog | None = None
) -> dict[str, int]:
    """Publish every emission in order; return how many records of each kind were acknowledged.

    Raises:
        DeliveryFailedError: when any record was not acknowledged by the broker.
        SerdeError: when the registry refuses a schema or cannot be reached.
    """
    catalog = catalog or catalog_for(settings)
    raw_errors: list[str] = []

    def raw_delivered(error: KafkaError | None, message: Message) -> None:
        if error is not None:
            raw_errors.append(f"{message.topic()}: {error.str()}")

    raw = producer(settings.kafka)
    counts = {"events": 0, "master": 0, "raw": 0}
    with Publisher(settings, catalog=catalog) as publisher:
        for emission in simulation.emissions:
            if emission.kind == "event" and isinstance(emission.record, EventEnvelope):
                publisher.send(emission.record)
                counts["events"] += 1
            elif emission.kind == "master" and isinstance(emission.record, Customer | Product | LegalEntity):
                publisher.publish_master(emission.record)
                counts["master"] += 1
            elif emission.kind == "raw" and emission.value is not None:
                headers: Any = [("event_type", emission.stream.encode())]
                raw.produce(
                    catalog.event_topic(emission.stream),
                    emission.value,
                    emission.key.encode(),
                    headers=headers,
                    on_delivery=raw_delivered,
                )
                raw.poll(0)
                counts["raw"] += 1
    remaining = raw.flush(30)
    if remaining or raw_errors:
        raise DeliveryFailedError(
            f"{remaining + len(raw_errors)} fault records were not delivered"
            + (f", first: {raw_errors[0]}" if raw_errors else ""),
            tuple(raw_errors),
        )
    return counts
