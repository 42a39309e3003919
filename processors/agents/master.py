"""Master data in Faust global tables, fed from the compacted master-data topics.

An agent reads the master-data topics (their partitions are shared between workers like any
other) and writes each record that is newer than what the table holds (``master_newer``: version,
then ``updated_at``) into the ``GlobalTable`` of its kind; Faust replicates a global table to every
worker through its changelog. Values stay the Avro bytes the producers wrote; decoded models are
cached per id, and the cache follows both this worker's writes and the changelog records Faust
applies from the other workers.

Measured facts this relies on (faust-streaming 0.15.3): a global table whose ``changelog_topic`` is
set to the master topic itself breaks Faust's partition assignor (it looks the changelog up by its
default name), so the table keeps its own changelog; and a global table only applies other
workers' updates as they arrive with ``recovery_buffer_size=1`` (otherwise they wait in a buffer
of 1,000 records), so that is set.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping
from typing import Any, Generic, TypeVar

from processors.rules.enrich import MasterView, master_newer
from schemas.models import Customer, LegalEntity, MasterRecord, Product
from schemas.names import MASTER_DATA_KINDS
from streams.errors import SerdeError
from streams.serde import AvroSerde
from streams.topics import TopicCatalog

__all__ = ["MASTER_MODELS", "MasterData", "MasterLookup"]

logger = logging.getLogger(__name__)

MASTER_MODELS: Mapping[str, type[MasterRecord]] = {
    "customer": Customer,
    "product": Product,
    "legal_entity": LegalEntity,
}

M = TypeVar("M", Customer, Product, LegalEntity)


class MasterLookup(Mapping[str, M], Generic[M]):
    """Records of one kind by id: the decoded cache first, then the global table's store."""

    def __init__(self, kind: str, table: Any, serde: AvroSerde) -> None:
        self.kind = kind
        self.table = table
        self._serde = serde
        self._model = MASTER_MODELS[kind]
        self._cache: dict[str, M] = {}
        self.rejected = 0

    def get(self, key: str, default: Any = None) -> Any:
        """Return the record with id ``key``, or ``default`` when it has not arrived."""
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        raw = self.table.get(key.encode())
        if raw is None:
            return default
        record = self._decode(raw)
        if record is None:
            return default
        self._cache[key] = record
        return record

    def __getitem__(self, key: str) -> M:
        record = self.get(key)
        if record is None:
            raise KeyError(key)
        return record

    def __iter__(self) -> Iterator[str]:
        return (key.decode() for key in self.table.keys())

    def __len__(self) -> int:
        return len(self.table)

    def on_record(self, key: bytes | None, value: bytes | None) -> None:
        """Follow one record Faust applied to the table (a tombstone removes the id)."""
        if key is None:
            return
        record_id = key.decode("utf-8", "replace")
        if value is None:
            self._cache.pop(record_id, None)
            return
        incoming = self._decode(value)
        if incoming is None:
            return
        current = self._cache.get(record_id)
        if current is None or master_newer(current, incoming):
            self._cache[record_id] = incoming

    def decode_strict(self, raw: bytes) -> M:
        """Decode a master-data record of this kind.

        Raises:
            SerdeError: when it is not one.
        """
        record = self._serde.decode_model(raw, self._model, topic=self.kind)
        return record  # type: ignore[return-value]

    def _decode(self, raw: bytes) -> M | None:
        try:
            record = self._serde.decode_model(raw, self._model, topic=self.kind)
        except SerdeError as exc:
            # One bad master-data record must not stop the worker; events needing it stay parked.
            self.rejected += 1
            logger.warning("ignoring an unreadable %s master-data record: %s", self.kind, exc)
            return None
        return record  # type: ignore[return-value]


class MasterData:
    """The global tables of every master-data kind and the :class:`MasterView` the rules read."""

    def __init__(self, app: Any, catalog: TopicCatalog, serde: AvroSerde) -> None:
        self.lookups: dict[str, MasterLookup[Any]] = {}
        self.kind_of_topic: dict[str, str] = {}
        for kind in MASTER_DATA_KINDS:
            lookup: MasterLookup[Any] = MasterLookup(kind, None, serde)
            lookup.table = app.GlobalTable(
                f"master-{kind}",
                key_type=bytes,
                value_type=bytes,
                partitions=catalog.partitions,
                recovery_buffer_size=1,
                on_changelog_event=self._follower(lookup),
                help=f"{kind} master data, fed from {catalog.master_topic(kind)}",
            )
            self.lookups[kind] = lookup
            self.kind_of_topic[catalog.master_topic(kind)] = kind
        self.topic = app.topic(
            *self.kind_of_topic,
            key_type=bytes,
            value_type=bytes,
            key_serializer="raw",
            value_serializer="raw",
        )
        self.view = MasterView(
            customers=self.lookups["customer"],
            products=self.lookups["product"],
            legal_entities=self.lookups["legal_entity"],
        )

    @staticmethod
    def _follower(lookup: MasterLookup[Any]) -> Any:
        async def on_changelog_event(event: Any) -> None:
            lookup.on_record(event.message.key, event.message.value)

        return on_changelog_event

    def apply(self, topic: str, key: bytes | None, value: bytes | None) -> bool:
        """Store one record read from master-data ``topic`` if it is newer; return whether it was.

        Must run inside the agent's stream iteration (Faust writes the table's changelog to the
        partition of the record being processed). A tombstone removes the id.

        Raises:
            SerdeError: when the record cannot be decoded (the agent dead-letters it).
        """
        lookup = self.lookups[self.kind_of_topic[topic]]
        if key is None:
            return False
        if value is None:
            lookup.table.pop(key, None)
            lookup.on_record(key, None)
            return True
        incoming = lookup.decode_strict(value)
        current = lookup.get(key.decode("utf-8", "replace"))
        if current is not None and not master_newer(current, incoming):
            return False
        lookup.table[key] = value
        lookup.on_record(key, value)
        return True
