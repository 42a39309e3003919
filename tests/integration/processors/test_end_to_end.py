"""The company simulator through a worker, checked against the simulator's own ground truth.

Several months with every fault on: duplicates dropped, conflicts and missing master data
dead-lettered, unapproved discounts and usage mismatches raised, and the invoices, recognised
revenue and cash per legal entity, currency (and month, account) exact to the minor unit.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from connectors.simulator.config import SimulationConfig
from connectors.simulator.output import publish_simulation
from connectors.simulator.simulate import Simulation, simulate
from tests.integration.processors.harness import Harness, WorkerProcess, wait_until
from tests.integration.processors.outcome import Outcome, read_outcome

SETTLE_S = 300.0
RETRY_ENV = {
    # Master data that arrives late must still be waited for; master data that never arrives is
    # dead-lettered after about five seconds.
    "REVSTREAM_WORKER_MASTER_RETRY_ATTEMPTS": "8",
    "REVSTREAM_WORKER_MASTER_RETRY_BACKOFF": "0.2",
    "REVSTREAM_WORKER_MASTER_RETRY_BACKOFF_MAX": "1",
}


@pytest.fixture(scope="module")
def simulation() -> Simulation:
    return simulate(SimulationConfig(months=6, seed=11, customers=40))


def expected_dead_letters(summary: dict[str, Any]) -> Counter[tuple[str, str]]:
    return Counter(
        {
            (entry["stage"], reason): entry["count"]
            for reason, entry in summary["expected_dead_letters"]["by_reason"].items()
        }
    )


class Settled:
    """A condition: the outcome once every expected dead letter is out and the commands stop growing."""

    def __init__(self, harness: Harness, summary: dict[str, Any]) -> None:
        self.harness = harness
        self.expected = expected_dead_letters(summary)
        self.commands = -1
        self.last: Outcome | None = None

    def __call__(self) -> Outcome | None:
        outcome = self.last = read_outcome(self.harness)
        done = outcome.dead_letters == self.expected and len(outcome.commands) == self.commands
        self.commands = len(outcome.commands)
        return outcome if done else None

    def describe(self) -> str:
        """What was seen last, for a failure message."""
        if self.last is None:
            return "nothing read yet"
        return (
            f"{len(self.last.commands)} commands; dead letters {dict(self.last.dead_letters)}, "
            f"expected {dict(self.expected)}"
        )


def settled(harness: Harness, summary: dict[str, Any], worker: WorkerProcess) -> Outcome:
    """Wait until the run settled (see :class:`Settled`) and return its outcome."""
    check = Settled(harness, summary)
    try:
        outcome: Outcome = wait_until(check, SETTLE_S, "the run to settle", worker)
    except AssertionError as exc:
        raise AssertionError(f"{check.describe()}\n{exc}") from None
    return outcome


def assert_matches_ground_truth(
    outcome: Outcome, summary: dict[str, Any], duplicates_counted_by: WorkerProcess | None
) -> None:
    """Compare with the simulator's summary; the dropped duplicates with one worker's count, if given."""
    assert outcome.dead_letters == expected_dead_letters(summary)
    if duplicates_counted_by is not None:
        dropped = duplicates_counted_by.metric("revstream_processor_duplicates_dropped_total")
        assert dropped == summary["duplicates"]["total"]
    expected_exceptions = summary["expected_exceptions"]
    discounts = Counter(
        item["event_id"] for item in expected_exceptions["items"] if item["reason"] == "DISCOUNT_NOT_APPROVED"
    )
    assert outcome.discount_findings == discounts
    mismatches = {
        (item["subscription_id"], item["metric"], item["period"]): (
            item["quantity_difference"],
            item["amount_difference_minor"],
        )
        for item in expected_exceptions["items"]
        if item["reason"] == "USAGE_BILLING_MISMATCH"
    }
    assert outcome.mismatches == mismatches
    assert outcome.invoices() == summary["expected_invoices"]
    assert outcome.revenue() == summary["expected_revenue"]
    assert outcome.cash() == summary["expected_cash"]


def test_a_simulated_half_year_matches_the_ground_truth(
    harness: Harness, worker_factory: Callable[..., WorkerProcess], simulation: Simulation
):
    worker = worker_factory(harness.catalog.namespace, **RETRY_ENV).wait_ready()
    publish_simulation(simulation, harness.settings, harness.catalog)

    outcome = settled(harness, simulation.summary, worker)

    assert_matches_ground_truth(outcome, simulation.summary, duplicates_counted_by=worker)
