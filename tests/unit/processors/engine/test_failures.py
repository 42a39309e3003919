"""The failure policy: which faults are the record's, and when a batch's failures are systemic."""

from __future__ import annotations

from processors.engine.failures import record_fault, systemic_failure
from processors.errors import (
    InvalidPeriodError,
    MissingAmountError,
    OutputDeliveryError,
    RuleInputError,
    UnbalancedEntryError,
    UnpostableLineError,
)
from streams.errors import RecordEncodeError


def test_the_records_faults_map_to_dead_letter_reasons_and_nothing_else_does():
    assert record_fault(UnbalancedEntryError("JE1", "EUR", 10, 9)) == "UNBALANCED_ENTRY"
    assert record_fault(InvalidPeriodError("2024-02-01", "2024-01-01")) == "INVALID_PERIOD"
    assert record_fault(MissingAmountError("no amount")) == "MISSING_AMOUNT"
    assert record_fault(UnpostableLineError("UNKNOWN line")) == "UNPOSTABLE_LINE"
    assert record_fault(RuleInputError("bad")) == "INVALID_RULE_INPUT"
    assert record_fault(RecordEncodeError("long out of range")) == "UNENCODABLE_OUTPUT"
    assert record_fault(OverflowError("date value out of range")) == "INVALID_RULE_INPUT"
    # A defect, a broken store, undelivered outputs: not the record's fault, never a dead letter.
    assert record_fault(KeyError("a bug")) is None
    assert record_fault(OSError("rocksdb: IO error")) is None
    assert record_fault(OutputDeliveryError("broker down")) is None


def test_a_systemic_failure_needs_both_the_share_and_the_count():
    assert systemic_failure({("decode", "CORRUPT_RECORD"): 60}, 100, 0.5, 50) is not None
    assert systemic_failure({("decode", "CORRUPT_RECORD"): 40}, 60, 0.5, 50) is None  # too few
    assert systemic_failure({("decode", "CORRUPT_RECORD"): 60}, 200, 0.5, 50) is None  # small share
    # A master-data outage dead-letters many records by design: not a reason to stop.
    assert systemic_failure({("enrich", "MASTER_DATA_MISSING"): 900}, 1000, 0.5, 50) is None
