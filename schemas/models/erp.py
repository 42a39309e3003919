"""Models of the ERP posting commands (``io.revstream.erp``): one envelope, six payloads.

All commands travel on one topic as :class:`ErpCommand`; ``payload`` is an Avro union of the six
payload records and must be the one ``command_type`` names. On the wire the union branch is chosen
explicitly with fastavro's ``(record_name, dict)`` tuple notation, so two payloads that happened
to share field names could never be confused.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import date
from typing import Annotated, Any, ClassVar, Self

from pydantic import StringConstraints, ValidationError, model_validator

from schemas.models.base import AvroInt, AvroLong, AvroRecord, Currency, Id, TimestampMillis
from schemas.models.enums import CollectionsCaseStatus, CommandType, SubscriptionStatus
from schemas.models.events import InvoiceLine
from schemas.names import ERP_NAMESPACE

__all__ = [
    "PAYLOAD_TYPES",
    "CollectionsCase",
    "ErpCommand",
    "Invoice",
    "JournalEntry",
    "JournalLine",
    "Payload",
    "PaymentApplication",
    "RevenueSchedule",
    "ScheduleEntry",
    "Subscription",
]

logger = logging.getLogger(__name__)

Month = Annotated[str, StringConstraints(pattern=r"^\d{4}-(0[1-9]|1[0-2])$")]


class JournalLine(AvroRecord):
    """One debit or credit line of a journal entry."""

    avro_name: ClassVar[str] = "JournalLine"

    account: str
    debit_minor: AvroLong
    credit_minor: AvroLong
    memo: str | None = None


class JournalEntry(AvroRecord):
    """A journal entry; the command builder guarantees it balances before it is emitted."""

    avro_name: ClassVar[str] = "JournalEntry"

    entry_id: Id
    posting_date: date
    currency: Currency
    description: str
    lines: tuple[JournalLine, ...]


class Invoice(AvroRecord):
    """Post an invoice to the ERP's receivables."""

    avro_name: ClassVar[str] = "Invoice"

    invoice_id: Id
    subscription_id: Id
    currency: Currency
    issued_on: date
    due_date: date
    total_minor: AvroLong
    lines: tuple[InvoiceLine, ...]


class PaymentApplication(AvroRecord):
    """Apply a received payment to an invoice; the excess is credited to the customer."""

    avro_name: ClassVar[str] = "PaymentApplication"

    payment_id: Id
    invoice_id: Id
    currency: Currency
    amount_minor: AvroLong
    applied_minor: AvroLong
    excess_minor: AvroLong
    received_at: TimestampMillis


class ScheduleEntry(AvroRecord):
    """Revenue recognised in one calendar month (``YYYY-MM``)."""

    avro_name: ClassVar[str] = "ScheduleEntry"

    month: Month
    recognition_date: date
    amount_minor: AvroLong


class RevenueSchedule(AvroRecord):
    """The recognition plan of one line."""

    avro_name: ClassVar[str] = "RevenueSchedule"

    schedule_id: Id
    subscription_id: Id
    invoice_id: Id | None = None
    line_id: Id
    currency: Currency
    total_minor: AvroLong
    entries: tuple[ScheduleEntry, ...]


class Subscription(AvroRecord):
    """Create or update the ERP's copy of a subscription; the term is [term_start, term_end)."""

    avro_name: ClassVar[str] = "Subscription"

    subscription_id: Id
    order_id: Id | None = None
    status: SubscriptionStatus
    currency: Currency
    term_start: date
    term_end: date
    version: AvroLong


class CollectionsCase(AvroRecord):
    """Open or escalate a collections case after a failed payment."""

    avro_name: ClassVar[str] = "CollectionsCase"

    case_id: Id
    invoice_id: Id
    payment_id: Id
    status: CollectionsCaseStatus
    attempt: AvroInt
    amount_minor: AvroLong
    currency: Currency
    reason: str


Payload = JournalEntry | Invoice | PaymentApplication | RevenueSchedule | Subscription | CollectionsCase
"""Any ERP command payload, in the order of the Avro union."""

PAYLOAD_TYPES: Mapping[CommandType, type[AvroRecord]] = {
    CommandType.JOURNAL_ENTRY: JournalEntry,
    CommandType.INVOICE: Invoice,
    CommandType.PAYMENT_APPLICATION: PaymentApplication,
    CommandType.REVENUE_SCHEDULE: RevenueSchedule,
    CommandType.SUBSCRIPTION: Subscription,
    CommandType.COLLECTIONS_CASE: CollectionsCase,
}
"""The payload record each command type carries."""


def _validate_payload(payload_type: type[AvroRecord], body: Mapping[str, Any]) -> AvroRecord:
    try:
        return payload_type.model_validate(dict(body))
    except ValidationError as exc:
        # Re-raised as a ValueError so pydantic reports it under ``payload`` of the command.
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ValueError(f"payload is not a valid {payload_type.avro_name}: {problems}") from None


_TYPE_OF_PAYLOAD = {payload: command_type for command_type, payload in PAYLOAD_TYPES.items()}
_PAYLOAD_BY_NAME = {payload.avro_name: payload for payload in PAYLOAD_TYPES.values()}


class ErpCommand(AvroRecord):
    """One ERP posting command; the sink applies each ``command_id`` exactly once.

    ``command_type`` may be left out when ``payload`` is a model: it is derived from the payload.
    """

    avro_name: ClassVar[str] = "ErpCommand"
    avro_namespace: ClassVar[str | None] = ERP_NAMESPACE

    command_id: Id
    command_type: CommandType
    source_event_id: Id
    correlation_id: str
    customer_id: Id
    legal_entity: str
    issued_at: TimestampMillis
    payload: Payload

    @model_validator(mode="before")
    @classmethod
    def _resolve_payload(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        payload = data.get("payload")
        if isinstance(payload, tuple) and len(payload) == 2:
            # fastavro's reader with return_record_name=True names the union branch explicitly.
            name, body = payload
            payload_type = _PAYLOAD_BY_NAME.get(str(name).rsplit(".", 1)[-1])
            if payload_type is None:
                raise ValueError(f"payload record {name!r} is not an ERP command payload")
            data["payload"] = _validate_payload(payload_type, body) if isinstance(body, Mapping) else body
        elif isinstance(payload, Mapping) and "command_type" in data:
            # A plain dict (the default of fastavro and confluent's deserializer): the command type
            # says which branch it is, rather than guessing from the field names.
            payload_type = PAYLOAD_TYPES.get(CommandType(data["command_type"]))
            if payload_type is not None:
                data["payload"] = _validate_payload(payload_type, payload)
        if "command_type" not in data and isinstance(data.get("payload"), AvroRecord):
            data["command_type"] = _TYPE_OF_PAYLOAD.get(type(data["payload"]), CommandType.UNKNOWN)
        return data

    @model_validator(mode="after")
    def _payload_matches_type(self) -> Self:
        expected = PAYLOAD_TYPES.get(self.command_type)
        if expected is not None and not isinstance(self.payload, expected):
            raise ValueError(
                f"command_type {self.command_type.value} needs payload {expected.avro_name}, "
                f"got {type(self.payload).avro_name}"
            )
        return self

    def to_avro(self) -> dict[str, Any]:
        """Return the record for fastavro, the payload as an explicit ``(full_name, dict)`` branch."""
        record = super().to_avro()
        record["payload"] = (f"{ERP_NAMESPACE}.{self.payload.avro_name}", record["payload"])
        return record
