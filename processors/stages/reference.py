"""Reference data (products, legal entities): every worker reads all of it, straight from its topics.

Events of every customer name products and legal entities, but those records are keyed by their
own ids and so sit on partitions that other workers own. Read through the consumer group, a record
reached the other workers only through a Faust global table's changelog written by its owner, and
their events were parked on the retry topic until it had (measured with two workers: 17,974 parks
for 14,474 records, and the pair slower than one worker). Like a Kafka Streams ``GlobalKTable``,
each worker therefore reads every partition of the reference topics itself, outside the consumer
group, from the beginning (the topics are compacted and small), and keeps the newest record per id
(``master_newer``) in memory. Events are held back until that first read has reached the end of
every partition (:attr:`ReferenceFeed.caught_up`); records published later arrive within one fetch.

Customers stay on the co-partitioned path (:mod:`processors.stages.master`): a customer's record
and its events share a partition number, hence a worker.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Final

from confluent_kafka import OFFSET_BEGINNING, KafkaError, KafkaException, TopicPartition

from processors.engine.failures import FAILURE_BACKOFF, FAILURE_BACKOFF_MAX
from processors.errors import WorkerConfigError
from processors.stages.retry import backoff
from streams.clients import consumer as make_consumer
from streams.errors import RegistryUnavailableError
from streams.settings import KafkaSettings

__all__ = ["ReferenceFeed"]

logger = logging.getLogger(__name__)

_METADATA_TIMEOUT_S: Final = 10.0
_POLL_S: Final = 0.1
_ERROR_PAUSE_S: Final = 1.0


class ReferenceFeed:
    """Reads every partition of some master-data topics into their lookups, in a thread of its own.

    Args:
        kafka: where the cluster is.
        lookups: topic → the lookup its records go to (``on_record(key, value)``: newest wins,
            tombstones remove).
        fetch_max_wait_ms: librdkafka's fetch wait (the embedded broker answers only when it expires).
    """

    def __init__(
        self, kafka: KafkaSettings, lookups: Mapping[str, Any], fetch_max_wait_ms: int | None = None
    ) -> None:
        self._kafka = kafka
        self._lookups = dict(lookups)
        self._fetch_wait_ms = fetch_max_wait_ms
        self._caught_up = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.records = 0
        self.errors = 0
        self.attempts = 6
        """Attempts at decoding a record while the registry is unavailable, then ``on_fatal``."""
        self.on_fatal: Callable[[str], None] | None = None

    @property
    def caught_up(self) -> bool:
        """Whether the first read has reached the end of every partition (it stays so)."""
        return self._caught_up.is_set()

    def wait_caught_up(self, timeout_s: float) -> bool:
        """Wait until :attr:`caught_up` (for tests and start-up); return whether it is."""
        return self._caught_up.wait(timeout_s)

    def start(self) -> None:
        """Assign every partition of the topics from the beginning and start reading.

        Raises:
            WorkerConfigError: when a topic does not exist or the broker does not answer.
        """
        if self._thread is not None:
            return
        overrides: dict[str, Any] = {"enable.partition.eof": True, "enable.auto.commit": False}
        if self._fetch_wait_ms is not None:
            overrides["fetch.wait.max.ms"] = self._fetch_wait_ms
        consumer = make_consumer(self._kafka, f"revstream-reference-{uuid.uuid4().hex[:12]}", **overrides)
        try:
            partitions = self._partitions(consumer)
            consumer.assign(partitions)
        except Exception:
            consumer.close()
            raise
        if not partitions:
            self._caught_up.set()
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run,
            args=(consumer, {(tp.topic, tp.partition) for tp in partitions}),
            name="revstream-reference-feed",
            daemon=True,
        )
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop reading and close the consumer."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join(timeout_s)

    def _partitions(self, consumer: Any) -> list[TopicPartition]:
        try:
            metadata = consumer.list_topics(timeout=_METADATA_TIMEOUT_S)
        except KafkaException as exc:
            raise WorkerConfigError(
                f"the broker did not answer with topic metadata within {_METADATA_TIMEOUT_S:g}s ({exc}); "
                "check that it is reachable"
            ) from exc
        partitions: list[TopicPartition] = []
        for topic in self._lookups:
            described = metadata.topics.get(topic)
            if described is None or described.error is not None or not described.partitions:
                raise WorkerConfigError(
                    f"master-data topic {topic} does not exist; create the topics with "
                    "`revstream topics apply`, then start the worker again"
                )
            partitions.extend(
                TopicPartition(topic, p, OFFSET_BEGINNING) for p in sorted(described.partitions)
            )
        return partitions

    def _run(self, consumer: Any, pending: set[tuple[str, int]]) -> None:
        try:
            while not self._stop.is_set():
                try:
                    messages = consumer.consume(num_messages=1000, timeout=_POLL_S)
                except KafkaException as exc:
                    self.errors += 1
                    logger.warning("reading reference data failed (%s); trying again", exc)
                    self._stop.wait(_ERROR_PAUSE_S)
                    continue
                for message in messages:
                    self._apply(message, pending)
        finally:
            consumer.close()

    def _apply(self, message: Any, pending: set[tuple[str, int]]) -> None:
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                pending.discard((message.topic(), message.partition()))
                if not pending and not self._caught_up.is_set():
                    logger.info("reference data loaded: %d records", self.records)
                    self._caught_up.set()
            else:
                self.errors += 1
                logger.warning("reference data: %s", error.str())
            return
        try:
            self._apply_with_registry(message)
        except Exception:  # one record must not stop the feed; the lookup logs unreadable ones
            self.errors += 1
            logger.exception(
                "reference data record %s[%d]@%d not applied",
                message.topic(),
                message.partition(),
                message.offset(),
            )
            return
        self.records += 1

    def _apply_with_registry(self, message: Any) -> None:
        # A record that does not decode is ignored (and dead-lettered through the group), but one
        # the registry cannot be asked about is not the record's fault: wait for the registry,
        # with the worker's back-off, and stop the worker when it does not come back.
        for attempt in range(1, self.attempts + 1):
            try:
                self._lookups[message.topic()].on_record(message.key(), message.value())
                return
            except RegistryUnavailableError as exc:
                if attempt == self.attempts or self._stop.is_set():
                    reason = f"reference data could not be read after {attempt} attempts: {exc}"
                    if self.on_fatal is not None:
                        self.on_fatal(reason)
                    raise
                delay = backoff(attempt, FAILURE_BACKOFF, FAILURE_BACKOFF_MAX).total_seconds()
                logger.warning("reference data: %s; trying again in %gs", exc, delay)
                self._stop.wait(delay)
