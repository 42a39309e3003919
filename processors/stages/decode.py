"""Stage 1, decode: Confluent-framed Avro bytes to a canonical event model (or a dead-letter reason).

The writer schema comes from the registry once per schema id (the serde caches it); the record is
read with the shipped schema as reader schema, so older writers still decode. Reasons: bytes that
are not a framed Avro record ``CORRUPT_RECORD``, an id the registry does not know
``UNKNOWN_SCHEMA_ID``, a record that decodes but is not a valid canonical event ``INVALID_RECORD``.
An unreachable registry is none of these: :meth:`EventDecoder.prefetch` raises it before a batch
is touched, so the batch waits for the registry instead of dead-lettering good records.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Protocol

from pydantic import ValidationError

from schemas.errors import SchemaError
from schemas.loader import AvroSchema, model_for_record, schema_for_model
from schemas.models import AvroRecord, EventEnvelope
from streams.errors import CorruptRecordError, InvalidRecordError, SerdeError, UnknownSchemaIdError
from streams.serde import AvroSerde
from streams.wire import unframe

__all__ = [
    "CORRUPT_RECORD",
    "INVALID_RECORD",
    "UNKNOWN_SCHEMA_ID",
    "DecodeFailure",
    "Decoded",
    "EventDecoder",
    "OutputEncoder",
    "decode_reason",
]

logger = logging.getLogger(__name__)

CORRUPT_RECORD: Final = "CORRUPT_RECORD"
UNKNOWN_SCHEMA_ID: Final = "UNKNOWN_SCHEMA_ID"
INVALID_RECORD: Final = "INVALID_RECORD"
_HEADER: Final = struct.Struct(">BI")


@dataclass(frozen=True)
class Decoded:
    """A decoded event: the model, and the record dict it was built from (fingerprinted by dedupe)."""

    event: EventEnvelope
    record: Mapping[str, Any]


@dataclass(frozen=True)
class DecodeFailure:
    """Why a record could not be decoded: its dead-letter reason and the error."""

    reason: str
    error: SerdeError


def decode_reason(error: SerdeError) -> str:
    """Return the dead-letter reason of a decode error."""
    if isinstance(error, UnknownSchemaIdError):
        return UNKNOWN_SCHEMA_ID
    if isinstance(error, CorruptRecordError):
        return CORRUPT_RECORD
    return INVALID_RECORD


class OutputEncoder(Protocol):
    """What the pipeline encodes its outputs with: :meth:`AvroSerde.serialize` (a fake in tests)."""

    def encode(self, topic: str, record: AvroRecord) -> bytes:
        """Return ``record`` framed for ``topic``.

        Raises:
            RecordEncodeError: when the record does not fit its schema.
        """
        ...


class _SerdeOutputs:
    # Nothing but the serde: its serialize, under the name the pipeline calls.
    def __init__(self, serde: AvroSerde) -> None:
        self.encode = serde.serialize


class EventDecoder:
    """Decodes canonical events, caching the model and reader schema of every writer schema id."""

    def __init__(self, serde: AvroSerde) -> None:
        self._serde = serde
        self._outputs = _SerdeOutputs(serde)
        self._readers: dict[int, tuple[type[EventEnvelope], AvroSchema]] = {}

    @property
    def codec(self) -> OutputEncoder:
        """The serde's encoding of outputs, for the pipeline (one serde decodes and encodes)."""
        return self._outputs

    @staticmethod
    def schema_id_of(value: bytes | None) -> int | None:
        """Return the schema id in a framed value's header, or ``None`` when it has none."""
        if value is None or len(value) < _HEADER.size or value[0] != 0:
            return None
        return int(_HEADER.unpack_from(value)[1])

    def prefetch(self, values: Iterable[bytes | None]) -> None:
        """Fetch the writer schema of every schema id among ``values`` not yet known.

        Unknown ids are left for :meth:`decode` to report per record.

        Raises:
            RegistryUnavailableError: when the registry cannot be reached (retry the batch later).
        """
        for schema_id in {self.schema_id_of(value) for value in values} - {None}:
            if schema_id in self._readers:
                continue
            try:
                self._serde.writer_schema(schema_id)  # type: ignore[arg-type]
            except (UnknownSchemaIdError, InvalidRecordError):
                continue

    def decode(self, value: bytes | None, topic: str, partition: int, offset: int) -> Decoded | DecodeFailure:
        """Decode one record value into its event.

        Raises:
            RegistryUnavailableError: when the registry cannot be reached (not the record's fault).
        """
        if value is None:
            return DecodeFailure(CORRUPT_RECORD, CorruptRecordError("the record has no value (a tombstone)"))
        try:
            schema_id = self.schema_id_of(value)
            reader = self._readers.get(schema_id) if schema_id is not None else None
            if reader is None:
                reader = self._reader_for(value)
            model, schema = reader
            _, record = self._serde.decode(
                value, reader_schema=schema, topic=topic, partition=partition, offset=offset
            )
            try:
                event = model.from_avro(record)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(part) for part in error['loc']) or '(record)'}: {error['msg']}"
                    for error in exc.errors()[:3]
                )
                raise InvalidRecordError(
                    f"{model.avro_full_name()} record breaks the model: {problems}",
                    topic=topic,
                    partition=partition,
                    offset=offset,
                ) from exc
        except (CorruptRecordError, UnknownSchemaIdError, InvalidRecordError) as exc:
            return DecodeFailure(decode_reason(exc), exc)
        return Decoded(event, record)

    def _reader_for(self, value: bytes) -> tuple[type[EventEnvelope], AvroSchema]:
        schema_id, _ = unframe(value)
        writer = self._serde.writer_schema(schema_id)
        name = str(writer.get("name"))
        try:
            model = model_for_record(name)
            schema = schema_for_model(model)
        except SchemaError as exc:
            raise InvalidRecordError(f"schema id {schema_id} ({name}) is not a revstream schema") from exc
        if not issubclass(model, EventEnvelope):
            raise InvalidRecordError(f"schema id {schema_id} is {name}, not a canonical event")
        self._readers[schema_id] = (model, schema)
        return model, schema
