"""Hostile bytes and headers into the record decoders: frame, Avro body, retry and dead-letter headers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from processors.stages.retry import RETRY_PREFIX, read_parked
from schemas.models import InvoicePosted, UsageRecorded
from streams.deadletter import CONNECT_PREFIX, REVSTREAM_PREFIX, parse_dead_letter
from streams.errors import CorruptRecordError, SerdeError
from streams.serde import AvroSerde
from streams.settings import RegistrySettings
from streams.wire import HEADER_SIZE, unframe
from tests.fuzz.conftest import TRIED, examples
from tests.unit.schemas.strategies import sample

SERDE = AvroSerde.from_settings(RegistrySettings(url="mock://fuzz"))
VALID = [SERDE.serialize(f"fuzz.{model.__name__}", sample(model)) for model in (UsageRecorded, InvoicePosted)]


@st.composite
def hostile_records(draw: st.DrawFn) -> bytes:
    """Random bytes, a valid header over a random body, or a valid record with bytes changed."""
    kind = draw(st.sampled_from(["random", "framed", "mutated", "truncated"]))
    if kind == "random":
        return draw(st.binary(max_size=64))
    valid = draw(st.sampled_from(VALID))
    if kind == "framed":
        return valid[:HEADER_SIZE] + draw(st.binary(max_size=256))
    if kind == "truncated":
        return valid[: draw(st.integers(0, len(valid)))]
    data = bytearray(valid)
    for _ in range(draw(st.integers(1, 4))):
        data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
    return bytes(data)


@examples(40_000)
@given(st.binary(max_size=32))
def test_wire_frame(data: bytes) -> None:
    TRIED["wire frame (unframe)"] += 1
    try:
        schema_id, body = unframe(data)
    except CorruptRecordError:
        return
    assert 0 <= schema_id < 2**32 and len(body) == len(data) - HEADER_SIZE


@examples(40_000)
@given(hostile_records())
def test_avro_body(data: bytes) -> None:
    TRIED["Avro body (decode, decode_model)"] += 1
    try:
        SERDE.decode(data)
        SERDE.decode_model(data)
    except SerdeError:
        pass


HEADER_VALUES = st.one_of(
    st.none(),
    st.binary(max_size=24),
    st.integers().map(lambda n: str(n).encode()),
    st.sampled_from([b"9" * 5000, b"-1", b"1e9", b" 7 ", b"\xff\xfe", b"99999999999999999999999", b""]),
)


@examples(10_000)
@given(
    st.lists(
        st.tuples(
            st.one_of(
                st.sampled_from(
                    [
                        f"{RETRY_PREFIX}{name}"
                        for name in (
                            "attempt",
                            "not_before_ms",
                            "first_failure_ms",
                            "missing",
                            "reason",
                            "topic",
                            "partition",
                            "offset",
                        )
                    ]
                ),
                st.text(max_size=12),
            ),
            HEADER_VALUES,
        ),
        max_size=12,
    )
)
def test_retry_headers(headers: list[tuple[str, bytes | None]]) -> None:
    TRIED["retry headers (read_parked)"] += 1
    original, parked = read_parked(headers)  # never raises: incomplete headers mean "no parking"
    assert all(not key.startswith(RETRY_PREFIX) for key, _ in original)
    assert parked is None or isinstance(parked.attempt, int)


DEAD_LETTER_KEYS = [
    f"{CONNECT_PREFIX}{name}"
    for name in ("topic", "partition", "offset", "exception.class.name", "exception.message")
] + [
    f"{REVSTREAM_PREFIX}{name}"
    for name in ("reason", "stage", "attempt", "first_failure_ms", "last_failure_ms", "consumer_group")
]


@examples(10_000)
@given(
    st.one_of(st.none(), st.binary(max_size=16)),
    st.booleans(),
    st.lists(
        st.tuples(st.one_of(st.sampled_from(DEAD_LETTER_KEYS), st.text(max_size=12)), HEADER_VALUES),
        max_size=14,
    ),
)
def test_dead_letter_headers(
    key: bytes | None, marked: bool, headers: list[tuple[str, bytes | None]]
) -> None:
    TRIED["dead-letter headers (parse_dead_letter)"] += 1
    # Most inputs carry the reason header, so that the parser goes past its first check.
    context = [(f"{REVSTREAM_PREFIX}reason", b"FUZZ")] if marked else []
    try:
        parse_dead_letter(key, b"value", context + headers)
    except ValueError:
        pass
