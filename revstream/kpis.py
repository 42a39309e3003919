"""``revstream kpis serve``: the process-intelligence measures of DOMAIN.md as Prometheus gauges.

The measures join records of several topics (an order with its activation and its first invoice,
a mismatch with the revisions that resolve it), so no single worker can count them. This process
follows the output topics and the three canonical topics the cycle times need from the beginning
(the demo's :class:`~revstream.demo.watch.OutputWatcher`, outside any consumer group), and every
poll recomputes :func:`processors.kpis.compute_kpis` over everything read, the same figures the
demo's report prints. It keeps every command and exception it read in memory: meant for a
quarter's volume of one namespace, not for years of history (that belongs in the ledger).

Gauges (cycle times in seconds, rates as ratios; a measure with nothing to measure yet is absent):
``revstream_kpi_order_to_activation_seconds{quantile}``, ``…_order_to_invoice_seconds{quantile}``
(0.5, 0.9), ``revstream_kpi_touchless_ratio``, ``revstream_kpi_usage_leakage_minor{currency}``,
``revstream_kpi_open_exceptions``, ``revstream_kpi_business_exceptions{reason}``,
``revstream_kpi_invoice_accuracy_ratio``, ``revstream_kpi_records_read``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from processors.kpis import DAY_S, Kpis, compute_kpis
from revstream.demo.watch import OutputWatcher

__all__ = ["KpiMetrics", "KpiPoller"]

logger = logging.getLogger(__name__)


class _KpiCollector(Collector):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._kpis: Kpis | None = None
        self._reasons: dict[str, int] = {}
        self._read = 0

    def set(self, kpis: Kpis, reasons: dict[str, int], read: int) -> None:
        with self._lock:
            self._kpis, self._reasons, self._read = kpis, reasons, read

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self._lock:
            kpis, reasons, read = self._kpis, self._reasons, self._read
        activation = GaugeMetricFamily(
            "revstream_kpi_order_to_activation_seconds",
            "Order accepted to first service activation, by quantile over the orders seen",
            labels=["quantile"],
        )
        invoice = GaugeMetricFamily(
            "revstream_kpi_order_to_invoice_seconds",
            "Order accepted to the subscription's first invoice, by quantile over the orders seen",
            labels=["quantile"],
        )
        touchless = GaugeMetricFamily(
            "revstream_kpi_touchless_ratio", "Orders that reached the ledger with no business exception"
        )
        leakage = GaugeMetricFamily(
            "revstream_kpi_usage_leakage_minor",
            "Usage billed short of what was recorded, standing mismatches, in minor units",
            labels=["currency"],
        )
        open_exceptions = GaugeMetricFamily(
            "revstream_kpi_open_exceptions", "Business exceptions still standing (reconciliation effort)"
        )
        by_reason = GaugeMetricFamily(
            "revstream_kpi_business_exceptions",
            "Distinct business exceptions raised, by reason",
            labels=["reason"],
        )
        accuracy = GaugeMetricFamily(
            "revstream_kpi_invoice_accuracy_ratio", "Invoices without a standing usage mismatch"
        )
        records = GaugeMetricFamily("revstream_kpi_records_read", "Records read from the followed topics")
        records.add_metric([], read)
        if kpis is not None:
            for family, days in (
                (activation, kpis.order_to_activation_days),
                (invoice, kpis.order_to_invoice_days),
            ):
                if days is not None:
                    family.add_metric(["0.5"], days[0] * DAY_S)
                    family.add_metric(["0.9"], days[1] * DAY_S)
            if kpis.touchless_rate is not None:
                touchless.add_metric([], kpis.touchless_rate)
            for currency, amount in kpis.usage_leakage_minor.items():
                leakage.add_metric([currency], amount)
            open_exceptions.add_metric([], kpis.open_exceptions)
            if kpis.invoice_accuracy is not None:
                accuracy.add_metric([], kpis.invoice_accuracy)
        for reason, count in sorted(reasons.items()):
            by_reason.add_metric([reason], count)
        yield from (activation, invoice, touchless, leakage, open_exceptions, by_reason, accuracy, records)


@dataclass(frozen=True)
class KpiMetrics:
    """The KPI process's metrics: the measures and its own polls."""

    registry: CollectorRegistry
    polls: Counter
    measures: _KpiCollector

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> KpiMetrics:
        """Register the KPI metrics on ``registry`` (a fresh one by default)."""
        registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        measures = _KpiCollector()
        registry.register(measures)
        polls = Counter("revstream_kpi_polls", "Recomputations of the measures.", registry=registry)
        return cls(registry, polls, measures)


class KpiPoller:
    """Reads what arrived on the followed topics and recomputes the measures, until stopped."""

    def __init__(self, watcher: OutputWatcher, metrics: KpiMetrics, interval_s: float) -> None:
        self.watcher = watcher
        self.metrics = metrics
        self.interval_s = interval_s
        self._read = 0
        self._stop = threading.Event()

    def poll_once(self) -> Kpis:
        """Read what is available now and publish the measures over everything read so far."""
        self._read += self.watcher.poll()
        output = self.watcher.output
        # Consumed-event and duplicate counts are the workers' own metrics; the rates that need
        # them are left to the dashboard (revstream_processor_*).
        kpis = compute_kpis(
            output.cycle, list(output.commands.values()), output.kpi_exceptions(),
            len(output.dead_letters), 0, 0,
        )  # fmt: skip
        self.metrics.measures.set(kpis, dict(output.exceptions_by_reason()), self._read)
        self.metrics.polls.inc()
        return kpis

    def run(self) -> None:
        """Poll every ``interval_s`` until :meth:`stop`."""
        while not self._stop.is_set():
            self.poll_once()
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        """Ask :meth:`run` to return (safe from a signal handler)."""
        self._stop.set()
