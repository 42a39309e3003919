"""The worker's metrics: a batch tally lands in them with bounded labels."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from processors.metrics import BatchTally, ProcessorMetrics


def test_a_batch_tally_lands_in_the_metrics_with_bounded_labels():
    metrics = ProcessorMetrics.create(CollectorRegistry())
    tally = BatchTally.empty()
    tally.processed["dedupe", "dropped"] += 2
    tally.processed["enrich", "parked"] += 1
    tally.dead_letters["decode", "CORRUPT_RECORD"] += 1
    tally.exceptions["USAGE_BILLING_MISMATCH"] += 3
    tally.commands["JOURNAL_ENTRY"] += 5
    metrics.add(tally)

    value = metrics.registry.get_sample_value
    assert value("revstream_processor_duplicates_dropped_total") == 2
    assert value("revstream_processor_parked_total") == 1
    assert (
        value("revstream_processor_dead_letters_total", {"stage": "decode", "reason": "CORRUPT_RECORD"}) == 1
    )
    assert value("revstream_processor_business_exceptions_total", {"reason": "USAGE_BILLING_MISMATCH"}) == 3
    assert value("revstream_processor_erp_commands_total", {"command_type": "JOURNAL_ENTRY"}) == 5
