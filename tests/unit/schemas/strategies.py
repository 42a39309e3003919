"""Test data for every model, derived from its type hints: hypothesis strategies and fixed samples.

``model_strategy(Model)`` draws any valid instance (for round-trip properties); ``sample(Model)``
builds one small deterministic instance, with ``overrides`` for the fields a test cares about.
"""

from __future__ import annotations

import types
import typing
from datetime import UTC, date, datetime, timedelta, timezone
from enum import StrEnum
from typing import Any, Literal, get_args, get_origin, get_type_hints

from hypothesis import strategies as st
from pydantic import StringConstraints

from schemas.models import AvroRecord, ErpCommand
from schemas.models.base import AvroPrimitive

__all__ = ["model_strategy", "sample", "split_annotated", "strategy_for", "union_members"]

TEXT = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12)
ZONES = st.sampled_from([UTC, timezone(timedelta(hours=5, minutes=30)), timezone(timedelta(hours=-8))])
INSTANTS = st.datetimes(min_value=datetime(1900, 1, 2), max_value=datetime(2999, 12, 30), timezones=ZONES)
BOUNDS = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}
SAMPLE_INSTANT = datetime(2025, 3, 14, 9, 26, 53, 589_000, tzinfo=UTC)
SAMPLE_DATE = date(2025, 3, 1)


def split_annotated(annotation: Any) -> tuple[Any, tuple[Any, ...]]:
    """Return the base type and the metadata of a (possibly) ``Annotated`` type."""
    if get_origin(annotation) is typing.Annotated:
        base, *metadata = get_args(annotation)
        return base, tuple(metadata)
    return annotation, ()


def union_members(annotation: Any) -> tuple[Any, ...] | None:
    """Return the members of a union type, or ``None`` when it is not a union."""
    if get_origin(annotation) in (typing.Union, types.UnionType):
        return get_args(annotation)
    return None


def _fields(model: type[AvroRecord]) -> dict[str, Any]:
    hints = get_type_hints(model, include_extras=True)
    # An ErpCommand's command_type follows from its payload; generating both would mostly mismatch.
    skip = "command_type" if model is ErpCommand else None
    return {name: hints[name] for name in model.model_fields if name != skip}


def strategy_for(annotation: Any) -> st.SearchStrategy[Any]:
    """Return a strategy of valid values for a model field's annotation."""
    base, metadata = split_annotated(annotation)
    for item in metadata:
        if isinstance(item, AvroPrimitive):
            low, high = BOUNDS[item.type]
            return st.integers(low, high)
        if isinstance(item, StringConstraints):
            if item.pattern:
                return st.from_regex(item.pattern, fullmatch=True)
            return TEXT.filter(bool) if item.min_length else TEXT
    members = union_members(base)
    if members is not None:
        return st.one_of([strategy_for(member) for member in members])
    if base is type(None):
        return st.none()
    if get_origin(base) is Literal:
        return st.sampled_from(get_args(base))
    if get_origin(base) is tuple:
        return st.lists(strategy_for(get_args(base)[0]), max_size=3).map(tuple)
    if isinstance(base, type) and issubclass(base, AvroRecord):
        return model_strategy(base)
    if isinstance(base, type) and issubclass(base, StrEnum):
        return st.sampled_from(list(base))
    simple: dict[Any, st.SearchStrategy[Any]] = {
        str: TEXT,
        bytes: st.binary(max_size=12),
        datetime: INSTANTS,
        date: st.dates(),
    }
    return simple[base]


def model_strategy(model: type[AvroRecord]) -> st.SearchStrategy[Any]:
    """Return a strategy drawing valid instances of ``model``."""
    fields = st.fixed_dictionaries({name: strategy_for(hint) for name, hint in _fields(model).items()})
    return fields.map(lambda values: model(**values))


def _sample_value(annotation: Any, name: str) -> Any:
    base, metadata = split_annotated(annotation)
    for item in metadata:
        if isinstance(item, AvroPrimitive):
            return 1
        if isinstance(item, StringConstraints) and item.pattern:
            return "2025-03" if name == "month" else "USD"
    members = union_members(base)
    if members is not None:
        first = next(member for member in members if member is not type(None))
        return _sample_value(first, name)
    if get_origin(base) is Literal:
        return get_args(base)[0]
    if get_origin(base) is tuple:
        return (_sample_value(get_args(base)[0], name),)
    if isinstance(base, type) and issubclass(base, AvroRecord):
        return sample(base)
    if isinstance(base, type) and issubclass(base, StrEnum):
        return next(iter(base))
    simple = {str: f"{name}-1", bytes: b"\x00\x01", datetime: SAMPLE_INSTANT, date: SAMPLE_DATE}
    return simple[base]


def sample(model: type[AvroRecord], **overrides: Any) -> Any:
    """Return one small, deterministic, valid instance of ``model`` with ``overrides`` applied."""
    values = {name: _sample_value(hint, name) for name, hint in _fields(model).items()}
    return model(**{**values, **overrides})
