"""Delivery reports: a record the broker refuses for its size is marked so (a retry cannot succeed)."""

from __future__ import annotations

from concurrent.futures import Future

import pytest
from confluent_kafka import KafkaError

from connectors.errors import DeliveryFailedError
from connectors.producers.delivery import Delivery, DeliveryTracker


class _Reported:
    # librdkafka hands the callback a Message, which Python code cannot build; this is its face.
    def key(self) -> bytes:
        return b"CUST-1"

    def topic(self) -> str:
        return "rs.events.usage_recorded"


@pytest.mark.parametrize(
    ("code", "too_large"), [(KafkaError.MSG_SIZE_TOO_LARGE, True), (KafkaError._MSG_TIMED_OUT, False)]
)
def test_a_size_refusal_is_marked_too_large(code: int, too_large: bool) -> None:
    tracker = DeliveryTracker(threaded=False, fail_fast=False, on_delivery=None)
    tracker.sent()
    future: Future[Delivery] = Future()
    tracker.report(future, 7, None, KafkaError(code), _Reported())  # type: ignore[arg-type]
    failure = future.exception()
    assert isinstance(failure, DeliveryFailedError)
    assert failure.too_large is too_large
    assert tracker.in_flight == 0 and tracker.failed == 1
