"""The dead-letter tool's Prometheus metrics, in one container on a registry of its own.

A CLI run is short, so ``revstream dlq … --metrics-file PATH`` writes them in the text exposition
format for node_exporter's textfile collector (written atomically at the end of the run). Labels
are bounded: stage and reason, never ids or keys.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, write_to_textfile

__all__ = ["DlqMetrics"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class DlqMetrics:
    """Counters of one ``revstream dlq`` run."""

    registry: CollectorRegistry
    replayed: Counter
    parked: Counter
    purged: Counter
    failed_again: Counter

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> DlqMetrics:
        """Register the tool's metrics on ``registry`` (a fresh one by default)."""
        registry = registry if registry is not None else CollectorRegistry(auto_describe=True)

        def counter(name: str, doc: str) -> Counter:
            return Counter(f"revstream_dlq_{name}", doc, ["stage", "reason"], registry=registry)

        return cls(
            registry=registry,
            replayed=counter("replayed", "Dead letters re-published to their topic."),
            parked=counter("parked", "Dead letters sent to the parking topic (replayed too often)."),
            purged=counter("purged", "Dead letters hidden by a purge marker."),
            failed_again=counter("failed_again", "Replayed records dead-lettered again (seen by --follow)."),
        )

    def write(self, path: Path) -> None:
        """Write every metric to ``path`` in the Prometheus text format (atomically)."""
        write_to_textfile(str(path), self.registry)
