"""The Faust app of the processors, built from settings, with every agent wired explicitly.

:func:`build_app` returns a :class:`ProcessorApp`: the ``faust.App`` (no autodiscovery), its
tables (dedupe, reconciliation, contracts: RocksDB store plus changelog topics, under the worker's
data dir), the master-data global tables, the event agent that runs the master-data, canonical
and retry topics through the pipeline in batches, a timer that runs parked records when they are
due, and ``/metrics`` on the worker's web port.

Broker, credentials and session timeout come from :class:`streams.settings.KafkaSettings`; the
consumer group (Faust's app id) from the worker settings (``<namespace>-processors`` by default),
so deployments under different namespaces never share state.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, cast

import faust
from faust.types import TP
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from processors.engine.batches import BufferLimits, EventAgent, FailurePolicy
from processors.engine.consumer import BatchConsumer, BatchRoute, BatchTransport
from processors.engine.faust_internals import TransportApp, check_faust_version
from processors.engine.outputs import OutputProducer
from processors.engine.pipeline import Pipeline
from processors.engine.state import PartitionedTable
from processors.errors import WorkerConfigError
from processors.metrics import ProcessorMetrics
from processors.stages.accounting import CONTRACTS, RECON
from processors.stages.decode import EventDecoder
from processors.stages.dedupe import DEDUPE
from processors.stages.master import MasterData
from processors.stages.reference import ReferenceFeed
from schemas.models import BusinessException, ErpCommand
from schemas.names import EVENT_TYPES
from streams.serde import AvroSerde
from streams.settings import EMBEDDED_FETCH_MAX_WAIT_MS, KafkaSettings, Settings
from streams.topics import TopicCatalog, catalog_for

__all__ = ["ProcessorApp", "RevstreamApp", "build_app", "exit_worker"]

logger = logging.getLogger(__name__)

RETRY_TICK_S: Final = 0.1


class RevstreamApp(TransportApp):
    """``faust.App`` whose consumer has the batch path (:mod:`processors.engine.consumer`)."""

    transport_class = BatchTransport
    batch_route: BatchRoute
    reference_feed: ReferenceFeed | None = None

    async def on_stop(self) -> None:
        """Stop the reference-data reader with the app."""
        await super().on_stop()
        if self.reference_feed is not None:
            self.reference_feed.stop()


@dataclass
class ProcessorApp:
    """A built worker: the Faust app and the parts tests and the CLI reach into."""

    app: RevstreamApp
    settings: Settings
    catalog: TopicCatalog
    group_id: str
    metrics: ProcessorMetrics
    outputs: OutputProducer
    agent: EventAgent
    master: MasterData
    serde: AvroSerde


def _credentials(kafka: KafkaSettings) -> Any:
    if kafka.security_protocol.startswith("SASL_"):
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
            mechanism=kafka.sasl_mechanism,
            ssl_context=kafka.ssl_context() if kafka.security_protocol == "SASL_SSL" else None,
        )
    if kafka.security_protocol == "SSL":
        return faust.SSLCredentials(kafka.ssl_context())
    return None


def _faust_config(
    settings: Settings, catalog: TopicCatalog, group_id: str, data_dir: Path, web_port: int
) -> dict[str, Any]:
    kafka = settings.kafka
    worker = settings.worker
    session_s = (kafka.session_timeout_ms or 45_000) / 1000
    heartbeat_s = (kafka.heartbeat_interval_ms or 3_000) / 1000
    config: dict[str, Any] = {
        "broker": kafka.faust_broker_urls(),
        "broker_client_id": kafka.client_id,
        "broker_session_timeout": session_s,
        "broker_heartbeat_interval": heartbeat_s,
        "broker_request_timeout": max(90.0, session_s + 5),
        "broker_max_poll_records": worker.batch_size,
        "broker_commit_interval": worker.commit_interval.total_seconds(),
        "broker_commit_every": worker.commit_every,
        "consumer_auto_offset_reset": "earliest",
        "processing_guarantee": worker.processing_guarantee,
        "store": "rocksdb://",
        "datadir": str(data_dir),
        "topic_partitions": catalog.partitions,
        "topic_replication_factor": catalog.replication_factor,
        "table_standby_replicas": 1,
        "web_enabled": True,
        "web_host": settings.worker.web_host,
        "web_port": web_port,
        "web_in_thread": False,
        "key_serializer": "raw",
        "value_serializer": "raw",
    }
    credentials = _credentials(kafka)
    if credentials is not None:
        config["broker_credentials"] = credentials
    return config


def build_app(
    settings: Settings,
    *,
    data_dir: Path | None = None,
    web_port: int | None = None,
    metrics: ProcessorMetrics | None = None,
    serde: AvroSerde | None = None,
) -> ProcessorApp:
    """Build the processors' Faust app from ``settings`` (nothing connects until it starts).

    Raises:
        WorkerConfigError: when the settings ask for something this broker cannot give, or the
            installed faust-streaming is not the pinned one.
        SettingsError: when the broker or registry is not configured.
    """
    check_faust_version()
    worker = settings.worker
    if worker.processing_guarantee == "exactly_once":
        # Refused on every profile: the batch path produces its outputs and changelog records
        # outside any transaction, so Faust's transactional commits would promise what is not done.
        raise WorkerConfigError(
            "REVSTREAM_WORKER_PROCESSING_GUARANTEE=exactly_once is not offered: the worker's outputs are not "
            "written in Kafka transactions; use at_least_once (the ledger applies each deterministic command "
            "id once, so it is effectively exactly once)"
        )
    catalog = catalog_for(settings)
    group_id = worker.effective_group_id(catalog.namespace)
    data_dir = data_dir or worker.data_dir
    metrics = metrics or ProcessorMetrics.create()
    serde = serde or AvroSerde.from_settings(settings.registry)
    app = RevstreamApp(
        group_id,
        **_faust_config(
            settings, catalog, group_id, data_dir, web_port if web_port is not None else worker.web_port
        ),
    )
    app.batch_route = BatchRoute()
    if settings.embedded:
        app.batch_route.kafka_for_probe = settings.kafka
        app.batch_route.fetch_max_wait_ms = EMBEDDED_FETCH_MAX_WAIT_MS

    def state_table(name: str, **options: Any) -> PartitionedTable:
        table = app.Table(name, key_type=bytes, value_type=bytes, partitions=catalog.partitions, **options)
        return PartitionedTable(table)

    horizon_s = int(worker.dedupe_horizon.total_seconds())
    tables = [
        # Entries past the horizon are decided EXPIRED by the rules anyway; retention and the store's
        # TTL only keep the state from growing without bound.
        state_table(
            DEDUPE,
            extra_topic_configs={
                "cleanup.policy": "compact,delete",
                "retention.ms": str(2 * horizon_s * 1000),
            },
            options={"ttl": 2 * horizon_s},
        ),
        state_table(RECON),
        state_table(CONTRACTS),
    ]
    master = MasterData(
        app,
        catalog,
        serde,
        settings.kafka,
        fetch_max_wait_ms=EMBEDDED_FETCH_MAX_WAIT_MS if settings.embedded else None,
        cache_max=worker.cache_entries_max,
    )
    app.reference_feed = master.feed
    master.feed.attempts = worker.failure_attempts
    master.feed.on_fatal = exit_worker
    outputs = OutputProducer(
        settings.kafka,
        watch_topics=[table.changelog_topic for table in tables]
        + [PartitionedTable(table).changelog_topic for table in master.tables()],
    )
    pipeline = Pipeline(
        catalog=catalog,
        worker=worker,
        group_id=group_id,
        decoder=EventDecoder(serde),
        serde=serde,
        master=master,
        outputs=outputs,
    )
    batch_topics = [
        *master.kind_of_topic,
        *master.reference_topics,
        *(catalog.event_topic(event_type) for event_type in EVENT_TYPES),
        catalog.retry_topic,
    ]
    # Reference data read through the group is only checked (the feed applies it): no event waits on it.
    input_topics = frozenset(batch_topics) - {catalog.retry_topic, *master.reference_topics}
    agent = EventAgent(
        pipeline=pipeline,
        tables=[*tables, *(PartitionedTable(table) for table in master.tables())],
        outputs=outputs,
        metrics=metrics,
        retry_topic=catalog.retry_topic,
        ack=lambda message: app.consumer.ack(message),
        lagging=lambda: cast(BatchConsumer, app.consumer).lagging(input_topics),
        batch_size=worker.batch_size,
        policy=FailurePolicy(
            worker.failure_attempts, worker.failure_share_max, worker.failure_share_min_records
        ),
        prepare=lambda: _resolve_output_schemas(pipeline, catalog),
        on_fatal=exit_worker,
        limits=BufferLimits(
            per_partition=worker.buffered_records_per_partition,
            parked=worker.parked_in_memory_max,
            longest_wait_ms=int(worker.master_retry_backoff_max.total_seconds() * 1000),
        ),
        # Faust's own TP: resume_partitions adds what it is given to its active set unconverted.
        pause=lambda tps: app.consumer.pause_partitions({TP(tp.topic, tp.partition) for tp in tps}),
        resume=lambda tps: app.consumer.resume_partitions({TP(tp.topic, tp.partition) for tp in tps}),
    )
    # Registering the topics with the conductor subscribes the consumer to them; their records then
    # take the batch path instead of a stream.
    app.topics.add(app.topic(*batch_topics, key_type=bytes, value_type=bytes))
    app.batch_route.route(frozenset(batch_topics), agent.on_batch)
    built = ProcessorApp(app, settings, catalog, group_id, metrics, outputs, agent, master, serde)
    _wire(built)
    return built


def _resolve_output_schemas(pipeline: Pipeline, catalog: TopicCatalog) -> None:
    pipeline.serde.prepare(catalog.commands_topic, ErpCommand)
    pipeline.serde.prepare(catalog.exceptions_topic, BusinessException)


def exit_worker(reason: str) -> None:
    """Stop this worker process at once: one line on stderr, exit code 1.

    At once, not through Faust's shutdown: that would flush the failed batch's queued outputs and
    acknowledge what came before it; nothing after the failure may reach the brokers. Its source
    offsets are not committed, so a restarted worker processes them again.
    """
    sys.stderr.write(f"revstream: error: {reason}\n")
    sys.stderr.flush()
    os._exit(1)


def _wire(built: ProcessorApp) -> None:
    app, agent = built.app, built.agent

    @app.task
    async def start_reference_feed() -> None:
        # Events are held back until it has read the reference topics to their end.
        await asyncio.get_running_loop().run_in_executor(None, built.master.feed.start)

    @app.timer(RETRY_TICK_S, name="retry-due")
    async def retry_due() -> None:
        await agent.run_due()

    @app.on_partitions_revoked.connect
    async def on_revoked(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        revoked: set[TP] = args[0] if args else kwargs.get("revoked", set())
        await agent.on_revoked(revoked)

    @app.on_partitions_assigned.connect
    async def on_assigned(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        assigned: set[TP] = args[0] if args else kwargs.get("assigned", set())
        topics = app.batch_route.topics
        built.metrics.assigned_partitions.set(sum(1 for tp in assigned if tp.topic in topics))

    @app.page("/metrics", name="revstream-metrics")
    async def metrics_page(web: Any, request: Any) -> Any:
        # aiohttp refuses a charset inside content_type; the exposition format is ASCII anyway.
        content_type = CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"
        return web.bytes(generate_latest(built.metrics.registry), content_type=content_type)
