"""The queue's metrics for the dashboard: open work by team and reason, oldest age, SLA breaches, holds."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge

from connectors.exceptions.stats import QueueStats

__all__ = ["QueueMetrics"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class QueueMetrics:
    """Gauges refreshed from the queue after each batch, and the consumer's counters."""

    registry: CollectorRegistry
    open: Gauge
    oldest_open: Gauge
    sla_breaches: Gauge
    held_orders: Gauge
    held_order_value: Gauge
    changes: Counter
    dead_lettered: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> QueueMetrics:
        """Register the queue's metrics on ``registry`` (a fresh one by default)."""
        registry = registry if registry is not None else CollectorRegistry(auto_describe=True)
        return cls(
            registry=registry,
            open=Gauge(
                "revstream_exceptions_open", "Open business exceptions in the queue.", ["team", "reason"],
                registry=registry,
            ),
            oldest_open=Gauge(
                "revstream_exceptions_oldest_open_seconds", "Age of the oldest open exception (0: none).",
                registry=registry,
            ),
            sla_breaches=Gauge(
                "revstream_exceptions_sla_breaches", "Open exceptions past their due time.", ["team"],
                registry=registry,
            ),
            held_orders=Gauge(
                "revstream_exceptions_held_orders", "Orders held for a discount approval.", registry=registry,
            ),
            held_order_value=Gauge(
                "revstream_exceptions_held_order_value_minor", "What held orders are worth (minor units).",
                ["currency"], registry=registry,
            ),
            changes=Counter(
                "revstream_exceptions_changes", "Queue rows raised, revised, re-opened or closed by records.",
                ["action"], registry=registry,
            ),
            dead_lettered=Counter(
                "revstream_exceptions_dead_lettered", "Exception records that could not be read.", ["reason"],
                registry=registry,
            ),
        )  # fmt: skip

    def refresh(self, stats: QueueStats) -> None:
        """Set the gauges to ``stats`` (labels that went to zero are kept at zero, not dropped)."""
        for labels in list(self.open._metrics):
            self.open.labels(*labels).set(0)
        for (team, reason), count in stats.by_team_reason.items():
            self.open.labels(team, reason).set(count)
        for labels in list(self.sla_breaches._metrics):
            self.sla_breaches.labels(*labels).set(0)
        for team, count in stats.sla_breaches.items():
            self.sla_breaches.labels(team).set(count)
        self.oldest_open.set(stats.oldest_open_seconds or 0.0)
        self.held_orders.set(stats.held["order_accepted"])
        for labels in list(self.held_order_value._metrics):
            self.held_order_value.labels(*labels).set(0)
        for currency, value in stats.held_order_value_minor.items():
            self.held_order_value.labels(currency).set(value)
