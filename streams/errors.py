"""Errors raised by the shared stream platform (settings, stack, topics, serde, dead letters)."""

from __future__ import annotations

from typing import Self

__all__ = [
    "PlatformError",
    "SettingsError",
    "StackError",
    "PortInUseError",
    "BrokerUnreachableError",
    "TopicProvisioningError",
    "SerdeError",
    "UnknownSchemaIdError",
    "CorruptRecordError",
    "InvalidRecordError",
    "RecordEncodeError",
    "SchemaRegistrationError",
    "RegistryUnavailableError",
    "GovernanceError",
    "RecordTooLargeError",
]


class PlatformError(Exception):
    """Root of every error the stream platform raises; its message is one line a user can act on."""


class SettingsError(PlatformError):
    """Raised when a ``REVSTREAM_*`` setting is missing or invalid; names the variable and the reason."""


class StackError(PlatformError):
    """Raised when the embedded stack cannot start, is not running, or a service never became usable."""


class PortInUseError(StackError):
    """Raised when a port asked for explicitly is already taken on the loopback interface."""


class BrokerUnreachableError(PlatformError):
    """Raised when no broker answers a metadata request at the configured bootstrap servers."""


class TopicProvisioningError(PlatformError):
    """Raised when creating or altering a topic fails for a reason other than it already existing."""


class SerdeError(PlatformError):
    """Root of the Avro serde's errors; carries the record's topic, partition and offset when known."""

    def __init__(
        self,
        message: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message)
        self.topic = topic
        self.partition = partition
        self.offset = offset

    def at(self, topic: str | None, partition: int | None = None, offset: int | None = None) -> Self:
        """Attach the Kafka coordinates of the record that failed (kept if already set) and return self."""
        self.topic = self.topic if self.topic is not None else topic
        self.partition = self.partition if self.partition is not None else partition
        self.offset = self.offset if self.offset is not None else offset
        return self

    def __str__(self) -> str:
        message = super().__str__()
        if self.topic is None:
            return message
        where = self.topic
        if self.partition is not None:
            where += f"[{self.partition}]"
        if self.offset is not None:
            where += f"@{self.offset}"
        return f"{message} ({where})"


class UnknownSchemaIdError(SerdeError):
    """Raised when a record names a schema id the registry does not know (dead-letter it)."""

    def __init__(
        self,
        message: str,
        schema_id: int,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
    ) -> None:
        super().__init__(message, topic=topic, partition=partition, offset=offset)
        self.schema_id = schema_id


class CorruptRecordError(SerdeError):
    """Raised when bytes are not a Confluent-framed Avro record: bad magic byte, short or undecodable."""


class InvalidRecordError(SerdeError):
    """Raised when a record decodes but cannot be read as the expected schema or model (dead-letter it)."""


class RecordEncodeError(SerdeError):
    """Raised when a value does not fit the Avro schema it is being written with."""


class SchemaRegistrationError(SerdeError):
    """Raised when the registry refuses to register or does not know a schema under a subject."""


class RegistryUnavailableError(SerdeError):
    """Raised when the schema registry cannot be reached or fails (retry later; the record is fine)."""


class GovernanceError(PlatformError):
    """Raised when a schema governance command cannot reach a subject or the registry refuses a schema."""


class RecordTooLargeError(PlatformError):
    """Raised (and dead-lettered) for a record too large for a worker to copy to its own topics intact."""
