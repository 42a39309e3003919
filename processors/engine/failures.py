"""The worker's one failure policy: whose fault a failure is, and what happens then.

- **The record's fault** (it does not decode, breaks a model's constraints, a rule refuses it, an
  output built from it does not fit its schema): that record goes to its stage's dead-letter
  topic with a reason (:func:`record_fault`), and the batch goes on.
- **Anything else** (the local store, the broker, the registry, a store closed under a
  rebalance, or a defect of the worker itself): no record is blamed. The batch is tried again
  with the capped exponential back-off of :func:`processors.stages.retry.backoff`; after
  ``REVSTREAM_WORKER_FAILURE_ATTEMPTS`` attempts the worker stops with a non-zero exit and a
  one-line reason (:class:`WorkerStoppedError`), and its records are processed after a restart.
  Outputs that were not delivered stop it at once: the producer has already retried them.
- **A systemic record fault**: a batch in which at least ``FAILURE_SHARE_MIN_RECORDS`` records,
  and more than ``FAILURE_SHARE_MAX`` of the batch, were dead-lettered for the same (stage, reason)
  stops the worker instead of dead-lettering the whole stream (:func:`systemic_failure`). Reasons
  that an outage upstream produces by design (master data or an earlier event that never came)
  are not counted.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from typing import Final

from pydantic import ValidationError

from processors.errors import (
    InvalidPeriodError,
    MissingAmountError,
    ProcessingError,
    RuleInputError,
    UnbalancedEntryError,
    UnpostableLineError,
)
from streams.errors import RecordEncodeError

__all__ = [
    "FAILURE_BACKOFF",
    "FAILURE_BACKOFF_MAX",
    "UNENCODABLE_OUTPUT",
    "WorkerStoppedError",
    "record_fault",
    "systemic_failure",
]

logger = logging.getLogger(__name__)

UNENCODABLE_OUTPUT: Final = "UNENCODABLE_OUTPUT"
FAILURE_BACKOFF: Final = timedelta(seconds=0.5)
FAILURE_BACKOFF_MAX: Final = timedelta(seconds=10)

_RECORD_FAULTS: Final[tuple[tuple[type[BaseException], str], ...]] = (
    (UnbalancedEntryError, "UNBALANCED_ENTRY"),
    (InvalidPeriodError, "INVALID_PERIOD"),
    (MissingAmountError, "MISSING_AMOUNT"),
    (UnpostableLineError, "UNPOSTABLE_LINE"),
    (RuleInputError, "INVALID_RULE_INPUT"),
    (RecordEncodeError, UNENCODABLE_OUTPUT),
    # A model built from the record's values refuses them (an amount beyond a long, a date out of
    # range): the values are the record's.
    (ValidationError, "INVALID_RULE_INPUT"),
    (OverflowError, "INVALID_RULE_INPUT"),
)

_OUTAGE_REASONS: Final = frozenset(
    {"MASTER_DATA_MISSING", "INVOICE_NOT_FOUND", "ORDER_LINE_NOT_FOUND", "INVOICED_SERVICES_NOT_FOUND"}
)


class WorkerStoppedError(ProcessingError):
    """Raised when the worker must stop: its message is the one-line reason the process exits with."""


def record_fault(exc: BaseException) -> str | None:
    """Return the dead-letter reason when ``exc`` is the record's fault, else ``None`` (not the record's).

    Errors the processors raise for the infrastructure (undelivered outputs, a configuration the
    broker cannot serve) are :class:`ProcessingError` too, but never the record's fault.
    """
    for error_type, reason in _RECORD_FAULTS:
        if isinstance(exc, error_type):
            return reason
    return None


def systemic_failure(
    dead_letters: Mapping[tuple[str, str], int], records: int, share_max: float, min_records: int
) -> str | None:
    """Return why a batch's dead letters look systemic (one line), or ``None`` when they do not.

    ``dead_letters`` counts the batch's dead letters by (stage, reason), out of ``records``.
    """
    for (stage, reason), count in sorted(dead_letters.items(), key=lambda item: -item[1]):
        if reason in _OUTAGE_REASONS:
            continue
        if count >= min_records and count > share_max * records:
            return (
                f"{count} of {records} records of one batch failed at {stage} with {reason}; the worker "
                f"stops instead of dead-lettering the stream (more than {share_max:.0%} of a batch): "
                "fix the cause, then start it again"
            )
    return None
