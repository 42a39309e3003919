"""Models of the operations records (``io.revstream.ops``): business exceptions."""

from __future__ import annotations

import logging
from typing import ClassVar

from schemas.models.base import AvroInt, AvroLong, AvroRecord, Currency, Id, TimestampMillis
from schemas.models.enums import ReasonCode
from schemas.names import OPS_NAMESPACE

__all__ = ["BusinessException"]

logger = logging.getLogger(__name__)

# Records noting that an event waits on an exception or no longer does, and one closing it by approval.
_NOT_RAISING = frozenset({"held", "released", "approved"})


class BusinessException(AvroRecord):
    """A record that was understood but breaks a policy or reconciliation rule."""

    avro_name: ClassVar[str] = "BusinessException"
    avro_namespace: ClassVar[str | None] = OPS_NAMESPACE

    exception_id: Id
    reason_code: ReasonCode
    source_event_id: Id
    event_type: str
    customer_id: Id
    legal_entity: str
    correlation_id: str
    detected_at: TimestampMillis
    detail: str
    quantity_difference: AvroLong | None = None
    amount_difference_minor: AvroLong | None = None
    currency: Currency | None = None
    subscription_id: Id | None = None
    metric: str | None = None
    period: str | None = None
    exception_key: str | None = None
    revision: AvroInt | None = None
    resolution: str | None = None
    quote_id: Id | None = None

    @property
    def raises(self) -> bool:
        """Whether this record raises (or revises) an exception: not a hold notice or an approval closing one.

        Counting exceptions by reason counts only these; the others name the item they belong to
        in ``exception_key``.
        """
        return self.resolution not in _NOT_RAISING
