"""The pieces a customer's story is built from: priced lines, the contract, the record collector."""

from __future__ import annotations

import logging
import random
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from connectors.simulator.config import BusinessRates
from connectors.simulator.dates import at
from connectors.simulator.world import CustomerPlan, product_id
from schemas.models import AvroRecord, BillingFrequency, LineKind, OrderLine

__all__ = ["DAY", "HOUR", "Contract", "Line", "Story"]

logger = logging.getLogger(__name__)

HOUR = 3600
DAY = 24 * HOUR


@dataclass(frozen=True)
class Line:
    """One priced contract line; ``monthly`` is what it costs per calendar month."""

    line_id: str
    code: str
    kind: LineKind
    quantity: int
    unit_price: int

    @property
    def monthly(self) -> int:
        return self.quantity * self.unit_price

    def order_line(self, currency: str) -> OrderLine:
        return OrderLine(
            line_id=self.line_id,
            product_id=product_id(self.code, currency),
            kind=self.kind,
            quantity=self.quantity,
            unit_price_minor=self.unit_price,
            amount_minor=self.monthly,
        )


@dataclass
class Contract:
    """A subscription: its pricing segments over time, usage price, services and term starts."""

    subscription_id: str
    correlation_id: str
    frequency: BillingFrequency
    term_start: date
    segments: list[tuple[date, date, tuple[Line, ...]]]
    usage: Line
    services: Line | None = None
    order_id: str = ""
    meter_start: date | None = None
    term_starts: list[date] = field(default_factory=list)

    @property
    def end(self) -> date:
        return self.segments[-1][1]


@dataclass
class Story:
    """The records of one customer's story, each with the instant it happens."""

    plan: CustomerPlan
    rng: random.Random
    start: date
    end: date
    rates: BusinessRates
    records: list[tuple[datetime, AvroRecord]] = field(default_factory=list)

    def event_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def envelope(self, when: datetime, source: str, correlation_id: str) -> dict[str, Any]:
        return {
            "event_id": self.event_id(),
            "occurred_at": when,
            "source": source,
            "customer_id": self.plan.customer_id,
            "legal_entity": self.plan.legal_entity,
            "correlation_id": correlation_id,
        }

    def add(self, record: AvroRecord, when: datetime) -> None:
        # Only what happens inside the horizon is emitted.
        if at(self.start, 0) <= when < at(self.end, 0):
            self.records.append((when, record))

    def chance(self, rate: float) -> bool:
        return self.rng.random() < rate

    def jitter(self, day: date, low_s: int, high_s: int) -> datetime:
        return at(day, self.rng.randint(low_s, high_s))
