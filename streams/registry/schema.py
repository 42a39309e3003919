"""Parsing Avro schemas for the registry, and the canonical text that decides schema identity.

Two schemas get the same id when their canonical text is equal: the schema as Apache Avro parses
it, written back as compact JSON with a fixed key order. Whitespace, key order and repeated
namespaces do not matter; docs, defaults, aliases and logical types do, as in Confluent Schema
Registry (Avro's *Parsing* Canonical Form would drop defaults and aliases and so merge schemas
that resolve differently). A schema must parse with both Apache Avro (whose checker decides
compatibility) and fastavro (which the serde uses, and which rejects defaults of the wrong type).
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import avro.errors
import avro.schema
import fastavro
import fastavro.schema

from streams.limits import deeper_than
from streams.registry.errors import InvalidSchemaError

__all__ = ["SCHEMA_TYPES", "ParsedSchema", "canonical_json", "parse_schema"]

logger = logging.getLogger(__name__)

SCHEMA_TYPES = ("AVRO",)
MAX_SCHEMA_DEPTH = 64
"""JSON nesting a schema may have; real schemas stay under 10, and Avro's parser and the
compatibility checker recurse per level (a few hundred levels exhaust Python's stack)."""
_MAX_MESSAGE_CHARS = 500

# Keys in the order Avro's own writers use (type first, but name first in a field); anything
# else follows alphabetically.
_TYPE_KEYS = (
    "type",
    "name",
    "namespace",
    "doc",
    "aliases",
    "fields",
    "symbols",
    "items",
    "values",
    "size",
    "default",
    "logicalType",
    "precision",
    "scale",
)
_FIELD_KEYS = ("name", "type", "doc", "default", "order", "aliases")


@dataclass(frozen=True)
class ParsedSchema:
    """A valid Avro schema: its canonical text, fingerprint and Apache Avro object."""

    text: str
    fingerprint: str
    avro: avro.schema.Schema


def _ordered(value: Any, order: tuple[str, ...] = _TYPE_KEYS) -> Any:
    if isinstance(value, dict):
        keys = sorted(value, key=lambda key: (order.index(key) if key in order else len(order), key))
        return {
            key: [_ordered(field, _FIELD_KEYS) for field in value[key]]
            if key == "fields" and isinstance(value[key], list)
            else _ordered(value[key])
            for key in keys
        }
    if isinstance(value, list):
        return [_ordered(item) for item in value]
    return value


def canonical_json(value: Any) -> str:
    """Return ``value`` (a schema's JSON form) as compact JSON with the registry's key order."""
    return json.dumps(_ordered(value), separators=(",", ":"), ensure_ascii=False)


def parse_schema(text: object, schema_type: object = "AVRO", references: object = None) -> ParsedSchema:
    """Parse a schema as sent in a registration request.

    Raises:
        InvalidSchemaError: for a missing or empty schema, another schema type, references, or a
            schema that Apache Avro or fastavro rejects (their reason is in the message).
    """
    kind = "AVRO" if schema_type is None else str(schema_type).upper()
    if kind not in SCHEMA_TYPES:
        raise InvalidSchemaError(
            f"Invalid schema type {schema_type}: this registry stores AVRO schemas only; "
            "send schemaType AVRO or omit it"
        )
    if references:
        raise InvalidSchemaError(
            "Schema references are not supported by this registry; inline the referenced "
            "named types in the schema and send references as []"
        )
    if not isinstance(text, str) or not text.strip():
        raise InvalidSchemaError('Empty schema: send the Avro schema as a JSON string in the "schema" field')
    return _parse_text(text)


@lru_cache(maxsize=2048)
def _parse_text(text: str) -> ParsedSchema:
    # Registered schemas are parsed again for every compatibility check; the cache keeps that
    # cheap. ParsedSchema is immutable, so sharing one object between requests is safe.
    try:
        too_deep = deeper_than(json.loads(text), MAX_SCHEMA_DEPTH)
    except RecursionError:
        too_deep = True
    except ValueError:
        too_deep = False  # not JSON: Apache Avro's parser says why below
    if too_deep:
        raise InvalidSchemaError(f"Invalid schema: it is nested deeper than {MAX_SCHEMA_DEPTH} levels")
    try:
        parsed = avro.schema.parse(text)
        canonical = canonical_json(parsed.to_json())
    except RecursionError:
        raise InvalidSchemaError("Invalid schema: it is nested too deeply to parse") from None
    except (avro.errors.AvroException, ValueError, TypeError, KeyError) as exc:
        raise InvalidSchemaError(f"Invalid schema: {_one_line(exc)}") from exc
    try:
        fastavro.parse_schema(json.loads(canonical), _write_hint=False)
    except RecursionError:
        raise InvalidSchemaError("Invalid schema: it is nested too deeply to parse") from None
    except (fastavro.schema.SchemaParseException, fastavro.schema.UnknownType, ValueError) as exc:
        raise InvalidSchemaError(f"Invalid schema: {_one_line(exc)}") from exc
    fingerprint = hashlib.sha256(canonical.encode()).hexdigest()
    return ParsedSchema(text=canonical, fingerprint=fingerprint, avro=parsed)


def _one_line(exc: BaseException) -> str:
    # Avro's messages quote the offending part of the schema, which can be the whole of it.
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= _MAX_MESSAGE_CHARS else text[:_MAX_MESSAGE_CHARS] + "..."
