"""Models built from records fastavro decoded, without re-validating what Avro already guarantees.

A record read with a model's shipped schema has every field, of its Avro type: strings are ``str``,
ints and longs ``int``, timestamps aware UTC ``datetime`` values at millisecond precision, dates
``date``, enums one of the schema's symbols. Pydantic validation of such a record (measured: the
largest single cost of decoding in a worker profile) re-proves all of that. What Avro cannot express
is still checked here, cheaply and explicitly, from the models' own constraints: string
``min_length`` / ``max_length`` / ``pattern`` (``Id``, ``Currency``), a ``Literal`` (an event's
``event_type``), the 32- and 64-bit ranges of ``AvroInt`` / ``AvroLong``, enum membership, and the
types themselves. A record failing any check, and every model this module does not understand (one
with its own validators, like ``ErpCommand``), goes through full validation instead, so the error a
caller sees is pydantic's, exactly as before: the checks decide only whether validation can be
skipped, never whether a record is accepted.
"""

from __future__ import annotations

import functools
import logging
import re
import types
import typing
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime
from enum import Enum
from typing import Any, Final, Literal, TypeVar, Union

from annotated_types import Ge, Le
from pydantic import AfterValidator, BeforeValidator, Strict, StringConstraints
from pydantic.fields import FieldInfo

from schemas.models.base import AvroPrimitive, AvroRecord, _not_a_number, _utc_millis

__all__ = ["from_decoded"]

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=AvroRecord)

Convert = Callable[[Any], Any]
"""Returns the model's value for a decoded value, or raises :class:`_RefusedError`."""


class _RefusedError(Exception):
    """The value needs pydantic's validation (it breaks a constraint, or is of an unexpected type)."""


class _UnsupportedError(Exception):
    """The model uses something this module does not check: it is always validated."""


_KNOWN_VALIDATORS: Final = frozenset({_not_a_number, _utc_millis})
_NONE_TYPE: Final = type(None)


def _refuse() -> typing.NoReturn:
    raise _RefusedError


def _string(metadata: list[Any]) -> Convert:
    low, high, pattern = 0, None, None
    for item in metadata:
        if not isinstance(item, StringConstraints):
            raise _UnsupportedError(item)
        if item.strip_whitespace or item.to_upper or item.to_lower or item.ascii_only:
            raise _UnsupportedError(item)
        low = max(low, item.min_length or 0)
        high = item.max_length if item.max_length is not None else high
        pattern = re.compile(item.pattern).search if item.pattern is not None else pattern

    def convert(value: Any) -> Any:
        if type(value) is not str or len(value) < low or (high is not None and len(value) > high):
            _refuse()
        if pattern is not None and pattern(value) is None:
            _refuse()
        return value

    return convert


def _integer(metadata: list[Any]) -> Convert:
    low, high = -(2**63), 2**63 - 1
    for item in metadata:
        if isinstance(item, Ge):
            low = max(low, int(item.ge))  # type: ignore[call-overload]
        elif isinstance(item, Le):
            high = min(high, int(item.le))  # type: ignore[call-overload]
        elif not isinstance(item, AvroPrimitive | Strict):
            raise _UnsupportedError(item)

    def convert(value: Any) -> Any:
        # An Avro int is read without a range check, so a forged body can hold a wider number.
        if type(value) is not int or not low <= value <= high:
            _refuse()
        return value

    return convert


def _instant(value: Any) -> Any:
    if type(value) is not datetime or value.tzinfo is not UTC or value.microsecond % 1000:
        _refuse()
    return value


def _day(value: Any) -> Any:
    if type(value) is not date:
        _refuse()
    return value


def _validators_known(metadata: list[Any]) -> None:
    for item in metadata:
        if not isinstance(item, AfterValidator | BeforeValidator) or item.func not in _KNOWN_VALIDATORS:
            raise _UnsupportedError(item)


def _enum(kind: type[Enum]) -> Convert:
    members = kind._value2member_map_

    def convert(value: Any) -> Any:
        member = members.get(value) if type(value) is str else None
        if member is None:
            _refuse()
        return member

    return convert


def _literal(allowed: tuple[Any, ...]) -> Convert:
    def convert(value: Any) -> Any:
        if type(value) is not str or value not in allowed:
            _refuse()
        return value

    return convert


def _converter(annotation: Any, metadata: list[Any]) -> Convert:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        inner, *extra = typing.get_args(annotation)
        # Inside an Optional, Field(...) constraints stay wrapped in a FieldInfo: unwrap them.
        flat = [part for item in extra for part in (item.metadata if isinstance(item, FieldInfo) else [item])]
        return _converter(inner, [*flat, *metadata])
    if origin in (Union, types.UnionType):
        branches = [arg for arg in typing.get_args(annotation) if arg is not _NONE_TYPE]
        if len(branches) != 1 or metadata:
            raise _UnsupportedError(annotation)
        inner = _converter(branches[0], [])
        return lambda value: None if value is None else inner(value)
    if origin is Literal:
        if metadata:
            raise _UnsupportedError(annotation)
        return _literal(typing.get_args(annotation))
    if origin is tuple:
        args = typing.get_args(annotation)
        if len(args) != 2 or args[1] is not Ellipsis or metadata:
            raise _UnsupportedError(annotation)
        item = _converter(args[0], [])

        def items(value: Any) -> Any:
            if type(value) is not list:
                _refuse()
            return tuple([item(element) for element in value])

        return items
    if annotation is str:
        return _string(metadata)
    if annotation is int:
        return _integer(metadata)
    if annotation is datetime:
        _validators_known(metadata)
        return _instant
    if annotation is date:
        _validators_known(metadata)
        return _day
    if isinstance(annotation, type) and issubclass(annotation, Enum) and not metadata:
        return _enum(annotation)
    if isinstance(annotation, type) and issubclass(annotation, AvroRecord) and not metadata:
        nested = _builder(annotation)
        if nested is None:
            raise _UnsupportedError(annotation)

        def record(value: Any) -> Any:
            if type(value) is not dict:
                _refuse()
            return nested(value)

        return record
    raise _UnsupportedError(annotation)


@functools.cache
def _builder(model: type[AvroRecord]) -> Callable[[Mapping[str, Any]], AvroRecord] | None:
    decorators = model.__pydantic_decorators__
    if any(
        (
            decorators.model_validators,
            decorators.field_validators,
            decorators.validators,
            decorators.root_validators,
        )
    ):
        return None
    try:
        plan = tuple(
            (name, _converter(field.annotation, list(field.metadata)))
            for name, field in model.model_fields.items()
        )
    except _UnsupportedError as exc:
        logger.debug("%s is always validated: %r", model.__name__, exc)
        return None
    names = {name for name, _ in plan}
    construct = model.model_construct

    def build(record: Mapping[str, Any]) -> AvroRecord:
        if len(record) != len(plan):
            _refuse()
        try:
            values = {name: convert(record[name]) for name, convert in plan}
        except KeyError:
            _refuse()
        return construct(set(names), **values)

    return build


def from_decoded(model: type[M], record: Mapping[str, Any]) -> M:
    """Build ``model`` from a record fastavro decoded with the model's shipped schema.

    Raises:
        pydantic.ValidationError: when the record does not satisfy the model (as ``from_avro``).
    """
    build = _builder(model)
    if build is not None:
        try:
            return typing.cast(M, build(record))
        except _RefusedError:
            pass  # pydantic decides, and names the problem
    return model.from_avro(record)
