"""Retry scheduling: back-off, the attempt that ends in a dead letter, and the retry headers."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from processors.stages.retry import RETRY_PREFIX, Parked, backoff, next_attempt, park_headers, read_parked

BASE = timedelta(seconds=1)
CAP = timedelta(seconds=60)


def attempt(
    previous: Parked | None,
    now_ms: int = 1_000,
    max_attempts: int = 4,
    first_delay: timedelta | None = None,
) -> Parked | None:
    return next_attempt(
        previous,
        missing=["customer:C1"],
        reason="MASTER_DATA_MISSING",
        now_ms=now_ms,
        origin=("ns.events.invoice_posted", 2, 41),
        max_attempts=max_attempts,
        base=BASE,
        cap=CAP,
        first_delay=first_delay,
    )


def test_backoff_doubles_and_is_capped():
    assert [backoff(n, BASE, CAP).total_seconds() for n in range(1, 9)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert backoff(10_000, BASE, CAP) == CAP


def test_the_first_failure_parks_with_the_first_back_off():
    parked = attempt(None, now_ms=5_000)
    assert parked == Parked(
        1, 6_000, 5_000, ("customer:C1",), "MASTER_DATA_MISSING", "ns.events.invoice_posted", 2, 41
    )


def test_later_attempts_keep_the_origin_and_first_failure_and_the_last_one_dead_letters():
    first = attempt(None, now_ms=1_000)
    assert first is not None
    second = attempt(first, now_ms=3_000)
    assert second is not None
    assert (second.attempt, second.not_before_ms, second.first_failure_ms) == (2, 5_000, 1_000)
    assert (second.topic, second.partition, second.offset) == ("ns.events.invoice_posted", 2, 41)
    third = attempt(second, now_ms=6_000)
    assert third is not None and third.attempt == 3
    assert attempt(third, now_ms=20_000) is None


def test_a_first_delay_replaces_only_the_first_back_off():
    short = timedelta(milliseconds=200)
    first = attempt(None, now_ms=1_000, first_delay=short)
    assert first is not None and first.not_before_ms == 1_200
    second = attempt(first, now_ms=1_300, first_delay=short)
    assert second is not None and second.not_before_ms == 1_300 + 2_000


def test_one_attempt_means_dead_letter_at_the_first_failure():
    assert attempt(None, max_attempts=1) is None


def test_headers_round_trip_and_replace_earlier_retry_headers():
    original = [("trace", b"t-1"), ("event_type", b"invoice_posted")]
    first = attempt(None)
    assert first is not None
    second = attempt(first, now_ms=9_000)
    assert second is not None
    headers = park_headers(park_headers(original, first), second)

    kept, parked = read_parked(headers)

    assert kept == original
    assert parked == second
    assert sum(1 for key, _ in headers if key.startswith(RETRY_PREFIX)) == 8


def test_a_record_without_complete_retry_headers_has_no_parking():
    assert read_parked([("trace", b"t")]) == ([("trace", b"t")], None)
    assert read_parked([(RETRY_PREFIX + "attempt", b"x")])[1] is None
    assert read_parked(None) == ([], None)


@given(
    st.integers(min_value=1, max_value=50),
    st.lists(
        st.tuples(st.text(min_size=1).filter(lambda k: not k.startswith(RETRY_PREFIX)), st.binary()),
        max_size=4,
    ),
    st.lists(st.from_regex(r"[a-z_]+:[A-Za-z0-9-]+", fullmatch=True), min_size=1, max_size=3),
)
def test_any_parking_survives_its_headers(attempt_number, original, missing):
    parked = Parked(attempt_number, 10, 5, tuple(missing), "MASTER_DATA_MISSING", "t.events.x", 1, 7)
    assert read_parked(park_headers(original, parked)) == (original, parked)
