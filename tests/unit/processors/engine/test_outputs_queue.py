"""A full librdkafka queue delays a produce until delivery reports make room: never a lost record."""

from __future__ import annotations

from typing import Any

import pytest

from processors.engine.outputs import OutputProducer
from streams.settings import KafkaSettings


class FullOnce:
    """A producer whose queue is full on the first attempt of each record."""

    def __init__(self) -> None:
        self.produced: list[tuple[Any, ...]] = []
        self.polls = 0
        self._full = True

    def produce(self, topic: str, value: bytes | None, key: bytes | None, **kwargs: Any) -> None:
        if self._full:
            self._full = False
            raise BufferError("Local: Queue full")
        self._full = True
        self.produced.append((topic, value, key, kwargs))

    def poll(self, timeout: float) -> int:
        self.polls += 1
        return 0


@pytest.mark.parametrize(
    ("headers", "partition", "kwargs"),
    [
        (None, None, {}),
        ([("h", b"1")], None, {"headers": [("h", b"1")]}),
        (None, 2, {"partition": 2}),
    ],
)
def test_a_record_refused_by_a_full_queue_is_produced_once_after_serving_reports(
    headers: list[tuple[str, bytes | None]] | None, partition: int | None, kwargs: dict[str, Any]
) -> None:
    producer = FullOnce()
    outputs = OutputProducer(KafkaSettings(), producer=producer)  # type: ignore[arg-type]
    outputs.produce("t", b"k", b"v", headers, partition)
    assert producer.produced == [("t", b"v", b"k", kwargs)]
    assert producer.polls == 1
    assert outputs.in_flight == 1
