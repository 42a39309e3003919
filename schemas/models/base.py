"""The base of every model that mirrors an Avro record, and the field types they share.

Each model is frozen, forbids unknown fields and maps one-to-one onto its ``.avsc`` record:
``str`` for string, :data:`AvroInt` / :data:`AvroLong` for int / long (range-checked, so a model
that validates always encodes), :data:`TimestampMillis` for timestamp-millis, ``date`` for date,
a ``StrEnum`` for an enum, ``tuple[...]`` for an array and ``X | None = None`` for an optional
field. ``to_avro`` gives the dict fastavro writes; ``from_avro`` takes the dict fastavro reads
(logical types already converted to ``datetime`` / ``date``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Annotated, Any, ClassVar, Self

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints

__all__ = [
    "AvroInt",
    "AvroLong",
    "AvroPrimitive",
    "AvroRecord",
    "Currency",
    "Date",
    "Id",
    "TimestampMillis",
    "to_avro_value",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class AvroPrimitive:
    """Marks which Avro primitive an ``int`` field is (``int`` or ``long``); pydantic ignores it."""

    type: str


def _utc_millis(value: datetime) -> datetime:
    # timestamp-millis carries no zone and no microseconds: demand an aware value, normalise it to
    # UTC and drop the sub-millisecond part so that a model equals itself after a round trip.
    if value.tzinfo is UTC and not value.microsecond % 1000:
        return value  # what fastavro reads and every normalised value is: nothing to do
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must be timezone-aware (UTC); naive datetimes are ambiguous")
    try:
        value = value.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:30+01:00 or 9999-12-31T23:30-01:00 is an instant before year 1 or after
        # year 9999 in UTC, which a datetime cannot hold: a bad value, not a crash.
        raise ValueError("is outside the years 1 to 9999 once converted to UTC") from None
    return value.replace(microsecond=value.microsecond // 1000 * 1000)


# Strict: an integer is an integer. Lax mode would take ``true`` as 1 minor unit and ``1.0`` as a
# quantity; money is counted in whole minor units and a boolean is not money. Text that holds an
# integer (a CSV cell) is converted before validation, by the caller that knows it is text.
AvroInt = Annotated[int, AvroPrimitive("int"), Field(ge=-(2**31), le=2**31 - 1, strict=True)]
"""An Avro ``int``: a signed 32-bit integer (strict: no booleans, floats or text)."""

AvroLong = Annotated[int, AvroPrimitive("long"), Field(ge=-(2**63), le=2**63 - 1, strict=True)]
"""An Avro ``long``: a signed 64-bit integer (every ``*_minor`` amount; strict like :data:`AvroInt`)."""


def _not_a_number(value: Any) -> Any:
    # Lax pydantic reads a number as seconds since 1970 (0 is 1970-01-01): an amount sent into a
    # date field would become a date. Dates and instants are ISO-8601 text (or the objects).
    if isinstance(value, int | float):
        raise ValueError("must be ISO-8601 text, not a number")
    return value


TimestampMillis = Annotated[datetime, BeforeValidator(_not_a_number), AfterValidator(_utc_millis)]
"""An instant: timezone-aware, normalised to UTC, millisecond precision; ISO-8601 text, not a number."""

Date = Annotated[date, BeforeValidator(_not_a_number)]
"""A calendar date: ISO-8601 text (``2026-01-31``) or a ``date``, not a number."""

Currency = Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
"""An ISO-4217 currency code: three upper-case letters."""

Id = Annotated[str, StringConstraints(min_length=1)]
"""An identifier: any non-empty string."""


def to_avro_value(value: Any) -> Any:
    """Return ``value`` as fastavro writes it: records as dicts, enums as their symbol."""
    if isinstance(value, AvroRecord):
        return value.to_avro()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, tuple | list):
        return [to_avro_value(item) for item in value]
    return value


class AvroRecord(BaseModel):
    """A pydantic model mirroring one Avro record, field for field and in the same order."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    avro_name: ClassVar[str]
    """The record's name in the schema (without namespace)."""

    avro_namespace: ClassVar[str | None] = None
    """The namespace of a top-level record; ``None`` for a record nested in another one."""

    @classmethod
    def avro_full_name(cls) -> str:
        """Return ``namespace.Name`` for a top-level record, else the bare name."""
        return f"{cls.avro_namespace}.{cls.avro_name}" if cls.avro_namespace else cls.avro_name

    def value_of(self, name: str, default: Any = None) -> Any:
        """Return field ``name``'s value, or ``default`` when this record type has no such field.

        For rules that handle several record types alike: ``getattr(model, name, default)`` does the
        same, but a missing name takes pydantic's slow ``__getattr__`` path on every call.
        """
        return self.__dict__.get(name, default)

    def to_avro(self) -> dict[str, Any]:
        """Return the record as the dict fastavro's writer takes, fields in schema order."""
        return {name: to_avro_value(getattr(self, name)) for name in type(self).model_fields}

    @classmethod
    def from_avro(cls, record: Mapping[str, Any]) -> Self:
        """Build the model from a dict fastavro's reader returned.

        Raises:
            pydantic.ValidationError: when the record does not satisfy the model.
        """
        return cls.model_validate(dict(record))
