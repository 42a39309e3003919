"""A worker's RSS through a master-data outage: ``records`` events parked, then the outage ends.

The products and legal entities are published, the customers are not (the outage); ``records``
usage events of 1,000 such customers are published while one worker runs with a long retry
back-off, so every event is parked on the retry topic and read back into memory to wait for its
due time. The worker holds at most ``REVSTREAM_WORKER_PARKED_IN_MEMORY_MAX`` of them and pauses
the retry topic meanwhile (the rest wait on the topic, not on the heap). Once every event was
parked twice (read back into memory at least once), the customers are published and every event
is processed. Reported: the worker's peak resident memory (VmHWM), the
most parked records seen waiting in memory, whether the retry topic was paused, and the time.

    python -m bench --parked-rss [--parked-records 100000]
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from bench.dedupe_rss import _rss_mb
from bench.pipeline import check_running, child_env, namespace, scrape, settled, stop_all, total
from connectors.producers.publisher import Publisher
from connectors.simulator.world import legal_entities, price_book
from revstream.demo.services import ChildService
from schemas.models import Customer, CustomerStatus, UsageRecorded
from streams.settings import Settings
from streams.stack import free_port

__all__ = ["run"]

logger = logging.getLogger(__name__)

CUSTOMERS: Final = 1_000
DEADLINE_S_PER_100K: Final = 900.0
_START: Final = datetime(2026, 1, 1, tzinfo=UTC)


def _usage(index: int) -> UsageRecorded:
    customer = f"C-OUT-{index % CUSTOMERS:04d}"
    return UsageRecorded(
        event_id=f"outage-{index:08d}",
        occurred_at=_START,
        source="bench",
        customer_id=customer,
        legal_entity="LE-US",
        correlation_id=f"SUB-{customer}",
        subscription_id=f"SUB-{customer}",
        metric="api_calls",
        quantity=1,
        window_start=_START,
        window_end=_START,
    )


def _customer(index: int) -> Customer:
    return Customer(
        customer_id=f"C-OUT-{index:04d}",
        name=f"Outage {index}",
        legal_entity="LE-US",
        billing_terms_days=30,
        status=CustomerStatus.ACTIVE,
        currency="USD",
        updated_at=_START,
        version=1,
    )


def run(settings: Settings, records: int, logs: Path) -> dict[str, Any]:
    """Park ``records`` events in one worker, end the outage, and return its memory figures.

    Raises:
        RuntimeError: when the worker exits or does not finish before the deadline.
    """
    deadline_s = DEADLINE_S_PER_100K * max(records / 100_000, 0.1)
    with namespace(settings) as ns:
        port = free_port()
        env = {
            **child_env(settings, ns),
            "REVSTREAM_WORKER_DATA_DIR": str(logs / f"{ns.catalog.namespace}-worker"),
            "REVSTREAM_WORKER_WEB_PORT": str(port),
            # Long waits: every parked record stays parked until the outage ends, and records come
            # back from the retry topic well before they are due, so they wait in memory (with a
            # short back-off a worker busy parking reads them back already due).
            "REVSTREAM_WORKER_MASTER_RETRY_ATTEMPTS": "1000",
            "REVSTREAM_WORKER_MASTER_RETRY_BACKOFF": "20",
            "REVSTREAM_WORKER_MASTER_RETRY_BACKOFF_MAX": "20",
        }
        log = logs / f"{ns.catalog.namespace}-worker.log"
        worker = ChildService("worker", ["worker"], env, log, port)
        started = time.monotonic()
        deadline = started + deadline_s
        most_waiting, paused_seen = 0.0, 0.0
        try:
            with Publisher(settings, catalog=ns.catalog) as publisher:
                for product in price_book(_START):
                    publisher.publish_master(product)
                for entity in legal_entities(_START):
                    publisher.publish_master(entity)
                publisher.flush()
                worker.start()
                for index in range(records):
                    publisher.send(_usage(index))
                publisher.flush()
                while True:
                    samples = scrape(worker)
                    most_waiting = max(most_waiting, total(samples, "revstream_processor_retry_waiting"))
                    paused_seen = max(paused_seen, total(samples, "revstream_processor_paused_partitions"))
                    # Twice: every record was parked, read back into memory, and parked again.
                    if total(samples, "revstream_processor_parked_total") >= 2 * records:
                        break
                    _check(worker, deadline, "park every record twice")
                parked_rss = _rss_mb(_pid(worker), "VmRSS")
                for index in range(CUSTOMERS):
                    publisher.publish_master(_customer(index))
                publisher.flush()
            while settled(scrape(worker)) < records:
                samples = scrape(worker)
                most_waiting = max(most_waiting, total(samples, "revstream_processor_retry_waiting"))
                paused_seen = max(paused_seen, total(samples, "revstream_processor_paused_partitions"))
                _check(worker, deadline, "process every record after the outage")
            peak = _rss_mb(_pid(worker), "VmHWM")
        finally:
            stop_all([worker])
    return {
        "parked_records": records,
        "peak_rss_mb": round(peak, 1),
        "rss_when_all_parked_mb": round(parked_rss, 1),
        "most_parked_in_memory": int(most_waiting),
        "retry_topic_paused": paused_seen > 0,
        "seconds": round(time.monotonic() - started, 1),
    }


def _pid(worker: ChildService) -> int:
    assert worker.process is not None
    return worker.process.pid


def _check(worker: ChildService, deadline: float, what: str) -> None:
    check_running([worker])
    if time.monotonic() > deadline:
        raise RuntimeError(f"the worker did not {what} before the deadline")
    time.sleep(0.5)
