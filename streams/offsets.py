"""Where a partition really ends: the embedded broker's ``ListOffsets`` under-reports after batching.

Tansu answers ``ListOffsets`` (latest) with the first offset of the partition's last record batch
+ 1 rather than its last offset + 1 (ARCHITECTURE.md), so ``get_watermark_offsets()`` and aiokafka's
``end_offsets()`` are short whenever producers batch. The high watermark in a fetch response is
right; :func:`true_end_offsets` fetches from the reported end - 1 and reads it. Faust's table
recovery (processors) and the dead-letter tool (connectors) both rely on it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Final, Protocol, TypeVar

from confluent_kafka import TopicPartition

from streams.clients import consumer as make_consumer
from streams.errors import BrokerUnreachableError
from streams.settings import KafkaSettings

__all__ = ["PartitionLike", "true_end_offsets"]

logger = logging.getLogger(__name__)

_PROBE_TIMEOUT_S: Final = 10.0


class PartitionLike(Protocol):
    """Anything naming a topic partition: Faust's ``TP``, or any named tuple of the two."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


K = TypeVar("K", bound=PartitionLike)


def true_end_offsets(kafka: KafkaSettings, reported: Mapping[K, int]) -> dict[K, int]:
    """Return the real end offset (last offset + 1) of each partition whose reported end is > 0.

    Fetches from ``reported - 1`` (the first offset of the last record batch, on the embedded
    broker) and takes the high watermark of the fetch response. On a broker that reports ends right
    this returns the same numbers, one small fetch per partition later. A partition ending in a
    transaction marker answers with end-of-partition instead of a record, which counts as well.

    Raises:
        BrokerUnreachableError: when the broker does not answer within the probe timeout.
    """
    wanted = {tp: end for tp, end in reported.items() if end and end > 0}
    if not wanted:
        return dict(reported)
    probe = make_consumer(
        kafka,
        f"revstream-end-offset-probe-{int(time.time() * 1000)}",
        **{"enable.partition.eof": True, "fetch.wait.max.ms": 10},
    )
    try:
        probe.assign([TopicPartition(tp.topic, tp.partition, end - 1) for tp, end in wanted.items()])
        pending = {(tp.topic, tp.partition) for tp in wanted}
        deadline = time.monotonic() + _PROBE_TIMEOUT_S
        while pending and time.monotonic() < deadline:
            for message in probe.consume(num_messages=len(pending) * 10, timeout=0.2):
                pending.discard((message.topic(), message.partition()))
        if pending:
            raise BrokerUnreachableError(
                f"the broker did not return the end of {sorted(pending)} within {_PROBE_TIMEOUT_S:g}s; "
                "check that it is reachable, then try again"
            )
        corrected = dict(reported)
        for tp, end in wanted.items():
            _, high = probe.get_watermark_offsets(TopicPartition(tp.topic, tp.partition), cached=True)
            corrected[tp] = max(end, int(high))
            if corrected[tp] != end:
                logger.info(
                    "end offset of %s[%d]: broker said %d, it is %d", tp.topic, tp.partition, end, high
                )
        return corrected
    finally:
        probe.close()
