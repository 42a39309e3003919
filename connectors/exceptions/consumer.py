"""The queue's consumer: ``<ns>.exceptions`` into the ledger database's ``exceptions`` table, exactly once.

A second consumer of the same kind as the ERP sink, by the same rule: each batch's rows, their
audit entries and the consumed offsets commit in one transaction, and on (re)assignment every
partition is positioned at the offset stored in the ledger (``sink_offsets`` under the queue's
own group), so a crash or a rebalance re-delivers only what the ledger has not committed. Its
records are few (a business exception per broken rule), so it applies one batch at a time on one
thread, without the sink's pipelining. An unreadable record goes to the sink's dead-letter topic
(stage ``exceptions``) before the offset past it commits; an unreachable database or registry is
waited out with back-off, nothing moving.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Message, Producer, TopicPartition
from prometheus_client import CollectorRegistry

from connectors.errors import LedgerUnavailableError, SinkError
from connectors.exceptions.metrics import QueueMetrics
from connectors.exceptions.queue import ExceptionRecord
from connectors.exceptions.stats import queue_stats
from connectors.exceptions.store import Filters, QueueStore
from connectors.ledger.migrate import connect_current
from connectors.ledger.writer import LedgerWriter
from connectors.sink.backoff import Backoff
from connectors.sink.batch import next_offsets
from connectors.sink.config import SinkConfig, SinkStats
from connectors.sink.deadletters import DELIVERY_TIMEOUT_S, DeadLetters, Position
from connectors.sink.decode import DecodeFailure, reason_for_serde_error
from connectors.sink.metrics import SinkMetrics
from schemas.loader import schema_for_model
from schemas.models import BusinessException
from streams.clients import consumer as make_consumer
from streams.clients import producer as make_producer
from streams.errors import CorruptRecordError, RegistryUnavailableError, SerdeError
from streams.queue_settings import ExceptionQueueSettings
from streams.serde import AvroSerde
from streams.settings import EMBEDDED_FETCH_MAX_WAIT_MS, Settings
from streams.topics import catalog_for

__all__ = ["ExceptionQueueConsumer"]

logger = logging.getLogger(__name__)

T = TypeVar("T")
STAGE = "exceptions"
_READER = schema_for_model(BusinessException)

Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ExceptionQueueConsumer:
    """Consume business exceptions and apply them to the queue, batch by batch."""

    def __init__(
        self,
        settings: Settings,
        queue: ExceptionQueueSettings,
        config: SinkConfig | None = None,
        metrics: QueueMetrics | None = None,
        serde: AvroSerde | None = None,
        clock: Clock = _utcnow,
    ) -> None:
        """Prepare a consumer; nothing connects until :meth:`run`. ``config.group_id`` is ignored."""
        self.settings = settings
        self.queue = queue
        self.config = config or SinkConfig()
        self.group_id = queue.consumer_group
        catalog = catalog_for(settings)
        self.topic = self.config.topic or catalog.exceptions_topic
        self.metrics = metrics or QueueMetrics.create()
        self.serde = serde or AvroSerde.from_settings(settings.registry)
        self.clock = clock
        self.stats = SinkStats()
        # The sink's dead-letter machinery, counted in the queue's own metrics rather than the sink's.
        self.dead_letters = DeadLetters(
            self.config.deadletter_topic or catalog.deadletter_topic("sink"),
            STAGE,
            self.group_id,
            SinkMetrics.create(CollectorRegistry()),
        )
        self._stop = threading.Event()
        self._store: QueueStore | None = None
        self._last_activity: float | None = None

    def stop(self) -> None:
        """Ask the consumer to finish its current batch and return from :meth:`run`."""
        self._stop.set()

    def run(self) -> SinkStats:
        """Consume and apply until stopped, ``max_records`` were handled or the topic stayed idle.

        Raises:
            SchemaNotCurrentError: when the ledger lacks migrations.
            SinkError: when a dead letter cannot be delivered or the consumer fails fatally.
        """
        fetch_wait = {"fetch.wait.max.ms": EMBEDDED_FETCH_MAX_WAIT_MS} if self.settings.embedded else {}
        consumer = make_consumer(self.settings.kafka, self.group_id, **fetch_wait)
        producer = make_producer(self.settings.kafka)
        consumer.subscribe([self.topic], on_assign=self._on_assign)
        try:
            self._with_retry(self._refresh_metrics)
            while not self._stop.is_set() and not self._reached_max():
                messages = self._poll(consumer)
                if not messages:
                    if self._idle_for_long_enough():
                        break
                    continue
                self._last_activity = time.monotonic()
                self._apply(messages, producer)
                consumer.commit(
                    offsets=[TopicPartition(t, p, o) for (t, p), o in next_offsets(messages).items()],
                    asynchronous=True,
                )
        finally:
            consumer.close()
            producer.flush(DELIVERY_TIMEOUT_S)
            if self._store is not None:
                self._store.connection.close()
        return self.stats

    def _reached_max(self) -> bool:
        return self.config.max_records is not None and self.stats.consumed >= self.config.max_records

    def _idle_for_long_enough(self) -> bool:
        idle = self.config.until_idle_s
        if idle is None or self._last_activity is None:
            return False
        return time.monotonic() - self._last_activity >= idle

    def _poll(self, consumer: Consumer) -> list[Message]:
        messages = consumer.consume(num_messages=self.config.batch_size, timeout=self.config.batch_linger_s)
        kept = []
        for message in messages:
            error = message.error()
            if error is None:
                kept.append(message)
            elif error.fatal():
                raise SinkError(
                    f"the Kafka consumer failed fatally: {error.str()}; restart the queue consumer"
                )
            elif error.code() != KafkaError._PARTITION_EOF:
                logger.warning("consumer: %s", error.str())
        return kept

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        # Position every partition where the ledger says; Kafka's committed offsets are ignored.
        stored = self._with_retry(
            lambda store: LedgerWriter(store.connection).stored_offsets(self.group_id, self.topic)
        )
        for tp in partitions:
            tp.offset = stored.get(tp.partition, OFFSET_BEGINNING)
        self._last_activity = time.monotonic()
        consumer.assign(partitions)

    def _apply(self, messages: list[Message], producer: Producer) -> None:
        backoff = Backoff(self.config.backoff_initial_s, self.config.backoff_max_s)
        while True:
            try:
                records, failures = self._decode(messages)
                break
            except RegistryUnavailableError as exc:
                self._back_off(exc, backoff)
        delivered: set[Position] = set()
        # Dead letters first: the transaction below moves the offsets past them.
        self.dead_letters.deliver(producer, messages, failures, [], delivered)
        for failure in failures:
            self.metrics.dead_lettered.labels(failure.reason_code).inc()
        offsets = next_offsets(messages)
        changes = self._with_retry(lambda store: store.apply(records, offsets, self.group_id))
        for change in changes:
            self.metrics.changes.labels(change.action).inc()
        self._with_retry(self._refresh_metrics)
        self.stats.consumed += len(messages)
        self.stats.applied += len(changes)
        self.stats.dead_lettered += len(failures)
        self.stats.batches += 1

    def _decode(self, messages: list[Message]) -> tuple[list[ExceptionRecord], list[DecodeFailure]]:
        records, failures = [], []
        for message in messages:
            topic, partition, offset = (
                str(message.topic()),
                int(message.partition() or 0),
                int(message.offset() or 0),
            )
            value = message.value()
            try:
                if value is None:
                    raise CorruptRecordError("record has no value; the queue expects a BusinessException")
                _, exception = self.serde.decode(
                    value, reader_schema=_READER, topic=topic, partition=partition, offset=offset
                )
            except RegistryUnavailableError:
                raise
            except SerdeError as exc:
                failures.append(DecodeFailure(message, reason_for_serde_error(exc), exc))
                continue
            kind, millis = message.timestamp()
            seen = datetime.fromtimestamp(millis / 1000, UTC) if kind and millis > 0 else self.clock()
            records.append(ExceptionRecord(exception, seen, topic, partition, offset))
        return records, failures

    def _refresh_metrics(self, store: QueueStore) -> None:
        now = self.clock()
        self.metrics.refresh(queue_stats(store.rows(Filters(), now), now, store.holds(waiting_only=True)))

    # -- the database, with back-off ------------------------------------------------------------

    def _with_retry(self, action: Callable[[QueueStore], T]) -> T:
        backoff = Backoff(self.config.backoff_initial_s, self.config.backoff_max_s)
        while True:
            try:
                return action(self._connect())
            except (LedgerUnavailableError, RegistryUnavailableError) as exc:
                self._disconnect()
                self._back_off(exc, backoff)

    def _back_off(self, exc: Exception, backoff: Backoff) -> None:
        self.stats.retries += 1
        delay = backoff.next_delay()
        logger.warning("%s; retrying in %.1fs (attempt %d)", exc, delay, backoff.attempts)
        if self._stop.wait(delay):
            raise SinkError(
                "stopped while waiting for the ledger; the unapplied batch will be re-read"
            ) from exc

    def _connect(self) -> QueueStore:
        if self._store is None:
            self._store = QueueStore(connect_current(self.settings.database.conninfo()), self.queue)
        return self._store

    def _disconnect(self) -> None:
        if self._store is not None:
            try:
                self._store.connection.close()
            finally:
                self._store = None
