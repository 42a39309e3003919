"""Reads what the pipeline produced, incrementally, as finance would see it.

One consumer is assigned every partition of the output topics (ERP commands, exceptions, dead
letters) and of the three canonical topics the cycle-time KPIs need, from the beginning; it joins
no group, so it disturbs nothing. Records are kept once: commands by ``command_id``, exceptions by
``exception_id``, dead letters by their source coordinates (all delivered at least once).
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from processors.kpis import CycleEvents, OrderFacts
from schemas.models import BusinessException, ErpCommand, InvoicePosted, OrderAccepted, ServiceActivated
from schemas.names import STAGES
from streams.clients import consumer
from streams.deadletter import parse_dead_letter
from streams.errors import SerdeError
from streams.lag.collector import LagCollector, LagConfig
from streams.lag.model import GroupFilter, Snapshot
from streams.serde import AvroSerde
from streams.settings import Settings
from streams.topics import TopicCatalog

__all__ = ["OutputWatcher", "PipelineOutput", "measure_lag"]

logger = logging.getLogger(__name__)


@dataclass
class PipelineOutput:
    """Everything read so far, deduplicated."""

    commands: dict[str, ErpCommand] = field(default_factory=dict)
    exceptions: dict[str, BusinessException] = field(default_factory=dict)
    notices: dict[str, BusinessException] = field(default_factory=dict)
    """Hold notices and approval closures: they raise nothing, but an approval closes what it names."""
    dead_letters: set[tuple[str, str, str, int, int]] = field(default_factory=set)
    cycle: CycleEvents = field(default_factory=CycleEvents)

    def dead_letters_by_reason(self) -> Counter[tuple[str, str]]:
        """(stage, reason) → distinct records dead-lettered."""
        return Counter((stage, reason) for stage, reason, *_ in self.dead_letters)

    def exceptions_by_reason(self) -> Counter[str]:
        """Reason code → distinct business exceptions raised."""
        return Counter(exception.reason_code.value for exception in self.exceptions.values())

    def take_exception(self, record: BusinessException) -> None:
        """Keep a record of the exceptions topic once, raised exceptions apart from notices."""
        if record.raises:
            self.exceptions.setdefault(record.exception_id, record)
        else:
            # An approval's closing record keeps the id of the exception it closes.
            self.notices.setdefault(f"{record.exception_id}:{record.resolution}", record)

    def kpi_exceptions(self) -> list[BusinessException]:
        """What :func:`processors.kpis.compute_kpis` reads: the raised exceptions, then the notices."""
        return [*self.exceptions.values(), *self.notices.values()]


class OutputWatcher:
    """Follows the output topics of one catalog and accumulates a :class:`PipelineOutput`."""

    def __init__(self, settings: Settings, catalog: TopicCatalog, serde: AvroSerde) -> None:
        """Assign every partition of the watched topics from the beginning."""
        self.catalog = catalog
        self.serde = serde
        self.output = PipelineOutput()
        self._consumer: Consumer = consumer(settings.kafka, f"demo-watch-{uuid.uuid4().hex[:8]}")
        self._deadletter_topics = {catalog.deadletter_topic(stage) for stage in STAGES}
        topics = [
            catalog.commands_topic,
            catalog.exceptions_topic,
            *sorted(self._deadletter_topics),
            catalog.event_topic("order_accepted"),
            catalog.event_topic("service_activated"),
            catalog.event_topic("invoice_posted"),
        ]
        metadata = self._consumer.list_topics(timeout=10)
        self._consumer.assign(
            [
                TopicPartition(topic, partition, OFFSET_BEGINNING)
                for topic in topics
                for partition in metadata.topics[topic].partitions
            ]
        )

    def poll(self, budget: int = 20_000) -> int:
        """Read up to ``budget`` records that are available now; return how many were read."""
        read = 0
        while read < budget:
            batch = self._consumer.consume(2000, timeout=0.2)
            if not batch:
                break
            for message in batch:
                if message.error() is None:
                    self._take(message.topic() or "", message)
            read += len(batch)
        return read

    def _take(self, topic: str, message: object) -> None:
        value = message.value()  # type: ignore[attr-defined]
        if topic in self._deadletter_topics:
            letter = parse_dead_letter(message.key(), value, message.headers())  # type: ignore[attr-defined]
            source = letter.source
            self.output.dead_letters.add(
                (
                    letter.failure.stage,
                    letter.failure.reason_code,
                    source.topic,
                    source.partition,
                    source.offset,
                )
            )
            return
        try:
            record = self.serde.decode_model(value or b"")
        except SerdeError:
            return  # corrupt or unknown-schema canonical records: the decode stage dead-letters them
        output = self.output
        if isinstance(record, ErpCommand):
            output.commands.setdefault(record.command_id, record)
        elif isinstance(record, BusinessException):
            output.take_exception(record)
        elif isinstance(record, OrderAccepted):
            output.cycle.orders.setdefault(
                record.order_id, OrderFacts(record.occurred_at, record.subscription_id, record.correlation_id)
            )
        elif isinstance(record, ServiceActivated):
            _keep_earliest(output.cycle.activations, record.order_id, record.activated_at)
        elif isinstance(record, InvoicePosted):
            _keep_earliest(output.cycle.first_invoices, record.subscription_id, record.occurred_at)

    def close(self) -> None:
        """Leave the topics."""
        self._consumer.close()


def _keep_earliest(times: dict[str, datetime], key: str, moment: datetime) -> None:
    if key not in times or moment < times[key]:
        times[key] = moment


def measure_lag(settings: Settings, groups: list[str], settle_s: float = 15.0) -> Snapshot:
    """Measure ``groups`` with the lag exporter's code, polling until all are at 0 or ``settle_s`` passed.

    The groups commit on their own interval (the workers every few seconds), so a drained pipeline
    can show a few records of lag for a moment; the poll waits that out, and what it returns is
    the last measurement either way.

    Raises:
        BrokerUnreachableError: when the broker does not answer.
    """
    wanted = GroupFilter(allow="|".join(re.escape(g) for g in groups))
    collector = LagCollector(settings.kafka, LagConfig(groups=wanted))
    try:
        deadline = time.monotonic() + settle_s
        snapshot = collector.poll()
        while time.monotonic() < deadline:
            measured = [snapshot.group(g) for g in groups]
            if all(m is not None and m.partitions and m.sum_lag == 0 for m in measured):
                break
            time.sleep(0.5)
            snapshot = collector.poll()
        return snapshot
    finally:
        collector.close()
