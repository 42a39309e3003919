"""Reconciliation at batch level: parked usage registered, mismatches reported once per key and batch.

Counting happens per record (:func:`processors.stages.accounting.count_usage_and_billing`);
reporting happens here, when every record of the batch was counted and before the batch's outputs
are awaited and its state written, so that a key's intermediate differences inside one batch are
never raised: only its final standing difference, and only when it differs from the one reported
before. The exceptions and the revisions they store belong to the same batch as the counts:
delivered in its step 2, written in its step 3 (``processors/engine/batches.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Protocol

from processors.rules.reconcile import (
    ReconKey,
    ReconState,
    SourcePosition,
    forget_parked,
    note_parked,
    report,
    usage_key,
)
from processors.stages.accounting import RECON, load_recon, recon_key
from schemas.models import BusinessException, EventEnvelope, UsageRecorded

__all__ = ["BatchState", "report_batch", "track_parked_usage"]

logger = logging.getLogger(__name__)


class BatchState(Protocol):
    """The batch's state overlay (:class:`processors.engine.state.StateBatch`)."""

    def get(self, table: str, partition: int, key: bytes) -> bytes | None:
        """Return the value as the batch left it, else as stored."""

    def put(self, table: str, partition: int, key: bytes, value: bytes | None) -> None:
        """Set ``key``; written with the batch."""


def _load(state: BatchState, partition: int, key: ReconKey) -> ReconState | None:
    return load_recon(lambda table, state_key: state.get(table, partition, state_key), key)


def track_parked_usage(
    state: BatchState, event: EventEnvelope, position: SourcePosition, dead_lettered: bool
) -> None:
    """Register a usage record parked on its first failure, or unregister it when dead-lettered.

    Registered, whichever of its copies comes back first counts (a crash may have parked it
    twice); unregistered, only a replay from the dead-letter topic (a new offset) counts.
    """
    if not isinstance(event, UsageRecorded):
        return
    key = usage_key(event)
    current = _load(state, position.partition, key)
    if dead_lettered:
        updated = forget_parked(current, position)
    else:
        updated = note_parked(current, key, position)
    if updated is not None:
        state.put(RECON, position.partition, recon_key(key), updated.model_dump_json().encode())


def report_batch(
    touched: Mapping[tuple[int, ReconKey], tuple[EventEnvelope, bool]], state: BatchState, tolerance: int
) -> list[BusinessException]:
    """Report each touched key's standing difference once; store the revisions in ``state``.

    ``touched`` maps (partition, key) to the last event of the batch that changed the key (its
    event id and the revision make the exception id, so the same batch reports the same ids) and
    whether the key's difference departed from the reported one during the batch: then the final
    difference is raised even if it equals the reported one, which restates it after a crash that
    delivered a revision the state lost (``processors.rules.reconcile``).

    Raises:
        RuleInputError: when ``tolerance`` is negative.
    """
    raised: list[BusinessException] = []
    for (partition, key), (trigger, departed) in touched.items():
        current = _load(state, partition, key)
        if current is None:
            continue
        updated, exception = report(current, trigger, tolerance, restate=departed)
        if exception is not None:
            raised.append(exception)
            state.put(RECON, partition, recon_key(key), updated.model_dump_json().encode())
    return raised
