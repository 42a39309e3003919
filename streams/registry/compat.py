"""Compatibility levels composed on Apache Avro's reader/writer checker, with messages that help.

The pairwise question "can a reader with schema R decode data written with schema W?" is answered
by ``avro.compatibility.ReaderWriterCompatibilityChecker``; this module only decides which pairs a
level asks about and explains each failure: its kind, the location in the reader schema, the
field path by name, the version on the other side and what to do about it.

- BACKWARD: the new schema reads data written with the latest version (reader = new).
- FORWARD: the latest version reads data written with the new schema (reader = old).
- FULL: both. The ``_TRANSITIVE`` variants ask the same of every live version, not just the latest.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from avro.schema import (
    ArraySchema,
    Field,
    MapSchema,
    NamedSchema,
    RecordSchema,
    Schema,
    UnionSchema,
)

from streams.registry.errors import InvalidCompatibilityLevelError

__all__ = [
    "DEFAULT_LEVEL",
    "CompatibilityLevel",
    "Incompatibility",
    "check_compatibility",
    "check_pair",
    "parse_level",
]

logger = logging.getLogger(__name__)


class CompatibilityLevel(StrEnum):
    """Confluent's seven compatibility levels."""

    NONE = "NONE"
    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"

    @property
    def transitive(self) -> bool:
        """Whether every live version is checked rather than the latest only."""
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        """Whether the new schema must read data written with the old ones."""
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        """Whether the old schemas must read data written with the new one."""
        return self.value.startswith(("FORWARD", "FULL"))


DEFAULT_LEVEL = CompatibilityLevel.BACKWARD


def parse_level(value: object) -> CompatibilityLevel:
    """Return the level named by ``value`` (case-insensitive).

    Raises:
        InvalidCompatibilityLevelError: for anything else.
    """
    try:
        if not isinstance(value, str):
            raise ValueError(value)  # str(None) would read as the level NONE
        return CompatibilityLevel(value.upper())
    except ValueError:
        valid = ", ".join(level.value for level in CompatibilityLevel)
        raise InvalidCompatibilityLevelError(
            f"Invalid compatibility level {value!r}. Valid values are {valid}"
        ) from None


@dataclass(frozen=True)
class Incompatibility:
    """One reason a schema pair is incompatible, located in the reader schema."""

    kind: str  # Avro's incompatibility type, e.g. READER_FIELD_MISSING_DEFAULT_VALUE
    location: str  # JSON-pointer-like path in the reader schema, e.g. /fields/3
    field_path: str  # the same place by field names, e.g. lines[].amount_minor
    explanation: str  # what breaks and what to do, reader and writer named
    version: int | None  # the registered version on the other side (None: no version)

    def __str__(self) -> str:
        where = f"{self.location} ({self.field_path})" if self.field_path else self.location
        against = f" against version {self.version}" if self.version is not None else ""
        return f"{self.kind} at {where}{against}: {self.explanation}"


class _LocatingChecker(ReaderWriterCompatibilityChecker):
    """Avro's checker, except that locations inside union branches keep their full path.

    The stock checker restarts the location at "/" when it descends into a union branch, so a
    field of an optional nested record would be reported as if it were a top-level field. This
    subclass continues the parent's path with a ``*`` step instead; the checking itself is
    untouched.
    """

    def __init__(self) -> None:
        super().__init__()
        self._paths: list[list[str]] = []

    def get_compatibility(
        self, reader: Schema, writer: Schema, reference: str = "/", location: Any = None
    ) -> Any:
        if location is None and self._paths:
            return super().get_compatibility(reader, writer, "*", self._paths[-1])
        return super().get_compatibility(reader, writer, reference, location)

    def calculate_compatibility(self, reader: Schema, writer: Schema, location: list[str]) -> Any:
        self._paths.append(location)
        try:
            return super().calculate_compatibility(reader, writer, location)
        finally:
            self._paths.pop()


@dataclass(frozen=True)
class _Side:
    """Names the reader and the writer of one check in messages."""

    reader: str
    writer: str
    backward: bool  # reader is the new schema
    version: int | None


def check_pair(
    reader: Schema, writer: Schema, version: int | None = None, *, reader_is_new: bool = True
) -> list[Incompatibility]:
    """Return why ``reader`` cannot decode data written with ``writer`` (empty when it can).

    ``version`` is the registered version on the other side of the new schema; it names that
    side in the messages.
    """
    result = _LocatingChecker().get_compatibility(reader, writer)
    if result.compatibility is not SchemaCompatibilityType.incompatible:
        return []
    other = f"version {version}" if version is not None else "the registered schema"
    side = (
        _Side("the new schema", other, True, version)
        if reader_is_new
        else _Side(other, "the new schema", False, version)
    )
    kinds = {kind.name.upper() for kind in result.incompatibilities}
    messages = sorted(result.messages)
    # Avro's result merge adds the root "/" next to real locations; it is never one itself then.
    locations = sorted(result.locations - {"/"}) or ["/"]
    found: set[Incompatibility] = set()
    for location in locations:
        found.update(_describe(reader, writer, location, kinds, messages, side))
    return sorted(found, key=lambda item: (item.location, item.kind))


def check_compatibility(
    new: Schema, previous: Sequence[tuple[int, Schema]], level: CompatibilityLevel
) -> list[Incompatibility]:
    """Return every incompatibility of ``new`` with the live ``previous`` versions under ``level``.

    ``previous`` is ordered oldest first; non-transitive levels look at its last entry only.
    """
    if level is CompatibilityLevel.NONE or not previous:
        return []
    targets = list(previous) if level.transitive else [previous[-1]]
    found: list[Incompatibility] = []
    for version, old in reversed(targets):
        if level.backward:
            found.extend(check_pair(new, old, version, reader_is_new=True))
        if level.forward:
            found.extend(check_pair(old, new, version, reader_is_new=False))
    return found


# -- explaining one location --------------------------------------------------------------------

_TYPE_MISMATCH = re.compile(r"^reader type: (\S+) not compatible with writer type: (\S+)$")


@dataclass
class _Place:
    """Where a location leads in the reader, and the writer's counterpart when it can be followed."""

    reader: Any  # a reader schema, or a reader field
    writer: Any  # the writer's schema or field at the same place, or None
    path: list[str]  # field names on the way, with [] for array items and {} for map values
    branch: int | None  # the writer branch index when the location ends inside a union


def _type(node: Any) -> str:
    return str(getattr(node, "type", "")) if not isinstance(node, Field) else str(node.type.type)


def _described(node: Any) -> str:
    schema = node.type if isinstance(node, Field) else node
    if isinstance(schema, NamedSchema):
        return f"{schema.type} {schema.fullname}"
    return str(getattr(schema, "type", "?"))


def _record_of(node: Any) -> Any:
    if isinstance(node, RecordSchema):
        return node
    if isinstance(node, UnionSchema):
        return next((branch for branch in node.schemas if isinstance(branch, RecordSchema)), None)
    return None


def _writer_field(record: Any, field: Field) -> Field | None:
    if record is None:
        return None
    aliases = field.props.get("aliases")
    for name in [field.name, *(aliases if isinstance(aliases, list) else [])]:
        if name in record.fields_dict:
            found: Field = record.fields_dict[name]
            return found
    return None


def _same_named(branches: Sequence[Schema], wanted: Any) -> tuple[int, Schema] | None:
    if not isinstance(wanted, NamedSchema):
        return None
    for index, branch in enumerate(branches):
        if not isinstance(branch, NamedSchema):
            continue
        aliases = branch.props.get("aliases")
        if wanted.fullname in [branch.fullname, *(aliases if isinstance(aliases, list) else [])]:
            return index, branch
    return None


def _walk(reader: Schema, writer: Schema, steps: list[str]) -> _Place:
    r: Any = reader
    w: Any = writer
    path: list[str] = []
    branch: int | None = None
    index = 0
    while index < len(steps):
        step, branch = steps[index], None
        if step == "fields" and index + 1 < len(steps) and steps[index + 1].isdigit():
            record, position = _record_of(r), int(steps[index + 1])
            if record is None or position >= len(record.fields):
                break
            r = record.fields[position]
            w = _writer_field(_record_of(w), r)
            path.append(r.name)
            index += 2
            continue
        if step == "type" and isinstance(r, Field):
            r, w = r.type, w.type if isinstance(w, Field) else None
        elif step in ("items", "values") and isinstance(r, ArraySchema | MapSchema):
            w = getattr(w, step) if isinstance(w, type(r)) else None
            r = getattr(r, step)
            path.append("[]" if step == "items" else "{}")
        elif step.isdigit() and isinstance(r, UnionSchema):
            branch = int(step)
        elif step == "*" and isinstance(r, UnionSchema) and w is not None:
            # The reader union's branch that Avro tried against this writer: same name, or type.
            match = _same_named(r.schemas, w)
            same_type = [s for s in r.schemas if s.type == getattr(w, "type", None)]
            r = match[1] if match else same_type[0] if same_type else r
        elif step == "*":
            w = None  # one of the writer union's branches; the location does not say which
        index += 1
    return _Place(r, w, path, branch)


def _kind_at(steps: list[str], place: _Place, kinds: set[str]) -> str:
    last = steps[-1] if steps else ""
    if last == "symbols":
        kind = "MISSING_ENUM_SYMBOLS"
    elif last == "name":
        kind = "NAME_MISMATCH"
    elif last == "size":
        kind = "FIXED_SIZE_MISMATCH"
    elif len(steps) >= 2 and steps[-2] == "fields" and last.isdigit():
        kind = "READER_FIELD_MISSING_DEFAULT_VALUE"
    elif place.branch is not None or isinstance(place.reader, UnionSchema):
        kind = "MISSING_UNION_BRANCH"
    else:
        kind = "TYPE_MISMATCH"
    # Trust the classification only when Avro reported that kind; otherwise report what it said.
    return kind if kind in kinds or not kinds else " or ".join(sorted(kinds))


def _field_path(parts: list[str]) -> str:
    return ".".join(parts).replace(".[]", "[]").replace(".{}", "{}")


def _describe(
    reader: Schema, writer: Schema, location: str, kinds: set[str], messages: list[str], side: _Side
) -> list[Incompatibility]:
    steps = [step for step in location.split("/") if step]
    place = _walk(reader, writer, steps)
    kind = _kind_at(steps, place, kinds)
    display = "/" + "/".join(step for step in steps if step != "*")
    field_path = _field_path(place.path)
    if kind == "MISSING_UNION_BRANCH":
        nested = _inside_union(place, steps, side)
        if nested:
            return nested
    explanation = _explain(kind, place, field_path, messages, side)
    return [Incompatibility(kind, display, field_path, explanation, side.version)]


def _written_branch(place: _Place) -> Any:
    if place.branch is not None and isinstance(place.writer, UnionSchema):
        return place.writer.schemas[place.branch]
    return None if isinstance(place.writer, UnionSchema) else place.writer


def _inside_union(place: _Place, steps: list[str], side: _Side) -> list[Incompatibility]:
    """Explain a union "missing" a branch it has under the same name but changed incompatibly.

    Avro stops at the union then (an optional nested record is the common case); checking the
    same-named branches against each other tells which field inside actually broke.
    """
    written = _written_branch(place)
    match = _same_named(place.reader.schemas, written) if isinstance(place.reader, UnionSchema) else None
    if match is None:
        return []
    index, branch = match
    base = [step for step in steps if step != "*"]
    if place.branch is not None:
        base = base[:-1]
    nested = check_pair(branch, written, side.version, reader_is_new=side.backward)
    return [
        Incompatibility(
            item.kind,
            "/".join(["", *base, str(index)]) + (item.location if item.location != "/" else ""),
            _field_path([*place.path, item.field_path]) if item.field_path else _field_path(place.path),
            item.explanation,
            item.version,
        )
        for item in nested
    ]


def _explain(kind: str, place: _Place, field_path: str, messages: list[str], side: _Side) -> str:
    field = f"field '{field_path}'" if field_path else "the schema root"
    written = _written_branch(place)
    if kind == "READER_FIELD_MISSING_DEFAULT_VALUE":
        if side.backward:
            return (
                f"the new schema adds {field} without a default, so it cannot read records written "
                f"with {side.writer}; give the field a default"
            )
        return (
            f"{side.reader} requires {field}, which the new schema no longer writes and "
            f"{side.reader} has no default for; keep the field in the new schema"
        )
    if kind == "TYPE_MISMATCH":
        reader_type = _type(place.reader)
        if written is not None:
            writes = _described(written)
        else:
            found = {m[2] for m in map(_TYPE_MISMATCH.match, messages) if m and m[1] == reader_type}
            writes = " or ".join(sorted(found)) or "another type"
        return (
            f"{side.reader} has {_described(place.reader)} at {field} but {side.writer} writes "
            f"{writes}; keep the type or use a promotion Avro allows "
            "(int→long→float→double, string↔bytes)"
        )
    if kind == "MISSING_ENUM_SYMBOLS":
        known = set(getattr(place.reader, "symbols", ()))
        missing = [s for s in getattr(written, "symbols", ()) if s not in known]
        return (
            f"the enum at {field} in {side.reader} lacks {', '.join(missing) or 'symbols'} that "
            f"{side.writer} can write; keep the symbols or give that enum a default symbol"
        )
    if kind == "MISSING_UNION_BRANCH":
        branch = _described(written) if written is not None else "a type"
        return (
            f"the union at {field} in {side.reader} has no branch for {branch} that {side.writer} "
            "can write; add the branch"
        )
    if kind == "NAME_MISMATCH":
        expected = getattr(written, "fullname", "the writer's name")
        return (
            f"the type at {field} in {side.reader} is named {getattr(place.reader, 'fullname', '?')}, "
            f"not {expected} as {side.writer} writes it; keep the name or add {expected} to its aliases"
        )
    if kind == "FIXED_SIZE_MISMATCH":
        return (
            f"the fixed type at {field} has size {getattr(place.reader, 'size', '?')} in {side.reader} "
            f"but {getattr(written, 'size', '?')} in {side.writer}; keep its size"
        )
    return f"{side.reader} cannot read data written with {side.writer}: {'; '.join(messages)}"
