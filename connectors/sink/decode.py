"""Decode consumed records into ERP commands; what cannot be decoded becomes a dead-letter failure.

Undecodable bytes, an unknown schema id or a record that breaks the ``ErpCommand`` model are the
record's fault: it is dead-lettered with a reason and the rest of the batch goes on. An unreachable
schema registry is not the record's fault: :class:`RegistryUnavailableError` propagates so the sink
retries the whole batch later without moving.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import Message

from connectors.ledger.writer import CommandRecord
from schemas.models.erp import ErpCommand
from streams.errors import (
    CorruptRecordError,
    InvalidRecordError,
    RegistryUnavailableError,
    SerdeError,
    UnknownSchemaIdError,
)
from streams.serde import AvroSerde

__all__ = ["DecodeFailure", "decode_batch", "reason_for_serde_error"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DecodeFailure:
    """A consumed record that is not a usable ERP command, and why."""

    message: Message
    reason_code: str
    error: Exception


def reason_for_serde_error(error: SerdeError) -> str:
    """Return the dead-letter reason code of a decoding failure."""
    if isinstance(error, UnknownSchemaIdError):
        return "UNKNOWN_SCHEMA_ID"
    if isinstance(error, CorruptRecordError):
        return "CORRUPT_RECORD"
    if isinstance(error, InvalidRecordError):
        return "INVALID_COMMAND"
    return "DECODE_FAILED"


def decode_batch(
    serde: AvroSerde, messages: Sequence[Message]
) -> tuple[list[CommandRecord], list[DecodeFailure]]:
    """Decode ``messages`` in order; return the commands and the records that failed.

    Raises:
        RegistryUnavailableError: when the registry cannot be reached (retry the batch).
    """
    records: list[CommandRecord] = []
    failures: list[DecodeFailure] = []
    for message in messages:
        topic, partition, offset = (
            str(message.topic()),
            int(message.partition() or 0),
            int(message.offset() or 0),
        )
        value = message.value()
        if value is None:
            empty = CorruptRecordError("record has no value (a tombstone); the sink expects an ErpCommand")
            failures.append(DecodeFailure(message, "EMPTY_RECORD", empty.at(topic, partition, offset)))
            continue
        try:
            command = serde.decode_model(value, ErpCommand, topic=topic, partition=partition, offset=offset)
            if not isinstance(command, ErpCommand):  # the serde returns the model asked for
                raise InvalidRecordError(f"expected ErpCommand, got {type(command).__name__}")
        except RegistryUnavailableError:
            raise
        except SerdeError as exc:
            failures.append(DecodeFailure(message, reason_for_serde_error(exc), exc))
            continue
        records.append(CommandRecord(command, topic, partition, offset))
    return records, failures
