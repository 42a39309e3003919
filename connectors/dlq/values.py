"""Dead-letter values through the schema registry: decoding them for ``show`` and patching them.

A patched value is rebuilt the way a producer builds one: the merge patch is applied to the
record's JSON view, the result is validated by the model (which names the field that breaks it),
encoded with the shipped schema (strict: a field that does not fit is refused) and framed with
the id the registry gives that schema under the target topic's subject.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from connectors.dlq.entries import Entry
from connectors.dlq.errors import PatchError
from connectors.dlq.patch import diff, json_view, merge_patch
from schemas.errors import SchemaError
from schemas.loader import model_for_record
from streams.errors import RegistryUnavailableError, SerdeError
from streams.serde import AvroSerde

__all__ = ["IDENTITY_FIELDS", "Decoded", "Patched", "decode_value", "event_id_of", "patch_value"]

logger = logging.getLogger(__name__)

IDENTITY_FIELDS: Final = frozenset({"event_id", "customer_id", "command_id"})
"""What identifies a record: the Kafka key (customer id) and the id dedupe and the ledger key on.
A replay keeps the original key and partition, so a patch must not move the record elsewhere."""


@dataclass(frozen=True)
class Decoded:
    """A value decoded through the registry, or why it could not be."""

    schema_id: int | None
    record_name: str | None
    record: Any
    error: str | None = None


@dataclass(frozen=True)
class Patched:
    """A patched value: the new bytes, and every field that changed."""

    value: bytes
    changes: list[dict[str, Any]]


def decode_value(serde: AvroSerde, value: bytes | None) -> Decoded:
    """Decode ``value`` with its writer schema; a value that does not decode carries the error.

    Raises:
        RegistryUnavailableError: when the registry cannot be reached (not the record's fault).
    """
    if value is None:
        return Decoded(None, None, None, "the record has no value (a tombstone)")
    try:
        schema_id, record = serde.decode(value)
        name = str(serde.writer_schema(schema_id).get("name"))
    except RegistryUnavailableError:
        raise
    except SerdeError as exc:
        return Decoded(None, None, None, str(exc))
    return Decoded(schema_id, name, json_view(record))


def event_id_of(serde: AvroSerde, entry: Entry) -> str | None:
    """Return the ``event_id`` of a dead letter's value, ``None`` when it has none or does not decode."""
    decoded = decode_value(serde, entry.record.value)
    if isinstance(decoded.record, dict) and isinstance(decoded.record.get("event_id"), str):
        return str(decoded.record["event_id"])
    return None


def patch_value(serde: AvroSerde, entry: Entry, patch: dict[str, Any], topic: str) -> Patched:
    """Apply a merge patch to a dead letter's value and re-encode it for ``topic``.

    Raises:
        PatchError: when the value does not decode, or the result breaks the model or the schema
            (the message names the dead letter, the field and why).
        RegistryUnavailableError: when the registry cannot be reached.
    """
    decoded = decode_value(serde, entry.record.value)
    if decoded.error is not None or decoded.record_name is None:
        raise PatchError(f"cannot patch {entry.id}: its value does not decode ({decoded.error})")
    try:
        model = model_for_record(decoded.record_name)
    except SchemaError as exc:
        raise PatchError(f"cannot patch {entry.id}: {exc}") from exc
    patched = merge_patch(decoded.record, patch)
    try:
        rebuilt = model.model_validate(patched)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "(record)"
        shown = repr(first.get("input"))
        given = f" (got {shown[:60]})" if "input" in first and not isinstance(first["input"], dict) else ""
        more = f"; and {len(exc.errors()) - 1} more" if len(exc.errors()) > 1 else ""
        raise PatchError(
            f"patch refused for {entry.id}: field {field}: {first['msg']}{given}{more}; nothing was replayed"
        ) from exc
    changes = diff(decoded.record, json_view(rebuilt.to_avro()))
    for change in changes:
        if change["field"] in IDENTITY_FIELDS:
            raise PatchError(
                f"patch refused for {entry.id}: field {change['field']}: a replay cannot change it (the "
                "record's key and idempotency follow it); publish a corrected record instead"
            )
    try:
        value = serde.serialize(topic, rebuilt)
    except RegistryUnavailableError:
        raise
    except SerdeError as exc:
        raise PatchError(f"patch refused for {entry.id}: {exc}; nothing was replayed") from exc
    return Patched(value, changes)
