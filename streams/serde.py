"""Avro serde in the Confluent wire format, with schemas from a Confluent-compatible registry.

A record on the wire is the magic byte ``0``, the writer's schema id as a 4-byte big-endian
integer, then the Avro binary body (schemaless: no container header). The registry is reached only
through confluent-kafka's ``SchemaRegistryClient``, so the same code runs against revstream's own
registry and Confluent Schema Registry. Schema ids are cached per subject and parsed writer schemas
per id, so the registry is asked once per schema, not once per record.

Decoding a model reads the writer's data with the shipped (newer) schema as the reader schema, so a
record written before a field was added still decodes, with that field's default.

Failures are typed (``streams.errors``): bytes that are not a framed Avro record raise
:class:`CorruptRecordError`, an id the registry does not know :class:`UnknownSchemaIdError`, a record
that decodes but breaks its model :class:`InvalidRecordError` (all three are dead-letter material);
an unreachable registry raises :class:`RegistryUnavailableError` (retry, the record is fine).
"""

from __future__ import annotations

import importlib
import io
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import fastavro
import httpx
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import (
    Deserializer,
    MessageField,
    SerializationContext,
    Serializer,
)
from fastavro.read import SchemaResolutionError
from pydantic import ValidationError

from schemas.errors import SchemaError
from schemas.loader import AvroSchema, canonical_json, model_for_record, parse_definition, schema_for_model
from schemas.models import AvroRecord
from streams.errors import (
    CorruptRecordError,
    InvalidRecordError,
    RecordEncodeError,
    RegistryUnavailableError,
    SchemaRegistrationError,
    SerdeError,
    UnknownSchemaIdError,
)
from streams.settings import RegistrySettings
from streams.wire import HEADER_SIZE, MAGIC_BYTE, SubjectStrategy, frame, subject_name, unframe

__all__ = [
    "AVRO_DECODE_ERRORS",
    "AVRO_ENCODE_ERRORS",
    "HEADER_SIZE",
    "MAGIC_BYTE",
    "AvroModelDeserializer",
    "AvroModelSerializer",
    "AvroSerde",
    "SchemaLike",
    "SubjectStrategy",
    "frame",
    "subject_name",
    "unframe",
]

logger = logging.getLogger(__name__)

SchemaLike = AvroSchema | Mapping[str, Any]
"""A shipped schema from ``schemas.loader`` or a raw Avro record definition."""

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


def _transport_errors() -> tuple[type[Exception], ...]:
    # confluent-kafka's registry client uses httpx2 when it is installed, else httpx; a network
    # failure surfaces as that library's TransportError once the client's own retries ran out.
    errors: list[type[Exception]] = [httpx.TransportError]
    try:
        errors.append(importlib.import_module("httpx2").TransportError)
    except ImportError:
        pass
    return tuple(errors)


_TRANSPORT_ERRORS: Final = _transport_errors()
UNKNOWN_ID_TTL_S: Final = 10.0
"""How long an id the registry answered 404 for is not asked again: a stream of records under an
unknown id (another registry's, a deleted schema) would otherwise cost one request per record;
a schema registered meanwhile is found after this long."""
UNKNOWN_IDS_KEPT: Final = 10_000
"""Unknown schema ids remembered at most (each for ``UNKNOWN_ID_TTL_S``)."""

AVRO_ENCODE_ERRORS: Final = (ValueError, TypeError, KeyError, AttributeError, OverflowError)


@dataclass(frozen=True)
class _Parsed:
    full_name: str
    parsed: dict[str, Any]
    canonical: str


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
        self._registry = registry
        self.auto_register = auto_register
        self.subject_strategy: SubjectStrategy = subject_strategy
        self._ids: dict[tuple[str, str], int] = {}
        self._writers: dict[int, _Parsed] = {}
        self._unknown_until: dict[int, float] = {}
        self._local: dict[str, _Parsed] = {}
        self._needs_resolution: dict[tuple[int, str], bool] = {}

    @classmethod
    def from_settings(cls, settings: RegistrySettings, **options: Any) -> AvroSerde:
        """Build a serde for the registry in ``settings`` (``mock://`` URLs give an in-memory one).

        Raises:
            SettingsError: when no registry URL is configured.
        """
        return cls(SchemaRegistryClient.new_client(settings.client_config()), **options)

    # -- encoding ---------------------------------------------------------------------------------

    def subject_for(self, topic: str, value: AvroRecord | SchemaLike, is_key: bool = False) -> str:
        """Return the subject a record (or schema) is registered under on ``topic``."""
        full_name = value.avro_full_name() if isinstance(value, AvroRecord) else self._schema(value).full_name
        return subject_name(self.subject_strategy, topic, full_name, is_key)

    def serialize(
        self,
        topic: str,
        value: AvroRecord | Mapping[str, Any],
        schema: SchemaLike | None = None,
        is_key: bool = False,
    ) -> bytes:
        """Encode ``value`` for ``topic``, the subject named by the serde's strategy.

        Raises:
            SerdeError: see :meth:`encode`.
        """
        writer = self._writer_for(value, schema)
        subject = subject_name(self.subject_strategy, topic, writer.full_name, is_key)
        try:
            return self._encode(subject, value, writer)
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
        return self._encode(subject, value, self._writer_for(value, schema))

    def schema_id(self, subject: str, schema: SchemaLike) -> int:
        """Return the registry id of ``schema`` under ``subject``, registering it if allowed.

        Raises:
            SchemaRegistrationError: when the registry refuses it or does not have it.
            RegistryUnavailableError: when the registry cannot be reached.
        """
        return self._schema_id(subject, self._schema(schema))

    def _encode(self, subject: str, value: AvroRecord | Mapping[str, Any], writer: _Parsed) -> bytes:
        schema_id = self._schema_id(subject, writer)
        record = value.to_avro() if isinstance(value, AvroRecord) else dict(value)
        buffer = io.BytesIO()
        buffer.write(frame(schema_id, b""))
        try:
            # strict: a dict with a misspelt or missing field fails here instead of writing a default.
            fastavro.schemaless_writer(buffer, writer.parsed, record, strict=True, strict_allow_default=True)
        except AVRO_ENCODE_ERRORS as exc:
            raise RecordEncodeError(f"value does not fit {writer.full_name}: {exc}") from exc
        return buffer.getvalue()

    def _writer_for(self, value: AvroRecord | Mapping[str, Any], schema: SchemaLike | None) -> _Parsed:
        if schema is not None:
            return self._schema(schema)
        if isinstance(value, AvroRecord):
            try:
                return self._schema(schema_for_model(type(value)))
            except SchemaError as exc:
                raise RecordEncodeError(f"{type(value).__name__} is not a top-level record: {exc}") from exc
        raise RecordEncodeError("a dict value needs its schema: pass schema=")

    def _schema_id(self, subject: str, writer: _Parsed) -> int:
        key = (subject, writer.canonical)
        cached = self._ids.get(key)
        if cached is not None:
            return cached
        schema = Schema(writer.canonical, "AVRO")
        try:
            if self.auto_register:
                schema_id = self._registry.register_schema(subject, schema)
            else:
                found = self._registry.lookup_schema(subject, schema).schema_id
                if found is None:
                    raise SchemaRegistrationError(
                        f"registry gave no id for {writer.full_name} under {subject}"
                    )
                schema_id = found
        except SchemaRegistryError as exc:
            if exc.http_status_code >= 500:
                raise RegistryUnavailableError(f"schema registry failed on subject {subject}: {exc}") from exc
            action = "register" if self.auto_register else "find"
            raise SchemaRegistrationError(
                f"registry would not {action} {writer.full_name} under subject {subject}: {exc}"
            ) from exc
        except _TRANSPORT_ERRORS as exc:
            raise RegistryUnavailableError(f"schema registry unreachable: {exc}; is it running?") from exc
        self._ids[key] = schema_id
        self._writers.setdefault(schema_id, writer)
        logger.debug("schema %s is id %d under subject %s", writer.full_name, schema_id, subject)
        return schema_id

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
            writer = self._writer_by_id(schema_id)
            reader = self._schema(reader_schema) if reader_schema is not None else None
            return schema_id, self._read(schema_id, body, writer, reader)
        except SerdeError as exc:
            raise exc.at(topic, partition, offset) from exc.__cause__

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
            writer = self._writer_by_id(schema_id)
            try:
                model = model or model_for_record(writer.full_name)
                reader = self._schema(schema_for_model(model))
            except SchemaError as exc:
                raise InvalidRecordError(f"schema id {schema_id}: {exc}") from exc
            record = self._read(schema_id, body, writer, reader)
            try:
                return model.from_avro(record)
            except ValidationError as exc:
                problems = "; ".join(
                    f"{'.'.join(str(part) for part in error['loc']) or '(record)'}: {error['msg']}"
                    for error in exc.errors()[:3]
                )
                raise InvalidRecordError(f"{writer.full_name} record breaks the model: {problems}") from exc
        except SerdeError as exc:
            raise exc.at(topic, partition, offset) from exc.__cause__

    def writer_schema(self, schema_id: int) -> dict[str, Any]:
        """Return the parsed writer schema of ``schema_id`` (fetched once, then cached).

        Raises:
            UnknownSchemaIdError: the registry does not know the id.
            InvalidRecordError: the schema is not an Avro record revstream can read.
            RegistryUnavailableError: the registry cannot be reached.
        """
        return self._writer_by_id(schema_id).parsed

    def _remember_unknown(self, schema_id: int) -> None:
        now = time.monotonic()
        unknown = self._unknown_until
        if len(unknown) >= UNKNOWN_IDS_KEPT:
            # Forged ids are unbounded in number: forget the expired ones, then the oldest.
            for stale in [key for key, until in unknown.items() if until <= now]:
                del unknown[stale]
            while len(unknown) >= UNKNOWN_IDS_KEPT:
                del unknown[next(iter(unknown))]
        unknown[schema_id] = now + UNKNOWN_ID_TTL_S

    def _writer_by_id(self, schema_id: int) -> _Parsed:
        cached = self._writers.get(schema_id)
        if cached is not None:
            return cached
        if self._unknown_until.get(schema_id, 0.0) > time.monotonic():
            raise UnknownSchemaIdError(
                f"schema id {schema_id} is not in the registry (asked less than {UNKNOWN_ID_TTL_S:g}s ago)",
                schema_id,
            )
        try:
            registered = self._registry.get_schema(schema_id)
        except SchemaRegistryError as exc:
            if exc.http_status_code == 404:
                self._remember_unknown(schema_id)
                raise UnknownSchemaIdError(
                    f"schema id {schema_id} is not in the registry (written against another registry, "
                    "or the schema was deleted)",
                    schema_id,
                ) from exc
            raise RegistryUnavailableError(f"schema registry failed on schema id {schema_id}: {exc}") from exc
        except _TRANSPORT_ERRORS as exc:
            raise RegistryUnavailableError(f"schema registry unreachable: {exc}; is it running?") from exc
        if registered.schema_type not in (None, "AVRO"):
            raise InvalidRecordError(f"schema id {schema_id} is a {registered.schema_type} schema, not Avro")
        if registered.references:
            raise InvalidRecordError(
                f"schema id {schema_id} uses schema references, which revstream does not read"
            )
        try:
            writer = self._parse(json.loads(registered.schema_str or ""))
        except (json.JSONDecodeError, SchemaError) as exc:
            raise InvalidRecordError(f"schema id {schema_id} is not an Avro record schema: {exc}") from exc
        self._writers[schema_id] = writer
        return writer

    def _read(self, schema_id: int, body: bytes, writer: _Parsed, reader: _Parsed | None) -> dict[str, Any]:
        if reader is not None:
            key = (schema_id, reader.canonical)
            needs = self._needs_resolution.get(key)
            if needs is None:
                # Resolution costs on every record; skip it when writer and reader are the same schema.
                needs = self._needs_resolution[key] = writer.parsed != reader.parsed
            if not needs:
                reader = None
        stream = io.BytesIO(body)
        try:
            record = fastavro.schemaless_reader(stream, writer.parsed, reader.parsed if reader else None)
        except SchemaResolutionError as exc:
            assert reader is not None
            raise InvalidRecordError(
                f"schema id {schema_id} ({writer.full_name}) cannot be read as {reader.full_name}: {exc}"
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

    # -- schemas ----------------------------------------------------------------------------------

    def _schema(self, schema: SchemaLike) -> _Parsed:
        if isinstance(schema, AvroSchema):
            return self._local.setdefault(
                schema.canonical_json, _Parsed(schema.full_name, schema.parsed, schema.canonical_json)
            )
        canonical = canonical_json(schema)
        cached = self._local.get(canonical)
        if cached is None:
            try:
                cached = self._local[canonical] = self._parse(schema)
            except SchemaError as exc:
                raise RecordEncodeError(str(exc)) from exc
        return cached

    @staticmethod
    def _parse(definition: Mapping[str, Any]) -> _Parsed:
        parsed = parse_definition(definition)
        return _Parsed(str(parsed["name"]), parsed, canonical_json(definition))


class AvroModelSerializer(Serializer):
    """confluent-kafka ``Serializer`` for ``SerializingProducer``: model in, framed Avro out."""

    def __init__(self, serde: AvroSerde) -> None:
        self._serde = serde

    def __call__(self, obj: Any, ctx: SerializationContext | None = None) -> bytes | None:
        """Encode ``obj`` (a model) for ``ctx.topic``; ``None`` stays ``None`` (a tombstone).

        Raises:
            SerdeError: when it cannot be encoded, or no context names the topic.
        """
        if obj is None:
            return None
        if ctx is None:
            raise RecordEncodeError("a SerializationContext is needed to name the subject")
        return self._serde.serialize(ctx.topic, obj, is_key=ctx.field == MessageField.KEY)


class AvroModelDeserializer(Deserializer):
    """confluent-kafka ``Deserializer`` for ``DeserializingConsumer``: framed Avro in, model out."""

    def __init__(self, serde: AvroSerde, model: type[AvroRecord] | None = None) -> None:
        self._serde = serde
        self._model = model

    def __call__(self, value: bytes | None, ctx: SerializationContext | None = None) -> AvroRecord | None:
        """Decode ``value`` into its model; ``None`` (a tombstone) stays ``None``.

        Raises:
            SerdeError: see :meth:`AvroSerde.decode_model`.
        """
        if value is None:
            return None
        return self._serde.decode_model(value, self._model, topic=ctx.topic if ctx else None)
