"""Dedupe: stable fingerprints and the new / duplicate / conflict / expired decision."""

from __future__ import annotations

import io
from datetime import timedelta

import fastavro
from hypothesis import given
from hypothesis import strategies as st

from processors.rules.dedupe import DEFAULT_HORIZON, Decision, Seen, decide, fingerprint, is_expired, observe
from schemas.loader import schema_for_event
from tests.unit.processors import factories as f

NOW = f.T0


def _avro_round_trip(record: dict) -> dict:
    parsed = schema_for_event(record["event_type"]).parsed
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, parsed, record)
    buffer.seek(0)
    decoded = fastavro.schemaless_reader(buffer, parsed, parsed)
    assert isinstance(decoded, dict)
    return decoded


def test_fingerprint_is_the_same_for_the_model_and_for_what_fastavro_decodes() -> None:
    for event in (f.invoice(), f.usage(), f.quote(), f.payment(), f.activation(), f.order()):
        decoded = _avro_round_trip(event.to_avro())
        assert fingerprint(decoded) == fingerprint(event)
        assert fingerprint(type(event).from_avro(decoded)) == fingerprint(event)


def test_fingerprint_ignores_the_schema_version_but_not_business_fields() -> None:
    event = f.usage()
    assert fingerprint(event.model_copy(update={"schema_version": 2})) == fingerprint(event)
    assert fingerprint(event.model_copy(update={"quantity": 11})) != fingerprint(event)
    assert fingerprint(event.model_copy(update={"occurred_at": NOW + timedelta(milliseconds=1)})) != (
        fingerprint(event)
    )


def test_fingerprint_does_not_change_when_a_null_optional_field_appears() -> None:
    # Old data read with a newer reader schema gets the new optional field as null.
    record = f.usage().to_avro()
    assert fingerprint({**record, "added_later": None}) == fingerprint(record)
    assert fingerprint({**record, "added_later": "x"}) != fingerprint(record)


def test_decisions() -> None:
    fp = fingerprint(f.usage())
    assert decide(None, fp, None, NOW) is Decision.NEW
    assert decide(fp, fp, NOW, NOW + DEFAULT_HORIZON - timedelta(milliseconds=1)) is Decision.DUPLICATE
    assert decide("other", fp, NOW, NOW + timedelta(days=1)) is Decision.CONFLICT
    assert decide(fp, fp, NOW, NOW + DEFAULT_HORIZON) is Decision.EXPIRED
    assert decide("other", fp, NOW, NOW + timedelta(days=8)) is Decision.EXPIRED
    # An event that seems older than the sighting (clock skew) is inside the horizon.
    assert decide(fp, fp, NOW, NOW - timedelta(days=30)) is Decision.DUPLICATE
    assert decide(fp, fp, NOW, NOW + timedelta(hours=2), horizon=timedelta(hours=1)) is Decision.EXPIRED
    assert [d.passes for d in Decision] == [True, False, False, True]


def test_a_conflict_keeps_the_first_payload_remembered() -> None:
    decision, seen = observe(None, "first", NOW)
    assert (decision, seen) == (Decision.NEW, Seen("first", NOW))
    decision, after = observe(seen, "second", NOW + timedelta(minutes=1))
    assert decision is Decision.CONFLICT and after == seen
    decision, after = observe(after, "first", NOW + timedelta(minutes=2))
    assert decision is Decision.DUPLICATE and after == seen


def test_the_horizon_counts_from_the_first_sighting_and_repeats_do_not_extend_it() -> None:
    _, seen = observe(None, "fp", NOW)
    _, seen = observe(seen, "fp", NOW + timedelta(days=6))
    assert seen.first_seen_at == NOW
    assert not is_expired(seen, NOW + timedelta(days=6, hours=23))
    assert is_expired(seen, NOW + timedelta(days=7))
    decision, renewed = observe(seen, "fp", NOW + timedelta(days=7))
    assert decision is Decision.EXPIRED and renewed == Seen("fp", NOW + timedelta(days=7))


@given(
    repeats=st.integers(min_value=1, max_value=50),
    gaps_s=st.lists(st.integers(min_value=-3600, max_value=86_400), min_size=50, max_size=50),
)
def test_of_any_number_of_repeats_inside_the_horizon_exactly_one_passes(
    repeats: int, gaps_s: list[int]
) -> None:
    fp = fingerprint(f.usage())
    seen: Seen | None = None
    decisions = []
    now = NOW
    for gap in [0, *gaps_s][:repeats]:
        # Clamped so every repeat stays inside the horizon of the first sighting (at NOW).
        now = min(now + timedelta(seconds=gap), NOW + DEFAULT_HORIZON - timedelta(seconds=1))
        decision, seen = observe(seen, fp, now)
        decisions.append(decision)
    assert decisions.count(Decision.NEW) == 1
    assert decisions[0] is Decision.NEW
    assert all(d is Decision.DUPLICATE for d in decisions[1:])


@given(
    payloads=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=30),
    gaps_h=st.lists(st.integers(min_value=0, max_value=72), min_size=30, max_size=30),
)
def test_across_horizons_each_window_passes_exactly_one_and_flags_every_other_payload(
    payloads: list[str], gaps_h: list[int]
) -> None:
    seen: Seen | None = None
    now = NOW
    for payload, gap in zip(payloads, gaps_h, strict=False):
        now += timedelta(hours=gap)
        before = seen
        decision, seen = observe(before, payload, now)
        if before is None or now - before.first_seen_at >= DEFAULT_HORIZON:
            assert decision.passes
        elif payload == before.fingerprint:
            assert decision is Decision.DUPLICATE
        else:
            assert decision is Decision.CONFLICT
