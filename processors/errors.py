"""Errors raised by the processors: rule inputs outside a rule's domain and accounting defects.

A rule's error is the record's fault: it becomes a dead letter of the stage that raised it (the
record is kept untouched and can be replayed once the cause is fixed). Undelivered outputs and
configurations the broker cannot serve are not: they stop the worker
(``processors/engine/failures.py``).
"""

from __future__ import annotations

__all__ = [
    "DependencyMissingError",
    "DuplicateIdConflictError",
    "InvalidPeriodError",
    "InvalidRetryRecordError",
    "MasterKeyError",
    "MissingAmountError",
    "OutputDeliveryError",
    "ProcessingError",
    "RuleInputError",
    "UnbalancedEntryError",
    "UnpostableLineError",
    "WorkerConfigError",
]


class ProcessingError(Exception):
    """Root of every error the processors raise; its message is one line a user can act on."""


class RuleInputError(ProcessingError, ValueError):
    """Raised when a rule gets input outside its domain (e.g. weights that sum to zero)."""


class InvalidPeriodError(RuleInputError):
    """Raised when a service period or term is empty or reversed (end on or before start)."""

    def __init__(self, start: object, end_exclusive: object) -> None:
        super().__init__(
            f"period [{start}, {end_exclusive}) is empty: the end date (exclusive) must be after the start;"
            " correct it with `revstream dlq replay <id> --patch FILE`, or at its source and publish it again"
        )
        self.start = start
        self.end_exclusive = end_exclusive


class MissingAmountError(RuleInputError):
    """Raised when an amount needed to post (e.g. a services milestone's) is neither given nor known."""


class UnpostableLineError(RuleInputError):
    """Raised when a line's kind has no posting rule (``UNKNOWN``): there is no account to post it to."""


class UnbalancedEntryError(ProcessingError):
    """Raised when a journal entry's debits and credits differ; the entry is a defect, never posted."""

    def __init__(self, entry_id: str, currency: str, debit_minor: int, credit_minor: int) -> None:
        super().__init__(
            f"journal entry {entry_id} does not balance in {currency}: debits {debit_minor} != credits"
            f" {credit_minor} (minor units); the source event is dead-lettered: fix the cause, then"
            " `revstream dlq replay --reason UNBALANCED_ENTRY`"
        )
        self.entry_id = entry_id
        self.currency = currency
        self.debit_minor = debit_minor
        self.credit_minor = credit_minor


class OutputDeliveryError(ProcessingError):
    """Raised when a worker's outputs (commands, exceptions, dead letters, changelogs) were not delivered."""


class WorkerConfigError(ProcessingError):
    """Raised when a worker cannot start with its settings (e.g. a guarantee the broker cannot give)."""


class DuplicateIdConflictError(ProcessingError):
    """Raised (as a dead-letter cause) when an event id comes back with a different payload."""


class DependencyMissingError(ProcessingError):
    """Raised (as a dead-letter cause) when master data or an earlier event never arrived in time."""


class MasterKeyError(ProcessingError):
    """Raised for a master-data record whose key is missing or does not name the record's own id."""


class InvalidRetryRecordError(ProcessingError):
    """Raised (as a dead-letter cause) when a record on the retry topic lacks its retry headers."""
