"""Crashes: a worker killed with SIGKILL mid-run, restarted on its own store; two workers, one dies.

The reference is an uninterrupted run of the same simulation. After a crash the set of ERP commands
(by command id, with identical contents) must equal the reference, and the run must still match
the simulator's ground truth: nothing lost, nothing doubled that the ledger would count twice.
Restarting on the persisted RocksDB store is exactly the case where Faust's recovery met the
embedded broker's under-reported end offsets (``ConsistencyError``); it must now just work.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from confluent_kafka.admin import AdminClient

from connectors.simulator.config import SimulationConfig
from connectors.simulator.output import publish_simulation
from connectors.simulator.simulate import Simulation, simulate
from schemas.names import EVENT_TYPES
from streams.serde import AvroSerde
from streams.settings import Settings
from tests.integration.processors.conftest import new_catalog
from tests.integration.processors.harness import Harness, WorkerProcess, wait_until
from tests.integration.processors.outcome import Outcome
from tests.integration.processors.test_end_to_end import RETRY_ENV, assert_matches_ground_truth, settled

SETTLE_S = 300.0


@pytest.fixture(scope="module")
def simulation() -> Simulation:
    return simulate(SimulationConfig(months=12, seed=5, customers=150))


@pytest.fixture(scope="module")
def new_harness(stack_settings: Settings, admin: AdminClient, serde: AvroSerde) -> Callable[[], Harness]:
    return lambda: Harness(stack_settings, new_catalog(admin), serde)


def commands_emitted(worker: WorkerProcess) -> float:
    text = worker.metrics() or ""
    return sum(
        float(line.rpartition(" ")[2])
        for line in text.splitlines()
        if line.startswith("revstream_processor_erp_commands_total{")
    )


@pytest.fixture(scope="module")
def reference(
    new_harness: Callable[[], Harness],
    worker_factory: Callable[..., WorkerProcess],
    simulation: Simulation,
) -> Iterator[Outcome]:
    """The outcome of an uninterrupted run."""
    harness = new_harness()
    publish_simulation(simulation, harness.settings, harness.catalog)
    worker = worker_factory(harness.catalog.namespace, "reference", **RETRY_ENV).wait_ready()
    outcome = settled(harness, simulation.summary, worker)
    assert_matches_ground_truth(outcome, simulation.summary, duplicates_counted_by=worker)
    worker.stop()
    yield outcome


def assert_same_commands(outcome: Outcome, reference: Outcome) -> None:
    assert outcome.commands.keys() == reference.commands.keys()
    differing = [cid for cid, command in outcome.commands.items() if command != reference.commands[cid]]
    assert not differing, f"{len(differing)} commands differ from the uninterrupted run"
    assert outcome.command_values == reference.command_values


def test_a_worker_killed_mid_run_and_restarted_emits_the_same_commands(
    new_harness: Callable[[], Harness],
    worker_factory: Callable[..., WorkerProcess],
    simulation: Simulation,
    reference: Outcome,
):
    harness = new_harness()
    publish_simulation(simulation, harness.settings, harness.catalog)
    # No offset commit before the kill: whatever the first worker finished (state written, outputs
    # delivered) is read again by the second, which must recognise it rather than drop it.
    uncommitted = {"REVSTREAM_WORKER_COMMIT_INTERVAL": "600", "REVSTREAM_WORKER_COMMIT_EVERY": "100000000"}
    # Small batches: a whole backlog released at once in batches of 5,000 can be done between two
    # looks at the metrics, and the kill would come after the last one.
    uncommitted["REVSTREAM_WORKER_BATCH_SIZE"] = "300"
    first = worker_factory(harness.catalog.namespace, "w1", **RETRY_ENV, **uncommitted).wait_ready()
    target = len(reference.commands) / 4
    wait_until(lambda: commands_emitted(first) >= target, SETTLE_S, "a quarter of the commands", first)

    first.kill()
    emitted_before_kill = len(harness.commands())
    assert emitted_before_kill < len(reference.commands) + reference.repeated_commands, "killed too late"
    again = worker_factory(harness.catalog.namespace, "w1", **RETRY_ENV).wait_ready()

    outcome = settled(harness, simulation.summary, again)
    assert_same_commands(outcome, reference)
    assert_matches_ground_truth(outcome, simulation.summary, duplicates_counted_by=None)
    assert "ConsistencyError" not in again.log_path.read_text()
    # Records whose state was written but whose offsets were not committed yet come back: they are
    # recognised as the same records (not duplicates) and processed again.
    redelivered = again.metric(
        "revstream_processor_records_total", {"stage": "dedupe", "outcome": "redelivered"}
    )
    assert redelivered > 0


def test_two_workers_one_killed_the_other_takes_over(
    new_harness: Callable[[], Harness],
    worker_factory: Callable[..., WorkerProcess],
    simulation: Simulation,
    reference: Outcome,
):
    harness = new_harness()
    one = worker_factory(harness.catalog.namespace, "w1", **RETRY_ENV).wait_ready()
    two = worker_factory(harness.catalog.namespace, "w2", **RETRY_ENV).wait_ready()
    both_assigned = lambda: (  # noqa: E731
        one.metric("revstream_processor_assigned_partitions") > 0
        and two.metric("revstream_processor_assigned_partitions") > 0
    )
    wait_until(both_assigned, 60, "both workers to own partitions", two)
    publish_simulation(simulation, harness.settings, harness.catalog)
    target = len(reference.commands) / 4
    # Killed mid-run while both are working: each has emitted, and a quarter of the run is done.
    wait_until(
        lambda: (
            commands_emitted(one) > 0
            and commands_emitted(two) > 0
            and commands_emitted(one) + commands_emitted(two) >= target
        ),
        SETTLE_S,
        "a quarter of the commands, some from each worker",
        two,
    )

    one.kill()

    outcome = settled(harness, simulation.summary, two)
    # The event topics, the retry topic, the customers' topic and the two reference topics, three
    # partitions each (every worker also reads the reference data whole, outside the group; through
    # the group it only checks that each record decodes).
    assert two.metric("revstream_processor_assigned_partitions") == 3 * (len(EVENT_TYPES) + 1 + 1 + 2)
    assert_same_commands(outcome, reference)
    assert_matches_ground_truth(outcome, simulation.summary, duplicates_counted_by=None)
