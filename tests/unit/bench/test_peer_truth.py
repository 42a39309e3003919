"""The peers' ground truth and the workload's rules, without Kafka."""

from __future__ import annotations

import struct

import pytest

from bench.fullpath import realistic_mix
from bench.harness import _peer_ratios
from bench.peer_truth import check_revstream, ground_truth
from bench.peers.workload import CORRUPT, Codec, DecodeError, fingerprint, money


def test_ground_truth_agrees_with_the_simulators_own_summary() -> None:
    simulation = realistic_mix(months=2, customers=12)
    truth = ground_truth(simulation)
    summary = simulation.summary
    assert truth.duplicates == summary["duplicates"]["total"]
    assert truth.conflicts == summary["conflicts"]["total"]
    assert truth.undecodable == summary["records"]["raw_faults"]
    assert truth.unique == sum(summary["records"]["events_unique"].values())
    assert truth.records == summary["records"]["events_published_total"] + truth.undecodable
    assert sum(count for count, _ in truth.per_customer.values()) == truth.unique


def test_money_sums_only_top_level_minor_amounts() -> None:
    record = {"total_minor": 300, "amount_minor": None, "lines": [{"amount_minor": 7}], "count": 2}
    assert money(record) == 300


def test_an_exact_repeat_has_the_same_fingerprint_and_a_changed_copy_another() -> None:
    assert fingerprint(b"abc") == fingerprint(b"abc")
    assert fingerprint(b"abc") != fingerprint(b"abd")


@pytest.mark.parametrize("value", [None, b"", b"\x01\x00\x00\x00\x01body", b"\x00\x00"])
def test_unframed_bytes_are_corrupt_without_asking_the_registry(value: bytes | None) -> None:
    codec = Codec("http://127.0.0.1:9", output_schema_id=1)
    with pytest.raises(DecodeError) as raised:
        codec.decode(value)
    assert raised.value.reason == CORRUPT


def test_the_output_is_framed_with_its_schema_id() -> None:
    encoded = Codec("http://127.0.0.1:9", output_schema_id=42).encode("e-1", "C1", 3, 1500)
    assert encoded[:5] == struct.pack(">bI", 0, 42)


def test_revstream_is_checked_by_its_counters() -> None:
    truth = ground_truth(realistic_mix(months=1, customers=8))
    name = "revstream_processor_records_total"
    pages = [
        [
            (name, {"stage": "dedupe", "outcome": "passed"}, float(truth.unique)),
            (name, {"stage": "dedupe", "outcome": "dropped"}, float(truth.duplicates)),
            (name, {"stage": "dedupe", "outcome": "dead_lettered"}, float(truth.conflicts)),
        ]
    ]
    assert check_revstream(truth, pages)["correct"] is (truth.undecodable == 0)
    pages[0][1] = (name, {"stage": "dedupe", "outcome": "dropped"}, float(truth.duplicates + 1))
    assert not check_revstream(truth, pages)["correct"]


def test_peer_ratios_are_revstream_over_each_peer_that_ran() -> None:
    mine = {"records_per_s": 100.0, "cpu_s_per_1000": 0.2, "peak_rss_mb": 150.0}
    quix = {"records_per_s": 200.0, "cpu_s_per_1000": 0.1, "peak_rss_mb": 100.0}
    ratios = _peer_ratios({"full_1w": mine, "quix": quix})
    assert ratios == {"full_1w_vs_quix": 0.5, "cpu_full_1w_vs_quix": 2.0, "rss_full_1w_vs_quix": 1.5}
    assert _peer_ratios({"full_1w": mine}) == {}
