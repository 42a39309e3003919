"""The dead-letter tool's operations over one deployment: select, replay (patched, followed) and purge.

The CLI (``revstream dlq``) asks, confirms and renders; everything it runs is here. A replay or a
purge is audited before it touches anything: when the audit row cannot be written, nothing is sent.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from connectors.dlq.audit import AuditLog
from connectors.dlq.entries import PARKED_STAGE, Entry, Lineage, Marker, Selection, parse_id
from connectors.dlq.errors import DlqError, EmptySelectionError, UnknownDeadLetterError
from connectors.dlq.follow import Outcome, follow
from connectors.dlq.metrics import DlqMetrics
from connectors.dlq.reader import Partition, Store, end_offsets, fetch_record, partitions_of
from connectors.dlq.replay import Planned, Replayer, Sent, plan
from connectors.dlq.values import event_id_of, patch_value
from connectors.errors import ConnectorError
from streams.deadletter import REVSTREAM_PREFIX
from streams.serde import AvroSerde
from streams.settings import Settings
from streams.topics import TopicCatalog, catalog_for

__all__ = ["DlqTool", "ReplayJob", "ReplayResult"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReplayJob:
    """A replay ready to run: the plan, and the patch with what it changes per record."""

    planned: list[Planned]
    selection: Selection
    target: str | None
    partitions: dict[str, int] = field(default_factory=dict)
    """Partition count of every topic the plan publishes to."""
    patch: dict[str, Any] | None = None
    changes: dict[str, list[dict[str, Any]]] = field(default_factory=dict)


@dataclass(frozen=True)
class ReplayResult:
    """What a replay run did, and (with ``--follow``) where each record ended."""

    audit_id: int
    sent: list[Sent]
    outcomes: list[Outcome]


class DlqTool:
    """The dead letters of the deployment ``settings`` describe."""

    def __init__(self, settings: Settings, metrics: DlqMetrics | None = None) -> None:
        """Work on the catalog, broker, registry and audit database of ``settings``."""
        self.settings = settings
        self.catalog: TopicCatalog = catalog_for(settings)
        self.store = Store(settings.kafka, self.catalog)
        self.metrics = metrics or DlqMetrics.create()
        self._serde: AvroSerde | None = None

    @property
    def serde(self) -> AvroSerde:
        """The registry serde (built on first use: listing needs no registry)."""
        if self._serde is None:
            self._serde = AvroSerde.from_settings(self.settings.registry)
        return self._serde

    def stages(self) -> list[str]:
        """Every stage with a dead-letter topic, ``parked`` last."""
        return list(self.store.stage_topics)

    def entries(self) -> list[Entry]:
        """Every dead letter of the catalog, parked ones included."""
        return self.store.entries()

    def select(self, selection: Selection, entries: Sequence[Entry] | None = None) -> list[Entry]:
        """Return the dead letters ``selection`` picks.

        Raises:
            UnknownDeadLetterError: when an id given is malformed or names no dead letter.
        """
        stages = self.stages()
        for text in selection.ids:
            parse_id(text, stages)
        pool = self.entries() if entries is None else entries
        if selection.ids:
            known = {e.id for e in pool}
            missing = [i for i in selection.ids if i not in known]
            if missing:
                raise UnknownDeadLetterError(f"no dead letter {missing[0]} (see `revstream dlq list --all`)")
            done = [e for e in pool if e.id in selection.ids and e.status not in ("new", "pending")]
            if done and not selection.include_done:
                raise EmptySelectionError(
                    f"{done[0].id} was already {done[0].status}; "
                    f"`revstream dlq show {done[0].id}` has its history"
                )
        return selection.select(pool, lambda entry: event_id_of(self.serde, entry))

    def find(self, text: str) -> Entry:
        """Return the dead letter with id ``text`` (purged and replayed ones too).

        Raises:
            UnknownDeadLetterError: when the id is malformed or names no dead letter.
        """
        stage, _, _ = parse_id(text, self.stages())
        for entry in self.store.entries([stage]):
            if entry.id == text.strip():
                return entry
        raise UnknownDeadLetterError(f"no dead letter {text} in {self.store.stage_topics[stage]}")

    # -- replay -------------------------------------------------------------------------------------

    def prepare_replay(
        self,
        selection: Selection,
        *,
        to: str | None,
        max_replays: int,
        actor: str,
        patch: dict[str, Any] | None = None,
    ) -> ReplayJob:
        """Select and plan a replay (nothing is sent).

        Raises:
            EmptySelectionError: when the filters select nothing.
            PatchError: when the patch makes any selected record invalid (nothing is replayed).
            DlqError: when ``--to`` names a topic that does not exist.
        """
        selected = self.select(selection)
        if not selected:
            raise EmptySelectionError(
                f"no dead letter waiting for a replay matches {selection.summary()} "
                "(`revstream dlq list --all` shows replayed and purged ones too)"
            )
        selected = [self._whole(e) if e.truncated else e for e in selected]
        targets = {to} if to else {e.letter.source.topic for e in selected}
        counts: dict[str, int] = {}
        for tp in partitions_of(self.settings.kafka, sorted(targets | {self.catalog.parked_topic})):
            counts[tp.topic] = counts.get(tp.topic, 0) + 1
        values, changes = {}, {}
        if patch is not None:
            for entry in selected:
                patched = patch_value(self.serde, entry, patch, to or entry.letter.source.topic)
                values[entry.id], changes[entry.id] = patched.value, patched.changes
        planned = plan(
            selected, partitions=counts, parked_topic=self.catalog.parked_topic, to=to,
            max_replays=max_replays, actor=actor, now_ms=int(time.time() * 1000), values=values,
        )  # fmt: skip
        return ReplayJob(planned, selection, to, counts, patch, changes)

    def _whole(self, entry: Entry) -> Entry:
        """Return a cut dead letter with the whole original record read back from its source.

        A cut dead letter keeps a prefix of the record and the SHA-256 of its key and value
        (``streams.deadletter``); replaying the prefix would publish a different record.

        Raises:
            DlqError: when the source no longer holds that record (retention, compaction).
        """
        source = entry.letter.source
        original = fetch_record(self.settings.kafka, Partition(source.topic, source.partition), source.offset)
        digests = (
            entry.record.header(f"{REVSTREAM_PREFIX}key_sha256") or b"",
            entry.record.header(f"{REVSTREAM_PREFIX}value_sha256") or b"",
        )
        if original is None or (_sha256(original.key), _sha256(original.value)) != digests:
            raise DlqError(
                f"{entry.id} holds only a prefix of a record too large to copy, and "
                f"{source.topic}[{source.partition}]@{source.offset} no longer holds that record; it cannot "
                f"be replayed (`revstream dlq purge {entry.id}` hides it)"
            )
        whole = replace(source, key=original.key, value=original.value, headers=tuple(original.headers))
        return replace(
            entry,
            record=replace(entry.record, key=original.key, value=original.value),
            letter=replace(entry.letter, source=whole),
            lineage=Lineage.from_headers(original.headers),
        )

    def replay(
        self,
        job: ReplayJob,
        *,
        command_line: str,
        rate: float | None = None,
        progress: Callable[[int], None] = lambda _n: None,
        follow_timeout_s: float | None = None,
        group: str | None = None,
        on_round: Callable[[Sequence[Outcome]], None] = lambda _o: None,
        crash_after_chunks: int | None = None,
    ) -> ReplayResult:
        """Audit, publish and (when ``follow_timeout_s`` is given) follow a prepared replay.

        Raises:
            LedgerUnavailableError / SchemaNotCurrentError: when the audit row cannot be written.
            ReplayError: when the broker did not take every record (run again: nothing doubles).
        """
        actor = job.planned[0].lineage.by
        with AuditLog(self.settings.database.conninfo(), self.catalog.namespace) as audit:
            audit.exclusive()
            job = self._still_waiting(job)
            ids = [p.entry.id for p in job.planned]
            audit_id = audit.start(
                "replay", actor, command_line, job.selection.describe(), ids, target=job.target,
                patch=job.patch, diff=job.changes or None,
            )  # fmt: skip
            deadletter_starts, retry_starts = (
                self._follow_starts() if follow_timeout_s is not None else ({}, {})
            )
            replayer = Replayer(
                self.settings.kafka, self.catalog.dlq_state_topic, self.metrics, job.partitions
            )
            try:
                sent = replayer.run(
                    job.planned, rate=rate, progress=progress, crash_after_chunks=crash_after_chunks
                )
            except BaseException as exc:
                _finish_failed(audit, audit_id, exc, {"planned": len(ids)})
                raise
            outcomes: list[Outcome] = []
            if follow_timeout_s is not None:
                stage_of = {topic: stage for stage, topic in self.store.stage_topics.items()}
                outcomes = follow(
                    self.settings.kafka, sent, deadletter_starts=deadletter_starts, retry_starts=retry_starts,
                    stage_of=stage_of, group=group, timeout_s=follow_timeout_s, on_round=on_round,
                )  # fmt: skip
                for outcome in outcomes:
                    if outcome.status == "failed":
                        failure = outcome.sent.planned.entry.letter.failure
                        self.metrics.failed_again.labels(
                            outcome.sent.planned.entry.stage, failure.reason_code
                        ).inc()
            audit.finish(audit_id, _verdict(outcomes), _tally(sent, outcomes))
        return ReplayResult(audit_id, sent, outcomes)

    def _still_waiting(self, job: ReplayJob) -> ReplayJob:
        """Re-read the markers under the lock: a run that finished meanwhile may have sent some."""
        markers = self.store.markers()
        fresh = [replace(p, entry=replace(p.entry, marker=markers.get(p.entry.id))) for p in job.planned]
        waiting = [p for p in fresh if p.entry.status in ("new", "pending")]
        if not waiting:
            raise EmptySelectionError(
                "every selected dead letter was replayed or purged meanwhile by another run"
            )
        return replace(job, planned=waiting)

    def _follow_starts(self) -> tuple[dict[Partition, int], dict[Partition, int]]:
        topics = [t for stage, t in self.store.stage_topics.items() if stage != PARKED_STAGE]
        deadletters = end_offsets(self.settings.kafka, partitions_of(self.settings.kafka, topics))
        retry = end_offsets(
            self.settings.kafka, partitions_of(self.settings.kafka, [self.catalog.retry_topic])
        )
        return deadletters, retry

    # -- purge --------------------------------------------------------------------------------------

    def purge(self, selected: Sequence[Entry], *, actor: str, command_line: str, selection: Selection) -> int:
        """Hide ``selected`` behind purge markers (topic data stays); return the audit id.

        Raises:
            LedgerUnavailableError / SchemaNotCurrentError: when the audit row cannot be written.
            ReplayError: when the markers were not delivered.
        """
        ids = [e.id for e in selected]
        with AuditLog(self.settings.database.conninfo(), self.catalog.namespace) as audit:
            audit.exclusive()
            audit_id = audit.start("purge", actor, command_line, selection.describe(), ids)
            now_ms = int(time.time() * 1000)
            replayer = Replayer(self.settings.kafka, self.catalog.dlq_state_topic, self.metrics, {})
            try:
                replayer.mark(
                    [
                        (e.id, replace(e.marker or Marker(), purged_at_ms=now_ms, purged_by=actor))
                        for e in selected
                    ]
                )
            except BaseException as exc:
                _finish_failed(audit, audit_id, exc, {"purged": 0})
                raise
            for entry in selected:
                self.metrics.purged.labels(entry.stage, entry.letter.failure.reason_code).inc()
            audit.finish(audit_id, "completed", {"purged": len(ids)})
        return audit_id

    def audit_rows(self, record_id: str | None = None, limit: int = 100) -> list[Any]:
        """Return the audit rows of this namespace (naming ``record_id``, when given)."""
        with AuditLog(self.settings.database.conninfo(), self.catalog.namespace) as audit:
            return audit.rows(record_id, limit)


def _sha256(data: bytes | None) -> bytes:
    return b"" if data is None else hashlib.sha256(data).hexdigest().encode()


def _finish_failed(audit: AuditLog, audit_id: int, exc: BaseException, counts: dict[str, int]) -> None:
    """Record a run that stopped on an error or Ctrl-C; the original error is what the user sees."""
    outcome = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
    with contextlib.suppress(ConnectorError):
        audit.finish(audit_id, outcome, counts)


def _tally(sent: Sequence[Sent], outcomes: Sequence[Outcome]) -> dict[str, int]:
    tally = {"replayed": 0, "parked": 0, "already_published": 0}
    for item in sent:
        tally["parked" if item.planned.action == "park" else "replayed"] += 1
        tally["already_published"] += item.recovered
    for outcome in outcomes:
        tally[outcome.status] = tally.get(outcome.status, 0) + 1
    return tally


def _verdict(outcomes: Sequence[Outcome]) -> str:
    statuses = {o.status for o in outcomes}
    if "failed" in statuses:
        return "failed_again"
    if "pending" in statuses:
        return "pending"
    return "processed" if outcomes else "completed"
