"""Stages 5 and 6 as state transitions: reconciliation and recognition over the worker's tables.

Each function takes an event and a :class:`StateAccess` (reads see this batch's earlier updates)
and returns what to emit and what to store, without storing it: the pipeline applies a record's
updates only when every stage of that record succeeded. Every update is idempotent (usage counted
once per source offset, invoice lines once per line, a payment's open amount remembered by payment
id), so re-processing a record after a crash converges to the same state.

Reconciliation counts per record and reports per batch: :func:`count_usage_and_billing` lists the
keys a record changed, and :mod:`processors.stages.mismatches` reports each touched key once when
the batch's records are done, so a batch raises at most one mismatch revision per key (its final
standing difference).

Keys: ``reconcile`` table by (subscription, metric, period); ``contracts`` table ``inv:<invoice id>`` (what
a payment is applied against), ``sub:<subscription id>`` (its schedule ids, order lines' products,
invoiced services lines and the re-spreads it received: for milestones and re-spreads) and
``sch:<schedule id>`` (a revenue schedule in force, with its invoiced plan and accounts).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from pydantic import BaseModel, ConfigDict

from processors.rules.commands import (
    invoice_posted_commands,
    invoice_schedules,
    payment_failed_commands,
    payment_received_commands,
    service_activated_commands,
)
from processors.rules.contracts import (
    Respread,
    contract_renewed_commands,
    order_accepted_commands,
    respread_of,
    respread_schedule,
)
from processors.rules.recognition import AccountsOf, TrackedSchedule, default_accounts
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
    "DEPENDENCY_REASONS",
    "CONTRACTS",
    "RECON",
    "InvoiceState",
    "StateAccess",
    "SubscriptionState",
    "Transition",
    "dependency_reason",
    "missing_dependencies",
    "recognise",
    "count_usage_and_billing",
    "load_recon",
    "recon_key",
]

logger = logging.getLogger(__name__)

RECON = "reconcile"
CONTRACTS = "contracts"
"""The table of what later events of a customer need from earlier ones: invoices, subscriptions,
revenue schedules (here) and discount holds (:mod:`processors.stages.holds`)."""

INVOICE: Final = "invoice"
ORDER_LINE: Final = "order-line"
INVOICED_SERVICES: Final = "invoiced-services"
MASTER_DATA_MISSING: Final = "MASTER_DATA_MISSING"
DEPENDENCY_REASONS: Final[Mapping[str, str]] = {
    INVOICE: "INVOICE_NOT_FOUND",
    ORDER_LINE: "ORDER_LINE_NOT_FOUND",
    INVOICED_SERVICES: "INVOICED_SERVICES_NOT_FOUND",
}
"""Dead-letter reason per kind of missing earlier event (anything else is master data)."""

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
    """What later events of a subscription need from earlier ones.

    The ids of its revenue schedules (each stored under its own key, so an invoice adds its
    schedules without reading and rewriting every earlier one; only a re-spread reads them all),
    its order lines' products (a services milestone names its order line), its invoiced services
    lines keyed by invoice *and* line (two invoices may reuse line ids), and every re-spread it
    received (applied again to schedules whose invoice arrives later).
    """

    # Ignored, not refused: a store written before a field was retired still loads.
    model_config = ConfigDict(frozen=True, extra="ignore")

    schedule_ids: tuple[str, ...] = ()
    order_lines: Mapping[str, str] = {}
    """order line id → product id."""
    invoiced_services: Mapping[str, tuple[str | None, int]] = {}
    """``<invoice id>/<line id>`` → (product id, amount) of each services line invoiced."""
    respreads: tuple[Respread, ...] = ()

    def services_invoiced_for(self, product_id: str) -> int | None:
        """Return what was invoiced on services lines of ``product_id`` (``None``: nothing yet)."""
        amounts = [amount for product, amount in self.invoiced_services.values() if product == product_id]
        return sum(amounts) if amounts else None


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
        raw = read(CONTRACTS, _schedule_key(schedule_id))
        if raw is not None:
            schedules.append(TrackedSchedule.model_validate_json(raw))
    return schedules


def load_recon(read: StateAccess, key: ReconKey) -> ReconState | None:
    """Return the stored reconciliation state of ``key``, or ``None``."""
    raw = read(RECON, recon_key(key))
    return ReconState.model_validate_json(raw) if raw is not None else None


def _load_invoice(read: StateAccess, invoice_id: str) -> InvoiceState | None:
    raw = read(CONTRACTS, _invoice_key(invoice_id))
    return InvoiceState.model_validate_json(raw) if raw is not None else None


def _load_subscription(read: StateAccess, subscription_id: str) -> SubscriptionState:
    raw = read(CONTRACTS, _subscription_key(subscription_id))
    return SubscriptionState.model_validate_json(raw) if raw is not None else SubscriptionState()


def count_usage_and_billing(
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


def dependency_reason(missing: str) -> str:
    """Return the dead-letter reason of an earlier event that never arrived (``invoice:I1`` → ...)."""
    return DEPENDENCY_REASONS.get(missing.split(":", 1)[0], MASTER_DATA_MISSING)


def missing_dependencies(event: EventEnvelope, read: StateAccess) -> list[str]:
    """Return what earlier events this one needs and the state lacks (``invoice:<id>``, ...).

    A payment is applied against its invoice. A services milestone that names its order line
    needs the order (its line's product decides the accounts) and, without an amount of its own,
    the services invoiced for that product (DOMAIN.md).
    """
    if isinstance(event, PaymentReceived) and _load_invoice(read, event.invoice_id) is None:
        return [f"{INVOICE}:{event.invoice_id}"]
    if (
        isinstance(event, ServiceActivated)
        and event.line_kind is ActivationKind.SERVICES_MILESTONE
        and event.line_id is not None
    ):
        subscription = _load_subscription(read, event.subscription_id)
        product_id = subscription.order_lines.get(event.line_id)
        if product_id is None:
            return [f"{ORDER_LINE}:{event.subscription_id}/{event.line_id}"]
        if event.milestone_amount_minor is None and subscription.services_invoiced_for(product_id) is None:
            return [f"{INVOICED_SERVICES}:{event.subscription_id}/{product_id}"]
    return []


def recognise(
    event: EventEnvelope, read: StateAccess, out: Transition, accounts_of: AccountsOf = default_accounts
) -> None:
    """Build the event's ERP commands and the contract state they leave behind.

    ``accounts_of`` gives a line's GL accounts from its product (the price book).

    Raises:
        ProcessingError: from the rules (unbalanced entry, empty period, missing amount, ...).
    """
    if isinstance(event, InvoicePosted):
        _invoice(event, read, out, accounts_of)
    elif isinstance(event, PaymentReceived):
        _payment(event, read, out)
    elif isinstance(event, ServiceActivated):
        _milestone(event, read, out, accounts_of)
    elif isinstance(event, PaymentFailed):
        out.commands.extend(payment_failed_commands(event))
    elif isinstance(event, OrderAccepted):
        out.commands.extend(order_accepted_commands(event))
        _remember_order_lines(event, read, out)
    elif isinstance(event, ContractRenewed):
        out.commands.extend(contract_renewed_commands(event))
        _remember_order_lines(event, read, out)
    elif isinstance(event, ContractAmended | RevenueScheduleAdjusted):
        _respread(event, read, out)


def _store_subscription(subscription_id: str, state: SubscriptionState, out: Transition) -> None:
    out.updates.append((CONTRACTS, _subscription_key(subscription_id), state.model_dump_json().encode()))


def _store_schedule(tracked: TrackedSchedule, out: Transition) -> None:
    out.updates.append(
        (CONTRACTS, _schedule_key(tracked.schedule.schedule_id), tracked.model_dump_json().encode())
    )


def _remember_order_lines(event: OrderAccepted | ContractRenewed, read: StateAccess, out: Transition) -> None:
    subscription = _load_subscription(read, event.subscription_id)
    lines = {**subscription.order_lines, **{line.line_id: line.product_id for line in event.lines}}
    if lines != subscription.order_lines:
        _store_subscription(
            event.subscription_id, subscription.model_copy(update={"order_lines": lines}), out
        )


def _milestone(event: ServiceActivated, read: StateAccess, out: Transition, accounts_of: AccountsOf) -> None:
    subscription = _load_subscription(read, event.subscription_id)
    product_id = subscription.order_lines.get(event.line_id) if event.line_id is not None else None
    if product_id is None:
        out.commands.extend(service_activated_commands(event))
        return
    invoiced = subscription.services_invoiced_for(product_id)
    accounts = accounts_of(product_id, LineKind.SERVICES)
    out.commands.extend(service_activated_commands(event, invoiced, accounts))


def _invoice(event: InvoicePosted, read: StateAccess, out: Transition, accounts_of: AccountsOf) -> None:
    commands = invoice_posted_commands(event, accounts_of)
    previous = _load_invoice(read, event.invoice_id)
    invoice = InvoiceState(
        invoice_id=event.invoice_id,
        currency=event.currency,
        total_minor=event.total_minor,
        payments=previous.payments if previous is not None else {},
    )
    out.updates.append((CONTRACTS, _invoice_key(event.invoice_id), invoice.model_dump_json().encode()))
    subscription = _load_subscription(read, event.subscription_id)
    schedule_ids = list(subscription.schedule_ids)
    new: list[TrackedSchedule] = []
    for tracked in invoice_schedules(event, accounts_of):
        # Keep a version already re-spread by an amendment: the invoice is the same one posted again.
        if tracked.schedule.schedule_id not in schedule_ids:
            schedule_ids.append(tracked.schedule.schedule_id)
            new.append(tracked)
    out.commands.extend(commands)
    # Re-spreads that arrived before this invoice apply to it now. Its own commands stay the same
    # bytes whatever arrived before; each re-spread's commands follow, with the ids they would have
    # had if it had arrived after the invoice.
    for tracked in new:
        respread_commands, respread = respread_schedule(tracked, subscription.respreads)
        out.commands.extend(respread_commands)
        _store_schedule(respread, out)
    services = dict(subscription.invoiced_services)
    for line in event.lines:
        if line.kind is LineKind.SERVICES:
            services[f"{event.invoice_id}/{line.line_id}"] = (line.product_id, line.amount_minor)
    updated = subscription.model_copy(
        update={"schedule_ids": tuple(schedule_ids), "invoiced_services": services}
    )
    _store_subscription(event.subscription_id, updated, out)


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
        out.updates.append((CONTRACTS, _invoice_key(event.invoice_id), updated.model_dump_json().encode()))


def _respread(event: ContractAmended | RevenueScheduleAdjusted, read: StateAccess, out: Transition) -> None:
    subscription = _load_subscription(read, event.subscription_id)
    received = respread_of(event)
    respreads = subscription.respreads
    if all(item.event_id != received.event_id for item in respreads):
        # Kept even when no schedule is in force yet: an invoice that arrives later gets it then.
        respreads = (*respreads, received)
        _store_subscription(
            event.subscription_id, subscription.model_copy(update={"respreads": respreads}), out
        )
    for tracked in _load_schedules(read, subscription):
        if tracked.schedule.subscription_id != event.subscription_id:
            continue
        commands, respread = respread_schedule(tracked, respreads)
        out.commands.extend(commands)
        if respread != tracked:
            _store_schedule(respread, out)
