"""Schema resolution against a Confluent-compatible registry: ids per subject, writer schemas per id.

The registry is reached only through confluent-kafka's ``SchemaRegistryClient``, so the same code
runs against revstream's own registry and Confluent Schema Registry. A subject's id is asked once
per schema and a writer schema once per id; an id the registry answered 404 for is not asked again
for :data:`UNKNOWN_ID_TTL_S`. Shipped schemas (``schemas.loader.AvroSchema``) are looked up by
identity, so finding one costs a dict lookup, never a JSON serialisation. This module knows neither
the wire format nor Avro encoding: :mod:`streams.serde` builds on it.
"""

from __future__ import annotations

import importlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import httpx
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas.errors import SchemaError
from schemas.loader import AvroSchema, canonical_json, parse_definition
from streams.errors import (
    InvalidRecordError,
    RecordEncodeError,
    RegistryUnavailableError,
    SchemaRegistrationError,
    UnknownSchemaIdError,
)

__all__ = ["UNKNOWN_IDS_KEPT", "UNKNOWN_ID_TTL_S", "ParsedSchema", "SchemaLike", "SchemaResolver"]

logger = logging.getLogger(__name__)

SchemaLike = AvroSchema | Mapping[str, Any]
"""A shipped schema from ``schemas.loader`` or a raw Avro record definition."""


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


@dataclass(frozen=True, eq=False)
class ParsedSchema:
    """A record schema ready for fastavro, with the JSON the registry knows it by."""

    full_name: str
    parsed: dict[str, Any]
    canonical: str


class SchemaResolver:
    """Schema ids and writer schemas from the registry, each asked for once.

    Args:
        registry: a confluent-kafka registry client.
        auto_register: register a writer schema the subject lacks; when false it must exist.
    """

    def __init__(self, registry: SchemaRegistryClient, *, auto_register: bool = True) -> None:
        self.registry = registry
        self.auto_register = auto_register
        self._ids: dict[tuple[str, str], int] = {}
        self._writers: dict[int, ParsedSchema] = {}
        self._unknown_until: dict[int, float] = {}
        self._by_canonical: dict[str, ParsedSchema] = {}
        # Shipped schemas live as long as the process; the value keeps the key object alive, so its
        # id() is never reused for another schema.
        self._shipped: dict[int, tuple[AvroSchema, ParsedSchema]] = {}

    def local(self, schema: SchemaLike) -> ParsedSchema:
        """Return ``schema`` parsed: a shipped one by identity, a raw definition by its JSON.

        Raises:
            RecordEncodeError: when a raw definition is not an Avro record schema.
        """
        if isinstance(schema, AvroSchema):
            found = self._shipped.get(id(schema))
            if found is not None:
                return found[1]
            parsed = self._by_canonical.setdefault(
                schema.canonical_json, ParsedSchema(schema.full_name, schema.parsed, schema.canonical_json)
            )
            self._shipped[id(schema)] = (schema, parsed)
            return parsed
        canonical = canonical_json(schema)
        cached = self._by_canonical.get(canonical)
        if cached is None:
            try:
                cached = self._by_canonical[canonical] = self._parse(schema)
            except SchemaError as exc:
                raise RecordEncodeError(str(exc)) from exc
        return cached

    def schema_id(self, subject: str, writer: ParsedSchema) -> int:
        """Return the registry id of ``writer`` under ``subject``, registering it if allowed.

        Raises:
            SchemaRegistrationError: when the registry refuses it or does not have it.
            RegistryUnavailableError: when the registry cannot be reached.
        """
        key = (subject, writer.canonical)
        cached = self._ids.get(key)
        if cached is not None:
            return cached
        schema = Schema(writer.canonical, "AVRO")
        try:
            if self.auto_register:
                schema_id = self.registry.register_schema(subject, schema)
            else:
                found = self.registry.lookup_schema(subject, schema).schema_id
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

    def writer(self, schema_id: int) -> ParsedSchema:
        """Return the writer schema of ``schema_id`` (fetched once, then cached).

        Raises:
            UnknownSchemaIdError: the registry does not know the id.
            InvalidRecordError: the schema is not an Avro record revstream can read.
            RegistryUnavailableError: the registry cannot be reached.
        """
        cached = self._writers.get(schema_id)
        if cached is not None:
            return cached
        if self._unknown_until.get(schema_id, 0.0) > time.monotonic():
            raise UnknownSchemaIdError(
                f"schema id {schema_id} is not in the registry (asked less than {UNKNOWN_ID_TTL_S:g}s ago)",
                schema_id,
            )
        try:
            registered = self.registry.get_schema(schema_id)
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

    @staticmethod
    def _parse(definition: Mapping[str, Any]) -> ParsedSchema:
        parsed = parse_definition(definition)
        return ParsedSchema(str(parsed["name"]), parsed, canonical_json(definition))
