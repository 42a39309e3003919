"""Governance rules for the ``.avsc`` files: the conventions every revstream schema follows.

Rules (each finding names the file, the field path such as ``InvoicePosted.lines[].amount_minor``,
the rule id and what to do):

- ``doc-missing``: every record, enum and field has a non-empty ``doc``.
- ``money-float``: no ``float``/``double`` anywhere; money is integer minor units.
- ``money-pair``: a ``*_minor`` field is a ``long`` and its record, or a record enclosing it, has a
  ``currency`` string; a money-named field (amount, price, total, ...) must be ``*_minor``.
- ``timestamp-type``: ``*_at`` fields are timestamp-millis; ``*_date``/``*_on``/``*_start``/
  ``*_end`` fields are a date or timestamp-millis.
- ``namespace``: every named type's namespace starts with ``io.revstream.``.
- ``enum-default``: every enum has a ``default`` symbol, so it can grow.
- ``added-field-default``: compared with a previous version, every added field has a default.
- ``invalid-schema``: the file is not JSON or not a valid Avro schema (nothing else is checked).

The rules are pure functions of the parsed JSON; only :func:`lint_schema` / :func:`lint_all` read files.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from schemas.errors import SchemaParseError
from schemas.loader import parse_definition
from schemas.names import AVRO_NAMESPACE

__all__ = ["RULES", "Finding", "lint_all", "lint_definition", "lint_schema"]

logger = logging.getLogger(__name__)

RULES: Final = (
    "doc-missing",
    "money-float",
    "money-pair",
    "timestamp-type",
    "namespace",
    "enum-default",
    "added-field-default",
    "invalid-schema",
)
NAMED: Final = ("record", "enum", "fixed")
TIMESTAMP: Final = ("long", "timestamp-millis")
DATE: Final = ("int", "date")
_MONEY_NAME: Final = re.compile(r"(amount|price|total|balance|cost|fee)")
_PERIOD_NAME: Final = re.compile(r"_(date|on|start|end)$")

SchemaInput = Path | str | Mapping[str, Any]


@dataclass(frozen=True, order=True)
class Finding:
    """One broken convention: where, which rule, and what to do about it."""

    file: str
    path: str
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.path}: {self.rule}: {self.message}"


@dataclass
class _Walk:
    file: str
    findings: list[Finding] = field(default_factory=list)
    records: dict[str, tuple[str, list[Mapping[str, Any]]]] = field(default_factory=dict)

    def add(self, path: str, rule: str, message: str) -> None:
        self.findings.append(Finding(self.file, path, rule, message))


def _full_name(node: Mapping[str, Any], namespace: str) -> tuple[str, str]:
    """Return the full name of a named type and the namespace its children inherit."""
    name = str(node.get("name", "?"))
    if "." in name:
        return name, name.rpartition(".")[0]
    own = node.get("namespace", namespace)
    return (f"{own}.{name}" if own else name), own


def _optional_inner(avro: Any) -> Any:
    """``["null", T]`` → ``T``; anything else unchanged."""
    if isinstance(avro, list) and len(avro) == 2 and "null" in avro:
        return next(branch for branch in avro if branch != "null")
    return avro


def _leaf(avro: Any) -> tuple[str, str | None]:
    """Return ``(type, logicalType)`` of a (non-optional) type; named references give the name."""
    avro = _optional_inner(avro)
    if isinstance(avro, str):
        return avro, None
    if isinstance(avro, Mapping):
        inner = avro.get("type")
        if isinstance(inner, str):
            return inner, avro.get("logicalType")
        return _leaf(inner)
    return "union", None


def _check_field(walk: _Walk, path: str, node: Mapping[str, Any], currency_in_scope: bool) -> None:
    name = str(node.get("name", ""))
    kind, logical = _leaf(node.get("type"))
    if name.endswith("_minor"):
        if (kind, logical) != ("long", None):
            walk.add(path, "money-pair", f"{name} must be a long of minor units, not {logical or kind}")
        if not currency_in_scope:
            walk.add(path, "money-pair", f"{name} needs a `currency` field in its record or an enclosing one")
    elif _MONEY_NAME.search(name) and kind in ("int", "long", "float", "double", "bytes", "fixed"):
        walk.add(path, "money-pair", f"money field {name} must be named {name}_minor (long minor units)")
    if name.endswith("_at") and (kind, logical) != TIMESTAMP:
        walk.add(path, "timestamp-type", f"{name} must be {{long, timestamp-millis}}, not {logical or kind}")
    elif _PERIOD_NAME.search(name) and (kind, logical) not in (TIMESTAMP, DATE):
        walk.add(
            path, "timestamp-type", f"{name} must be {{int, date}} or timestamp-millis, not {logical or kind}"
        )


def _walk_type(walk: _Walk, avro: Any, path: str, namespace: str, currency_in_scope: bool) -> None:
    if isinstance(avro, list):
        records = [branch for branch in avro if isinstance(branch, Mapping) and branch.get("type") in NAMED]
        for branch in avro:
            suffix = f"<{branch.get('name')}>" if branch in records and len(avro) > 2 else ""
            _walk_type(walk, branch, path + suffix, namespace, currency_in_scope)
        return
    if isinstance(avro, str):
        if avro in ("float", "double"):
            walk.add(
                path, "money-float", f"{avro} is not allowed: use long minor units (or a string decimal)"
            )
        return
    if not isinstance(avro, Mapping):
        return
    kind = avro.get("type")
    if kind == "record":
        _walk_record(walk, avro, path, namespace, currency_in_scope)
    elif kind in ("enum", "fixed"):
        full, _ = _full_name(avro, namespace)
        _check_namespace(walk, path, full)
        if kind == "enum":
            if not avro.get("doc"):
                walk.add(path, "doc-missing", f"enum {avro.get('name')} has no doc")
            if avro.get("default") not in avro.get("symbols", []):
                walk.add(
                    path, "enum-default", f"enum {avro.get('name')} needs a default symbol, e.g. UNKNOWN"
                )
    elif kind == "array":
        _walk_type(walk, avro.get("items"), f"{path}[]", namespace, currency_in_scope)
    elif kind == "map":
        _walk_type(walk, avro.get("values"), f"{path}{{}}", namespace, currency_in_scope)
    else:
        _walk_type(walk, kind, path, namespace, currency_in_scope)


def _check_namespace(walk: _Walk, path: str, full_name: str) -> None:
    if not full_name.startswith(f"{AVRO_NAMESPACE}."):
        walk.add(path, "namespace", f"{full_name} must live under the {AVRO_NAMESPACE}.* namespace")


def _walk_record(
    walk: _Walk, node: Mapping[str, Any], path: str, namespace: str, currency_in_scope: bool
) -> None:
    full, namespace = _full_name(node, namespace)
    _check_namespace(walk, path, full)
    if not node.get("doc"):
        walk.add(path, "doc-missing", f"record {node.get('name')} has no doc")
    fields = [f for f in node.get("fields", []) if isinstance(f, Mapping)]
    walk.records[full] = (path, fields)
    currency_in_scope = currency_in_scope or any(
        f.get("name") == "currency" and _leaf(f.get("type"))[0] == "string" for f in fields
    )
    for item in fields:
        where = f"{path}.{item.get('name')}"
        if not item.get("doc"):
            walk.add(where, "doc-missing", f"field {item.get('name')} has no doc")
        _check_field(walk, where, item, currency_in_scope)
        _walk_type(walk, item.get("type"), where, namespace, currency_in_scope)


def _check_added_fields(walk: _Walk, previous: _Walk) -> None:
    for full, (path, fields) in walk.records.items():
        before = previous.records.get(full)
        if before is None:
            continue  # a new record type: the field that introduced it is checked in its parent
        known = {str(f.get("name")) for f in before[1]}
        for item in fields:
            names = {str(item.get("name")), *item.get("aliases", [])}
            if not names & known and "default" not in item:
                walk.add(
                    f"{path}.{item.get('name')}",
                    "added-field-default",
                    f"field {item.get('name')} was added without a default; old records could not be read",
                )


def _walked(definition: Mapping[str, Any], file: str) -> _Walk:
    walk = _Walk(file)
    _walk_record(walk, definition, str(definition.get("name", "?")).rsplit(".", 1)[-1], "", False)
    return walk


def lint_definition(
    definition: Mapping[str, Any], previous: Mapping[str, Any] | None = None, file: str = "<schema>"
) -> list[Finding]:
    """Lint a parsed schema definition (and what changed since ``previous``); pure."""
    try:
        parse_definition(definition, file)
    except SchemaParseError as exc:
        return [Finding(file, str(definition.get("name", "?")), "invalid-schema", str(exc))]
    walk = _walked(definition, file)
    if previous is not None:
        _check_added_fields(walk, _walked(previous, file))
    return sorted(walk.findings)


def _read(source: SchemaInput) -> tuple[str, Mapping[str, Any]]:
    if isinstance(source, Mapping):
        return "<schema>", source
    if isinstance(source, str) and source.lstrip().startswith("{"):
        return "<schema>", json.loads(source)
    path = Path(source)
    return str(path), json.loads(path.read_text(encoding="utf-8"))


def lint_schema(source: SchemaInput, previous: SchemaInput | None = None) -> list[Finding]:
    """Lint one schema given as a file path, JSON text or parsed JSON, against ``previous`` if given.

    Raises:
        OSError: when a file cannot be read.
    """
    try:
        file, definition = _read(source)
    except json.JSONDecodeError as exc:
        name = str(source) if isinstance(source, Path) else "<schema>"
        return [Finding(name, "-", "invalid-schema", f"not valid JSON (line {exc.lineno}: {exc.msg})")]
    if not isinstance(definition, Mapping):
        return [Finding(file, "-", "invalid-schema", "the top level must be one Avro record")]
    old = None
    if previous is not None:
        try:
            _, old = _read(previous)
        except json.JSONDecodeError as exc:
            return [Finding(file, "-", "invalid-schema", f"previous version is not valid JSON ({exc.msg})")]
    return lint_definition(definition, old, file)


def lint_all(directory: Path, previous: Path | None = None) -> list[Finding]:
    """Lint every ``.avsc`` of ``directory``; with ``previous``, compare each with its namesake there.

    Raises:
        OSError: when a file cannot be read.
    """
    findings: list[Finding] = []
    for path in sorted(directory.glob("*.avsc")):
        old = previous / path.name if previous is not None else None
        findings += lint_schema(path, old if old is not None and old.is_file() else None)
    return findings
