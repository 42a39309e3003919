"""The Confluent wire format: header round trip, corrupt framing, subject names, error coordinates."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.errors import CorruptRecordError, SerdeError, UnknownSchemaIdError
from streams.wire import HEADER_SIZE, MAGIC_BYTE, frame, subject_name, unframe


def test_frame_is_magic_byte_then_big_endian_id() -> None:
    # The exact bytes Confluent's serializers write: 0x00, then the id as 4 big-endian bytes.
    assert frame(1, b"body") == b"\x00\x00\x00\x00\x01body"
    assert frame(0x01020304, b"") == b"\x00\x01\x02\x03\x04"
    assert (MAGIC_BYTE, HEADER_SIZE) == (0, 5)


@given(st.integers(0, 2**32 - 1), st.binary(max_size=64))
def test_header_round_trip(schema_id: int, body: bytes) -> None:
    assert unframe(frame(schema_id, body)) == (schema_id, body)


@pytest.mark.parametrize("schema_id", [-1, 2**32])
def test_ids_beyond_four_bytes_are_refused(schema_id: int) -> None:
    with pytest.raises(ValueError, match="4-byte"):
        frame(schema_id, b"")


@given(st.binary(max_size=HEADER_SIZE - 1))
def test_short_buffers_are_corrupt(data: bytes) -> None:
    with pytest.raises(CorruptRecordError, match="shorter than the 5-byte"):
        unframe(data)


@given(st.integers(1, 255), st.binary(min_size=4, max_size=32))
def test_a_wrong_magic_byte_is_corrupt(magic: int, rest: bytes) -> None:
    with pytest.raises(CorruptRecordError, match=f"magic byte is {magic}"):
        unframe(bytes([magic]) + rest)


def test_subject_naming_strategies() -> None:
    name, topic = "io.revstream.events.OrderAccepted", "rs.events.order_accepted"
    assert subject_name("topic", topic, name) == f"{topic}-value"
    assert subject_name("topic", topic, name, is_key=True) == f"{topic}-key"
    assert subject_name("record", topic, name) == name


def test_errors_carry_kafka_coordinates() -> None:
    error = UnknownSchemaIdError("schema id 7 is not in the registry", 7).at("orders", 2, 41)
    assert (error.schema_id, error.topic, error.partition, error.offset) == (7, "orders", 2, 41)
    assert str(error) == "schema id 7 is not in the registry (orders[2]@41)"
    # Coordinates already known are kept: the innermost caller knows them best.
    assert error.at("other", 0, 0).topic == "orders"
    assert str(SerdeError("no coordinates")) == "no coordinates"
    assert isinstance(CorruptRecordError("x"), SerdeError)
