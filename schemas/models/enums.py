"""The enums of the canonical schemas, symbol for symbol and in schema order.

Every enum ends in ``UNKNOWN``, the Avro enum default: a reader that meets a symbol added by a newer
writer reads ``UNKNOWN`` instead of failing, so enums can grow without breaking consumers.
"""

from __future__ import annotations

import logging
from enum import StrEnum

__all__ = [
    "ActivationKind",
    "BillingFrequency",
    "CollectionsCaseStatus",
    "CommandType",
    "CustomerStatus",
    "LineKind",
    "ReasonCode",
    "SubscriptionStatus",
]

logger = logging.getLogger(__name__)


class LineKind(StrEnum):
    """What a line sells; decides how its revenue is recognised and where it posts."""

    SUBSCRIPTION = "SUBSCRIPTION"
    USAGE = "USAGE"
    SERVICES = "SERVICES"
    TAX = "TAX"
    UNKNOWN = "UNKNOWN"


class BillingFrequency(StrEnum):
    """How often a subscription is billed."""

    MONTHLY = "MONTHLY"
    QUARTERLY = "QUARTERLY"
    ANNUAL = "ANNUAL"
    UNKNOWN = "UNKNOWN"


class ActivationKind(StrEnum):
    """What a service activation activated."""

    SUBSCRIPTION = "SUBSCRIPTION"
    SERVICES_MILESTONE = "SERVICES_MILESTONE"
    UNKNOWN = "UNKNOWN"


class CustomerStatus(StrEnum):
    """Lifecycle status of a customer account."""

    ACTIVE = "ACTIVE"
    SUSPENDED = "SUSPENDED"
    CLOSED = "CLOSED"
    UNKNOWN = "UNKNOWN"


class CommandType(StrEnum):
    """Which ERP operation a command performs (and so which payload it carries)."""

    JOURNAL_ENTRY = "JOURNAL_ENTRY"
    INVOICE = "INVOICE"
    PAYMENT_APPLICATION = "PAYMENT_APPLICATION"
    REVENUE_SCHEDULE = "REVENUE_SCHEDULE"
    SUBSCRIPTION = "SUBSCRIPTION"
    COLLECTIONS_CASE = "COLLECTIONS_CASE"
    UNKNOWN = "UNKNOWN"


class SubscriptionStatus(StrEnum):
    """Lifecycle status of a subscription in the ERP."""

    ACTIVE = "ACTIVE"
    RENEWED = "RENEWED"
    AMENDED = "AMENDED"
    CANCELLED = "CANCELLED"
    UNKNOWN = "UNKNOWN"


class CollectionsCaseStatus(StrEnum):
    """Lifecycle status of a collections case."""

    OPEN = "OPEN"
    ESCALATED = "ESCALATED"
    RESOLVED = "RESOLVED"
    UNKNOWN = "UNKNOWN"


class ReasonCode(StrEnum):
    """Which business rule a record broke; exception-handling teams route by it."""

    DISCOUNT_NOT_APPROVED = "DISCOUNT_NOT_APPROVED"
    CURRENCY_MISMATCH = "CURRENCY_MISMATCH"
    NEGATIVE_AMOUNT = "NEGATIVE_AMOUNT"
    UNBALANCED_INVOICE = "UNBALANCED_INVOICE"
    USAGE_BILLING_MISMATCH = "USAGE_BILLING_MISMATCH"
    UNKNOWN_PRODUCT = "UNKNOWN_PRODUCT"
    INACTIVE_CUSTOMER = "INACTIVE_CUSTOMER"
    AMOUNT_OUT_OF_RANGE = "AMOUNT_OUT_OF_RANGE"
    APPROVAL_NOT_ALLOWED = "APPROVAL_NOT_ALLOWED"
    UNKNOWN = "UNKNOWN"
