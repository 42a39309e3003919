"""The decode stage's dead-letter reasons."""

from __future__ import annotations

from processors.stages.decode import CORRUPT_RECORD, INVALID_RECORD, UNKNOWN_SCHEMA_ID, decode_reason
from streams.errors import CorruptRecordError, InvalidRecordError, UnknownSchemaIdError


def test_decode_errors_map_to_their_dead_letter_reasons():
    assert decode_reason(UnknownSchemaIdError("unknown", 7)) == UNKNOWN_SCHEMA_ID
    assert decode_reason(CorruptRecordError("bad magic")) == CORRUPT_RECORD
    assert decode_reason(InvalidRecordError("not an event")) == INVALID_RECORD
