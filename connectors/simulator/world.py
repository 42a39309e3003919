"""The simulated company's master data: legal entities, the price book and the customers.

Three legal entities book in their own currencies; the price book lists every product once per
currency (a product's price has one currency), each with the largest discount a sales rep may
give without an approval and the GL accounts of its revenue kind.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from connectors.simulator.config import BusinessRates
from schemas.models import BillingFrequency, Customer, CustomerStatus, LegalEntity, LineKind, Product

__all__ = [
    "LEGAL_ENTITIES",
    "PRODUCTS",
    "CustomerPlan",
    "ProductSpec",
    "legal_entities",
    "plan_customers",
    "price_book",
    "product_id",
]

logger = logging.getLogger(__name__)

LEGAL_ENTITIES: Final = (
    ("LE-US", "Revstream Inc.", "USD", 725),
    ("LE-DE", "Revstream GmbH", "EUR", 1900),
    ("LE-GB", "Revstream Ltd", "GBP", 2000),
)
"""(id, name, functional currency, default tax rate in basis points)."""


@dataclass(frozen=True)
class ProductSpec:
    """One product of the price book, priced per currency."""

    code: str
    name: str
    kind: LineKind
    prices: dict[str, int]
    max_discount_bp: int
    revenue_account: str
    deferred_account: str


PRODUCTS: Final = (
    ProductSpec(
        "PLATFORM", "Platform seat, monthly", LineKind.SUBSCRIPTION,
        {"USD": 4500, "EUR": 4200, "GBP": 3600}, 1500, "4000", "2400",
    ),
    ProductSpec(
        "ANALYTICS", "Analytics add-on, monthly", LineKind.SUBSCRIPTION,
        {"USD": 25000, "EUR": 23000, "GBP": 20000}, 1000, "4020", "2420",
    ),
    ProductSpec(
        "API", "API calls, per call", LineKind.USAGE,
        {"USD": 2, "EUR": 2, "GBP": 2}, 0, "4100", "4100",
    ),
    ProductSpec(
        "ONBOARDING", "Onboarding project", LineKind.SERVICES,
        {"USD": 500000, "EUR": 460000, "GBP": 400000}, 2000, "4010", "2410",
    ),
)  # fmt: skip

NAMES: Final = (
    "Acme",
    "Globex",
    "Initech",
    "Umbrella",
    "Hooli",
    "Vandelay",
    "Stark",
    "Wayne",
    "Tyrell",
    "Cyberdyne",
)
SUFFIXES: Final = ("Labs", "Group", "Systems", "Holdings", "Works", "Partners")


def product_id(code: str, currency: str) -> str:
    """Return the id of product ``code`` priced in ``currency``."""
    return f"{code}-{currency}"


def legal_entities(updated_at: datetime) -> list[LegalEntity]:
    """Return the legal entities' master records."""
    return [
        LegalEntity(
            legal_entity_id=entity_id,
            name=name,
            functional_currency=currency,
            tax_rate_bp=tax,
            updated_at=updated_at,
            version=1,
        )
        for entity_id, name, currency, tax in LEGAL_ENTITIES
    ]


def price_book(updated_at: datetime) -> list[Product]:
    """Return every product in every currency."""
    return [
        Product(
            product_id=product_id(spec.code, currency),
            name=f"{spec.name} ({currency})",
            revenue_kind=spec.kind,
            list_price_minor=price,
            currency=currency,
            max_discount_bp=spec.max_discount_bp,
            revenue_account=spec.revenue_account,
            deferred_account=spec.deferred_account,
            updated_at=updated_at,
            version=1,
        )
        for spec in PRODUCTS
        for currency, price in spec.prices.items()
    ]


def spec(code: str) -> ProductSpec:
    """Return the price-book entry of ``code``."""
    return next(product for product in PRODUCTS if product.code == code)


@dataclass(frozen=True)
class CustomerPlan:
    """Who a customer is and which twists its story takes (decided once, from the seed)."""

    index: int
    customer_id: str
    name: str
    legal_entity: str
    currency: str
    tax_rate_bp: int
    renewing: bool
    master_missing: bool
    master_late: bool
    frequency: BillingFrequency
    unapproved_discount: bool
    approved_over_max: bool
    amends: bool
    adjusts: bool

    def master(self, updated_at: datetime, version: int = 1, name: str | None = None) -> Customer:
        """Return the customer's master record."""
        return Customer(
            customer_id=self.customer_id,
            name=name or self.name,
            legal_entity=self.legal_entity,
            billing_terms_days=30,
            status=CustomerStatus.ACTIVE,
            currency=self.currency,
            updated_at=updated_at,
            version=version,
        )


def _pick(rng: random.Random, population: list[int], rate: float) -> set[int]:
    count = round(rate * len(population))
    return set(rng.sample(population, min(count, len(population))))


def plan_customers(
    rng: random.Random, count: int, rates: BusinessRates, missing_rate: float
) -> list[CustomerPlan]:
    """Return ``count`` customers, round-robin over the legal entities so each has some.

    Customer-level twists are drawn as exact counts (rate x eligible customers, rounded), so a small
    simulation still has them. A customer whose master record never arrives gets no twist that
    raises a business exception (its events are dead-lettered before any policy could see them).
    Amendments and schedule adjustments go to monthly-billed contracts only (see ``company``).
    """
    everyone = list(range(count))
    frequencies = [_frequency(rng) for _ in everyone]
    renewing = _pick(rng, everyone, rates.renewing_customers)
    missing = _pick(rng, everyone, missing_rate)
    late = _pick(rng, [i for i in everyone if i not in missing and i not in renewing], rates.late_master)
    selling = [i for i in everyone if i not in renewing and i not in missing]
    unapproved = _pick(rng, selling, rates.unapproved_discounts)
    over_max = _pick(rng, [i for i in selling if i not in unapproved], rates.approved_over_max)
    monthly = [i for i in everyone if frequencies[i] is BillingFrequency.MONTHLY]
    amends = _pick(rng, monthly, rates.amendments)
    adjusts = _pick(rng, monthly, rates.schedule_adjustments)
    plans = []
    for index in everyone:
        entity, _, currency, tax = LEGAL_ENTITIES[index % len(LEGAL_ENTITIES)]
        name = f"{NAMES[index % len(NAMES)]} {SUFFIXES[index // len(NAMES) % len(SUFFIXES)]} {index + 1}"
        plans.append(
            CustomerPlan(
                index=index,
                customer_id=f"CUST-{index + 1:05d}",
                name=name,
                legal_entity=entity,
                currency=currency,
                tax_rate_bp=tax,
                renewing=index in renewing,
                master_missing=index in missing,
                master_late=index in late,
                frequency=frequencies[index],
                unapproved_discount=index in unapproved,
                approved_over_max=index in over_max,
                amends=index in amends,
                adjusts=index in adjusts,
            )
        )
    return plans


def _frequency(rng: random.Random) -> BillingFrequency:
    draw = rng.random()
    if draw < 0.6:
        return BillingFrequency.MONTHLY
    return BillingFrequency.QUARTERLY if draw < 0.8 else BillingFrequency.ANNUAL
