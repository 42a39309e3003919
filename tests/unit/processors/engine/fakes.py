"""Stand-ins for the engine's collaborators: Faust's TP, a table partition store, confluent's Producer."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class TP:
    topic: str
    partition: int


class FakeTable:
    def __init__(self, name: str, stored: dict[tuple[int, bytes], bytes]) -> None:
        self.name = name
        self.stored = stored
        self.written: list[tuple[int, dict[bytes, bytes | None]]] = []
        self.persisted: dict[int, int] = {}

    @property
    def changelog_topic(self) -> str:
        return f"app-{self.name}-changelog"

    def get(self, partition: int, key: bytes) -> bytes | None:
        return self.stored.get((partition, key))

    def write(self, partition: int, items: dict[bytes, bytes | None]) -> None:
        self.written.append((partition, dict(items)))

    def persist_offset(self, partition: int, offset: int) -> None:
        self.persisted[partition] = offset


class FakeProducer:
    """Stands in for confluent-kafka's Producer: delivery reports are served on poll."""

    def __init__(self, fail_topics: frozenset[str] = frozenset()) -> None:
        self.on_delivery: Any = None
        self.fail_topics = fail_topics
        self.pending: list[tuple[Any, Any]] = []
        self.sent: list[tuple[str, bytes | None, bytes | None, dict[str, Any]]] = []
        self.offsets: dict[tuple[str, int], int] = {}

    def produce(self, topic: str, value: bytes | None, key: bytes | None, **kwargs: Any) -> None:
        partition = kwargs.get("partition", 0)
        offset = self.offsets.get((topic, partition), -1) + 1
        self.offsets[topic, partition] = offset
        self.sent.append((topic, key, value, kwargs))
        self.pending.append((self.on_delivery, FakeMessage(topic, partition, offset)))

    def poll(self, timeout: float = 0) -> int:
        served, self.pending = self.pending, []
        for callback, message in served:
            error = FakeError() if message.topic() in self.fail_topics else None
            callback(error, message)
        return len(served)

    def flush(self, timeout: float = 0) -> int:
        self.poll()
        return 0


class FakeMessage:
    def __init__(self, topic: str, partition: int, offset: int) -> None:
        self._where = (topic, partition, offset)

    def topic(self) -> str:
        return self._where[0]

    def partition(self) -> int:
        return self._where[1]

    def offset(self) -> int:
        return self._where[2]


class FakeError:
    def str(self) -> str:
        return "Broker: not enough replicas"
