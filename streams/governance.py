"""Schema governance against any Confluent-compatible registry: check, register and diff.

Everything goes through the registry's REST API (confluent-kafka's ``SchemaRegistryClient``), so the
same commands run against revstream's embedded registry and Confluent Schema Registry alike. The
compatibility verdict is computed locally with the registry's own compatibility module over every
registered version, so a break names the field, the version and the kind of incompatibility even
when the registry itself only answers "incompatible".
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import avro.schema
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from schemas.loader import AvroSchema, load_directory
from streams.errors import GovernanceError
from streams.registry.compat import CompatibilityLevel, Incompatibility, check_compatibility, parse_level
from streams.topics import TopicCatalog
from streams.wire import SubjectStrategy, subject_name

__all__ = [
    "CheckResult",
    "FieldChange",
    "Registration",
    "SubjectBinding",
    "bind_subjects",
    "check_subject",
    "diff_fields",
    "register_subject",
]

logger = logging.getLogger(__name__)

SUBJECT_NOT_FOUND = 40401
NO_CONFIG = 40408  # Confluent answers 40408 for a subject without its own compatibility level


@dataclass(frozen=True)
class SubjectBinding:
    """A local schema and the registry subject it is governed under."""

    subject: str
    schema: AvroSchema


@dataclass(frozen=True)
class CheckResult:
    """The verdict for one subject: its level, the versions compared, and every break found."""

    subject: str
    level: CompatibilityLevel
    versions: tuple[int, ...]
    problems: tuple[Incompatibility, ...] = ()
    already_registered: int | None = None

    @property
    def ok(self) -> bool:
        """Whether the local schema may be registered under the subject's level."""
        return not self.problems


@dataclass(frozen=True)
class Registration:
    """What registering one subject gave: the subject, its version and the global schema id."""

    subject: str
    version: int
    schema_id: int
    new: bool


@dataclass(frozen=True)
class FieldChange:
    """One field that differs between the registered and the local schema."""

    path: str
    change: str  # "added", "removed" or "changed"
    registered: Any = None
    local: Any = None
    details: tuple[str, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        if self.change == "added":
            return f"+ {self.path}: {_type_text(self.local)} (local only)"
        if self.change == "removed":
            return f"- {self.path}: {_type_text(self.registered)} (registered only)"
        return f"~ {self.path}: " + "; ".join(self.details)


def bind_subjects(
    catalog: TopicCatalog, directory: Path, strategy: SubjectStrategy = "topic"
) -> list[SubjectBinding]:
    """Return the subject of every local schema, by the catalog's topics and ``strategy``.

    A schema carried by a catalog topic is governed under ``<topic>-value`` (TopicNameStrategy) or
    its record name (RecordNameStrategy); a schema no topic carries is always governed under its
    record name.
    """
    schemas = {schema.stem: schema for schema in load_directory(directory)}
    topics = {spec.value_schema: spec.name for spec in catalog.specs() if spec.value_schema}
    bindings = []
    for stem, schema in sorted(schemas.items()):
        topic = topics.get(stem)
        if topic is None:
            bindings.append(SubjectBinding(schema.full_name, schema))
        else:
            bindings.append(SubjectBinding(subject_name(strategy, topic, schema.full_name), schema))
    return bindings


def _live_versions(client: SchemaRegistryClient, subject: str) -> list[tuple[int, str]]:
    try:
        versions = client.get_versions(subject)
    except SchemaRegistryError as exc:
        if exc.error_code == SUBJECT_NOT_FOUND:
            return []
        raise GovernanceError(f"registry error for {subject}: {exc.error_message}") from exc
    result = []
    for version in sorted(versions):
        registered = client.get_version(subject, version)
        result.append((version, registered.schema.schema_str or ""))
    return result


def subject_level(client: SchemaRegistryClient, subject: str) -> CompatibilityLevel:
    """Return the subject's compatibility level, falling back to the registry-wide one."""
    try:
        return parse_level(client.get_compatibility(subject))
    except SchemaRegistryError as exc:
        if exc.error_code not in (SUBJECT_NOT_FOUND, NO_CONFIG):
            raise GovernanceError(f"registry error for {subject}: {exc.error_message}") from exc
    return parse_level(client.get_compatibility())


def _parse(schema_str: str) -> avro.schema.Schema:
    return avro.schema.parse(schema_str)


def _same_schema(left: str, right: str) -> bool:
    return bool(_parse(left).canonical_form == _parse(right).canonical_form)


def check_subject(client: SchemaRegistryClient, binding: SubjectBinding) -> CheckResult:
    """Check the local schema against every registered version under the subject's level."""
    level = subject_level(client, binding.subject)
    live = _live_versions(client, binding.subject)
    local = binding.schema.canonical_json
    versions = tuple(version for version, _ in live)
    for version, registered in live:
        if _same_schema(registered, local):
            return CheckResult(binding.subject, level, versions, already_registered=version)
    previous = [(version, _parse(text)) for version, text in live]
    problems = check_compatibility(_parse(local), previous, level)
    return CheckResult(binding.subject, level, versions, tuple(problems))


def register_subject(client: SchemaRegistryClient, binding: SubjectBinding) -> Registration:
    """Register the local schema under its subject (idempotent) and return version and id.

    Raises:
        GovernanceError: when the registry refuses it (incompatible, read-only, invalid).
    """
    schema = Schema(binding.schema.canonical_json, "AVRO")
    existing = {version for version, _ in _live_versions(client, binding.subject)}
    try:
        schema_id = client.register_schema(binding.subject, schema)
        registered = client.lookup_schema(binding.subject, schema)
    except SchemaRegistryError as exc:
        raise GovernanceError(
            f"registry refused {binding.subject} ({exc.http_status_code}/{exc.error_code}): "
            f"{exc.error_message}; run `revstream schemas check` for the field-level reasons"
        ) from exc
    version = int(registered.version or 0)
    return Registration(binding.subject, version, schema_id, version not in existing)


def latest_registered(client: SchemaRegistryClient, subject: str) -> tuple[int, dict[str, Any]]:
    """Return the latest version of ``subject`` and its schema.

    Raises:
        GovernanceError: when the subject does not exist.
    """
    try:
        latest = client.get_latest_version(subject)
    except SchemaRegistryError as exc:
        raise GovernanceError(f"subject {subject} is not registered ({exc.error_message})") from exc
    return int(latest.version or 0), json.loads(latest.schema.schema_str or "{}")


def diff_fields(registered: Mapping[str, Any], local: Mapping[str, Any]) -> list[FieldChange]:
    """Compare two record schemas field by field, nested records and arrays included."""
    changes: list[FieldChange] = []
    _diff_record(registered, local, _record_name(local) or _record_name(registered), changes)
    return changes


def _record_name(node: Any) -> str:
    return str(node.get("name", "")) if isinstance(node, Mapping) else ""


def _fields(record: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {f["name"]: f for f in record.get("fields", [])}


def _type_text(node: Any) -> str:
    if isinstance(node, Mapping) and "type" in node and "name" in node and "fields" not in node:
        node = node["type"]
    if isinstance(node, list):
        return " | ".join(_type_text(branch) for branch in node)
    if isinstance(node, Mapping):
        kind = node.get("type")
        if node.get("logicalType"):
            return f"{kind}({node['logicalType']})"
        if kind == "array":
            return f"array<{_type_text(node.get('items'))}>"
        if kind in ("record", "enum", "fixed"):
            return str(node.get("name"))
        return _type_text(kind)
    return str(node)


def _nested_record(node: Any) -> Mapping[str, Any] | None:
    if isinstance(node, list):
        records = [r for r in (_nested_record(b) for b in node) if r is not None]
        return records[0] if len(records) == 1 else None
    if isinstance(node, Mapping):
        if node.get("type") == "record":
            return node
        if node.get("type") == "array":
            return _nested_record(node.get("items"))
    return None


def _diff_record(
    registered: Mapping[str, Any], local: Mapping[str, Any], path: str, changes: list[FieldChange]
) -> None:
    old, new = _fields(registered), _fields(local)
    for name in [n for n in new if n not in old]:
        changes.append(FieldChange(f"{path}.{name}", "added", local=new[name]))
    for name in [n for n in old if n not in new]:
        changes.append(FieldChange(f"{path}.{name}", "removed", registered=old[name]))
    for name in [n for n in new if n in old]:
        before, after = old[name], new[name]
        here = f"{path}.{name}"
        before_record, after_record = _nested_record(before["type"]), _nested_record(after["type"])
        details = []
        if before_record is not None and after_record is not None:
            suffix = "[]" if "array" in _type_text(after["type"]) else ""
            _diff_record(before_record, after_record, here + suffix, changes)
        elif _type_text(before["type"]) != _type_text(after["type"]):
            details.append(f"type {_type_text(before['type'])} -> {_type_text(after['type'])}")
        if _symbols(before["type"]) != _symbols(after["type"]):
            details.append(f"symbols {_symbols(before['type'])} -> {_symbols(after['type'])}")
        if before.get("default", _MISSING) != after.get("default", _MISSING):
            details.append(
                f"default {before.get('default', '(none)')!r} -> {after.get('default', '(none)')!r}"
            )
        if set(before.get("aliases", [])) != set(after.get("aliases", [])):
            details.append(f"aliases {before.get('aliases', [])} -> {after.get('aliases', [])}")
        if details:
            changes.append(FieldChange(here, "changed", before, after, tuple(details)))


_MISSING = object()


def _symbols(node: Any) -> list[str] | None:
    if isinstance(node, Mapping) and node.get("type") == "enum":
        return list(node.get("symbols", []))
    return None
