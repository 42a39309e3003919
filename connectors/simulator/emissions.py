"""What the simulator emits, in publish order: events, master data and byte-level faults."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Final, Literal

from schemas.models import AvroRecord

__all__ = ["CORRUPT_RECORD", "UNKNOWN_SCHEMA_ID", "Emission", "EmissionKind", "Fault"]

logger = logging.getLogger(__name__)

EmissionKind = Literal["event", "master", "raw"]
Fault = Literal["duplicate", "conflict", "CORRUPT_RECORD", "UNKNOWN_SCHEMA_ID"]

CORRUPT_RECORD: Final = "CORRUPT_RECORD"
"""Dead-letter reason of bytes that are not a Confluent-framed Avro record (decode stage)."""
UNKNOWN_SCHEMA_ID: Final = "UNKNOWN_SCHEMA_ID"
"""Dead-letter reason of a framed record whose schema id the registry does not know (decode stage)."""


@dataclass(frozen=True)
class Emission:
    """One record to publish.

    ``stream`` is the event type (events and raw faults, which land on that event type's topic) or
    the master-data kind. ``record`` is set for events and master data, ``value`` (the exact bytes)
    for raw faults. ``fault`` says what is wrong with it, if anything.
    """

    kind: EmissionKind
    stream: str
    key: str
    record: AvroRecord | None = None
    value: bytes | None = None
    fault: Fault | None = None
    schema_id: int | None = None
