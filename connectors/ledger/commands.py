"""ERP commands as the sink handles them: the dict fastavro reads, checked without building models.

Building the pydantic ``ErpCommand`` for every consumed record cost the sink more than everything
else together (profiled with py-spy: 40 % of its busy time). The Avro decoding already guarantees
the types (strings, 64-bit longs, dates, aware UTC timestamps, enum symbols of the shipped reader
schema), so what is left to check is what the models add on top: string constraints (non-empty ids,
ISO-4217 currencies, ``YYYY-MM`` months), enum membership, and that the payload is the record the
command type names. The checks are derived from the models' own field metadata, so the models
stay the single definition; a constraint this module does not understand makes it fall back to
validating that payload type through pydantic, never to skipping the check.

A record that fails a check is re-validated through pydantic by the caller, for pydantic's exact
error message.
"""

from __future__ import annotations

import logging
import operator
import re
import types
from collections.abc import Callable, Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, Any, Union, get_args, get_origin

from annotated_types import Ge, Gt, Le, Lt
from pydantic import StringConstraints, ValidationError
from pydantic.types import Strict

from schemas.models.base import AvroPrimitive, AvroRecord, TimestampMillis
from schemas.models.erp import PAYLOAD_TYPES, ErpCommand

__all__ = ["CommandDict", "check_command", "record_of"]

logger = logging.getLogger(__name__)

CommandDict = Mapping[str, Any]
"""An ``ErpCommand`` as fastavro reads it: logical types converted, enums as symbols, payload a dict."""

Check = Callable[[Any], str | None]
"""Returns ``None`` when a value passes, else what is wrong with it."""

_TIMESTAMP_METADATA = tuple(get_args(TimestampMillis)[1:])
_AVRO_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}


class _Unsupported(Exception):
    """A field constraint this module cannot check itself: the model is validated by pydantic."""


def record_of(command: ErpCommand) -> dict[str, Any]:
    """Return ``command`` in the form fastavro's reader gives it (the payload as a plain dict)."""
    record = command.to_avro()
    record["payload"] = record["payload"][1]
    return record


def check_command(record: CommandDict) -> str | None:
    """Return ``None`` when ``record`` satisfies every ``ErpCommand`` constraint, else the first problem.

    ``record`` must come from the Avro decoder with the shipped ``ErpCommand`` reader schema, which
    already guarantees field presence and types. ``UNKNOWN`` and other command types without a
    payload model pass here: they are refused as unsupported by the ledger writer.
    """
    problem = _ENVELOPE(record)
    if problem is not None:
        return problem
    payload_check = _PAYLOADS.get(record["command_type"])
    if payload_check is None:
        return None
    return payload_check(record["payload"])


# -- compiling checks from the models ------------------------------------------------------------


def _string_checks(constraint: StringConstraints) -> list[Check]:
    other = (
        constraint.strip_whitespace,
        constraint.to_upper,
        constraint.to_lower,
        constraint.strict,
        constraint.ascii_only,
    )
    if any(option is not None for option in other):
        raise _Unsupported(str(constraint))
    checks: list[Check] = []
    low, high = constraint.min_length, constraint.max_length
    if low is not None or high is not None:
        low_, high_ = low or 0, high if high is not None else float("inf")
        checks.append(lambda v: None if low_ <= len(v) <= high_ else f"length {len(v)} out of bounds")
    if constraint.pattern is not None:
        pattern = constraint.pattern
        matches = re.compile(str(pattern)).search
        checks.append(lambda v: None if matches(v) else f"{v!r} does not match {pattern}")
    return checks


def _bound(holds: Callable[[Any, Any], bool], bound: Any, sign: str) -> Check:
    return lambda v: None if holds(v, bound) else f"{v} is not {sign} {bound}"


def _metadata_checks(metadata: list[Any]) -> list[Check]:
    primitive = next((m.type for m in metadata if isinstance(m, AvroPrimitive)), None)
    avro_low, avro_high = _AVRO_RANGES.get(primitive or "", (None, None))
    checks: list[Check] = []
    for item in metadata:
        if isinstance(item, AvroPrimitive | Strict) or item in _TIMESTAMP_METADATA:
            # The decoder gives in-range integers (never booleans) and aware UTC timestamps at
            # millisecond precision.
            continue
        if isinstance(item, StringConstraints):
            checks.extend(_string_checks(item))
        elif isinstance(item, Ge) and item.ge != avro_low:
            checks.append(_bound(operator.ge, item.ge, ">="))
        elif isinstance(item, Le) and item.le != avro_high:
            checks.append(_bound(operator.le, item.le, "<="))
        elif isinstance(item, Gt):
            checks.append(_bound(operator.gt, item.gt, ">"))
        elif isinstance(item, Lt):
            checks.append(_bound(operator.lt, item.lt, "<"))
        elif not isinstance(item, Ge | Le):
            raise _Unsupported(repr(item))
    return checks


def _type_check(annotation: Any, metadata: list[Any]) -> Check | None:
    """Return the check of one annotated type, or ``None`` when the decoder already guarantees it."""
    origin = get_origin(annotation)
    if origin is Annotated:
        inner, *extra = get_args(annotation)
        return _type_check(inner, [*metadata, *extra])
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        if len(args) != 1:
            raise _Unsupported(str(annotation))
        inner_check = _type_check(args[0], metadata)
        if inner_check is None:
            return None
        return lambda v: None if v is None else inner_check(v)
    checks = _metadata_checks(metadata)
    if origin is tuple:
        item, ellipsis = get_args(annotation)
        if ellipsis is not Ellipsis or checks:
            raise _Unsupported(str(annotation))
        item_check = _type_check(item, [])
        if item_check is None:
            return None
        return lambda values: next((p for p in map(item_check, values) if p is not None), None)
    if isinstance(annotation, type) and issubclass(annotation, AvroRecord):
        if checks:
            raise _Unsupported(str(annotation))
        return _model_check(annotation)
    if isinstance(annotation, type) and issubclass(annotation, StrEnum):
        members = frozenset(member.value for member in annotation)
        checks.append(lambda v: None if v in members else f"{v!r} is not a {annotation.__name__}")
    elif annotation not in (str, int, date, datetime):
        raise _Unsupported(str(annotation))
    if not checks:
        return None
    if len(checks) == 1:
        return checks[0]
    return lambda v: next((p for p in (check(v) for check in checks) if p is not None), None)


def _model_check(
    model: type[AvroRecord], skip: frozenset[str] = frozenset(), own_validators: bool = False
) -> Check | None:
    decorators = model.__pydantic_decorators__
    validators = decorators.model_validators or decorators.field_validators or decorators.validators
    if validators and not own_validators:
        raise _Unsupported(f"{model.__name__} has validators")
    fields: list[tuple[str, Check]] = []
    for name, info in model.model_fields.items():
        if name in skip:
            continue
        check = _type_check(info.annotation, list(info.metadata))
        if check is not None:
            fields.append((name, check))
    if not fields:
        return None

    def check_fields(value: Mapping[str, Any]) -> str | None:
        for name, check in fields:
            problem = check(value[name])
            if problem is not None:
                return f"{name}: {problem}"
        return None

    return check_fields


def _pydantic_check(model: type[AvroRecord]) -> Check:
    def validate(value: Mapping[str, Any]) -> str | None:
        try:
            model.model_validate(dict(value))
        except ValidationError as exc:
            return str(exc.errors()[0]["msg"])
        return None

    return validate


def _payload_check(model: type[AvroRecord]) -> Check:
    names = frozenset(model.model_fields)
    try:
        fields = _model_check(model)
    except _Unsupported as exc:
        logger.info("%s is checked through pydantic: %s", model.__name__, exc)
        fields = _pydantic_check(model)

    def check(payload: Mapping[str, Any]) -> str | None:
        # Decoded without the union branch's name: the branch is identified by its field names,
        # which differ between every two payload records.
        if payload.keys() != names:
            return f"payload: not a {model.avro_name} (the command type names that payload)"
        return None if fields is None else fields(payload)

    return check


def _envelope_check() -> Check:
    try:
        # ErpCommand's validators resolve the payload and match it to the type: done here.
        check = _model_check(ErpCommand, skip=frozenset({"payload"}), own_validators=True)
    except _Unsupported as exc:
        logger.info("ErpCommand envelope is checked through pydantic: %s", exc)
        return lambda record: "the envelope needs a full validation"
    return check if check is not None else (lambda record: None)


def _branches_are_distinct() -> bool:
    names = [frozenset(model.model_fields) for model in PAYLOAD_TYPES.values()]
    return len(set(names)) == len(names)


_ENVELOPE: Check = _envelope_check()
_PAYLOADS: dict[str, Check] = (
    {command_type.value: _payload_check(model) for command_type, model in PAYLOAD_TYPES.items()}
    if _branches_are_distinct()
    else {command_type.value: _pydantic_check(model) for command_type, model in PAYLOAD_TYPES.items()}
)
