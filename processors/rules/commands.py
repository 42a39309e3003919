"""ERP commands per canonical event (DOMAIN.md "Accounting rules"), with deterministic ids.

Each builder takes an event that passed policy and enrichment (plus the little state it needs, as
parameters) and returns its commands in a fixed order. A command's id is derived from the source
event id, the command type and its position in that list; journal entry ids likewise; a revenue
schedule keeps one id per (subscription, invoice, line) across versions, and a collections case
one id per invoice. No clock is read: ``issued_at`` is the event's ``occurred_at`` and a
subscription's ``version`` its epoch milliseconds, so a replay yields identical commands.

Events without commands: ``quote_approved`` (nothing to post) and ``usage_recorded`` (reconciled,
then revenue comes from the usage invoice lines). Subscriptions and re-spreads are in
:mod:`processors.rules.contracts`.
"""

from __future__ import annotations

import logging
from datetime import UTC, date

from processors.errors import MissingAmountError, RuleInputError
from processors.rules.ids import derive_id
from processors.rules.recognition import (
    ACCOUNTS_RECEIVABLE,
    CASH,
    CUSTOMER_CREDITS,
    DEFAULT_ACCOUNTS,
    AccountsOf,
    LineAccounts,
    TrackedSchedule,
    credit,
    debit,
    default_accounts,
    invoice_entry_lines,
    journal_entry,
    line_schedule,
    recognition_lines,
)
from schemas.models import (
    PAYLOAD_TYPES,
    ActivationKind,
    CollectionsCase,
    CollectionsCaseStatus,
    CommandType,
    ErpCommand,
    EventEnvelope,
    Invoice,
    InvoicePosted,
    JournalLine,
    LineKind,
    Payload,
    PaymentApplication,
    PaymentFailed,
    PaymentReceived,
    ServiceActivated,
)

__all__ = [
    "CommandBuilder",
    "case_id",
    "command_id",
    "invoice_posted_commands",
    "invoice_schedules",
    "payment_failed_commands",
    "payment_received_commands",
    "schedule_id",
    "service_activated_commands",
]

logger = logging.getLogger(__name__)

_COMMAND_TYPES = {payload: command_type for command_type, payload in PAYLOAD_TYPES.items()}


def command_id(source_event_id: str, command_type: CommandType, position: int) -> str:
    """Return the id of the command of ``command_type`` at ``position`` among an event's commands."""
    return derive_id("command", source_event_id, command_type.value, position)


def schedule_id(subscription_id: str, invoice_id: str, line_id: str) -> str:
    """Return the id a line's revenue schedule keeps through all its versions."""
    return derive_id("revenue-schedule", subscription_id, invoice_id, line_id)


def case_id(invoice_id: str) -> str:
    """Return the id of the collections case of an invoice (opened, then escalated, in place)."""
    return derive_id("collections-case", invoice_id)


class CommandBuilder:
    """Collects an event's commands in order; a command's position is its index in :attr:`commands`.

    ``scope``, when given, is part of every id too: commands an event causes for one schedule then
    keep their ids whichever event's processing emitted them (a re-spread applied when it arrives,
    or later, when the invoice it changes arrives).
    """

    def __init__(self, event: EventEnvelope, scope: str | None = None) -> None:
        self.event = event
        self.commands: list[ErpCommand] = []
        self._id_base = event.event_id if scope is None else f"{event.event_id}|{scope}"

    def add(self, payload: Payload) -> None:
        """Wrap ``payload`` in the event's next command."""
        command_type = _COMMAND_TYPES[type(payload)]
        self.commands.append(
            ErpCommand(
                command_id=command_id(self._id_base, command_type, len(self.commands)),
                command_type=command_type,
                source_event_id=self.event.event_id,
                correlation_id=self.event.correlation_id,
                customer_id=self.event.customer_id,
                legal_entity=self.event.legal_entity,
                issued_at=self.event.occurred_at,
                payload=payload,
            )
        )

    def add_entry(
        self, posting_date: date, currency: str, description: str, lines: list[JournalLine]
    ) -> None:
        """Add a journal entry (balanced, or refused) unless every line is zero."""
        entry_id = derive_id("journal-entry", self._id_base, len(self.commands))
        entry = journal_entry(entry_id, posting_date, currency, description, lines)
        if entry is not None:
            self.add(entry)


def invoice_schedules(
    event: InvoicePosted, accounts_of: AccountsOf = default_accounts
) -> list[TrackedSchedule]:
    """Return the revenue schedule of each subscription line of the invoice, in line order.

    Each schedule posts to its line's product's accounts (``accounts_of``), fixed at invoicing.

    Raises:
        InvalidPeriodError: when a subscription line's service period is empty or reversed.
    """
    return [
        line_schedule(
            event,
            line,
            schedule_id(event.subscription_id, event.invoice_id, line.line_id),
            accounts_of(line.product_id, line.kind),
        )
        for line in event.lines
        if line.kind is LineKind.SUBSCRIPTION
    ]


def _recognise(out: CommandBuilder, tracked: TrackedSchedule, what: str) -> None:
    schedule = tracked.schedule
    out.add(schedule)
    for entry in schedule.entries:
        out.add_entry(
            entry.recognition_date,
            schedule.currency,
            f"{what} {entry.month}: invoice {schedule.invoice_id} line {schedule.line_id}",
            recognition_lines(entry.amount_minor, memo=schedule.line_id, accounts=tracked.accounts),
        )


def invoice_posted_commands(
    event: InvoicePosted, accounts_of: AccountsOf = default_accounts
) -> list[ErpCommand]:
    """Invoice, its journal entry, then per subscription line its schedule and monthly entries.

    The entry is DR 1200 (total) / CR each line's product account: the deferral of subscription
    and services lines (chart default 2400, 2410), the revenue account of usage lines (4100), 2200
    for tax. Each month of a subscription line is DR deferred / CR revenue of its product (2400 /
    4000 by default), dated the month's last day (months whose share rounds to zero get no entry;
    the schedule still lists them).

    Raises:
        UnbalancedEntryError: when the lines do not sum to the total (policy catches it first).
        UnpostableLineError: when a line has kind ``UNKNOWN``.
        InvalidPeriodError: when a subscription line's service period is empty or reversed.
    """
    out = CommandBuilder(event)
    out.add(
        Invoice(
            invoice_id=event.invoice_id,
            subscription_id=event.subscription_id,
            currency=event.currency,
            issued_on=event.issued_on,
            due_date=event.due_date,
            total_minor=event.total_minor,
            lines=event.lines,
        )
    )
    out.add_entry(
        event.issued_on,
        event.currency,
        f"invoice {event.invoice_id}",
        invoice_entry_lines(event, accounts_of),
    )
    for tracked in invoice_schedules(event, accounts_of):
        _recognise(out, tracked, "subscription revenue")
    return out.commands


def service_activated_commands(
    event: ServiceActivated, services_amount_minor: int | None = None, accounts: LineAccounts | None = None
) -> list[ErpCommand]:
    """Recognise a delivered services milestone: DR deferred / CR revenue, dated the activation day (UTC).

    The amount is the event's ``milestone_amount_minor``, else ``services_amount_minor`` (what was
    invoiced for its order line's product, which the caller knows). ``accounts`` are that product's
    (default 2410 / 4010). A subscription activation posts nothing.

    Raises:
        MissingAmountError: when a milestone carries no amount and none is given.
    """
    if event.line_kind is not ActivationKind.SERVICES_MILESTONE:
        return []
    amount = (
        event.milestone_amount_minor if event.milestone_amount_minor is not None else services_amount_minor
    )
    if amount is None:
        raise MissingAmountError(
            f"services milestone of order {event.order_id} (line {event.line_id}) has no amount and no"
            " invoiced services line matches it; publish the invoice first or send milestone_amount_minor"
        )
    out = CommandBuilder(event)
    memo = event.line_id
    deferred, revenue = accounts or DEFAULT_ACCOUNTS[LineKind.SERVICES]
    out.add_entry(
        event.activated_at.astimezone(UTC).date(),
        event.currency,
        f"services milestone: order {event.order_id} line {event.line_id}",
        [debit(deferred, amount, memo), credit(revenue, amount, memo)],
    )
    return out.commands


def payment_received_commands(event: PaymentReceived, open_amount_minor: int) -> list[ErpCommand]:
    """Apply a payment to its invoice: DR 1000 (received) / CR 1200 (applied) / CR 2300 (excess).

    ``open_amount_minor`` is what the invoice still owed before this payment; whatever exceeds it
    (all of it when nothing is open) is credited to the customer.

    Raises:
        RuleInputError: when the payment amount is negative (policy catches it first).
    """
    if event.amount_minor < 0:
        raise RuleInputError(f"payment {event.payment_id} has a negative amount; it cannot be applied")
    applied = min(event.amount_minor, max(open_amount_minor, 0))
    excess = event.amount_minor - applied
    out = CommandBuilder(event)
    out.add(
        PaymentApplication(
            payment_id=event.payment_id,
            invoice_id=event.invoice_id,
            currency=event.currency,
            amount_minor=event.amount_minor,
            applied_minor=applied,
            excess_minor=excess,
            received_at=event.received_at,
        )
    )
    out.add_entry(
        event.received_at.astimezone(UTC).date(),
        event.currency,
        f"payment {event.payment_id} for invoice {event.invoice_id}",
        [
            debit(CASH, event.amount_minor, event.payment_id),
            credit(ACCOUNTS_RECEIVABLE, applied, event.invoice_id),
            credit(CUSTOMER_CREDITS, excess, event.payment_id),
        ],
    )
    return out.commands


def payment_failed_commands(event: PaymentFailed) -> list[ErpCommand]:
    """Open the invoice's collections case on the first attempt, escalate it on later ones; no entry."""
    out = CommandBuilder(event)
    out.add(
        CollectionsCase(
            case_id=case_id(event.invoice_id),
            invoice_id=event.invoice_id,
            payment_id=event.payment_id,
            status=CollectionsCaseStatus.OPEN if event.attempt <= 1 else CollectionsCaseStatus.ESCALATED,
            attempt=event.attempt,
            amount_minor=event.amount_minor,
            currency=event.currency,
            reason=event.failure_reason,
        )
    )
    return out.commands
