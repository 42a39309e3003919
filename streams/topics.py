"""The topic catalog as code: every topic the pipeline reads or writes, and how it is laid out.

Canonical event topics are co-partitioned (same partition count, keyed by ``customer_id``) so that
one worker owns all state of a customer. Master-data topics are compacted and keyed by the record's
own id. Faust's changelog topics are created by Faust itself and are not listed here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from schemas.names import EVENT_TYPES, MASTER_DATA_KINDS, STAGES
from streams.settings import Settings

__all__ = ["TopicKind", "TopicSpec", "TopicCatalog", "catalog_for"]

TopicKind = Literal[
    "canonical", "master", "enriched", "exceptions", "commands", "deadletter", "retry", "parked", "dlq-state"
]

DAY_MS = 24 * 60 * 60 * 1000
CANONICAL_RETENTION_MS = 30 * DAY_MS
DEADLETTER_RETENTION_MS = 90 * DAY_MS
RETRY_RETENTION_MS = 7 * DAY_MS


@dataclass(frozen=True)
class TopicSpec:
    """One topic: its name, layout, retention and what its key is."""

    name: str
    kind: TopicKind
    partitions: int
    replication_factor: int
    key: str
    cleanup_policy: Literal["delete", "compact"] = "delete"
    retention_ms: int | None = None
    value_schema: str | None = None  # stem of the .avsc its values carry; None: original bytes / mixed
    extra_config: tuple[tuple[str, str], ...] = field(default_factory=tuple)

    @property
    def config(self) -> dict[str, str]:
        """Return the topic-level configs revstream manages for this topic."""
        config: dict[str, str] = {"cleanup.policy": self.cleanup_policy}
        if self.retention_ms is not None:
            config["retention.ms"] = str(self.retention_ms)
        config.update(dict(self.extra_config))
        return config


@dataclass(frozen=True)
class TopicCatalog:
    """All topics of one revstream deployment, named under ``namespace``."""

    namespace: str
    partitions: int
    replication_factor: int

    def event_topic(self, event_type: str) -> str:
        """Return the canonical topic of ``event_type``."""
        return f"{self.namespace}.events.{event_type}"

    def master_topic(self, kind: str) -> str:
        """Return the compacted master-data topic of ``kind``."""
        return f"{self.namespace}.master.{kind}"

    def deadletter_topic(self, stage: str) -> str:
        """Return the dead-letter topic of pipeline ``stage``."""
        return f"{self.namespace}.dlq.{stage}"

    @property
    def parked_topic(self) -> str:
        """Dead letters ``revstream dlq replay`` stopped replaying (failed again too often)."""
        return f"{self.namespace}.dlq.parked"

    @property
    def dlq_state_topic(self) -> str:
        """Compacted: per dead-letter id, its replay position and purge marker (``revstream dlq``)."""
        return f"{self.namespace}.dlq-state"

    @property
    def enriched_topic(self) -> str:
        """Events that passed dedupe, policy and enrichment, keyed by customer_id."""
        return f"{self.namespace}.enriched"

    @property
    def exceptions_topic(self) -> str:
        """Business exceptions for a team to act on, keyed by customer_id."""
        return f"{self.namespace}.exceptions"

    @property
    def commands_topic(self) -> str:
        """ERP posting commands for the ledger sink, keyed by customer_id."""
        return f"{self.namespace}.erp.commands"

    @property
    def retry_topic(self) -> str:
        """Records parked while their master data is missing, keyed by customer_id."""
        return f"{self.namespace}.retry.enrich"

    def specs(self) -> list[TopicSpec]:
        """Return every topic of the catalog, canonical topics first."""
        common: dict[str, Any] = {
            "partitions": self.partitions,
            "replication_factor": self.replication_factor,
        }
        specs = [
            TopicSpec(
                self.event_topic(event_type),
                "canonical",
                key="customer_id",
                retention_ms=CANONICAL_RETENTION_MS,
                value_schema=event_type,
                **common,
            )
            for event_type in EVENT_TYPES
        ]
        specs += [
            TopicSpec(
                self.master_topic(kind),
                "master",
                key=f"{kind}_id",
                cleanup_policy="compact",
                value_schema=kind,
                extra_config=(("min.compaction.lag.ms", "0"),),
                **common,
            )
            for kind in MASTER_DATA_KINDS
        ]
        specs += [
            TopicSpec(
                self.enriched_topic,
                "enriched",
                key="customer_id",
                retention_ms=CANONICAL_RETENTION_MS,
                **common,
            ),
            TopicSpec(
                self.exceptions_topic,
                "exceptions",
                key="customer_id",
                retention_ms=DEADLETTER_RETENTION_MS,
                value_schema="business_exception",
                **common,
            ),
            TopicSpec(
                self.commands_topic,
                "commands",
                key="customer_id",
                value_schema="erp_command",
                retention_ms=CANONICAL_RETENTION_MS,
                **common,
            ),
            TopicSpec(
                self.retry_topic, "retry", key="customer_id", retention_ms=RETRY_RETENTION_MS, **common
            ),
        ]
        specs += [
            TopicSpec(
                self.deadletter_topic(stage),
                "deadletter",
                key="original key",
                retention_ms=DEADLETTER_RETENTION_MS,
                **common,
            )
            for stage in STAGES
        ]
        specs += [
            TopicSpec(
                self.parked_topic,
                "parked",
                key="original key",
                retention_ms=DEADLETTER_RETENTION_MS,
                **common,
            ),
            # Compacted, never deleted by time: a marker must outlive the dead letter it marks,
            # or a purged record would come back and a replayed one be sent again.
            TopicSpec(
                self.dlq_state_topic,
                "dlq-state",
                key="dead-letter id",
                cleanup_policy="compact",
                partitions=1,
                replication_factor=self.replication_factor,
            ),
        ]
        return specs

    def spec(self, name: str) -> TopicSpec:
        """Return the spec of topic ``name``.

        Raises:
            KeyError: when the catalog has no such topic.
        """
        for spec in self.specs():
            if spec.name == name:
                return spec
        raise KeyError(name)


def catalog_for(settings: Settings) -> TopicCatalog:
    """Return the topic catalog these settings describe."""
    return TopicCatalog(
        namespace=settings.topics.namespace,
        partitions=settings.topics.partitions,
        replication_factor=settings.topics.effective_replication(settings.embedded),
    )
