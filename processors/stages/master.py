"""Master data: customers in a Faust global table, products and legal entities read whole.

Products and legal entities (reference data, named by every customer's events) are read by every
worker from all partitions of their topics: :mod:`processors.stages.reference` says why. Customer
records take the batch path like the events (their partitions are shared between workers,
co-partitioned with the rest, so a customer's record reaches the worker of its events), and a
fetch's customer records are applied before its events, so that an event published after its
customer does not wait for it. A record newer than what the table holds (``master_newer``:
version, then ``updated_at``) is written to the ``GlobalTable`` with the batch's state; Faust
replicates a global table to every worker through its changelog. Values stay the Avro bytes the
producers wrote; decoded models are cached per id, and the cache follows both this worker's writes
and the changelog records Faust applies from the other workers.

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

from processors.errors import MasterKeyError
from processors.rules.enrich import MasterView, master_newer
from processors.stages.reference import ReferenceFeed
from schemas.models import Customer, LegalEntity, MasterRecord, Product
from schemas.names import MASTER_DATA_KINDS
from streams.errors import RegistryUnavailableError, SerdeError
from streams.serde import AvroSerde
from streams.settings import KafkaSettings
from streams.topics import TopicCatalog

__all__ = ["MASTER_MODELS", "REFERENCE_KINDS", "MasterData", "MasterLookup"]

logger = logging.getLogger(__name__)

MASTER_MODELS: Mapping[str, type[MasterRecord]] = {
    "customer": Customer,
    "product": Product,
    "legal_entity": LegalEntity,
}

MASTER_ID_FIELDS: Mapping[str, str] = {
    "customer": "customer_id",
    "product": "product_id",
    "legal_entity": "legal_entity_id",
}
"""The field of each kind that holds the record's id: its topic's key."""

REFERENCE_KINDS: frozenset[str] = frozenset({"product", "legal_entity"})
"""Master data every worker reads whole (:mod:`processors.stages.reference`)."""

M = TypeVar("M", Customer, Product, LegalEntity)


class MasterLookup(Mapping[str, M], Generic[M]):
    """Records of one kind by id: the decoded cache first, then the global table's store."""

    def __init__(self, kind: str, table: Any, serde: AvroSerde, cache_max: int = 100_000) -> None:
        self.kind = kind
        self.table = table
        self._serde = serde
        self._model = MASTER_MODELS[kind]
        self._cache: dict[str, M] = {}
        self.cache_max = cache_max
        """Decoded records kept when a table holds them all (a miss decodes from the table again);
        without a table (reference data) the cache is the store and keeps every id."""
        self.rejected = 0

    def get(self, key: str, default: Any = None) -> Any:
        """Return the record with id ``key``, or ``default`` when it has not arrived."""
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        if self.table is None:
            return default
        raw = self.table.get(key.encode())
        if raw is None:
            return default
        record = self._decode(raw)
        if record is None:
            return default
        self._remember(key, record)
        return record

    def _remember(self, key: str, record: M) -> None:
        if self.table is not None and len(self._cache) >= self.cache_max and key not in self._cache:
            # The oldest entry goes (dicts keep insertion order): a bounded cache in front of the table.
            del self._cache[next(iter(self._cache))]
        self._cache[key] = record

    def __getitem__(self, key: str) -> M:
        record = self.get(key)
        if record is None:
            raise KeyError(key)
        return record

    def __iter__(self) -> Iterator[str]:
        if self.table is None:
            return iter(list(self._cache))
        return (key.decode() for key in self.table.keys())

    def __len__(self) -> int:
        return len(self._cache) if self.table is None else len(self.table)

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
            self._remember(record_id, incoming)

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
        except RegistryUnavailableError:
            raise  # not the record's fault: the caller retries
        except SerdeError as exc:
            # One bad master-data record must not stop the worker; events needing it stay parked.
            # It is dead-lettered where it is read through the group (Pipeline.process_master).
            self.rejected += 1
            logger.debug("ignoring an unreadable %s master-data record: %s", self.kind, exc)
            return None
        return record  # type: ignore[return-value]


class MasterData:
    """Customers in a global table, reference data read whole; the :class:`MasterView` the rules read.

    Args:
        reference: the kinds every worker reads whole through a :class:`ReferenceFeed` (products and
            legal entities); the others take the batch path into global tables.
    """

    def __init__(
        self,
        app: Any,
        catalog: TopicCatalog,
        serde: AvroSerde,
        kafka: KafkaSettings,
        *,
        reference: frozenset[str] = REFERENCE_KINDS,
        fetch_max_wait_ms: int | None = None,
        cache_max: int = 100_000,
    ) -> None:
        self.lookups: dict[str, MasterLookup[Any]] = {}
        self.kind_of_topic: dict[str, str] = {}
        self.reference_topics: dict[str, str] = {}
        """Topic → kind of the reference data; also read through the group, only to dead-letter
        records that do not decode (the feed ignores them, each worker reads them whole)."""
        reference_lookups: dict[str, MasterLookup[Any]] = {}
        for kind in MASTER_DATA_KINDS:
            lookup: MasterLookup[Any] = MasterLookup(kind, None, serde, cache_max)
            if kind in reference:
                self.lookups[kind] = reference_lookups[catalog.master_topic(kind)] = lookup
                self.reference_topics[catalog.master_topic(kind)] = kind
                continue
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
        self.feed = ReferenceFeed(kafka, reference_lookups, fetch_max_wait_ms)
        self.view = MasterView(
            customers=self.lookups["customer"],
            products=self.lookups["product"],
            legal_entities=self.lookups["legal_entity"],
        )

    @staticmethod
    def _follower(lookup: MasterLookup[Any]) -> Any:
        async def on_changelog_event(event: Any) -> None:
            try:
                lookup.on_record(event.message.key, event.message.value)
            except RegistryUnavailableError as exc:
                # Not cached then: a lookup decodes the record from the table when it is needed.
                logger.warning("%s record not cached, the registry is unavailable: %s", lookup.kind, exc)

        return on_changelog_event

    def tables(self) -> list[Any]:
        """The global tables, one per kind that takes the batch path."""
        return [lookup.table for lookup in self.lookups.values() if lookup.table is not None]

    def check_reference(self, message: Any) -> None:
        """Decode one reference-data record read through the group (the feed applies it).

        Raises:
            SerdeError: when it cannot be decoded (the caller dead-letters it).
        """
        if message.value is not None:
            self.lookups[self.reference_topics[message.topic]].decode_strict(message.value)

    def apply(self, message: Any, state: Any) -> bool:
        """Store one master-data record if it is newer than what is stored; return whether it was.

        ``state`` is the batch's :class:`processors.engine.state.StateBatch`: the record is written to the
        global table's partition of the record (its changelog reaches the other workers) with the
        batch. The decoded cache is updated at once, so later events of the same batch see it. A
        tombstone removes the id.

        Raises:
            SerdeError: when the record cannot be decoded (the caller dead-letters it).
            MasterKeyError: when the record has no key, or its key is not its own id (stored under
                it, it would answer for another customer); the caller dead-letters it.
        """
        lookup = self.lookups[self.kind_of_topic[message.topic]]
        key: bytes | None = message.key
        if key is None:
            raise MasterKeyError(
                f"a {lookup.kind} record without a key names no {lookup.kind}; key it by its"
                f" {MASTER_ID_FIELDS[lookup.kind]}"
            )
        name = lookup.table.name
        if message.value is None:
            state.put(name, message.partition, key, None)
            lookup.on_record(key, None)
            return True
        incoming = lookup.decode_strict(message.value)
        record_id = str(getattr(incoming, MASTER_ID_FIELDS[lookup.kind]))
        if key != record_id.encode():
            raise MasterKeyError(
                f"a {lookup.kind} record keyed {key[:64]!r} holds {MASTER_ID_FIELDS[lookup.kind]}"
                f" {record_id!r}; key it by its own id"
            )
        # Compared with what is stored, not with the cache, so that a batch processed again after
        # a failure writes what it did not get to write the first time.
        stored = state.get(name, message.partition, key)
        if stored is not None and not master_newer(lookup.decode_strict(stored), incoming):
            return False
        state.put(name, message.partition, key, message.value)
        lookup.on_record(key, message.value)
        return True
