"""The serde's encode hot path: a model's fields as the dict fastavro writes, built with the least work.

``AvroRecord.to_avro()`` rebuilds every record as a new dict and walks every value; on a producer
or worker that sends tens of thousands of records a second that costs more than the Avro encoding itself.
A pydantic model already keeps its field values in ``__dict__``, and fastavro takes enum members
(``StrEnum`` compares equal to its symbol) and tuples as they are. What fastavro converts slowly are
``datetime`` and ``date`` values of logical types, so :func:`compile_record` derives, once per
schema, which fields need converting (to epoch milliseconds and epoch days, exactly as fastavro
would) and which nested records need the same treatment; a record without such fields is handed
over as its ``__dict__`` unchanged. The result is byte-for-byte what ``to_avro()`` gives
(tests/unit/producers/test_encoding.py proves it for every canonical and master model).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, timedelta
from typing import Any, Final

__all__ = ["Converter", "compile_record"]

logger = logging.getLogger(__name__)

Converter = Callable[[Any], Any]
"""Turns one model value into the value fastavro writes for its schema."""

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND: Final = timedelta(milliseconds=1)
_EPOCH_ORDINAL: Final = date(1970, 1, 1).toordinal()


def _timestamp_millis(value: Any) -> Any:
    # Integer arithmetic (no float seconds), flooring like fastavro does for pre-epoch instants.
    if isinstance(value, datetime):
        return (value - _EPOCH) // _MILLISECOND
    return value


def _date_days(value: Any) -> Any:
    if isinstance(value, date):
        return value.toordinal() - _EPOCH_ORDINAL
    return value


def _converter(schema: Any, named: Mapping[str, Any]) -> Converter | None:
    """Return how to convert a value of ``schema``, or ``None`` when fastavro takes it as it is."""
    if isinstance(schema, str):
        return _converter(named[schema], named) if schema in named else None
    if isinstance(schema, list):
        records = [_resolve(branch, named) for branch in schema if _is_record(branch, named)]
        if len(records) > 1:
            return _record_union(records, named, nullable="null" in schema)
        branches = [_converter(branch, named) for branch in schema]
        converters = [conv for conv in branches if conv is not None]
        if not converters:
            return None
        if len(converters) > 1:
            raise ValueError("unions of more than one converted type are not supported")
        inner = converters[0]
        return lambda value: None if value is None else inner(value)
    kind = schema.get("type")
    logical = schema.get("logicalType")
    if logical == "timestamp-millis":
        return _timestamp_millis
    if logical == "date":
        return _date_days
    if kind == "array":
        item = _converter(schema["items"], named)
        if item is None:
            return None
        return lambda values: [item(value) for value in values]
    if kind == "record":
        return compile_record(schema, named)
    if isinstance(kind, dict | list):
        return _converter(kind, named)
    return None


def _resolve(schema: Any, named: Mapping[str, Any]) -> Any:
    return named.get(schema, schema) if isinstance(schema, str) else schema


def _is_record(schema: Any, named: Mapping[str, Any]) -> bool:
    schema = _resolve(schema, named)
    return isinstance(schema, dict) and schema.get("type") == "record"


def _record_union(records: list[Any], named: Mapping[str, Any], *, nullable: bool) -> Converter:
    # fastavro would find a model's branch by trying each record schema in turn; the model's type
    # names it (``avro_name`` is the record's name without namespace), so hand over fastavro's
    # explicit ``(full name, record)`` form, as ``to_avro()`` of such a model does.
    branches: dict[str, tuple[str, Converter]] = {}
    for record in records:
        full_name = str(record["name"])
        branches[full_name.rsplit(".", 1)[-1]] = (full_name, compile_record(record, named))

    def convert(value: Any) -> Any:
        if value is None and nullable:
            return None
        full_name, inner = branches[type(value).avro_name]
        return (full_name, inner(value))

    return convert


def compile_record(schema: Mapping[str, Any], named: Mapping[str, Any] | None = None) -> Converter:
    """Return a function turning a model of record ``schema`` (parsed) into fastavro's dict.

    Raises:
        ValueError: when the schema uses a union of several types that need converting.
    """
    named = named if named is not None else schema.get("__named_schemas", {})
    plan = tuple(
        (field["name"], converter)
        for field in schema["fields"]
        if (converter := _converter(field["type"], named)) is not None
    )
    if not plan:
        return _fields_of

    def convert(record: Any) -> dict[str, Any]:
        values = dict(record.__dict__)
        for name, converter in plan:
            values[name] = converter(values[name])
        return values

    return convert


def _fields_of(record: Any) -> dict[str, Any]:
    values: dict[str, Any] = record.__dict__
    return values
