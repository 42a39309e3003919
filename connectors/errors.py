"""Errors raised by the connectors (the PostgreSQL ledger, its migrations and the ERP sink)."""

from __future__ import annotations

__all__ = [
    "CommandRejectedError",
    "ConnectorError",
    "LedgerUnavailableError",
    "MigrationError",
    "SchemaNotCurrentError",
    "SinkError",
]


class ConnectorError(Exception):
    """Root of every error the connectors raise; its message is one line a user can act on."""


class MigrationError(ConnectorError):
    """Raised when a ledger migration fails or an applied one was changed after it was applied."""


class SchemaNotCurrentError(ConnectorError):
    """Raised when the ledger database lacks migrations this version needs."""


class LedgerUnavailableError(ConnectorError):
    """Raised when the ledger database cannot be reached (retryable: nothing was applied)."""


class SinkError(ConnectorError):
    """Raised when the sink cannot go on (consumer or dead-letter producer failure)."""


class CommandRejectedError(ConnectorError):
    """Raised when the database rejects one ERP command (constraint or bad data); it is dead-lettered.

    Carries the Kafka coordinates of the command and the reason code written to the dead letter.
    """

    def __init__(
        self, message: str, reason_code: str, topic: str = "", partition: int = -1, offset: int = -1
    ) -> None:
        """Describe the rejection of the command read at ``topic``/``partition``/``offset``."""
        super().__init__(message)
        self.reason_code = reason_code
        self.topic = topic
        self.partition = partition
        self.offset = offset
