"""The Python SDK's publisher: typed events in, Avro records on their canonical topics out.

One :class:`Publisher` wraps one idempotent confluent-kafka producer (``acks=all``,
``enable.idempotence``): librdkafka retries a failed send without duplicating or reordering it, so
the only duplicates left are a producer re-sending after a crash, which the pipeline's dedupe on
``event_id`` removes. (On the embedded broker the profile switches idempotence off for speed: one
request in flight keeps the order, and a retry's duplicate is removed by the same dedupe.)

Records are Confluent-framed Avro with schemas from the registry; the topic comes from the catalog
by event type, the key is ``customer_id`` (master data: the record's own id, on its compacted
topic) so that every event of a customer lands on one partition, in order.

Delivery is asynchronous: ``publish`` returns a :class:`concurrent.futures.Future` that resolves
when the broker acknowledged the record (or fails with :class:`DeliveryFailedError`), and calls an
optional callback. Reports arrive while the producer is polled: every few publishes, in ``flush``,
or from a background thread (``background_poll=True``, for servers). At most ``max_in_flight``
records wait for their acknowledgement; past that, ``publish`` waits for room (backpressure).

The hot path does no per-record registry work: the serde (the one encode path of revstream) keeps the
schema id, parsed schema and framed header per (topic, model) after the first record.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from functools import partial
from types import TracebackType
from typing import Any, Final

from confluent_kafka import KafkaError, KafkaException, Message, Producer

from connectors.errors import (
    DeliveryFailedError,
    EventValidationError,
    FieldProblem,
    PublisherClosedError,
    RecordTooLargeError,
)
from connectors.producers.delivery import (
    POLL_WAIT_S,
    Delivery,
    DeliveryCallback,
    DeliveryFuture,
    DeliveryTracker,
    Headers,
)
from connectors.producers.validation import master_key
from schemas.loader import schema_for_model
from schemas.models import AvroRecord, EventEnvelope, MasterRecord
from schemas.names import EVENT_TYPES
from streams.clients import producer as make_producer
from streams.errors import RecordEncodeError
from streams.serde import AvroSerde
from streams.settings import Settings
from streams.topics import TopicCatalog, catalog_for

__all__ = ["Delivery", "DeliveryCallback", "Publisher"]

logger = logging.getLogger(__name__)

_POLL_EVERY: Final = 32
_LIBRDKAFKA_MAX_MESSAGE_BYTES: Final = 1_000_000  # librdkafka's default message.max.bytes
# librdkafka counts a record's framing too (its MessageSet overhead); keep that much below the limit
# so that a record passing this check is never refused by produce() itself.
_RECORD_OVERHEAD_BYTES: Final = 512
_HEADERS_ALLOWANCE_BYTES: Final = 16_384
_MASTER_KINDS: Final = {"Customer": "customer", "Product": "product", "LegalEntity": "legal_entity"}


@dataclass(frozen=True)
class _Encoder:
    topic: str
    record_type: bytes
    schema_id: int
    schema_id_header: bytes
    report: Callable[[KafkaError | None, Message], None]


class Publisher:
    """Publish canonical events and master data to their topics (see the module docstring).

    Args:
        settings: where the broker and registry are (``settings.kafka``, ``settings.registry``).
        catalog: the topic catalog; defaults to the one ``settings`` describe.
        max_in_flight: records that may wait for acknowledgement before ``publish`` blocks.
        delivery_timeout_ms: how long librdkafka keeps retrying a record before failing it.
        on_delivery: called once per record (see :data:`DeliveryCallback`).
        fail_fast: keep delivery failures and raise them on the next ``publish``/``flush``/``close``;
            when false, failures only reach the futures and callbacks (a server answering each
            request itself wants that).
        background_poll: serve delivery reports from a daemon thread instead of the caller's.
        backpressure_timeout_s: how long ``publish`` waits for room before giving up.
        serde: the registry serde to use (built from ``settings.registry`` when not given).
        producer_config: extra librdkafka settings (dotted keys), applied last.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        catalog: TopicCatalog | None = None,
        max_in_flight: int = 100_000,
        delivery_timeout_ms: int | None = None,
        on_delivery: DeliveryCallback | None = None,
        fail_fast: bool = True,
        background_poll: bool = False,
        backpressure_timeout_s: float = 60.0,
        serde: AvroSerde | None = None,
        producer_config: dict[str, Any] | None = None,
    ) -> None:
        """Connect lazily: nothing touches the broker or registry until the first publish."""
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.catalog = catalog or catalog_for(settings)
        self.max_in_flight = max_in_flight
        self.backpressure_timeout_s = backpressure_timeout_s
        self._serde = serde or AvroSerde.from_settings(settings.registry)
        self._tracker = DeliveryTracker(
            threaded=background_poll, fail_fast=fail_fast, on_delivery=on_delivery
        )
        overrides: dict[str, Any] = {"error_cb": self._tracker.on_error, **(producer_config or {})}
        if delivery_timeout_ms is not None:
            overrides["message.timeout.ms"] = delivery_timeout_ms
        self._producer: Producer = make_producer(settings.kafka, **overrides)
        configured = {**settings.kafka.producer_config(), **overrides}.get("message.max.bytes")
        self.max_record_bytes = int(configured or _LIBRDKAFKA_MAX_MESSAGE_BYTES) - _RECORD_OVERHEAD_BYTES
        """The largest record (value, key and headers) this publisher hands to librdkafka."""
        self._size_checked_from = self.max_record_bytes - _HEADERS_ALLOWANCE_BYTES
        self._event_encoders: dict[type[AvroRecord], _Encoder] = {}
        self._master_encoders: dict[type[AvroRecord], _Encoder] = {}
        self._unpolled = 0
        self._closed = False
        self._poller: threading.Thread | None = None
        self._stop = threading.Event()
        if background_poll:
            self._poller = threading.Thread(target=self._poll_forever, name="publisher-poll", daemon=True)
            self._poller.start()

    # -- publishing -------------------------------------------------------------------------------

    def publish(
        self, event: EventEnvelope, *, on_delivery: DeliveryCallback | None = None
    ) -> Future[Delivery]:
        """Send ``event`` to its canonical topic, keyed by ``customer_id``; return its delivery future.

        Raises:
            EventValidationError: when ``event`` is not a canonical event, or (RecordTooLargeError)
                its record is over ``max_record_bytes`` (nothing is sent).
            DeliveryFailedError: with ``fail_fast``, when earlier records were not delivered.
            PublisherClosedError: after :meth:`close`.
            SerdeError: when the registry refuses or cannot be reached (nothing is sent).
        """
        future = self._future()
        self._send_event(event, on_delivery, future)
        return future

    def send(self, event: EventEnvelope, *, on_delivery: DeliveryCallback | None = None) -> None:
        """Like :meth:`publish` without a future: the fastest path for bulk publishing.

        The outcome reaches ``on_delivery`` (and the publisher's callback); with ``fail_fast`` a
        failure is raised by the next ``send``, ``flush`` or ``close``.

        Raises:
            EventValidationError: when ``event`` is not a canonical event, or (RecordTooLargeError)
                its record is over ``max_record_bytes`` (nothing is sent).
            DeliveryFailedError: with ``fail_fast``, when earlier records were not delivered.
            PublisherClosedError: after :meth:`close`.
            SerdeError: when the registry refuses or cannot be reached (nothing is sent).
        """
        self._send_event(event, on_delivery, None)

    def _send_event(
        self, event: EventEnvelope, on_delivery: DeliveryCallback | None, future: Future[Delivery] | None
    ) -> None:
        encoder = self._event_encoders.get(type(event))
        if encoder is None:
            encoder = self._encoder_for_event(event)
        try:
            headers: Headers = [
                ("event_type", encoder.record_type),
                ("source", event.source.encode()),
                ("correlation_id", event.correlation_id.encode()),
                ("schema_id", encoder.schema_id_header),
            ]
        except UnicodeEncodeError as exc:
            raise EventValidationError(
                f"{type(event).__name__} holds text that is not valid Unicode: {exc.reason}",
                (FieldProblem("(record)", "holds text that is not valid Unicode (a lone surrogate)"),),
            ) from exc
        self._send(encoder, event, event.customer_id, headers, on_delivery, future)

    def publish_master(
        self, record: MasterRecord, *, on_delivery: DeliveryCallback | None = None
    ) -> Future[Delivery]:
        """Send a master-data record to its compacted topic, keyed by its own id.

        Raises:
            EventValidationError: when ``record`` is not master data, or (RecordTooLargeError)
                its record is over ``max_record_bytes`` (nothing is sent).
            DeliveryFailedError: with ``fail_fast``, when earlier records were not delivered.
            PublisherClosedError: after :meth:`close`.
            SerdeError: when the registry refuses or cannot be reached (nothing is sent).
        """
        encoder = self._master_encoders.get(type(record))
        if encoder is None:
            encoder = self._encoder_for_master(record)
        headers: Headers = [("master_kind", encoder.record_type), ("schema_id", encoder.schema_id_header)]
        future = self._future()
        self._send(encoder, record, master_key(record), headers, on_delivery, future)
        return future

    def _future(self) -> Future[Delivery]:
        return DeliveryFuture(self._producer.poll if self._poller is None else None)

    def _send(
        self,
        encoder: _Encoder,
        record: AvroRecord,
        key: str,
        headers: Headers,
        on_delivery: DeliveryCallback | None,
        future: Future[Delivery] | None,
    ) -> None:
        if self._closed:
            raise PublisherClosedError("this publisher is closed; create a new one to publish again")
        tracker = self._tracker
        if tracker.failures:
            tracker.raise_failures()
        try:
            value = self._serde.serialize(encoder.topic, record)
            raw_key = key.encode()
        except RecordEncodeError as exc:
            raise EventValidationError(
                f"{type(record).__name__} does not fit its schema: {exc}",
                (FieldProblem("(record)", str(exc)),),
            ) from exc
        size = len(value) + len(raw_key)
        if size > self._size_checked_from:
            # Rare: only a record near the limit pays for counting its headers. One with huge headers
            # below this point is refused by produce() itself, which raises the same error below.
            size += sum(len(name) + len(data or b"") for name, data in headers)
            if size > self.max_record_bytes:
                raise RecordTooLargeError(
                    f"the encoded record is {size:,} bytes; the producer's limit is "
                    f"{self.max_record_bytes:,} bytes (message.max.bytes less framing)",
                    size,
                    self.max_record_bytes,
                )
        if tracker.in_flight >= self.max_in_flight:
            self._wait_for_room()
        # Without a future or a per-record callback the encoder's prebuilt report serves every record.
        report = (
            encoder.report
            if future is None and on_delivery is None
            else partial(tracker.report, future, encoder.schema_id, on_delivery)
        )
        tracker.sent()
        try:
            while True:
                try:
                    self._producer.produce(encoder.topic, value, raw_key, headers=headers, on_delivery=report)
                    break
                except BufferError:
                    # librdkafka's own queue is full: serve reports until it has room again.
                    self._wait_for_room(queue_full=True)
                except KafkaException as exc:
                    error = exc.args[0] if exc.args else None
                    if isinstance(error, KafkaError) and error.code() == KafkaError.MSG_SIZE_TOO_LARGE:
                        raise RecordTooLargeError(
                            f"the producer refused the record as too large ({error.str()})",
                            size,
                            self.max_record_bytes,
                        ) from exc
                    raise
        except BaseException:
            tracker.unsent()
            raise
        if self._poller is None:
            # Serving reports costs a call into librdkafka; every few records is as good as every one.
            self._unpolled += 1
            if self._unpolled >= _POLL_EVERY:
                self._unpolled = 0
                self._producer.poll(0)

    # -- encoders (once per model and topic) ------------------------------------------------------

    def _encoder_for_event(self, event: AvroRecord) -> _Encoder:
        if not isinstance(event, EventEnvelope) or getattr(event, "event_type", None) not in EVENT_TYPES:
            raise EventValidationError(
                f"{type(event).__name__} is not a canonical event; publish one of the models in "
                "schemas.models.events (or use publish_master for master data)",
                (FieldProblem("event_type", "not a canonical event type"),),
            )
        encoder = self._build_encoder(event, self.catalog.event_topic(event.event_type), event.event_type)
        self._event_encoders[type(event)] = encoder
        return encoder

    def _encoder_for_master(self, record: AvroRecord) -> _Encoder:
        kind = _MASTER_KINDS.get(type(record).__name__)
        if kind is None:
            raise EventValidationError(
                f"{type(record).__name__} is not master data; publish a Customer, Product or LegalEntity",
                (FieldProblem("(record)", "not a master-data record"),),
            )
        encoder = self._build_encoder(record, self.catalog.master_topic(kind), kind)
        self._master_encoders[type(record)] = encoder
        return encoder

    def _build_encoder(self, record: AvroRecord, topic: str, record_type: str) -> _Encoder:
        # Resolved now so that publish() fails before sending when the registry refuses; the serde
        # keeps the id per (topic, model), so no later record asks the registry.
        schema_id = self._serde.schema_id(
            self._serde.subject_for(topic, record), schema_for_model(type(record))
        )
        return _Encoder(
            topic,
            record_type.encode(),
            schema_id,
            str(schema_id).encode(),
            partial(self._tracker.report, None, schema_id, None),
        )

    # -- delivery, backpressure and broker state --------------------------------------------------

    @property
    def in_flight(self) -> int:
        """Records handed to the producer whose acknowledgement has not arrived yet."""
        return self._tracker.in_flight

    @property
    def delivered(self) -> int:
        """Records the broker acknowledged since this publisher was created."""
        return self._tracker.delivered

    @property
    def failed(self) -> int:
        """Records that were not delivered since this publisher was created."""
        return self._tracker.failed

    @property
    def broker_error(self) -> str | None:
        """The last "no broker reachable" error, cleared by the next acknowledged record."""
        return self._tracker.broker_error

    def mark_broker_reachable(self) -> None:
        """Forget the last broker error (after a successful metadata round trip, say)."""
        self._tracker.mark_reachable()

    def mark_broker_unreachable(self, reason: str) -> None:
        """Record that no broker answered (a failed metadata round trip, say)."""
        self._tracker.mark_unreachable(reason)

    def _wait_for_room(self, queue_full: bool = False) -> None:
        deadline = time.monotonic() + self.backpressure_timeout_s
        while queue_full or self._tracker.in_flight >= self.max_in_flight:
            if time.monotonic() > deadline:
                raise DeliveryFailedError(
                    f"{self._tracker.in_flight} records still wait for the broker after "
                    f"{self.backpressure_timeout_s:g}s; is the broker reachable?"
                )
            if self._poller is None:
                self._producer.poll(POLL_WAIT_S)
            else:
                self._tracker.wait_for_room(POLL_WAIT_S)
            if queue_full:
                return

    def _poll_forever(self) -> None:
        while not self._stop.is_set():
            self._producer.poll(0.1)

    def poll(self, timeout_s: float = 0.0) -> int:
        """Serve pending delivery reports; return how many were served."""
        return int(self._producer.poll(timeout_s))

    def flush(self, timeout_s: float | None = None) -> None:
        """Wait until every record is acknowledged (or failed).

        Raises:
            DeliveryFailedError: when records are still unacknowledged after ``timeout_s`` or, with
                ``fail_fast``, when any record failed since the last raise.
        """
        remaining = self._producer.flush(-1 if timeout_s is None else timeout_s)
        if remaining:
            raise DeliveryFailedError(
                f"{remaining} records were not acknowledged within {timeout_s:g}s; is the broker reachable?"
            )
        self._tracker.raise_failures()

    def close(self, timeout_s: float | None = 30.0) -> None:
        """Flush and stop; publishing afterwards raises :class:`PublisherClosedError`.

        Raises:
            DeliveryFailedError: when a record was not delivered (see :meth:`flush`).
        """
        if self._closed:
            return
        try:
            self.flush(timeout_s)
        finally:
            self._closed = True
            self._stop.set()
            if self._poller is not None:
                self._poller.join(timeout=5)

    def __enter__(self) -> Publisher:
        """Use the publisher in a ``with`` block; leaving it flushes and closes."""
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Flush and close; a delivery failure raises unless the block already raised."""
        try:
            self.close()
        except DeliveryFailedError:
            if exc is None:
                raise
            logger.exception("records were not delivered while another error was raised")

    @property
    def producer(self) -> Producer:
        """The underlying confluent-kafka producer (for metrics, ``list_topics`` and the like)."""
        return self._producer
