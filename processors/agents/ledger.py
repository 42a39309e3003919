"""Stages 5 and 6 as state transitions: reconciliation and recognition over the worker's tables.

Each function takes an event and a :class:`StateAccess` (reads see this batch's earlier updates)
and returns what to emit and what to store, without storing it: the pipeline applies a record's
updates only when every stage of that record succeeded. Every update is idempotent (usage counted
once per source offset, invoice lines once per line, a payment's open amount remembered by payment
id), so re-processing a record after a crash converges to the same state.

Reconciliation counts per record and reports per batch: :func:`reconcile` lists the keys a record
changed, and :mod:`processors.agents.recon` reports each touched key once when the batch's records
are done, so a batch raises at most one mismatch revision per key (its final standing difference).

Keys: ``recon`` table by (subscription, metric, period); ``ledger`` table ``inv:<invoice id>`` (what
a payment is applied against), ``sub:<subscription id>`` (its schedule ids and services lines, for
milestones and re-spreads) and ``sch:<schedule id>`` (a revenue schedule in force).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict

from processors.rules.commands import (
    invoice_posted_commands,
    invoice_schedules,
    payment_failed_commands,
    payment_received_commands,
    service_activated_commands,
)
from processors.rules.contracts import (
    contract_amended_commands,
    contract_renewed_commands,
    order_accepted_commands,
    schedule_adjusted_commands,
)
from processors.rules.recognition import TrackedSchedule
from processors.rules.reconcile import (
    ReconKey,
    ReconState,
    SourcePosition,
    apply_invoice_line,
    apply_usage,
    departs,
    usage_key,
    usage_lines,
)
from schemas.models import (
    ActivationKind,
    BusinessException,
    ContractAmended,
    ContractRenewed,
    ErpCommand,
    EventEnvelope,
    InvoicePosted,
    LineKind,
    OrderAccepted,
    PaymentFailed,
    PaymentReceived,
    RevenueScheduleAdjusted,
    ServiceActivated,
    UsageRecorded,
)

__all__ = [
    "LEDGER",
    "RECON",
    "InvoiceState",
    "StateAccess",
    "SubscriptionState",
    "Transition",
    "missing_dependencies",
    "recognise",
    "reconcile",
    "load_recon",
    "recon_key",
]

logger = logging.getLogger(__name__)

RECON = "reconcile"
LEDGER = "ledger"

StateAccess = Callable[[str, bytes], bytes | None]
"""``(table, key) → stored bytes`` for the partition being processed."""


class InvoiceState(BaseModel):
    """What a payment is applied against, and the open amount each payment saw."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    invoice_id: str
    currency: str
    total_minor: int
    payments: Mapping[str, tuple[int, int]] = {}
    """payment id → (open amount before it, amount applied)."""


class SubscriptionState(BaseModel):
    """The ids of a subscription's revenue schedules and its invoiced services lines (by line id).

    Each schedule is stored under its own key, so an invoice adds its schedules without reading
    and rewriting every earlier one; only a re-spread reads them all.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schedule_ids: tuple[str, ...] = ()
    services: Mapping[str, int] = {}


@dataclass
class Transition:
    """What one record emits and stores."""

    commands: list[ErpCommand] = field(default_factory=list)
    exceptions: list[BusinessException] = field(default_factory=list)
    updates: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    """(table, key, value)."""
    touched: list[tuple[ReconKey, bool]] = field(default_factory=list)
    """Reconciliation keys whose counts changed (reported at the end of the batch), each with
    whether its standing difference then departed from the one reported (``departs``)."""


def recon_key(key: ReconKey) -> bytes:
    """Return the table key of a reconciliation key."""
    return "\x1f".join(key).encode()


def _invoice_key(invoice_id: str) -> bytes:
    return b"inv:" + invoice_id.encode()


def _subscription_key(subscription_id: str) -> bytes:
    return b"sub:" + subscription_id.encode()


def _schedule_key(schedule_id: str) -> bytes:
    return b"sch:" + schedule_id.encode()


def _load_schedules(read: StateAccess, subscription: SubscriptionState) -> list[TrackedSchedule]:
    schedules = []
    for schedule_id in subscription.schedule_ids:
        raw = read(LEDGER, _schedule_key(schedule_id))
        if raw is not None:
            schedules.append(TrackedSchedule.model_validate_json(raw))
    return schedules


def load_recon(read: StateAccess, key: ReconKey) -> ReconState | None:
    """Return the stored reconciliation state of ``key``, or ``None``."""
    raw = read(RECON, recon_key(key))
    return ReconState.model_validate_json(raw) if raw is not None else None


def _load_invoice(read: StateAccess, invoice_id: str) -> InvoiceState | None:
    raw = read(LEDGER, _invoice_key(invoice_id))
    return InvoiceState.model_validate_json(raw) if raw is not None else None


def _load_subscription(read: StateAccess, subscription_id: str) -> SubscriptionState:
    raw = read(LEDGER, _subscription_key(subscription_id))
    return SubscriptionState.model_validate_json(raw) if raw is not None else SubscriptionState()


def reconcile(
    event: EventEnvelope,
    read: StateAccess,
    position: SourcePosition,
    retried: bool,
    tolerance: int,
    out: Transition,
) -> None:
    """Count usage and invoice usage lines into their reconciliation states; list the keys changed.

    ``position`` is where the record was first read and ``retried`` whether it comes back
    through the retry topic (see :func:`processors.rules.reconcile.apply_usage`).

    Raises:
        RuleInputError: from the rules (a state under another key, a line that is not usage, a
            negative tolerance).
    """
    if isinstance(event, UsageRecorded):
        state, counted = apply_usage(load_recon(read, usage_key(event)), event, position, retried=retried)
        if counted:
            out.updates.append((RECON, recon_key(state.key), state.model_dump_json().encode()))
            out.touched.append((state.key, departs(state, tolerance)))
    elif isinstance(event, InvoicePosted):
        states: dict[ReconKey, ReconState] = {}
        for key, line in usage_lines(event):
            current = states[key] if key in states else load_recon(read, key)
            updated, changed = apply_invoice_line(current, line, event)
            if changed:
                states[key] = updated
        for key, updated_state in states.items():
            out.updates.append((RECON, recon_key(key), updated_state.model_dump_json().encode()))
            out.touched.append((key, departs(updated_state, tolerance)))


def missing_dependencies(event: EventEnvelope, read: StateAccess) -> list[str]:
    """Return what earlier events this one needs and the state lacks (``invoice:<id>``, ...).

    A payment is applied against its invoice; a services milestone without an amount takes the
    amount of its invoiced services line.
    """
    if isinstance(event, PaymentReceived) and _load_invoice(read, event.invoice_id) is None:
        return [f"invoice:{event.invoice_id}"]
    if (
        isinstance(event, ServiceActivated)
        and event.line_kind is ActivationKind.SERVICES_MILESTONE
        and event.milestone_amount_minor is None
        and (event.line_id or "") not in _load_subscription(read, event.subscription_id).services
    ):
        return [f"invoice-line:{event.subscription_id}/{event.line_id}"]
    return []


def recognise(event: EventEnvelope, read: StateAccess, out: Transition) -> None:
    """Build the event's ERP commands and the ledger state they leave behind.

    Raises:
        ProcessingError: from the rules (unbalanced entry, empty period, missing amount, ...).
    """
    if isinstance(event, InvoicePosted):
        _invoice(event, read, out)
    elif isinstance(event, PaymentReceived):
        _payment(event, read, out)
    elif isinstance(event, ServiceActivated):
        services = _load_subscription(read, event.subscription_id).services
        out.commands.extend(service_activated_commands(event, services.get(event.line_id or "")))
    elif isinstance(event, PaymentFailed):
        out.commands.extend(payment_failed_commands(event))
    elif isinstance(event, OrderAccepted):
        out.commands.extend(order_accepted_commands(event))
    elif isinstance(event, ContractRenewed):
        out.commands.extend(contract_renewed_commands(event))
    elif isinstance(event, ContractAmended | RevenueScheduleAdjusted):
        _respread(event, read, out)


def _invoice(event: InvoicePosted, read: StateAccess, out: Transition) -> None:
    out.commands.extend(invoice_posted_commands(event))
    previous = _load_invoice(read, event.invoice_id)
    invoice = InvoiceState(
        invoice_id=event.invoice_id,
        currency=event.currency,
        total_minor=event.total_minor,
        payments=previous.payments if previous is not None else {},
    )
    out.updates.append((LEDGER, _invoice_key(event.invoice_id), invoice.model_dump_json().encode()))
    subscription = _load_subscription(read, event.subscription_id)
    schedule_ids = list(subscription.schedule_ids)
    for tracked in invoice_schedules(event):
        schedule_id = tracked.schedule.schedule_id
        # Keep a version already re-spread by an amendment: the invoice is the same one posted again.
        if schedule_id not in schedule_ids:
            schedule_ids.append(schedule_id)
            out.updates.append((LEDGER, _schedule_key(schedule_id), tracked.model_dump_json().encode()))
    services = dict(subscription.services)
    for line in event.lines:
        if line.kind is LineKind.SERVICES:
            services[line.line_id] = line.amount_minor
    updated = SubscriptionState(schedule_ids=tuple(schedule_ids), services=services)
    out.updates.append((LEDGER, _subscription_key(event.subscription_id), updated.model_dump_json().encode()))


def _payment(event: PaymentReceived, read: StateAccess, out: Transition) -> None:
    invoice = _load_invoice(read, event.invoice_id)
    if invoice is None:
        # The pipeline parks payments whose invoice is unknown; applying against nothing open
        # credits the whole amount to the customer (what a replay after the invoice was lost does).
        out.commands.extend(payment_received_commands(event, 0))
        return
    seen = invoice.payments.get(event.payment_id)
    if seen is not None:
        open_before = seen[0]
    else:
        open_before = invoice.total_minor - sum(applied for _, applied in invoice.payments.values())
    commands = payment_received_commands(event, open_before)
    out.commands.extend(commands)
    if seen is None:
        applied = min(event.amount_minor, max(open_before, 0))
        payments = {**invoice.payments, event.payment_id: (open_before, applied)}
        updated = invoice.model_copy(update={"payments": payments})
        out.updates.append((LEDGER, _invoice_key(event.invoice_id), updated.model_dump_json().encode()))


def _respread(event: ContractAmended | RevenueScheduleAdjusted, read: StateAccess, out: Transition) -> None:
    subscription = _load_subscription(read, event.subscription_id)
    in_force = _load_schedules(read, subscription)
    if isinstance(event, ContractAmended):
        commands, updated = contract_amended_commands(event, in_force)
    else:
        commands, updated = schedule_adjusted_commands(event, in_force)
    out.commands.extend(commands)
    for tracked in updated:
        key = _schedule_key(tracked.schedule.schedule_id)
        out.updates.append((LEDGER, key, tracked.model_dump_json().encode()))
