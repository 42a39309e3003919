"""Dead-letter headers: originals untouched, Connect-compatible context, lossless round trip."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from streams.deadletter import (
    KEY_PREFIX_BYTES,
    MAX_RECORD_BYTES,
    RECORD_TOO_LARGE,
    VALUE_PREFIX_BYTES,
    DeadLetterRecord,
    Failure,
    SourceRecord,
    dead_letter_headers,
    dead_letter_record,
    oversized,
    parse_dead_letter,
    record_bytes,
)

header_names = st.text(min_size=1, max_size=20).filter(
    lambda n: not n.startswith(("__connect.errors.", "revstream.dlq."))
)


@given(
    key=st.one_of(st.none(), st.binary(max_size=50)),
    value=st.one_of(st.none(), st.binary(max_size=200)),
    headers=st.lists(st.tuples(header_names, st.binary(max_size=30)), max_size=5),
    attempt=st.integers(min_value=1, max_value=100),
)
def test_round_trip_keeps_the_original_record_byte_for_byte(key, value, headers, attempt) -> None:
    source = SourceRecord("rs.events.invoice_posted", 3, 42, key, value, tuple(headers))
    failed_at = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    failure = Failure(
        "decode",
        "UNKNOWN_SCHEMA_ID",
        "streams.errors.UnknownSchemaIdError",
        "id 99",
        attempt,
        failed_at,
        failed_at,
        "revstream-workers",
    )
    written = dead_letter_headers(source, failure)
    assert written[: len(headers)] == headers
    back = parse_dead_letter(key, value, written)
    assert back.source == source
    assert back.failure == failure


def test_headers_use_kafka_connect_names() -> None:
    source = SourceRecord("t", 0, 7, b"k", b"v")
    failure = Failure.from_exception("sink", "CONSTRAINT_VIOLATION", ValueError("bad row"))
    names = dict(dead_letter_headers(source, failure))
    assert names["__connect.errors.topic"] == b"t"
    assert names["__connect.errors.partition"] == b"0"
    assert names["__connect.errors.offset"] == b"7"
    assert names["__connect.errors.exception.class.name"] == b"builtins.ValueError"
    assert names["__connect.errors.exception.message"] == b"bad row"
    assert names["revstream.dlq.reason"] == b"CONSTRAINT_VIOLATION"


def test_redead_lettering_replaces_the_previous_context() -> None:
    source = SourceRecord("t", 0, 7, b"k", b"v", (("trace", b"1"),))
    first = dead_letter_headers(source, Failure("enrich", "MASTER_DATA_MISSING", "E", "m", attempt=1))
    again = SourceRecord("t.dlq", 0, 1, b"k", b"v", tuple(first))
    second = dead_letter_headers(again, Failure("enrich", "MASTER_DATA_MISSING", "E", "m", attempt=2))
    assert [k for k, _ in second].count("revstream.dlq.attempt") == 1
    assert second[0] == ("trace", b"1")


# -- bounded dead letters (issue 12: an oversized record crash-looped the worker) ------------------


def _size(letter: DeadLetterRecord) -> int:
    return record_bytes(letter.key, letter.value, letter.headers)


def test_a_record_within_the_limit_is_kept_byte_identical() -> None:
    source = SourceRecord("t", 0, 7, b"k", b"v" * 1000, (("trace", b"1"),))
    failure = Failure("decode", "CORRUPT_RECORD", "E", "m")
    letter = dead_letter_record(source, failure)
    assert (letter.key, letter.value, letter.reason_code) == (b"k", b"v" * 1000, "CORRUPT_RECORD")
    assert letter.headers == dead_letter_headers(source, failure)


def test_an_oversized_record_keeps_a_prefix_its_digests_and_its_coordinates() -> None:
    value = bytes(range(256)) * 8000
    key = b"K" * 5000
    headers = (("trace", b"1"), ("huge", b"h" * 200_000), ("after", b"2"))
    source = SourceRecord("rs.events.invoice_posted", 2, 41, key, value, headers)
    letter = dead_letter_record(source, Failure("enrich", "MASTER_DATA_MISSING", "E", "m"), limit=100_000)
    assert letter.value == value[:VALUE_PREFIX_BYTES] and letter.key == key[:KEY_PREFIX_BYTES]
    context = dict(letter.headers)
    assert letter.reason_code == RECORD_TOO_LARGE
    assert context["revstream.dlq.reason"] == RECORD_TOO_LARGE.encode()
    assert context["revstream.dlq.original_reason"] == b"MASTER_DATA_MISSING"
    assert context["revstream.dlq.value_sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert context["revstream.dlq.value_bytes"] == str(len(value)).encode()
    assert context["revstream.dlq.key_sha256"] == hashlib.sha256(key).hexdigest().encode()
    assert context["revstream.dlq.headers_dropped"] == b"1"
    parsed = parse_dead_letter(letter.key, letter.value, letter.headers)
    assert (parsed.source.topic, parsed.source.partition, parsed.source.offset) == (source.topic, 2, 41)
    assert parsed.source.headers == (("trace", b"1"), ("after", b"2"))
    assert parsed.failure.stage == "enrich" and parsed.failure.reason_code == RECORD_TOO_LARGE
    assert "It failed as MASTER_DATA_MISSING: m" in parsed.failure.error_message
    assert _size(letter) <= 100_000


def test_a_null_value_and_key_stay_null_when_the_headers_are_what_is_too_large() -> None:
    source = SourceRecord("t", 0, 1, None, None, tuple((f"h{i}", b"x" * 10_000) for i in range(200)))
    letter = dead_letter_record(source, Failure("decode", "CORRUPT_RECORD", "E", "m"))
    assert (letter.key, letter.value) == (None, None)
    assert dict(letter.headers)["revstream.dlq.value_sha256"] == b""
    assert _size(letter) <= MAX_RECORD_BYTES


def test_oversized_names_the_size_and_the_limit() -> None:
    assert oversized(SourceRecord("t", 0, 1, b"k", b"v")) is None
    too_large = oversized(SourceRecord("t", 3, 9, b"k", b"v" * (MAX_RECORD_BYTES + 1)))
    assert too_large is not None and f"t[3]@9 is {MAX_RECORD_BYTES + 2} bytes" in str(too_large)


@settings(max_examples=60, deadline=None)
@given(
    key=st.integers(0, 2_000_000),
    value=st.one_of(st.none(), st.integers(0, 3_000_000)),
    header_sizes=st.lists(st.integers(0, 300_000), max_size=12),
    message=st.integers(0, 100_000),
)
def test_no_dead_letter_exceeds_the_limit_whatever_the_record(
    key: int, value: int | None, header_sizes: list[int], message: int
) -> None:
    source = SourceRecord(
        "t",
        0,
        1,
        b"k" * key,
        None if value is None else b"v" * value,
        tuple((f"h{i}", b"x" * size) for i, size in enumerate(header_sizes)),
    )
    letter = dead_letter_record(source, Failure("sink", "BAD_DATA", "E", "m" * message))
    assert _size(letter) <= MAX_RECORD_BYTES
