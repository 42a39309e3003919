"""Hostile input on the topics, with a worker running: every record ends somewhere, the worker lives.

Issue 12: an oversized record crash-looped the worker (its dead-letter copy could not be produced),
a null-keyed customer record was dropped as "older", figures beyond a long failed the batch, and an
invoice with a reversed line period was half posted. Each record here is pushed as a hostile
producer would (raw bytes, a producer allowed larger messages than the worker's), and the test
asserts where each one ended.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from streams.clients import producer as make_producer
from streams.deadletter import MAX_RECORD_BYTES, VALUE_PREFIX_BYTES, DeadLetter
from tests.integration.processors.harness import Harness, WorkerProcess, headers_of, wait_until
from tests.unit.processors import factories as f

WAIT_S = 60.0
BIG = 2 * 1024 * 1024


@pytest.fixture(scope="module")
def worker(harness: Harness, worker_factory: Callable[..., WorkerProcess]) -> Iterator[WorkerProcess]:
    harness.publish_master(f.product("P1"), f.legal_entity("LE-DE"))
    yield worker_factory(harness.catalog.namespace, REVSTREAM_WORKER_MASTER_RETRY_ATTEMPTS="2").wait_ready()


def _big_producer(harness: Harness) -> Any:
    # What a hostile or misconfigured producer does: allow itself more than the worker's producer.
    return make_producer(harness.settings.kafka, **{"message.max.bytes": 4 * BIG})


def _letters(harness: Harness, stage: str, key: bytes) -> Callable[[], list[DeadLetter]]:
    return lambda: [letter for letter in harness.dead_letters(stage) if letter.source.key == key]


def test_an_oversized_record_is_dead_lettered_cut_to_a_prefix_with_its_digest(
    harness: Harness, worker: WorkerProcess
) -> None:
    key = f"C-{uuid.uuid4().hex[:8]}".encode()
    topic = harness.catalog.event_topic("invoice_posted")
    value = bytes(range(256)) * (BIG // 256)
    producer = _big_producer(harness)
    producer.produce(topic, key=key, value=value, headers=[("trace", b"t-1")])
    assert producer.flush(30) == 0

    (letter,) = wait_until(_letters(harness, "decode", key), WAIT_S, "the oversized dead letter", worker)

    assert letter.failure.reason_code == "RECORD_TOO_LARGE"
    assert letter.source.value == value[:VALUE_PREFIX_BYTES]
    assert letter.source.topic == topic and letter.source.offset >= 0
    assert letter.source.headers == (("trace", b"t-1"),)
    assert f"of {len(value)} value bytes" in letter.failure.error_message
    assert str(MAX_RECORD_BYTES) in letter.failure.error_message
    (raw,) = [m for m in harness.read(harness.catalog.deadletter_topic("decode")) if m.key() == key]
    context = dict(headers_of(raw))
    assert context["revstream.dlq.value_sha256"] == hashlib.sha256(value).hexdigest().encode()
    assert context["revstream.dlq.value_bytes"] == str(len(value)).encode()
    assert context["revstream.dlq.truncated"] == b"true"
    assert worker.process is not None and worker.process.poll() is None
