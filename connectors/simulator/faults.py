"""Faults the simulated systems commit, injected into the ordered stream of good records.

Every fault is placed right after the event it copies, on the same topic and key (so on the same
partition, behind the original): an exact duplicate, a conflicting duplicate (same ``event_id``,
``occurred_at`` one minute later), bytes that are not Confluent-framed Avro (the event as JSON
text, or a record shorter than the 5-byte header), or the event framed with a schema id no
registry has. Four draws are made for every event whatever the rates, so changing one rate does
not reshuffle where the others strike.
"""

from __future__ import annotations

import logging
import random
from datetime import timedelta
from typing import Final

from connectors.simulator.config import FaultRates
from connectors.simulator.emissions import CORRUPT_RECORD, UNKNOWN_SCHEMA_ID, Emission
from schemas.models import EventEnvelope
from streams.serde import encode_unregistered

__all__ = ["UNKNOWN_SCHEMA_ID_BASE", "inject"]

logger = logging.getLogger(__name__)

UNKNOWN_SCHEMA_ID_BASE: Final = 2_000_000_000
"""Schema ids from here up are never assigned by a registry holding fewer than 2e9 schemas."""


def _corrupt_bytes(event: EventEnvelope, variant: int) -> bytes:
    if variant == 0:
        # The classic: a producer wrote JSON to an Avro topic; the first byte is "{", not 0.
        return event.model_dump_json().encode()
    return b"\x00\x00\x01"  # shorter than the magic byte and schema id


def _unknown_schema(event: EventEnvelope, schema_id: int) -> bytes:
    return encode_unregistered(schema_id, event)


def inject(base: list[Emission], rates: FaultRates, rng: random.Random) -> list[Emission]:
    """Return ``base`` with faults inserted after the events they strike."""
    out: list[Emission] = []
    unknown = 0
    for emission in base:
        out.append(emission)
        if emission.kind != "event" or not isinstance(emission.record, EventEnvelope):
            continue
        event = emission.record
        repeat, corrupt, foreign, variant = rng.random(), rng.random(), rng.random(), rng.randrange(2)
        if repeat < rates.duplicates:
            out.append(Emission("event", emission.stream, emission.key, event, fault="duplicate"))
        elif repeat < rates.duplicates + rates.conflicts:
            changed = event.model_copy(update={"occurred_at": event.occurred_at + timedelta(minutes=1)})
            out.append(Emission("event", emission.stream, emission.key, changed, fault="conflict"))
        if corrupt < rates.corrupt:
            value = _corrupt_bytes(event, variant)
            out.append(Emission("raw", emission.stream, emission.key, value=value, fault=CORRUPT_RECORD))
        if foreign < rates.unknown_schema:
            schema_id = UNKNOWN_SCHEMA_ID_BASE + unknown
            unknown += 1
            out.append(
                Emission(
                    "raw",
                    emission.stream,
                    emission.key,
                    value=_unknown_schema(event, schema_id),
                    fault=UNKNOWN_SCHEMA_ID,
                    schema_id=schema_id,
                )
            )
    return out
