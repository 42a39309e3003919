"""Decode consumed records into ERP commands; what cannot be decoded becomes a dead-letter failure.

Records are read with the shipped ``ErpCommand`` schema as reader schema and kept as the dicts
fastavro returns, checked against the model's constraints without building the model
(``connectors.ledger.commands``); only a record that fails a check goes through pydantic, for its
exact error message. Undecodable bytes, an unknown schema id or a record that breaks the
``ErpCommand`` model are the record's fault: it is dead-lettered with a reason and the rest of the
batch goes on. An unreachable schema registry is not the record's fault:
:class:`RegistryUnavailableError` propagates so the sink retries the whole batch later without moving.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

from confluent_kafka import Message

from connectors.ledger.commands import check_command, record_of
from connectors.ledger.writer import CommandRecord
from schemas.loader import schema_for_model
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

_READER = schema_for_model(ErpCommand)


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
            _, command = serde.decode(
                value, reader_schema=_READER, topic=topic, partition=partition, offset=offset
            )
            if check_command(command) is not None:
                # The model's own validation names the problem; it raises InvalidRecordError.
                model = serde.decode_model(value, ErpCommand, topic=topic, partition=partition, offset=offset)
                if not isinstance(model, ErpCommand):  # the serde returns the model asked for
                    raise InvalidRecordError(f"expected ErpCommand, got {type(model).__name__}")
                command = record_of(model)
        except RegistryUnavailableError:
            raise
        except SerdeError as exc:
            failures.append(DecodeFailure(message, reason_for_serde_error(exc), exc))
            continue
        records.append(CommandRecord(command, topic, partition, offset))
    return records, failures
