"""The sink's dead letters: records it cannot apply, delivered with their reason before the offset moves.

A dead letter keeps the original key, value and headers untouched and adds the error context
(``streams.deadletter``). Delivery is flushed and checked before the transaction that stores the
offset past the record commits, so a record is never skipped without its dead letter on the topic.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from confluent_kafka import KafkaError, Message, Producer

from connectors.errors import CommandRejectedError, SinkError
from connectors.ledger.writer import CommandRecord
from connectors.sink.decode import DecodeFailure
from connectors.sink.metrics import SinkMetrics
from streams.deadletter import Failure, SourceRecord, dead_letter_record

__all__ = ["DELIVERY_TIMEOUT_S", "DeadLetters", "Position"]

logger = logging.getLogger(__name__)

DELIVERY_TIMEOUT_S = 30.0

Position = tuple[str, int, int]
"""``(topic, partition, offset)`` of a consumed record."""


class DeadLetters:
    """Sends a batch's failed records to the sink's dead-letter topic and waits for their delivery."""

    def __init__(self, topic: str, stage: str, group: str, metrics: SinkMetrics) -> None:
        """Dead-letter to ``topic`` as ``stage`` of consumer group ``group``, counted in ``metrics``."""
        self.topic = topic
        self.stage = stage
        self.group = group
        self.metrics = metrics
        self._errors: list[str] = []
        self._lock = threading.Lock()

    def deliver(
        self,
        producer: Producer,
        messages: Sequence[Message],
        failures: Sequence[DecodeFailure],
        rejected: Sequence[tuple[CommandRecord, CommandRejectedError]],
        delivered: set[Position],
    ) -> None:
        """Produce a dead letter per failure and rejection not yet in ``delivered``; flush; record them there.

        Raises:
            SinkError: when a dead letter was not delivered (nothing may be committed past it).
        """
        by_position = {(m.topic(), m.partition(), m.offset()): m for m in messages}
        letters: list[tuple[Message, str, BaseException]] = [
            (f.message, f.reason_code, f.error) for f in failures
        ]
        for record, rejection in rejected:
            letters.append(
                (
                    by_position[(record.topic, record.partition, record.offset)],
                    rejection.reason_code,
                    rejection,
                )
            )
        sent = []
        for message, reason, error in letters:
            position = (str(message.topic()), int(message.partition() or 0), int(message.offset() or 0))
            if position in delivered:
                continue  # already delivered by an earlier attempt of this batch
            source = SourceRecord(
                topic=position[0], partition=position[1], offset=position[2],
                key=message.key(), value=message.value(), headers=_original_headers(message),
            )  # fmt: skip
            failure = Failure.from_exception(self.stage, reason, error, consumer_group=self.group)
            # Bounded: a command record too large to copy whole is cut, never left undeliverable.
            letter = dead_letter_record(source, failure)
            headers: list[tuple[str, str | bytes | None]] = list(letter.headers)
            producer.produce(
                self.topic, key=letter.key, value=letter.value, headers=headers, on_delivery=self._on_delivery
            )
            logger.warning("dead-lettered %s[%d]@%d: %s %s", *position, letter.reason_code, error)
            sent.append((position, letter.reason_code))
        if not sent:
            return
        remaining = producer.flush(DELIVERY_TIMEOUT_S)
        with self._lock:
            errors, self._errors = self._errors, []
        if remaining or errors:
            raise SinkError(
                f"could not deliver {len(sent)} dead letter(s) to {self.topic} "
                f"({'; '.join(errors) or f'{remaining} still queued'}); nothing was committed, "
                "restart the sink"
            )
        for position, reason in sent:
            delivered.add(position)
            self.metrics.dead_lettered.labels(reason).inc()

    def _on_delivery(self, error: KafkaError | None, _message: Message) -> None:
        if error is not None:
            with self._lock:
                self._errors.append(error.str())


def _original_headers(message: Message) -> tuple[tuple[str, bytes | None], ...]:
    raw = message.headers() or ()
    pairs = raw.items() if isinstance(raw, dict) else raw
    # A null header value stays null in the dead letter: a replay gives back the record as read.
    return tuple((k, v.encode() if isinstance(v, str) else v) for k, v in pairs)
