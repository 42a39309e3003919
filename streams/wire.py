"""The Confluent wire format of a Kafka record value, and how registry subjects are named.

A framed record is the magic byte ``0``, the writer's schema id as a 4-byte big-endian integer,
then the schema-encoded body. Pure functions, no registry and no I/O: the serde builds on them.
"""

from __future__ import annotations

import logging
import struct
from typing import Final, Literal

from streams.errors import CorruptRecordError

__all__ = ["HEADER_SIZE", "MAGIC_BYTE", "SubjectStrategy", "frame", "subject_name", "unframe"]

logger = logging.getLogger(__name__)

MAGIC_BYTE: Final = 0
_HEADER: Final = struct.Struct(">BI")
HEADER_SIZE: Final = _HEADER.size

SubjectStrategy = Literal["topic", "record"]
"""``topic``: ``<topic>-value`` (Confluent's TopicNameStrategy); ``record``: ``<namespace.Name>``."""


def frame(schema_id: int, body: bytes) -> bytes:
    """Prefix an Avro body with the Confluent header of ``schema_id``.

    Raises:
        ValueError: when ``schema_id`` does not fit 4 unsigned bytes.
    """
    if not 0 <= schema_id < 2**32:
        raise ValueError(f"schema id {schema_id} does not fit the 4-byte header")
    return _HEADER.pack(MAGIC_BYTE, schema_id) + body


def unframe(data: bytes) -> tuple[int, bytes]:
    """Split a Confluent-framed record into its schema id and Avro body.

    Raises:
        CorruptRecordError: when the record is shorter than the header or the magic byte is not 0.
    """
    if len(data) < HEADER_SIZE:
        raise CorruptRecordError(
            f"record of {len(data)} bytes is shorter than the {HEADER_SIZE}-byte Confluent Avro header"
        )
    magic, schema_id = _HEADER.unpack_from(data)
    if magic != MAGIC_BYTE:
        raise CorruptRecordError(
            f"magic byte is {magic}, not {MAGIC_BYTE}: not a Confluent-framed Avro record"
        )
    return schema_id, bytes(data[HEADER_SIZE:])


def subject_name(strategy: SubjectStrategy, topic: str, record_name: str, is_key: bool = False) -> str:
    """Return the registry subject of a record of ``record_name`` on ``topic``."""
    if strategy == "record":
        return record_name
    return f"{topic}-{'key' if is_key else 'value'}"
