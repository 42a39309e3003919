"""The process-intelligence gauges rendered from one computation (revstream.kpis)."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from processors.kpis import Kpis
from revstream.kpis import KpiMetrics


def samples(metrics: KpiMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def kpis(**changes: object) -> Kpis:
    base: dict[str, object] = dict(
        order_to_activation_days=(2.5, 4.0), order_to_invoice_days=(1.0, 3.0), touchless_rate=0.5,
        exception_rate_by_reason={}, dead_letters=3, duplicate_rate=None,
        usage_leakage_minor={"EUR": 1250}, open_exceptions=4, invoice_accuracy=0.75,
    )  # fmt: skip
    base.update(changes)
    return Kpis(**base)  # type: ignore[arg-type]


def test_cycle_times_in_seconds_rates_as_ratios_and_amounts_per_currency() -> None:
    metrics = KpiMetrics.create()
    metrics.measures.set(kpis(), {"DISCOUNT_NOT_APPROVED": 2}, read=120)
    got = samples(metrics)
    assert got[("revstream_kpi_order_to_activation_seconds", (("quantile", "0.5"),))] == 2.5 * 86_400
    assert got[("revstream_kpi_order_to_invoice_seconds", (("quantile", "0.9"),))] == 3.0 * 86_400
    assert got[("revstream_kpi_touchless_ratio", ())] == 0.5
    assert got[("revstream_kpi_usage_leakage_minor", (("currency", "EUR"),))] == 1250
    assert got[("revstream_kpi_open_exceptions", ())] == 4
    assert got[("revstream_kpi_business_exceptions", (("reason", "DISCOUNT_NOT_APPROVED"),))] == 2
    assert got[("revstream_kpi_invoice_accuracy_ratio", ())] == 0.75
    assert got[("revstream_kpi_records_read", ())] == 120


def test_measures_with_nothing_to_measure_are_absent_not_zero() -> None:
    metrics = KpiMetrics.create()
    before = {name for name, _ in samples(metrics)}
    assert before == {
        "revstream_kpi_records_read",
        "revstream_kpi_polls_total",
        "revstream_kpi_polls_created",
    }
    metrics.measures.set(
        kpis(
            order_to_activation_days=None, touchless_rate=None, invoice_accuracy=None, usage_leakage_minor={}
        ),
        {},
        0,
    )
    names = {name for name, _ in samples(metrics)}
    assert "revstream_kpi_order_to_activation_seconds" not in names
    assert (
        "revstream_kpi_touchless_ratio" not in names and "revstream_kpi_invoice_accuracy_ratio" not in names
    )
    assert "revstream_kpi_open_exceptions" in names
