"""The event agent's acknowledgement order and failure policy, with a scripted pipeline.

The order is the delivery guarantee (``processors/engine/batches.py``): a batch's outputs are
delivered before its changelog records are produced, those are delivered before the local store is
written, and only then are its source records acknowledged. Any failure that is not a record's
fault is retried with back-off and then stops the worker through ``on_fatal``.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from processors.engine import batches as batches_module
from processors.engine.batches import BufferLimits, EventAgent, FailurePolicy
from processors.engine.failures import WorkerStoppedError
from processors.engine.outputs import OutputProducer
from processors.engine.state import StateBatch
from processors.metrics import ProcessorMetrics
from processors.stages.retry import Parked, park_headers
from streams.settings import KafkaSettings
from tests.unit.processors.engine.fakes import TP, FakeProducer, FakeTable

COMMANDS = "ns.erp.commands"


@dataclass(frozen=True)
class Record:
    topic: str
    partition: int
    offset: int
    value: bytes = b"v"
    key: bytes = b"C1"
    timestamp: float = 1.0
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class ScriptedPipeline:
    """Per record: one command and one state update, or the error the script says it raises."""

    log: list[str]
    outputs: OutputProducer | None = None
    raises: dict[int, list[BaseException]] = field(default_factory=dict)
    dead_letter_each: bool = False
    seen: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.master = type(
            "Master",
            (),
            {"kind_of_topic": {}, "reference_topics": {}, "feed": type("Feed", (), {"caught_up": True})},
        )
        self.decoder = type("Decoder", (), {"prefetch": staticmethod(lambda values: list(values))})

    def process(self, message: Any, ctx: Any) -> None:
        failures = self.raises.get(message.offset)
        if failures:
            raise failures.pop(0)
        self.seen.append(message.offset)
        assert self.outputs is not None
        self.outputs.produce(COMMANDS, message.key, b"command-%d" % message.offset)
        self.log.append(f"output {message.offset}")
        if self.dead_letter_each:
            ctx.tally.dead_letters["decode", "CORRUPT_RECORD"] += 1
        ctx.state.put("contracts", message.partition, b"k%d" % message.offset, b"v")

    def finish(self, ctx: Any) -> None:
        """Nothing to report."""


class LoggingTable(FakeTable):
    def __init__(self, log: list[str]) -> None:
        super().__init__("contracts", {})
        self.log = log

    def write(self, partition: int, items: dict[bytes, bytes | None]) -> None:
        super().write(partition, items)
        self.log.append(f"store {sorted(items)}")


class LoggingProducer(FakeProducer):
    def __init__(self, log: list[str]) -> None:
        super().__init__()
        self.log = log
        self._held = False

    def poll(self, timeout: float = 0) -> int:
        # Acknowledgements come one poll late, as from a real broker: the agent has to wait a turn.
        if self.pending and not self._held:
            self._held = True
            return 0
        self._held = False
        for _, message in self.pending:
            self.log.append(f"delivered {message.topic()}")
        return super().poll(timeout)


def make_agent(
    log: list[str], policy: FailurePolicy | None = None, **script: Any
) -> tuple[EventAgent, ScriptedPipeline, list[str]]:
    producer = LoggingProducer(log)
    table = LoggingTable(log)
    outputs = OutputProducer(KafkaSettings(), watch_topics=[table.changelog_topic], producer=producer)  # type: ignore[arg-type]
    producer.on_delivery = outputs.on_delivery
    pipeline = ScriptedPipeline(log, outputs, **script)
    fatal: list[str] = []
    agent = EventAgent(
        pipeline=pipeline,  # type: ignore[arg-type]
        tables=[table],  # type: ignore[list-item]
        outputs=outputs,
        metrics=ProcessorMetrics.create(CollectorRegistry()),
        retry_topic="ns.retry.enrich",
        ack=lambda message: log.append(f"ack {message.offset}"),
        policy=policy,
        on_fatal=fatal.append,
    )
    return agent, pipeline, fatal


def fetch(*offsets: int) -> dict[TP, list[Record]]:
    return {TP("ns.events.invoice_posted", 0): [Record("ns.events.invoice_posted", 0, o) for o in offsets]}


@pytest.fixture(autouse=True)
def no_waiting(monkeypatch: pytest.MonkeyPatch) -> None:
    real_sleep = asyncio.sleep

    async def instantly(delay: float) -> None:
        await real_sleep(0)  # still a turn of the loop, as a real wait is

    monkeypatch.setattr(batches_module.asyncio, "sleep", instantly)


def test_outputs_then_changelog_then_local_store_then_acknowledgement() -> None:
    log: list[str] = []
    agent, _, _ = make_agent(log)

    async def scenario() -> None:
        await agent.on_batch(fetch(0))
        log.append("-- next batch")
        await agent.on_batch(fetch(1))
        log.append("-- timer")
        await agent.run_due()

    asyncio.run(scenario())
    changelog = "app-contracts-changelog"
    assert log == [
        "output 0",
        f"delivered {COMMANDS}",
        "-- next batch",
        "output 1",
        # Batch 1's outputs and batch 0's changelog, delivered together: only now is batch 0 stored.
        f"delivered {changelog}",
        f"delivered {COMMANDS}",
        "store [b'k0']",
        "ack 0",
        "-- timer",
        f"delivered {changelog}",
        "store [b'k1']",
        "ack 1",
    ]


def test_a_batch_reads_the_previous_batchs_state_before_it_is_stored() -> None:
    log: list[str] = []
    agent, pipeline, _ = make_agent(log)
    reads: list[bytes | None] = []
    original = pipeline.process

    def process(message: Any, ctx: Any) -> None:
        assert isinstance(ctx.state, StateBatch)
        reads.append(ctx.state.get("contracts", 0, b"k0"))
        original(message, ctx)

    pipeline.process = process  # type: ignore[method-assign]

    async def scenario() -> None:
        await agent.on_batch(fetch(0))
        await agent.on_batch(fetch(1))

    asyncio.run(scenario())
    assert reads == [None, b"v"]


def test_an_infrastructure_failure_is_retried_then_the_batch_goes_through() -> None:
    log: list[str] = []
    agent, pipeline, fatal = make_agent(log, raises={0: [OSError("rocksdb: IO error"), OSError("again")]})
    asyncio.run(agent.on_batch(fetch(0)))
    asyncio.run(agent.run_due())
    assert pipeline.seen == [0] and fatal == []
    assert log[-1] == "ack 0"


def test_an_infrastructure_failure_that_persists_stops_the_worker_in_one_line() -> None:
    log: list[str] = []
    failures: list[BaseException] = [KeyError("store closed") for _ in range(3)]
    agent, pipeline, fatal = make_agent(log, FailurePolicy(attempts=3), raises={0: failures})
    with pytest.raises(WorkerStoppedError):
        asyncio.run(agent.on_batch(fetch(0)))
    (reason,) = fatal
    assert "\n" not in reason and "failed 3 times" in reason and "KeyError" in reason
    assert pipeline.seen == [] and not any(line.startswith("ack") for line in log)


def test_an_error_outside_a_batch_stops_the_worker_rather_than_the_fetch_loop() -> None:
    log: list[str] = []
    agent, _, fatal = make_agent(log)

    async def broken() -> dict[Any, int]:
        raise RuntimeError("lag lookup failed")

    agent._lagging = broken
    with pytest.raises(WorkerStoppedError):
        asyncio.run(agent.on_batch(fetch(0)))
    assert fatal and "RuntimeError: lag lookup failed" in fatal[0]


def test_a_batch_dead_lettered_wholesale_stops_the_worker() -> None:
    log: list[str] = []
    policy = FailurePolicy(attempts=2, share_max=0.5, min_records=3)
    agent, _, fatal = make_agent(log, policy, dead_letter_each=True)
    asyncio.run(agent.on_batch(fetch(0, 1)))  # two: below the minimum, dead-lettered as usual
    assert fatal == []
    with pytest.raises(WorkerStoppedError):
        asyncio.run(agent.on_batch(fetch(2, 3, 4, 5)))
    assert "4 of 4 records" in fatal[0] and "CORRUPT_RECORD" in fatal[0]
    assert "ack 2" not in log


def test_records_of_a_partition_revoked_during_a_release_are_not_processed() -> None:
    log: list[str] = []
    agent, pipeline, _ = make_agent(log)
    agent.batch_size = 1
    original = pipeline.process

    def process(message: Any, ctx: Any) -> None:
        original(message, ctx)
        if message.offset == 0:
            # The revocation waits for the lane: it runs before the release's second chunk.
            asyncio.get_running_loop().create_task(agent.on_revoked({TP("ns.events.invoice_posted", 0)}))

    pipeline.process = process  # type: ignore[method-assign]
    asyncio.run(agent.on_batch(fetch(0, 1, 2)))
    assert pipeline.seen == [0]
    assert "ack 1" not in log and "ack 2" not in log


def test_a_forged_retry_record_due_in_ten_years_waits_no_longer_than_the_longest_back_off() -> None:
    log: list[str] = []
    agent, _, _ = make_agent(log)
    agent.limits = BufferLimits(longest_wait_ms=2_000)
    now_ms = int(time.time() * 1000)
    forged = Parked(
        1, now_ms + 10 * 365 * 86_400_000, now_ms, ("customer:C1",), "MASTER_DATA_MISSING", "t", 0, 5
    )
    record = Record("ns.retry.enrich", 0, 0, headers=tuple(park_headers([], forged)))  # type: ignore[arg-type]
    asyncio.run(agent.on_batch({TP("ns.retry.enrich", 0): [record]}))
    assert len(agent._waiting) == 1
    assert agent._waiting[0].not_before_ms <= int(time.time() * 1000) + 2_000


def test_partitions_whose_records_pile_up_in_memory_are_paused_then_resumed() -> None:
    log: list[str] = []
    paused: list[set[Any]] = []
    resumed: list[set[Any]] = []
    agent, pipeline, _ = make_agent(log)
    agent.limits = BufferLimits(per_partition=2)
    agent._pause, agent._resume = paused.append, resumed.append
    holding = True

    async def lagging() -> dict[Any, int]:
        # The customers' partition 0 has unread records: events of partition 0 wait for them.
        return {TP("ns.master.customer", 0): 5} if holding else {}

    agent._lagging = lagging
    pipeline.master.kind_of_topic = {"ns.master.customer": "customer"}  # type: ignore[attr-defined]
    asyncio.run(agent.on_batch(fetch(0, 1, 2)))
    events = TP("ns.events.invoice_posted", 0)
    assert paused == [{events}] and pipeline.seen == []
    holding = False
    asyncio.run(agent.run_due())
    assert resumed == [{events}] and pipeline.seen == [0, 1, 2]
