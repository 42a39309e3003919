"""Dead-letter headers: originals untouched, Connect-compatible context, lossless round trip."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from streams.deadletter import Failure, SourceRecord, dead_letter_headers, parse_dead_letter

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
