"""Models of the master data (``io.revstream.master``): compacted, keyed by id, newer version wins."""

from __future__ import annotations

import logging
from typing import ClassVar

from schemas.models.base import AvroInt, AvroLong, AvroRecord, Currency, Id, TimestampMillis
from schemas.models.enums import CustomerStatus, LineKind
from schemas.names import MASTER_NAMESPACE

__all__ = ["Customer", "LegalEntity", "MasterRecord", "Product"]

logger = logging.getLogger(__name__)


class Customer(AvroRecord):
    """A customer account."""

    avro_name: ClassVar[str] = "Customer"
    avro_namespace: ClassVar[str | None] = MASTER_NAMESPACE

    customer_id: Id
    name: str
    legal_entity: str
    billing_terms_days: AvroInt
    status: CustomerStatus
    currency: Currency
    updated_at: TimestampMillis
    version: AvroLong


class Product(AvroRecord):
    """A price-book product with its revenue kind and GL accounts."""

    avro_name: ClassVar[str] = "Product"
    avro_namespace: ClassVar[str | None] = MASTER_NAMESPACE

    product_id: Id
    name: str
    revenue_kind: LineKind
    list_price_minor: AvroLong
    currency: Currency
    max_discount_bp: AvroInt
    revenue_account: str
    deferred_account: str
    updated_at: TimestampMillis
    version: AvroLong


class LegalEntity(AvroRecord):
    """A legal entity (company code) with its functional currency and default tax rate."""

    avro_name: ClassVar[str] = "LegalEntity"
    avro_namespace: ClassVar[str | None] = MASTER_NAMESPACE

    legal_entity_id: Id
    name: str
    functional_currency: Currency
    tax_rate_bp: AvroInt
    updated_at: TimestampMillis
    version: AvroLong


MasterRecord = Customer | Product | LegalEntity
"""Any master-data record."""
