"""What the workers made of a simulation, in the shape of the simulator's ``summary.json``.

Read from the output topics only (commands, exceptions, dead letters), as the ledger and the
finance team would see them: commands are kept once per ``command_id`` (a repeat must be
identical), mismatch exceptions by their last revision per (subscription, metric, period).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from processors.rules.recognition import CASH
from schemas.models import ErpCommand, Invoice, JournalEntry, PaymentApplication
from schemas.names import STAGES
from tests.integration.processors.harness import Harness

REVENUE_ACCOUNT_CLASS = "4"
"""Every revenue account, the defaults and the products' own (the chart's class 4)."""


@dataclass
class Outcome:
    commands: dict[str, ErpCommand]
    command_values: dict[str, bytes]
    repeated_commands: int
    dead_letters: Counter[tuple[str, str]]
    """(stage, reason) → distinct records dead-lettered."""
    exceptions_by_reason: Counter[str]
    discount_findings: Counter[str]
    """source event id → DISCOUNT_NOT_APPROVED exceptions (one per line)."""
    mismatches: dict[tuple[str, str, str], tuple[int, int]]

    def invoices(self) -> dict[str, dict[str, dict[str, int]]]:
        result: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
        for command in self.commands.values():
            if isinstance(command.payload, Invoice):
                totals = result[command.legal_entity].setdefault(
                    command.payload.currency, {"count": 0, "total_minor": 0}
                )
                totals["count"] += 1
                totals["total_minor"] += command.payload.total_minor
        return dict(result)

    def revenue(self) -> dict[str, dict[str, dict[str, dict[str, int]]]]:
        result: Any = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
        for command in self.commands.values():
            entry = command.payload
            if not isinstance(entry, JournalEntry):
                continue
            month = f"{entry.posting_date.year:04d}-{entry.posting_date.month:02d}"
            for line in entry.lines:
                if line.account.startswith(REVENUE_ACCOUNT_CLASS):
                    months = result[command.legal_entity][entry.currency][month]
                    months[line.account] = months.get(line.account, 0) + line.credit_minor - line.debit_minor
        return _plain(result)

    def cash(self) -> dict[str, dict[str, dict[str, int]]]:
        result: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
        for command in self.commands.values():
            if isinstance(command.payload, PaymentApplication):
                totals = result[command.legal_entity].setdefault(
                    command.payload.currency, {"payments": 0, "total_minor": 0}
                )
                totals["payments"] += 1
            if isinstance(command.payload, JournalEntry):
                for line in command.payload.lines:
                    if line.account == CASH:
                        totals = result[command.legal_entity].setdefault(
                            command.payload.currency, {"payments": 0, "total_minor": 0}
                        )
                        totals["total_minor"] += line.debit_minor - line.credit_minor
        return dict(result)


def _plain(tree: Any) -> Any:
    return {key: _plain(value) for key, value in tree.items()} if isinstance(tree, dict) else tree


def read_outcome(harness: Harness) -> Outcome:
    commands: dict[str, ErpCommand] = {}
    values: dict[str, bytes] = {}
    repeated = 0
    for message in harness.read(harness.catalog.commands_topic):
        value = message.value() or b""
        command = harness.serde.decode_model(value, ErpCommand)
        assert isinstance(command, ErpCommand)
        if command.command_id in commands:
            repeated += 1
            assert commands[command.command_id] == command, f"command {command.command_id} differs on repeat"
            continue
        commands[command.command_id] = command
        values[command.command_id] = value
    # Dead letters are delivered at least once: after a crash the same record may be dead-lettered
    # again. Its source coordinates identify it.
    letters: set[tuple[str, str, str, int, int]] = set()
    for stage in STAGES:
        for letter in harness.dead_letters(stage):
            source = letter.source
            letters.add(
                (
                    letter.failure.stage,
                    letter.failure.reason_code,
                    source.topic,
                    source.partition,
                    source.offset,
                )
            )
    dead: Counter[tuple[str, str]] = Counter((stage, reason) for stage, reason, *_ in letters)
    by_reason: Counter[str] = Counter()
    discounts: Counter[str] = Counter()
    mismatches: dict[tuple[str, str, str], tuple[int, int]] = {}
    seen_ids: set[str] = set()
    for exception in harness.exceptions():
        if exception.exception_id in seen_ids or not exception.raises:
            continue
        seen_ids.add(exception.exception_id)
        by_reason[exception.reason_code.value] += 1
        if exception.reason_code.value == "DISCOUNT_NOT_APPROVED":
            discounts[exception.source_event_id] += 1
        if exception.reason_code.value == "USAGE_BILLING_MISMATCH":
            key = (exception.subscription_id or "", exception.metric or "", exception.period or "")
            mismatches[key] = (exception.quantity_difference or 0, exception.amount_difference_minor or 0)
    standing = {key: value for key, value in mismatches.items() if value[0] != 0}
    return Outcome(commands, values, repeated, dead, by_reason, discounts, standing)
