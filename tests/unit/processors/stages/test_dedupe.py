"""The dedupe stage's entry and verdicts, above all: the same record delivered again is processed."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from processors.stages.dedupe import DedupeEntry, Verdict, judge

HORIZON = timedelta(days=7)
DAY_MS = 86_400_000
FP = "a" * 64
OTHER = "b" * 64
WHERE = ("ns.events.usage_recorded", 1, 100)


@given(
    st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    st.integers(min_value=0, max_value=2**62),
    st.text(min_size=1, max_size=200),
    st.integers(min_value=0, max_value=2**31 - 1),
    st.integers(min_value=0, max_value=2**62),
)
def test_entries_round_trip(fingerprint, first_seen_ms, topic, partition, offset):
    entry = DedupeEntry(fingerprint, first_seen_ms, topic, partition, offset)
    assert DedupeEntry.decode(entry.encode()) == entry


def test_a_new_id_is_processed_and_remembered_with_where_it_was_read():
    verdict, entry = judge(None, FP, 1_000, HORIZON, WHERE)
    assert verdict is Verdict.PROCESS
    assert entry == DedupeEntry(FP, 1_000, *WHERE)


def test_the_same_record_delivered_again_is_processed_again_even_with_its_entry_stored():
    _, entry = judge(None, FP, 1_000, HORIZON, WHERE)
    assert judge(entry, FP, 5_000, HORIZON, WHERE) == (Verdict.REDELIVERED, None)


def test_an_exact_repeat_elsewhere_is_dropped_and_a_changed_one_is_a_conflict():
    _, entry = judge(None, FP, 1_000, HORIZON, WHERE)
    elsewhere = ("ns.events.usage_recorded", 1, 101)
    assert judge(entry, FP, 2_000, HORIZON, elsewhere) == (Verdict.DROP, None)
    assert judge(entry, OTHER, 2_000, HORIZON, elsewhere) == (Verdict.CONFLICT, None)


def test_past_the_horizon_an_id_is_new_again():
    _, entry = judge(None, FP, 0, HORIZON, WHERE)
    verdict, renewed = judge(entry, OTHER, 7 * DAY_MS, HORIZON, ("ns.events.usage_recorded", 1, 900))
    assert verdict is Verdict.PROCESS
    assert renewed == DedupeEntry(OTHER, 7 * DAY_MS, "ns.events.usage_recorded", 1, 900)


@given(st.lists(st.integers(min_value=0, max_value=50), min_size=1, max_size=30))
def test_of_any_repeats_of_one_payload_exactly_one_is_processed(offsets):
    entry = None
    processed = 0
    for offset in sorted(set(offsets)):
        verdict, remember = judge(entry, FP, 1_000 + offset, HORIZON, ("t", 0, offset))
        processed += verdict is Verdict.PROCESS
        entry = remember or entry
    assert processed == 1
