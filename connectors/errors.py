"""Errors raised by the connectors (the PostgreSQL ledger, its migrations and the ERP sink)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "CommandRejectedError",
    "ConnectorError",
    "DeliveryFailedError",
    "EventValidationError",
    "FieldProblem",
    "InputFileError",
    "ProducerError",
    "PublisherClosedError",
    "RecordTooLargeError",
    "SimulationConfigError",
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


@dataclass(frozen=True)
class FieldProblem:
    """One reason an event was refused: the field's dotted path (``lines.0.quantity``) and why."""

    field: str
    reason: str

    def __str__(self) -> str:
        return f"{self.field}: {self.reason}"


class ProducerError(ConnectorError):
    """Root of the producers' errors (SDK publisher, file publisher, HTTP gateway, simulator)."""


class EventValidationError(ProducerError):
    """Raised before anything is sent when an event does not validate; names each bad field."""

    def __init__(self, message: str, problems: tuple[FieldProblem, ...] = ()) -> None:
        """Describe a refused event; ``problems`` lists each bad field and why."""
        super().__init__(message)
        self.problems = problems


class RecordTooLargeError(EventValidationError):
    """Raised before anything is sent when an event's encoded record exceeds the producer's limit.

    ``size`` is the record's bytes (value, key and headers), ``limit`` librdkafka's
    ``message.max.bytes``; the event is valid but cannot be published as it is.
    """

    def __init__(self, message: str, size: int, limit: int) -> None:
        """Describe a record of ``size`` bytes refused against ``limit``."""
        super().__init__(message, (FieldProblem("(record)", message),))
        self.size = size
        self.limit = limit


class DeliveryFailedError(ProducerError):
    """Raised when the broker did not acknowledge one or more published records.

    ``failures`` holds one line per failed record (topic, key, broker error); ``too_large`` is set
    when the broker refused the record for its size (a retry would be refused again).
    """

    def __init__(self, message: str, failures: tuple[str, ...] = (), *, too_large: bool = False) -> None:
        """Describe the records that were not delivered."""
        super().__init__(message)
        self.failures = failures
        self.too_large = too_large


class PublisherClosedError(ProducerError):
    """Raised when publishing through a publisher that was already closed."""


class InputFileError(ProducerError):
    """Raised when an input file of the publisher cannot be read or its format is not known."""


class SimulationConfigError(ProducerError):
    """Raised when the company simulator is given options it cannot simulate."""
