"""What the company simulator is asked to simulate: horizon, seed, size and fault rates."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, fields
from datetime import date
from typing import Final

from connectors.errors import SimulationConfigError

__all__ = ["DEFAULT_START", "BusinessRates", "FaultRates", "SimulationConfig"]

logger = logging.getLogger(__name__)

DEFAULT_START: Final = date(2026, 1, 1)


@dataclass(frozen=True)
class FaultRates:
    """How often the simulated systems misbehave (probabilities, 0 to 1)."""

    duplicates: float = 0.02
    """Per event: the producer sends the same event (same id, same bytes) again."""
    conflicts: float = 0.005
    """Per event: another record reuses the event's id with different content."""
    corrupt: float = 0.002
    """Per event: a record that is not Confluent-framed Avro lands on the event's topic."""
    unknown_schema: float = 0.002
    """Per event: a copy framed with a schema id no registry knows lands on the topic."""
    missing_master: float = 0.05
    """Per customer (rounded to a whole number of customers): its master record never arrives."""


@dataclass(frozen=True)
class BusinessRates:
    """How often ordinary business twists happen (probabilities, 0 to 1)."""

    renewing_customers: float = 0.3
    unapproved_discounts: float = 0.15
    approved_over_max: float = 0.15
    billing_mismatches: float = 0.08
    late_usage: float = 0.04
    payment_failures: float = 0.15
    unrecovered_failures: float = 0.3
    late_master: float = 0.2
    amendments: float = 0.3
    schedule_adjustments: float = 0.2
    customer_updates: float = 0.2
    services: float = 0.6
    analytics: float = 0.4
    milestones_without_amount: float = 0.5
    adjustments_ahead: float = 0.3


@dataclass(frozen=True)
class SimulationConfig:
    """One simulation: the same config (seed included) always gives the same records, byte for byte."""

    months: int = 3
    seed: int = 7
    customers: int = 20
    start: date = DEFAULT_START
    faults: FaultRates = field(default_factory=FaultRates)
    business: BusinessRates = field(default_factory=BusinessRates)

    def __post_init__(self) -> None:
        """Check the options.

        Raises:
            SimulationConfigError: naming the option and what it must be.
        """
        if not 1 <= self.months <= 60:
            raise SimulationConfigError(f"--months must be 1 to 60, got {self.months}")
        if not 1 <= self.customers <= 100_000:
            raise SimulationConfigError(f"--customers must be 1 to 100000, got {self.customers}")
        if self.start.day != 1:
            raise SimulationConfigError(
                f"--start must be the first day of a month (whole months are simulated), got {self.start}"
            )
        for rates in (self.faults, self.business):
            for option in fields(rates):
                value = getattr(rates, option.name)
                if not 0.0 <= value <= 1.0:
                    name = option.name.replace("_", "-")
                    raise SimulationConfigError(f"rate {name} must be between 0 and 1, got {value}")

    @property
    def end(self) -> date:
        """The first day after the simulated horizon."""
        month = self.start.month - 1 + self.months
        return date(self.start.year + month // 12, month % 12 + 1, 1)
