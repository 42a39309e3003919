"""Enrichment with master data: the view the rules read, what an event still lacks, newer-wins.

Master data arrives on compacted topics and may lag behind the events that need it. An event whose
customer, legal entity or products are not known yet is parked and retried by the agent (DOMAIN.md:
bounded, then ``MASTER_DATA_MISSING``); this module only says what is missing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from schemas.models import Customer, EventEnvelope, LegalEntity, MasterRecord, Product

__all__ = [
    "MasterView",
    "master_key",
    "master_newer",
    "missing_master_data",
    "product_ids",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class MasterView:
    """Read-only lookups of master data by id.

    Any mapping works: plain dicts in tests, Faust global tables in the worker.
    """

    customers: Mapping[str, Customer] = field(default_factory=dict)
    products: Mapping[str, Product] = field(default_factory=dict)
    legal_entities: Mapping[str, LegalEntity] = field(default_factory=dict)

    def customer(self, customer_id: str) -> Customer | None:
        """Return the customer, or ``None`` when it has not arrived."""
        return self.customers.get(customer_id)

    def product(self, product_id: str) -> Product | None:
        """Return the product, or ``None`` when it has not arrived."""
        return self.products.get(product_id)

    def legal_entity(self, legal_entity_id: str) -> LegalEntity | None:
        """Return the legal entity, or ``None`` when it has not arrived."""
        return self.legal_entities.get(legal_entity_id)


def product_ids(event: EventEnvelope) -> list[str]:
    """Return the distinct product ids the event's lines reference, in order of first appearance."""
    seen: dict[str, None] = {}
    for line in event.value_of("lines", ()):
        product_id = line.value_of("product_id")
        if product_id is not None:
            seen.setdefault(product_id, None)
    return list(seen)


def missing_master_data(event: EventEnvelope, view: MasterView) -> list[str]:
    """Return what master data the event needs and the view lacks, as ``kind:id`` strings.

    Every event needs its customer and its legal entity; events with lines need every product
    those lines name. Example: ``["customer:C1", "product:P7", "legal_entity:LE-DE"]``; an empty
    list means the event can be enriched.
    """
    missing: list[str] = []
    if view.customer(event.customer_id) is None:
        missing.append(f"customer:{event.customer_id}")
    missing.extend(
        f"product:{product_id}" for product_id in product_ids(event) if view.product(product_id) is None
    )
    if view.legal_entity(event.legal_entity) is None:
        missing.append(f"legal_entity:{event.legal_entity}")
    return missing


def master_key(record: MasterRecord) -> str:
    """Return the id a master-data record is keyed by on its compacted topic."""
    if isinstance(record, Customer):
        return record.customer_id
    if isinstance(record, Product):
        return record.product_id
    return record.legal_entity_id


def master_newer(current: MasterRecord | None, incoming: MasterRecord) -> bool:
    """Whether ``incoming`` should replace ``current``: higher version, then later ``updated_at``.

    A record equal in both is not newer, so re-reading a compacted topic changes nothing.
    """
    if current is None:
        return True
    return (incoming.version, incoming.updated_at) > (current.version, current.updated_at)
