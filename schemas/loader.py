"""Load the shipped ``.avsc`` files and look them (and their models) up.

The ``.avsc`` files under ``schemas/avro`` are the schema truth. Each is parsed once with
``fastavro.parse_schema`` and cached; lookups go by canonical event type (``order_accepted``), by
record name (``io.revstream.events.OrderAccepted`` or just ``OrderAccepted``) or by file stem.
:attr:`AvroSchema.canonical_json` is the compact JSON registered with the schema registry: it keeps
docs and defaults (which schema resolution needs), unlike Avro's Parsing Canonical Form.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path
from typing import Any, Final

import fastavro
from fastavro.schema import SchemaParseException, UnknownType

from schemas.errors import SchemaNotFoundError, SchemaParseError
from schemas.models import (
    AvroRecord,
    BusinessException,
    ContractAmended,
    ContractRenewed,
    Customer,
    DiscountApproved,
    ErpCommand,
    EventEnvelope,
    InvoicePosted,
    LegalEntity,
    OrderAccepted,
    PaymentFailed,
    PaymentReceived,
    Product,
    QuoteApproved,
    RevenueScheduleAdjusted,
    ServiceActivated,
    UsageRecorded,
)
from schemas.names import EVENT_TYPES

__all__ = [
    "EVENT_MODELS",
    "EVENT_SCHEMAS",
    "MODELS_BY_STEM",
    "SCHEMA_DIR",
    "AvroSchema",
    "all_schemas",
    "load_directory",
    "load_schema_file",
    "model_for_record",
    "schema_by_stem",
    "schema_for_event",
    "schema_for_model",
    "schema_for_record",
]

logger = logging.getLogger(__name__)

SCHEMA_DIR: Final = Path(__file__).parent / "avro"

EVENT_MODELS: Final[Mapping[str, type[EventEnvelope]]] = {
    "quote_approved": QuoteApproved,
    "order_accepted": OrderAccepted,
    "service_activated": ServiceActivated,
    "usage_recorded": UsageRecorded,
    "invoice_posted": InvoicePosted,
    "payment_received": PaymentReceived,
    "payment_failed": PaymentFailed,
    "contract_renewed": ContractRenewed,
    "contract_amended": ContractAmended,
    "revenue_schedule_adjusted": RevenueScheduleAdjusted,
    "discount_approved": DiscountApproved,
}
"""Canonical event type → the model of its events."""

MODELS_BY_STEM: Final[Mapping[str, type[AvroRecord]]] = {
    **EVENT_MODELS,
    "customer": Customer,
    "product": Product,
    "legal_entity": LegalEntity,
    "erp_command": ErpCommand,
    "business_exception": BusinessException,
}
"""``.avsc`` file stem → the model mirroring its top-level record."""

_MODELS_BY_NAME: Final = {model.avro_full_name(): model for model in MODELS_BY_STEM.values()}


@dataclass(frozen=True)
class AvroSchema:
    """One parsed ``.avsc`` file."""

    stem: str
    path: Path
    definition: Mapping[str, Any]
    """The JSON of the file as written (docs, defaults and key order kept)."""
    parsed: dict[str, Any]
    """What ``fastavro.parse_schema`` made of it: ready for schemaless reader and writer."""

    @property
    def full_name(self) -> str:
        """``namespace.Name`` of the top-level record."""
        return str(self.parsed["name"])

    @property
    def name(self) -> str:
        """The top-level record's name without namespace."""
        return self.full_name.rsplit(".", 1)[-1]

    @property
    def namespace(self) -> str:
        """The top-level record's namespace (empty when it has none)."""
        return self.full_name.rpartition(".")[0]

    @cached_property
    def canonical_json(self) -> str:
        """Compact JSON of the definition: the string registered with the schema registry.

        Cached: the serde asks for it on every encode and decode to find the subject's schema id.
        """
        return canonical_json(self.definition)


def canonical_json(definition: Mapping[str, Any]) -> str:
    """Return ``definition`` as compact JSON, key order kept, the same string every time."""
    return json.dumps(definition, separators=(",", ":"), ensure_ascii=False)


def parse_definition(definition: Mapping[str, Any], where: str = "schema") -> dict[str, Any]:
    """Parse a schema definition with fastavro.

    Raises:
        SchemaParseError: when it is not a valid Avro schema.
    """
    try:
        # A fresh named-type registry per schema: every .avsc file stands alone.
        parsed = fastavro.parse_schema(dict(definition), named_schemas={})
    except (SchemaParseException, UnknownType, ValueError, TypeError) as exc:
        raise SchemaParseError(f"{where}: not a valid Avro schema ({exc}); fix the definition") from exc
    if not isinstance(parsed, dict) or parsed.get("type") != "record":
        raise SchemaParseError(f"{where}: the top level must be one Avro record")
    return parsed


def load_schema_file(path: Path) -> AvroSchema:
    """Read and parse one ``.avsc`` file.

    Raises:
        SchemaParseError: when the file is not valid JSON or not a valid Avro record schema.
    """
    try:
        definition = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SchemaParseError(
            f"{path}: not valid JSON (line {exc.lineno}: {exc.msg}); fix the file"
        ) from exc
    if not isinstance(definition, dict):
        raise SchemaParseError(f"{path}: the top level must be one Avro record")
    return AvroSchema(path.stem, path, definition, parse_definition(definition, str(path)))


def load_directory(directory: Path) -> list[AvroSchema]:
    """Read and parse every ``.avsc`` file of ``directory``, sorted by file name.

    Raises:
        SchemaParseError: on the first file that does not parse.
    """
    return [load_schema_file(path) for path in sorted(directory.glob("*.avsc"))]


@cache
def _shipped() -> dict[str, AvroSchema]:
    schemas = {schema.stem: schema for schema in load_directory(SCHEMA_DIR)}
    logger.debug("loaded %d schemas from %s", len(schemas), SCHEMA_DIR)
    return schemas


def all_schemas() -> list[AvroSchema]:
    """Return every shipped schema, sorted by file stem."""
    return list(_shipped().values())


def schema_by_stem(stem: str) -> AvroSchema:
    """Return the shipped schema of file ``<stem>.avsc``.

    Raises:
        SchemaNotFoundError: when there is no such file.
    """
    try:
        return _shipped()[stem]
    except KeyError:
        known = ", ".join(_shipped())
        raise SchemaNotFoundError(f"no schema file {stem}.avsc; known: {known}") from None


def schema_for_event(event_type: str) -> AvroSchema:
    """Return the schema of canonical ``event_type`` (one of ``schemas.names.EVENT_TYPES``).

    Raises:
        SchemaNotFoundError: when ``event_type`` is not a canonical event type.
    """
    if event_type not in EVENT_TYPES:
        raise SchemaNotFoundError(f"unknown event type {event_type!r}; use one of {', '.join(EVENT_TYPES)}")
    return schema_by_stem(event_type)


def schema_for_record(name: str) -> AvroSchema:
    """Return the shipped schema whose top-level record is ``name`` (full or bare name).

    Raises:
        SchemaNotFoundError: when no shipped schema defines that record.
    """
    for schema in _shipped().values():
        if name in (schema.full_name, schema.name):
            return schema
    known = ", ".join(schema.full_name for schema in _shipped().values())
    raise SchemaNotFoundError(f"no shipped schema defines record {name!r}; known: {known}")


def schema_for_model(model: type[AvroRecord]) -> AvroSchema:
    """Return the shipped schema a top-level model mirrors.

    Raises:
        SchemaNotFoundError: when ``model`` is a nested record or not a shipped one.
    """
    return schema_for_record(model.avro_full_name())


def model_for_record(full_name: str) -> type[AvroRecord]:
    """Return the model of top-level record ``full_name`` (``namespace.Name``).

    Raises:
        SchemaNotFoundError: when no model mirrors that record.
    """
    try:
        return _MODELS_BY_NAME[full_name]
    except KeyError:
        raise SchemaNotFoundError(f"no model for record {full_name!r}; is it a revstream schema?") from None


class _EventSchemas(Mapping[str, AvroSchema]):
    # Read lazily, so importing the loader never touches the file system.
    def __getitem__(self, event_type: str) -> AvroSchema:
        if event_type not in EVENT_TYPES:
            raise KeyError(event_type)
        return schema_for_event(event_type)

    def __iter__(self) -> Iterator[str]:
        return iter(EVENT_TYPES)

    def __len__(self) -> int:
        return len(EVENT_TYPES)


EVENT_SCHEMAS: Final[Mapping[str, AvroSchema]] = _EventSchemas()
"""Canonical event type → its parsed schema (loaded on first access)."""
