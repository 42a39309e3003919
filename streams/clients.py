"""Factories for the stock confluent-kafka clients, configured from settings.

librdkafka prints connection errors straight to stderr unless given a logger; every client built
here logs through Python logging instead, so a CLI shows one clear line rather than a burst of
``%3|FAIL|`` noise when a broker is down.
"""

from __future__ import annotations

import logging
from typing import Any

from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ClusterMetadata

from streams.errors import BrokerUnreachableError
from streams.settings import KafkaSettings

__all__ = ["admin_client", "consumer", "producer", "cluster_metadata"]

logger = logging.getLogger(__name__)
_librdkafka_logger = logging.getLogger("librdkafka")


def admin_client(kafka: KafkaSettings, **overrides: Any) -> AdminClient:
    """Return an AdminClient for the configured cluster."""
    config: dict[str, Any] = {**kafka.confluent_config(), "logger": _librdkafka_logger, **overrides}
    return AdminClient(config)


def producer(kafka: KafkaSettings, **overrides: Any) -> Producer:
    """Return an idempotent, acks=all Producer for the configured cluster."""
    return Producer({**kafka.producer_config(), "logger": _librdkafka_logger, **overrides})


def consumer(kafka: KafkaSettings, group_id: str, **overrides: Any) -> Consumer:
    """Return a manually committing Consumer in ``group_id`` for the configured cluster."""
    return Consumer({**kafka.consumer_config(group_id), "logger": _librdkafka_logger, **overrides})


def cluster_metadata(kafka: KafkaSettings, timeout_s: float = 5.0) -> ClusterMetadata:
    """Return the cluster's metadata (one round trip); the proof that a broker is usable.

    Raises:
        BrokerUnreachableError: when no broker answers within ``timeout_s``.
    """
    admin = admin_client(kafka, **{"socket.connection.setup.timeout.ms": max(1000, int(timeout_s * 1000))})
    try:
        return admin.list_topics(timeout=timeout_s)
    except KafkaException as exc:
        raise BrokerUnreachableError(
            f"no Kafka broker answered at {kafka.bootstrap_servers} within {timeout_s:g}s "
            f"({exc.args[0].str() if exc.args else exc}); check REVSTREAM_KAFKA_BOOTSTRAP_SERVERS "
            "or start the embedded stack with `revstream stack up`"
        ) from exc
