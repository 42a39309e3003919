"""The gateway's Prometheus metrics, in one container built on a registry of its own.

Labels are bounded: the route template, the status code, the event type (a fixed list) and the
outcome; never an event id, a token or a source-provided value.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["GatewayMetrics"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class GatewayMetrics:
    """Every metric the gateway exports."""

    registry: CollectorRegistry
    requests: Counter
    request_seconds: Histogram
    events: Counter
    broker_up: Gauge
    in_flight: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> GatewayMetrics:
        """Build the metrics on ``registry`` (a fresh one when not given)."""
        registry = registry if registry is not None else CollectorRegistry()
        return cls(
            registry=registry,
            requests=Counter(
                "revstream_gateway_requests",
                "HTTP requests answered, by route and status code.",
                ["route", "status"],
                registry=registry,
            ),
            request_seconds=Histogram(
                "revstream_gateway_request_seconds",
                "Time to answer a request, in seconds, by route and status code.",
                ["route", "status"],
                registry=registry,
            ),
            events=Counter(
                "revstream_gateway_events",
                "Events received, by event type and outcome "
                "(accepted, duplicate, invalid, conflict, unavailable, forbidden).",
                ["event_type", "outcome"],
                registry=registry,
            ),
            broker_up=Gauge(
                "revstream_gateway_broker_up",
                "1 while the broker is reachable, 0 while the gateway answers 503.",
                registry=registry,
            ),
            in_flight=Gauge(
                "revstream_gateway_in_flight_records",
                "Records handed to the producer that the broker has not acknowledged yet.",
                registry=registry,
            ),
        )
