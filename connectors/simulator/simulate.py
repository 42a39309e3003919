"""Run the simulated company: the records in publish order, and the ground-truth summary.

Pure and deterministic: a :class:`SimulationConfig` (seed included) always gives the same
emissions and the same summary, byte for byte. Each customer draws from its own seeded generator,
and faults from another one, so one customer's story does not change when another's does.
"""

from __future__ import annotations

import logging
import random
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from connectors.simulator.company import customer_story
from connectors.simulator.config import SimulationConfig
from connectors.simulator.dates import at
from connectors.simulator.emissions import Emission
from connectors.simulator.expectations import expect
from connectors.simulator.faults import inject
from connectors.simulator.world import legal_entities, plan_customers, price_book
from schemas.models import AvroRecord, Customer, EventEnvelope

__all__ = ["ASSUMPTIONS", "SUMMARY_VERSION", "Simulation", "simulate"]

logger = logging.getLogger(__name__)

SUMMARY_VERSION: Final = 1

ASSUMPTIONS: Final = (
    "Dead letters: bytes that are not Confluent-framed Avro -> decode/CORRUPT_RECORD; a schema id "
    "the registry does not know -> decode/UNKNOWN_SCHEMA_ID; the same event_id with other content "
    "-> dedupe/DUPLICATE_ID_CONFLICT (the first copy counts); an event whose customer master record "
    "never arrives -> enrich/MASTER_DATA_MISSING. Exact duplicates are dropped and counted.",
    "Customers listed in master_data.late_customers get their master record a record or two after "
    "their first events (seconds later when published in one run); their events must not be lost.",
    "Reconciliation is per (subscription, metric, calendar month of the usage window start / of the "
    "invoice usage line's period_start); quantity_difference = metered - billed (positive: "
    "under-billed), amount_difference_minor = difference x the billed unit price. Listed are the "
    "standing differences once everything is in (a tolerance of 0); each is the billing platform's "
    "error or usage reported after its month was invoiced.",
    "Invoices with a usage mismatch are still posted (the exception is raised next to the posting).",
    "Revenue per legal entity, currency, month (YYYY-MM) and account, the account being the line's "
    "product's revenue_account (4000, 4020 for ANALYTICS, 4100, 4010): subscription lines spread by "
    "day over their service period with largest-remainder rounding (months after the horizon "
    "included), then re-spread by every amendment (of their product) or schedule adjustment that "
    "happened at or after their invoice, in event-time order, by DOMAIN.md's prospective rule; usage "
    "lines in the month of the invoice's issued_on; services milestones in the month of activated_at "
    "(UTC), for their own amount or, without one, what was invoiced on the subscription for their "
    "order line's product.",
    "A services milestone whose order line never arrives is dead-lettered recognise/"
    "ORDER_LINE_NOT_FOUND; one without an amount whose product was never invoiced on the subscription "
    "recognise/INVOICED_SERVICES_NOT_FOUND.",
    "Amendments and the ordinary schedule adjustments touch monthly-billed contracts from the first "
    "of a month (their re-spread changes nothing); some quarterly and annual contracts get an "
    "adjustment from the 16th of a month inside an invoiced period, published before that invoice.",
    "Cash is the sum of payment_received amounts per legal entity and currency (DR 1000).",
)


@dataclass(frozen=True)
class Simulation:
    """The simulation's output: records in publish order and the ground truth about them."""

    config: SimulationConfig
    emissions: tuple[Emission, ...]
    summary: dict[str, Any]


def _master(record: AvroRecord, key: str, kind: str) -> Emission:
    return Emission("master", kind, key, record)


def simulate(config: SimulationConfig) -> Simulation:
    """Simulate the company over ``config.months`` months from ``config.start``."""
    timed: list[tuple[datetime, int, Emission]] = []

    def add(when: datetime, emission: Emission) -> None:
        timed.append((when, len(timed), emission))

    opening = at(config.start, 0)
    for entity in legal_entities(opening):
        add(opening, _master(entity, entity.legal_entity_id, "legal_entity"))
    for product in price_book(opening):
        add(opening, _master(product, product.product_id, "product"))
    # Seeded generators, not secrets: the same seed must give the same company (hence noqa S311).
    plans = plan_customers(
        random.Random(f"{config.seed}:customers"),  # noqa: S311
        config.customers,
        config.business,
        config.faults.missing_master,
    )
    for plan in plans:
        rng = random.Random(f"{config.seed}:customer:{plan.index}")  # noqa: S311
        story = customer_story(plan, rng, config.start, config.end, config.business)
        events = sorted(story.records, key=lambda item: item[0])
        for when, record in events:
            assert isinstance(record, EventEnvelope)
            add(when, Emission("event", record.event_type, record.customer_id, record))
        if plan.master_missing:
            continue
        if plan.renewing or not events:
            first = opening + timedelta(seconds=60 + plan.index)
        elif plan.master_late:
            first = events[min(1, len(events) - 1)][0] + timedelta(seconds=1)
        else:
            first = events[0][0] - timedelta(seconds=1)
        add(first, _master(plan.master(first), plan.customer_id, "customer"))
        if rng.random() < config.business.customer_updates:
            later = first + timedelta(
                seconds=rng.randint(3600, max(3600, int((at(config.end, 0) - first).total_seconds()) - 1))
            )
            renamed: Customer = plan.master(later, version=2, name=f"{plan.name} (renamed)")
            add(later, _master(renamed, plan.customer_id, "customer"))
    base = [emission for _, _, emission in sorted(timed, key=lambda item: (item[0], item[1]))]
    emissions = inject(base, config.faults, random.Random(f"{config.seed}:faults"))  # noqa: S311
    summary = {
        "summary_version": SUMMARY_VERSION,
        "generator": {
            "seed": config.seed,
            "months": config.months,
            "customers": config.customers,
            "start": config.start.isoformat(),
            "end": config.end.isoformat(),
            "fault_rates": asdict(config.faults),
            "business_rates": asdict(config.business),
        },
        "assumptions": list(ASSUMPTIONS),
        "master_data": {
            "missing_customers": sorted(plan.customer_id for plan in plans if plan.master_missing),
            "late_customers": sorted(plan.customer_id for plan in plans if plan.master_late),
            "renewing_customers": sorted(plan.customer_id for plan in plans if plan.renewing),
        },
        **expect(emissions),
    }
    return Simulation(config, tuple(emissions), summary)
