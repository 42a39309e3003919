"""Every private faust-streaming, aiokafka and mode name the worker relies on, and nowhere else.

Checked against faust-streaming 0.15.3, aiokafka 0.14.0 and mode-streaming 0.7.1 (the pins in
``pyproject.toml``). :func:`check_faust_version` refuses another faust-streaming when the app is
built, and ``tests/unit/processors/engine/test_faust_internals.py`` fails, naming the internal, when
an upgrade removes or renames one of those below, changes a signature the worker calls, or changes
the drain loop copied here (:data:`INTERNALS` is the list that test walks). The rest of the code
reaches them only through this module.

Overridden (the worker's subclasses here replace them):

- ``faust.transport.consumer.Consumer._drain_messages(fetcher)``: Faust's fetch loop, which
  delivers every record through a conductor, a queue and a stream (about 10 k records/s here).
  :class:`DrainLoopConsumer` replaces it with a copy that hands the records of the batch topics over
  per fetch; offset tracking, gaps, flow control and shutdown stay as in Faust's.
- ``faust.transport.drivers.aiokafka.Consumer._new_consumer_thread()``: so that the consumer
  thread is :class:`FetchWaitConsumerThread`.
- ``faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._create_worker_consumer(transport)``:
  the aiokafka consumer it builds gets the fetch wait the worker asks for.
- ``faust.App._new_transport()``: :class:`TransportApp` builds the transport class it names
  instead of the one Faust picks by the broker URL's scheme.
- ``faust.transport.consumer.Consumer._new_offset(tp)``: the offset Faust would commit for a
  partition; :class:`DrainLoopConsumer` first drops acknowledgements below the committed offset and
  asks :meth:`DrainLoopConsumer.commit_may_advance` (``processors/engine/consumer.py`` says why).
- ``Consumer.perform_seek()`` and ``Consumer.on_partitions_revoked(revoked)`` (public, overridden
  to keep the first offset read per partition and the partitions just sought).

Read, set or called:

- ``faust.transport.consumer.Consumer._read_offset`` (``{TP: offset or None}``): the offset of the
  last record handed over per partition; the drain loop keeps it, :meth:`DrainLoopConsumer.read_offset`
  reads it (how far a partition has been read).
- ``faust.transport.consumer.Consumer._add_gap(tp, offset_from, offset_to)``: offsets that never
  arrive (compaction, transaction markers), so that Faust's commit can move past them.
- ``Consumer._committed_offset`` (``{TP: offset or None}``), ``Consumer._acked`` (``{TP: [offset]}``,
  kept sorted by Faust), ``Consumer._acked_index`` (``{TP: {offset}}``, the same offsets as a set)
  and ``Consumer._gap`` (``{TP: IntervalTree}`` of offsets that hold no record, ``begin``/``end``
  exclusive): what ``_new_offset`` decides from; stale acknowledgements are removed from both
  ``_acked`` and ``_acked_index``.
- ``mode.Service._stopped`` (an event) of the consumer and of its fetcher: the drain loop's stop
  condition.
- ``aiokafka.AIOKafkaConsumer._fetch_max_wait_ms``: Faust constructs the consumer with a fixed
  fetch wait (1,500 ms); aiokafka reads this attribute only when it starts its fetcher, so setting
  it between construction and start changes the wait.
- ``faust.stores.rocksdb.Store._db_for_partition(partition)``: the RocksDB database of one table
  partition (opened on first use), which the worker reads and writes directly (:func:`partition_db`).
- ``faust.stores.rocksdb.Store.set_persisted_offset(tp, offset)``: where Faust's table recovery
  starts reading the changelog; public on the store, but the worker calls it outside Faust's own
  write path (:func:`persist_changelog_offset`).

The copied drain loop also uses public members of Faust's consumer (:data:`DRAIN_LOOP_USES`);
the test checks those exist too.

Not behind this module: ``streams/faust_codec.py`` overrides ``faust.serializers.codecs.Codec``'s
``_dumps`` and ``_loads``, the hooks Faust documents for custom codecs. ``streams`` sits below
``processors`` in the import order, and the worker does not use that codec (it reads raw bytes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Final, cast

import faust
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP

from processors.errors import WorkerConfigError

__all__ = [
    "DRAIN_LOOP_SHA256",
    "DRAIN_LOOP_USES",
    "FAUST_VERSION",
    "INTERNALS",
    "BatchHandler",
    "DrainLoopConsumer",
    "FetchWaitConsumerThread",
    "Internal",
    "TransportApp",
    "check_faust_version",
    "partition_db",
    "persist_changelog_offset",
]

logger = logging.getLogger(__name__)

FAUST_VERSION: Final = "0.15.3"

DRAIN_LOOP_SHA256: Final = "44a2500309e83c630493f6828af50166ec8d96a0b3e4fb2bab735f704ae93417"
"""SHA-256 of the source of Faust's ``Consumer._drain_messages`` the copy below was taken from."""

BatchHandler = Callable[[Mapping[TP, list[Any]]], Awaitable[None]]
"""Processes ``{TP: [faust Message]}`` and acknowledges what it finished."""


@dataclass(frozen=True)
class Internal:
    """One private name of Faust, aiokafka or mode that the worker relies on."""

    owner: str
    """Dotted path of the class that has it."""
    name: str
    parameters: tuple[str, ...] | None = None
    """For a method: its parameters after ``self``, as the worker calls or overrides it."""
    on_instance: bool = False
    """Set by the constructor, so only an instance has it."""


INTERNALS: Final = (
    Internal("faust.transport.consumer.Consumer", "_drain_messages", ("fetcher",)),
    Internal("faust.transport.drivers.aiokafka.Consumer", "_new_consumer_thread", ()),
    Internal(
        "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread", "_create_worker_consumer", ("transport",)
    ),
    Internal("faust.App", "_new_transport", ()),
    Internal("faust.transport.consumer.Consumer", "_new_offset", ("tp",)),
    Internal("faust.transport.consumer.Consumer", "perform_seek", ()),
    Internal("faust.transport.consumer.Consumer", "on_partitions_revoked", ("revoked",)),
    Internal("faust.transport.consumer.Consumer", "_read_offset", on_instance=True),
    Internal("faust.transport.consumer.Consumer", "_committed_offset", on_instance=True),
    Internal("faust.transport.consumer.Consumer", "_acked", on_instance=True),
    Internal("faust.transport.consumer.Consumer", "_acked_index", on_instance=True),
    Internal("faust.transport.consumer.Consumer", "_gap", on_instance=True),
    Internal("faust.transport.consumer.Consumer", "_add_gap", ("tp", "offset_from", "offset_to")),
    Internal("mode.Service", "_stopped", on_instance=True),
    Internal("aiokafka.AIOKafkaConsumer", "_fetch_max_wait_ms", on_instance=True),
    Internal("faust.stores.rocksdb.Store", "_db_for_partition", ("partition",)),
    Internal("faust.stores.rocksdb.Store", "set_persisted_offset", ("tp", "offset")),
)
"""The internals of the module docstring, for the test that checks them against the installed versions."""

DRAIN_LOOP_USES: Final = (
    "callback",
    "getmany",
    "diag",
    "sleep",
    "should_stop",
    "wait_first",
    "suspend_flow",
    "consumer_stopped_errors",
    "transport",
    "app",
    "log",
)
"""Public members of Faust's consumer that the copied drain loop uses."""


def check_faust_version() -> None:
    """Refuse to run on another faust-streaming than the one these internals were checked against.

    Raises:
        WorkerConfigError: when the installed version differs from :data:`FAUST_VERSION`.
    """
    if faust.__version__ != FAUST_VERSION:
        raise WorkerConfigError(
            f"faust-streaming {faust.__version__} is installed, revstream's worker needs {FAUST_VERSION}; "
            f"install faust-streaming=={FAUST_VERSION}"
        )


class TransportApp(faust.App):
    """``faust.App`` whose transport is an instance of :attr:`transport_class`."""

    transport_class: ClassVar[type[Any]] = faust_aiokafka.Transport

    def _new_transport(self) -> Any:
        return self.transport_class(self.conf.broker_consumer, self)


class FetchWaitConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's aiokafka consumer thread; its aiokafka consumer gets the consumer's fetch wait."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        wait = cast(DrainLoopConsumer, self.consumer).fetch_max_wait_ms()
        if wait is not None:
            consumer._fetch_max_wait_ms = wait
        return consumer


class DrainLoopConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer whose drain loop hands the records of some topics over per fetch.

    A subclass names those topics and the coroutine that takes them (:meth:`batch_path`, asked on
    every fetch), the fetch wait (:meth:`fetch_max_wait_ms`) and when a committed offset may
    advance (:meth:`commit_may_advance`); records of every other topic take Faust's ordinary path.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The first offset read since the partition was assigned or sought, and the partitions whose
        # read offset is a position sought (the next record to read), not a record read.
        self._first_read: dict[TP, int] = {}
        self._sought: set[TP] = set()

    def batch_path(self) -> tuple[frozenset[str], BatchHandler | None]:
        """Return the topics whose records are handed over per fetch, and the coroutine taking them."""
        return frozenset(), None

    def fetch_max_wait_ms(self) -> int | None:
        """Return the fetch wait for the aiokafka consumer, or ``None`` to keep aiokafka's."""
        return None

    def commit_may_advance(self, base: int | None, acked: Collection[int], gaps: Iterable[Any]) -> bool:
        """Whether the offset of a partition whose commit starts at ``base`` may advance (Faust: always).

        ``base`` is its committed offset, or with none its first offset read since assigned or
        sought (``None``: not known); ``acked`` its acknowledged offsets, ``gaps`` the intervals of
        offsets that hold no record.
        """
        return True

    def read_offset(self, tp: TP) -> int | None:
        """Return the offset of the last record of ``tp`` handed over, or ``None`` before the first."""
        offset: int | None = self._read_offset.get(tp)
        return offset

    def _new_offset(self, tp: TP) -> int | None:
        committed = self._committed_offset.get(tp)
        acked = self._acked.get(tp)
        if committed is not None and acked and min(acked) < committed:
            # Acknowledged under an earlier assignment, then committed by another owner: Faust would
            # commit back to them, and then wait for ever for offsets that come no more.
            stale = {offset for offset in acked if offset < committed}
            acked[:] = [offset for offset in acked if offset >= committed]
            self._acked_index[tp].difference_update(stale)
        base = committed if committed is not None else self._first_read.get(tp)
        if not self.commit_may_advance(base, acked or (), self._gap.get(tp, ())):
            return None
        offset: int | None = super()._new_offset(tp)
        return offset

    async def perform_seek(self) -> None:
        """Seek the partitions to their committed offsets, and start their first-read bookkeeping anew."""
        await super().perform_seek()
        # A partition with nothing committed keeps its position (and its first offset read); one
        # with a committed offset reads from there again.
        self._sought = {tp for tp, offset in self._read_offset.items() if offset is not None}
        for tp in self._sought:
            self._first_read.pop(tp, None)

    async def on_partitions_revoked(self, revoked: set[TP]) -> None:
        """Forget the bookkeeping of revoked partitions, then let Faust handle the revocation."""
        for tp in revoked:
            self._first_read.pop(tp, None)
            self._sought.discard(tp)
        await super().on_partitions_revoked(revoked)

    def _new_consumer_thread(self) -> FetchWaitConsumerThread:
        return FetchWaitConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _drain_messages(self, fetcher: Any) -> None:  # pragma: no cover - exercised end to end
        # A copy of Faust 0.15.3's loop (offset tracking, gaps, flow control, shutdown), except that
        # records of batch topics are collected and processed per fetch instead of one by one.
        callback = self.callback
        getmany = self.getmany
        consumer_should_stop = self._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        get_read_offset = self._read_offset.__getitem__
        set_read_offset = self._read_offset.__setitem__
        acks_enabled_for = self.app.topics.acks_enabled_for
        first_read = self._first_read
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                batch_topics, handler = self.batch_path()
                batches: dict[TP, list[Any]] = {}
                self.diag.set_flag("FETCHING")
                ait = getmany(timeout=1.0)
                await self.sleep(0)
                if not self.should_stop:
                    sought = self._sought
                    async for tp, message in ait:
                        offset = message.offset
                        r_offset = get_read_offset(tp)
                        if r_offset is not None and offset < r_offset:
                            continue
                        if tp in sought:
                            # The read offset is the position sought: records from there up to
                            # this one are gone (compaction, retention), the first is not read.
                            sought.discard(tp)
                            if r_offset is not None and offset > r_offset and acks_enabled_for(message.topic):
                                await self._add_gap(tp, r_offset, offset)
                        elif r_offset and offset - r_offset > 1 and acks_enabled_for(message.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        first_read.setdefault(tp, offset)
                        if handler is not None and tp.topic in batch_topics:
                            batches.setdefault(tp, []).append(message)
                        else:
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                        set_read_offset(tp, offset)
                self.diag.unset_flag("FETCHING")
                if batches and handler is not None:
                    await handler(batches)
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                self.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                self.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            self.diag.unset_flag("FETCHING")


def partition_db(table: Any, partition: int) -> Any:
    """Return the RocksDB database of ``partition`` of a Faust table with the RocksDB store.

    The same lookup Faust's own get and set do once they know the partition of the current event;
    the database is opened on first use.
    """
    return table.data._db_for_partition(partition)


def persist_changelog_offset(table: Any, tp: TP, offset: int) -> None:
    """Record that the local store of a Faust table holds its changelog ``tp`` up to ``offset``."""
    table.data.set_persisted_offset(tp, offset)
