"""Avro serde in the Confluent wire format: the one encode and the one decode path of revstream.

A record on the wire is the magic byte ``0``, the writer's schema id as a 4-byte big-endian
integer, then the Avro binary body (schemaless: no container header); :mod:`streams.wire` frames
it. Schema ids and writer schemas come from the registry through :mod:`streams.resolver`, each
once. On top of that this module keeps, per (topic or subject, model type), what encoding needs
(the framed header, the parsed schema and the model-to-record converter of :mod:`streams.encoding`)
and, per (schema id, reader schema), what decoding needs, so that a record after the first costs a
dict lookup and fastavro: no schema serialisation, no registry, no ``to_avro()`` walk. The worker,
the sink, the SDK publisher and the tools all go through here.

Decoding a model reads the writer's data with the shipped (newer) schema as the reader schema, so a
record written before a field was added still decodes, with that field's default.

Failures are typed (``streams.errors``): bytes that are not a framed Avro record raise
:class:`CorruptRecordError`, an id the registry does not know :class:`UnknownSchemaIdError`, a record
that decodes but breaks its model :class:`InvalidRecordError` (all three are dead-letter material);
a value that does not fit its schema :class:`RecordEncodeError`; an unreachable registry raises
:class:`RegistryUnavailableError` (retry, the record is fine).
"""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from typing import Any, Final

import fastavro
from confluent_kafka.schema_registry import SchemaRegistryClient
from fastavro.read import SchemaResolutionError
from pydantic import ValidationError

from schemas.errors import SchemaError
from schemas.loader import AvroSchema, model_for_record, schema_for_model
from schemas.models import AvroRecord
from streams.encoding import Converter, compile_record
from streams.errors import (
    CorruptRecordError,
    InvalidRecordError,
    RecordEncodeError,
    SerdeError,
)
from streams.resolver import ParsedSchema, SchemaLike, SchemaResolver
from streams.settings import RegistrySettings
from streams.wire import HEADER_SIZE, MAGIC_BYTE, SubjectStrategy, frame, subject_name, unframe

__all__ = [
    "AVRO_DECODE_ERRORS",
    "AVRO_ENCODE_ERRORS",
    "HEADER_SIZE",
    "MAGIC_BYTE",
    "AvroSerde",
    "SchemaLike",
    "encode_unregistered",
    "SubjectStrategy",
    "frame",
    "subject_name",
    "unframe",
]

logger = logging.getLogger(__name__)

# What fastavro's reader raises on malformed bodies (measured by fuzzing every shipped schema):
# truncated input, invalid UTF-8, union/enum indexes out of range, dates out of range.
AVRO_DECODE_ERRORS: Final = (
    EOFError,
    UnicodeDecodeError,
    IndexError,
    OverflowError,
    ValueError,
    TypeError,
    KeyError,
)

AVRO_ENCODE_ERRORS: Final = (ValueError, TypeError, KeyError, AttributeError, OverflowError)

_Encoder = tuple[bytes, ParsedSchema, Converter]
"""The framed header of the schema id, the writer schema, and how a value becomes fastavro's dict."""

_Reading = tuple[ParsedSchema, ParsedSchema | None]
"""The writer schema, and the reader schema when the two differ (resolution costs per record)."""


def _as_dict(value: Any) -> dict[str, Any]:
    return dict(value)


def _to_avro(value: Any) -> dict[str, Any]:
    record: dict[str, Any] = value.to_avro()
    return record


class AvroSerde:
    """Encode and decode Avro records in the Confluent wire format.

    Args:
        registry: a confluent-kafka registry client (``SchemaRegistryClient.new_client(conf)``).
        auto_register: register a writer schema the subject lacks; when false the schema must
            already be registered (production registries are usually governed this way).
        subject_strategy: how subjects are named (see :data:`SubjectStrategy`).
    """

    def __init__(
        self,
        registry: SchemaRegistryClient,
        *,
        auto_register: bool = True,
        subject_strategy: SubjectStrategy = "topic",
    ) -> None:
        self._schemas = SchemaResolver(registry, auto_register=auto_register)
        self.subject_strategy: SubjectStrategy = subject_strategy
        self._by_topic: dict[tuple[str, bool, type[AvroRecord]], _Encoder] = {}
        self._by_subject: dict[tuple[str, type, ParsedSchema], _Encoder] = {}
        self._readings: dict[tuple[int, ParsedSchema | None], _Reading] = {}
        self._models: dict[tuple[int, type[AvroRecord] | None], tuple[type[AvroRecord], AvroSchema]] = {}

    @classmethod
    def from_settings(cls, settings: RegistrySettings, **options: Any) -> AvroSerde:
        """Build a serde for the registry in ``settings`` (``mock://`` URLs give an in-memory one).

        Raises:
            SettingsError: when no registry URL is configured.
        """
        return cls(SchemaRegistryClient.new_client(settings.client_config()), **options)

    @property
    def auto_register(self) -> bool:
        """Whether a writer schema the subject lacks is registered (else it must exist)."""
        return self._schemas.auto_register

    @property
    def _registry(self) -> SchemaRegistryClient:
        return self._schemas.registry

    # -- encoding ---------------------------------------------------------------------------------

    def subject_for(self, topic: str, value: AvroRecord | SchemaLike, is_key: bool = False) -> str:
        """Return the subject a record (or schema) is registered under on ``topic``."""
        full_name = (
            value.avro_full_name() if isinstance(value, AvroRecord) else self._schemas.local(value).full_name
        )
        return subject_name(self.subject_strategy, topic, full_name, is_key)

    def prepare(self, topic: str, model: type[AvroRecord], is_key: bool = False) -> None:
        """Resolve the schema id ``model`` is written with to ``topic`` now, not on its first record.

        A worker does this at start for every output type, so no batch needs the registry half-way.

        Raises:
            RecordEncodeError: when ``model`` is not a top-level record.
            SchemaRegistrationError, RegistryUnavailableError: when the registry refuses or is down.
        """
        self._topic_encoder(topic, is_key, model)

    def serialize(
        self,
        topic: str,
        value: AvroRecord | Mapping[str, Any],
        schema: SchemaLike | None = None,
        is_key: bool = False,
    ) -> bytes:
        """Encode ``value`` for ``topic``, the subject named by the serde's strategy.

        Raises:
            SerdeError: see :meth:`encode`; a topic's schema id is asked once per model type.
        """
        try:
            if schema is None and isinstance(value, AvroRecord):
                encoder = self._by_topic.get((topic, is_key, type(value)))
                if encoder is None:
                    encoder = self._topic_encoder(topic, is_key, type(value))
            else:
                writer = self._writer_for(value, schema)
                subject = subject_name(self.subject_strategy, topic, writer.full_name, is_key)
                encoder = self._encoder(subject, value, writer)
            return self._write(encoder, value)
        except SerdeError as exc:
            raise exc.at(topic) from exc.__cause__

    def encode(
        self, subject: str, value: AvroRecord | Mapping[str, Any], schema: SchemaLike | None = None
    ) -> bytes:
        """Encode ``value`` under ``subject``: a model with its shipped schema, a dict with ``schema``.

        Raises:
            RecordEncodeError: when the value does not fit the schema (or a dict comes without one).
            SchemaRegistrationError: when the registry refuses the schema or, without auto-register,
                does not have it under ``subject``.
            RegistryUnavailableError: when the registry cannot be reached.
        """
        return self._write(self._encoder(subject, value, self._writer_for(value, schema)), value)

    def schema_id(self, subject: str, schema: SchemaLike) -> int:
        """Return the registry id of ``schema`` under ``subject``, registering it if allowed.

        Raises:
            SchemaRegistrationError: when the registry refuses it or does not have it.
            RegistryUnavailableError: when the registry cannot be reached.
        """
        return self._schemas.schema_id(subject, self._schemas.local(schema))

    def _topic_encoder(self, topic: str, is_key: bool, model: type[AvroRecord]) -> _Encoder:
        writer = self._model_writer(model)
        subject = subject_name(self.subject_strategy, topic, writer.full_name, is_key)
        encoder = self._by_topic[topic, is_key, model] = self._model_encoder(subject, model, writer)
        return encoder

    def _encoder(self, subject: str, value: AvroRecord | Mapping[str, Any], writer: ParsedSchema) -> _Encoder:
        key = (subject, type(value), writer)
        encoder = self._by_subject.get(key)
        if encoder is not None:
            return encoder
        if isinstance(value, AvroRecord) and writer is self._model_writer(type(value)):
            encoder = self._model_encoder(subject, type(value), writer)
        else:
            # A dict, or a model written with a schema other than its own: the general conversion.
            convert = _to_avro if isinstance(value, AvroRecord) else _as_dict
            encoder = (frame(self._schemas.schema_id(subject, writer), b""), writer, convert)
        self._by_subject[key] = encoder
        return encoder

    def _model_encoder(self, subject: str, model: type[AvroRecord], writer: ParsedSchema) -> _Encoder:
        # The compiled converter hands fastavro the model's own field values (byte-for-byte what
        # to_avro() gives, tests/unit/test_encoding.py), instead of rebuilding the record.
        try:
            convert = compile_record(writer.parsed)
        except ValueError:
            convert = _to_avro  # a union the converter does not handle: the general conversion
        return (frame(self._schemas.schema_id(subject, writer), b""), writer, convert)

    def _model_writer(self, model: type[AvroRecord]) -> ParsedSchema:
        try:
            return self._schemas.local(schema_for_model(model))
        except SchemaError as exc:
            raise RecordEncodeError(f"{model.__name__} is not a top-level record: {exc}") from exc

    def _writer_for(self, value: AvroRecord | Mapping[str, Any], schema: SchemaLike | None) -> ParsedSchema:
        if schema is not None:
            return self._schemas.local(schema)
        if isinstance(value, AvroRecord):
            return self._model_writer(type(value))
        raise RecordEncodeError("a dict value needs its schema: pass schema=")

    @staticmethod
    def _write(encoder: _Encoder, value: Any) -> bytes:
        header, writer, convert = encoder
        buffer = io.BytesIO()
        buffer.write(header)
        try:
            # strict: a dict with a misspelt or missing field fails here instead of writing a default.
            fastavro.schemaless_writer(
                buffer, writer.parsed, convert(value), strict=True, strict_allow_default=True
            )
        except AVRO_ENCODE_ERRORS as exc:
            raise RecordEncodeError(f"value does not fit {writer.full_name}: {exc}") from exc
        return buffer.getvalue()

    # -- decoding ---------------------------------------------------------------------------------

    def decode(
        self,
        data: bytes,
        *,
        reader_schema: SchemaLike | None = None,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Decode a framed record into its schema id and record dict.

        With ``reader_schema`` the writer's data is resolved to it (Avro schema evolution).
        ``topic``/``partition``/``offset`` are only attached to errors.

        Raises:
            CorruptRecordError: bad magic byte, short buffer, or a body that does not decode.
            UnknownSchemaIdError: the registry does not know the schema id.
            InvalidRecordError: the writer schema cannot be resolved to ``reader_schema``.
            RegistryUnavailableError: the registry cannot be reached.
        """
        try:
            schema_id, body = unframe(data)
            reader = self._schemas.local(reader_schema) if reader_schema is not None else None
            return schema_id, self._read(schema_id, body, reader)
        except SerdeError as exc:
            raise exc.at(topic, partition, offset) from exc.__cause__

    def model_of(
        self, schema_id: int, model: type[AvroRecord] | None = None
    ) -> tuple[type[AvroRecord], AvroSchema]:
        """Return the model a record of ``schema_id`` decodes into and its shipped (reader) schema.

        ``model`` defaults to the model of the writer's record name.

        Raises:
            InvalidRecordError: no model for the record (or ``model`` is not a top-level record).
            UnknownSchemaIdError, RegistryUnavailableError: see :meth:`writer_schema`.
        """
        key = (schema_id, model)
        found = self._models.get(key)
        if found is None:
            writer = self._schemas.writer(schema_id)
            try:
                chosen = model or model_for_record(writer.full_name)
                found = self._models[key] = (chosen, schema_for_model(chosen))
            except SchemaError as exc:
                raise InvalidRecordError(f"schema id {schema_id}: {exc}") from exc
        return found

    def decode_model(
        self,
        data: bytes,
        model: type[AvroRecord] | None = None,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> AvroRecord:
        """Decode a framed record into its model, read with the shipped schema as reader schema.

        ``model`` defaults to the model of the writer's record name.

        Raises:
            InvalidRecordError: no model for the record, the writer schema does not resolve to the
                shipped one, or the record breaks the model's validation.
            SerdeError: see :meth:`decode` for the other cases.
        """
        try:
            schema_id, body = unframe(data)
            chosen, schema = self.model_of(schema_id, model)
            record = self._read(schema_id, body, self._schemas.local(schema))
            try:
                return chosen.from_avro(record)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(part) for part in error['loc']) or '(record)'}: {error['msg']}"
                    for error in exc.errors()[:3]
                )
                raise InvalidRecordError(f"{schema.full_name} record breaks the model: {problems}") from exc
        except SerdeError as exc:
            raise exc.at(topic, partition, offset) from exc.__cause__

    def writer_schema(self, schema_id: int) -> dict[str, Any]:
        """Return the parsed writer schema of ``schema_id`` (fetched once, then cached).

        Raises:
            UnknownSchemaIdError: the registry does not know the id.
            InvalidRecordError: the schema is not an Avro record revstream can read.
            RegistryUnavailableError: the registry cannot be reached.
        """
        return self._schemas.writer(schema_id).parsed

    def _reading(self, schema_id: int, reader: ParsedSchema | None) -> _Reading:
        key = (schema_id, reader)
        reading = self._readings.get(key)
        if reading is None:
            writer = self._schemas.writer(schema_id)
            # Resolution costs on every record; skip it when writer and reader are the same schema.
            same = reader is None or reader is writer or writer.parsed == reader.parsed
            reading = self._readings[key] = (writer, None if same else reader)
        return reading

    def _read(self, schema_id: int, body: bytes, reader: ParsedSchema | None) -> dict[str, Any]:
        writer, resolved = self._reading(schema_id, reader)
        stream = io.BytesIO(body)
        try:
            record = fastavro.schemaless_reader(stream, writer.parsed, resolved.parsed if resolved else None)
        except SchemaResolutionError as exc:
            assert resolved is not None
            raise InvalidRecordError(
                f"schema id {schema_id} ({writer.full_name}) cannot be read as {resolved.full_name}: {exc}"
            ) from exc
        except AVRO_DECODE_ERRORS as exc:
            raise CorruptRecordError(
                f"Avro body does not decode with schema id {schema_id} ({writer.full_name}): "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        left = len(body) - stream.tell()
        if left:
            raise CorruptRecordError(
                f"{left} bytes left over after a {writer.full_name} record (schema id {schema_id}): "
                "the body was not written with this schema"
            )
        if not isinstance(record, dict):
            raise InvalidRecordError(f"schema id {schema_id} does not describe a record")
        return record


def encode_unregistered(schema_id: int, record: AvroRecord) -> bytes:
    """Frame ``record``, written with its shipped schema, under ``schema_id`` without any registry.

    For records that must carry an id no registry has (the simulator's faults).

    Raises:
        RecordEncodeError: when the record does not fit its schema.
    """
    schema = schema_for_model(type(record))
    writer = ParsedSchema(schema.full_name, schema.parsed, schema.canonical_json)
    return AvroSerde._write((frame(schema_id, b""), writer, compile_record(schema.parsed)), record)
