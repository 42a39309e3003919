"""Errors of the dead-letter tool; each message is one line an operator can act on."""

from __future__ import annotations

from connectors.errors import ConnectorError

__all__ = [
    "DlqError",
    "EmptySelectionError",
    "PatchError",
    "ReplayError",
    "UnknownDeadLetterError",
]


class DlqError(ConnectorError):
    """Root of the dead-letter tool's errors."""


class UnknownDeadLetterError(DlqError):
    """Raised when an id does not name a dead letter (malformed, or no record at those coordinates)."""


class EmptySelectionError(DlqError):
    """Raised when the filters select no dead letter (nothing would be replayed or purged)."""


class PatchError(DlqError):
    """Raised when a merge patch is not JSON, or its result breaks the schema or the model."""


class ReplayError(DlqError):
    """Raised when records or markers could not be delivered (the run can be started again)."""
