"""Partitions' true end offsets (Kafka's high watermark), read from fetch responses.

On Apache Kafka ``ListOffsets`` for the latest offset returns the high watermark. The embedded
broker (Tansu) returns the base offset of the last record batch + 1 instead, which under-reports
whenever producers batch (ARCHITECTURE.md). The high watermark a fetch response carries is right on
both, so :class:`EndOffsetProbe` fetches from ``reported - 1`` (the first offset of the last batch
there) and keeps the watermark of the answer. On a broker that reports ends right this returns the
same numbers, one small fetch per partition later. The workers' table recovery and the lag exporter
share this one implementation.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Mapping
from types import TracebackType
from typing import Final, Protocol, Self, TypeVar

from confluent_kafka import TopicPartition

from streams.clients import consumer as make_consumer
from streams.errors import BrokerUnreachableError
from streams.settings import KafkaSettings

__all__ = ["EndOffsetProbe", "PartitionKey", "true_end_offsets"]

logger = logging.getLogger(__name__)

PROBE_TIMEOUT_S: Final = 10.0


class PartitionKey(Protocol):
    """Anything naming a partition: Faust's ``TP``, a lag exporter's key."""

    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...


K = TypeVar("K", bound=PartitionKey)


class EndOffsetProbe:
    """A consumer outside any group that reads partitions' high watermarks from fetch responses.

    One probe can answer many calls (the lag exporter keeps one per process); it never commits and
    never joins a group, so it is invisible to the groups it measures.
    """

    def __init__(self, kafka: KafkaSettings, timeout_s: float = PROBE_TIMEOUT_S) -> None:
        self._timeout_s = timeout_s
        self._consumer = make_consumer(
            kafka,
            f"revstream-end-offset-probe-{uuid.uuid4().hex[:12]}",
            **{"enable.partition.eof": True, "fetch.wait.max.ms": 10},
        )

    def true_ends(self, reported: Mapping[K, int]) -> dict[K, int]:
        """Return the real end offset (last offset + 1) of each partition, given what ListOffsets said.

        Partitions reported empty (end 0) are returned as they are: nothing was ever appended.

        Raises:
            BrokerUnreachableError: when the broker does not answer within the probe timeout.
        """
        wanted = {key: end for key, end in reported.items() if end and end > 0}
        if not wanted:
            return dict(reported)
        self._consumer.assign(
            [TopicPartition(key.topic, key.partition, end - 1) for key, end in wanted.items()]
        )
        pending = {(key.topic, key.partition) for key in wanted}
        deadline = time.monotonic() + self._timeout_s
        while pending and time.monotonic() < deadline:
            for message in self._consumer.consume(num_messages=max(10, len(pending) * 10), timeout=0.2):
                pending.discard((message.topic(), message.partition()))
        if pending:
            raise BrokerUnreachableError(
                f"the broker did not return the end of {sorted(pending)[:5]} "
                f"({len(pending)} partitions) within {self._timeout_s:g}s; check that it is reachable"
            )
        corrected = dict(reported)
        for key, end in wanted.items():
            _, high = self._consumer.get_watermark_offsets(
                TopicPartition(key.topic, key.partition), cached=True
            )
            corrected[key] = max(end, int(high))
            if corrected[key] != end:
                logger.debug(
                    "end offset of %s[%d]: broker said %d, it is %d", key.topic, key.partition, end, high
                )
        self._consumer.unassign()
        return corrected

    def close(self) -> None:
        """Close the probe's consumer."""
        self._consumer.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()


def true_end_offsets(
    kafka: KafkaSettings, reported: Mapping[K, int], timeout_s: float = PROBE_TIMEOUT_S
) -> dict[K, int]:
    """Return the real end offset of each partition whose reported end is > 0 (one-shot probe).

    Raises:
        BrokerUnreachableError: when the broker does not answer within ``timeout_s``.
    """
    if not any(end and end > 0 for end in reported.values()):
        return dict(reported)
    with EndOffsetProbe(kafka, timeout_s) as probe:
        return probe.true_ends(reported)
