"""Forged dead-letter headers are refused with ValueError, the documented refusal (found by make fuzz)."""

from __future__ import annotations

import pytest

from streams.deadletter import REVSTREAM_PREFIX, parse_dead_letter


@pytest.mark.parametrize(
    "millis", [b"99999999999999999999999", b"9" * 400, b"1" * 30, b"-99999999999999", b"soon"]
)
def test_a_failure_time_out_of_range_is_a_value_error(millis: bytes) -> None:
    headers = [(f"{REVSTREAM_PREFIX}reason", b"X"), (f"{REVSTREAM_PREFIX}first_failure_ms", millis)]
    with pytest.raises(ValueError, match=r"time|out of range|invalid literal"):
        parse_dead_letter(None, b"v", headers)
