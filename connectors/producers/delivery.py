"""Delivery reports of the publisher: futures, callbacks, counts, failures and the broker's state.

librdkafka reports every record's outcome through a callback run inside ``poll``/``flush``;
:class:`DeliveryTracker` is that callback. It keeps the number of records in flight (for
backpressure), resolves each record's future, calls the caller's callbacks, remembers failures to
raise them later (``fail_fast``) and keeps what librdkafka said about reaching the broker, so that
a server can refuse work at once while no broker answers.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Final

from confluent_kafka import KafkaError, Message

from connectors.errors import DeliveryFailedError

__all__ = [
    "BROKER_DOWN_CODES",
    "Delivery",
    "DeliveryCallback",
    "DeliveryFuture",
    "DeliveryTracker",
    "Headers",
]

logger = logging.getLogger(__name__)

Headers = list[tuple[str, str | bytes | None]]

POLL_WAIT_S: Final = 0.05
MAX_FAILURES_KEPT: Final = 100
BROKER_DOWN_CODES: Final = frozenset(
    {KafkaError._ALL_BROKERS_DOWN, KafkaError._TRANSPORT, KafkaError._RESOLVE, KafkaError._MSG_TIMED_OUT}
)
"""What librdkafka reports when no broker can be reached (as opposed to one record being refused)."""
_TOO_LARGE_CODES: Final = frozenset({KafkaError.MSG_SIZE_TOO_LARGE})


@dataclass(frozen=True)
class Delivery:
    """Where the broker stored a record."""

    topic: str
    partition: int
    offset: int
    key: str
    schema_id: int


DeliveryCallback = Callable[[Delivery | None, DeliveryFailedError | None], None]
"""Called once per record: ``(delivery, None)`` when acknowledged, ``(None, error)`` when not."""


class DeliveryFuture(Future[Delivery]):
    """A future that serves the producer's delivery reports while someone waits on it.

    Without a background poller nothing else would, and ``result()`` would wait forever.
    """

    def __init__(self, poll: Callable[[float], object] | None) -> None:
        """Wait by calling ``poll`` (the producer's), or plainly when a poller thread serves reports."""
        super().__init__()
        self._poll = poll

    def _serve(self, timeout: float | None) -> None:
        if self._poll is None:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self.done() and (deadline is None or time.monotonic() < deadline):
            self._poll(POLL_WAIT_S)

    def result(self, timeout: float | None = None) -> Delivery:
        """Return the delivery, serving reports until it arrives (or ``timeout`` passes)."""
        self._serve(timeout)
        return super().result(0 if self._poll is not None else timeout)

    def exception(self, timeout: float | None = None) -> BaseException | None:
        """Return the delivery failure (or ``None``), serving reports until the outcome is known."""
        self._serve(timeout)
        return super().exception(0 if self._poll is not None else timeout)


class DeliveryTracker:
    """Everything the publisher knows about records it handed to librdkafka.

    ``threaded``: reports arrive on a poller thread, so counts are changed under a lock and
    waiters are woken; otherwise they arrive on the publishing thread and need no lock.
    """

    def __init__(self, *, threaded: bool, fail_fast: bool, on_delivery: DeliveryCallback | None) -> None:
        """Start with nothing in flight and nothing known about the broker."""
        self.threaded = threaded
        self.fail_fast = fail_fast
        self.on_delivery = on_delivery
        self.in_flight = 0
        self.delivered = 0
        self.failed = 0
        self.failures: list[str] = []
        self.broker_error: str | None = None
        self.fatal: str | None = None
        self.room = threading.Condition()

    def sent(self) -> None:
        """Count a record handed to librdkafka."""
        if self.threaded:
            with self.room:
                self.in_flight += 1
        else:
            self.in_flight += 1

    def unsent(self) -> None:
        """Take back a record librdkafka refused to take."""
        with self.room:
            self.in_flight -= 1

    def wait_for_room(self, timeout_s: float) -> None:
        """Block until a report arrives (or ``timeout_s`` passes); only with a poller thread."""
        with self.room:
            self.room.wait(timeout_s)

    def report(
        self,
        future: Future[Delivery] | None,
        schema_id: int,
        callback: DeliveryCallback | None,
        error: KafkaError | None,
        message: Message,
    ) -> None:
        """Take librdkafka's report of one record (its ``on_delivery``, bound with ``partial``)."""
        if self.threaded:
            with self.room:
                self.in_flight -= 1
                self.room.notify_all()
        else:
            self.in_flight -= 1
        if error is None and future is None and callback is None and self.on_delivery is None:
            # The bulk path: nobody listens per record, so build nothing.
            self.delivered += 1
            if self.fatal is None:
                self.broker_error = None
            return
        raw_key = message.key()
        key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key or "")
        topic = message.topic() or ""
        if error is None:
            self.delivered += 1
            if self.fatal is None:
                self.broker_error = None
            partition, offset = message.partition(), message.offset()
            delivery = Delivery(
                topic,
                partition if partition is not None else -1,
                offset if offset is not None else -1,
                key,
                schema_id,
            )
            if future is not None:
                future.set_result(delivery)
            for notify in (callback, self.on_delivery):
                if notify is not None:
                    notify(delivery, None)
            return
        if error.code() in BROKER_DOWN_CODES:
            self.broker_error = error.str()
        failure = DeliveryFailedError(
            f"record for key {key!r} was not delivered to {topic}: {error.str()}",
            (f"{topic} key={key!r}: {error.str()}",),
            # The broker's own limit (message.max.bytes / max.message.bytes) may be below the producer's.
            too_large=error.code() in _TOO_LARGE_CODES,
        )
        self.failed += 1
        if self.fail_fast and len(self.failures) < MAX_FAILURES_KEPT:
            self.failures.append(failure.failures[0])
        if future is not None:
            future.set_exception(failure)
        for notify in (callback, self.on_delivery):
            if notify is not None:
                notify(None, failure)

    def on_error(self, error: KafkaError) -> None:
        """Take librdkafka's client-level errors (its ``error_cb``)."""
        # Connection trouble arrives here, not through delivery reports: a broker that is down is
        # known within a connection attempt instead of after the delivery timeout.
        if error.fatal():
            # The idempotent producer cannot go on (fenced, out of sequence): only a new one can.
            self.fatal = self.broker_error = f"fatal producer error: {error.str()}"
        elif error.code() in BROKER_DOWN_CODES:
            self.broker_error = error.str()
        logger.warning("producer: %s", error.str())

    def mark_reachable(self) -> None:
        """Forget the last broker error (after a successful metadata round trip, say)."""
        if self.fatal is None:
            self.broker_error = None

    def mark_unreachable(self, reason: str) -> None:
        """Record that no broker answered (a failed metadata round trip, say)."""
        self.broker_error = reason

    def raise_failures(self) -> None:
        """Raise the failures kept since the last raise, and forget them.

        Raises:
            DeliveryFailedError: listing them, when there are any.
        """
        if not self.failures:
            return
        failures, self.failures = tuple(self.failures), []
        raise DeliveryFailedError(
            f"{len(failures)} records were not delivered, first: {failures[0]}", failures
        )
