"""Bring a cluster in line with the topic catalog without ever destroying data.

``plan`` compares the catalog with what the cluster has; ``apply`` creates what is missing. A topic
that exists with another partition count or config is reported as drift and left alone: shrinking
partitions is impossible, growing them silently re-maps keys and breaks co-partitioning, and
changing retention or compaction on live data is a decision for a person, not a tool.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

from streams.errors import TopicProvisioningError
from streams.topics import TopicSpec

__all__ = ["TopicAction", "plan", "apply", "ensure_topics"]

logger = logging.getLogger(__name__)

Action = Literal["create", "ok", "drift"]


@dataclass(frozen=True)
class TopicAction:
    """What provisioning does (or found) for one topic."""

    spec: TopicSpec
    action: Action
    differences: tuple[str, ...] = ()

    def describe(self) -> str:
        """Return one human-readable line for this action."""
        if self.action == "create":
            config = ", ".join(f"{k}={v}" for k, v in sorted(self.spec.config.items()))
            return (
                f"create  {self.spec.name} (partitions={self.spec.partitions}, "
                f"replication={self.spec.replication_factor}, {config})"
            )
        if self.action == "drift":
            return f"drift   {self.spec.name}: " + "; ".join(self.differences)
        return f"ok      {self.spec.name}"


def plan(admin: AdminClient, specs: list[TopicSpec], timeout_s: float = 10.0) -> list[TopicAction]:
    """Compare ``specs`` with the cluster and return one action per topic."""
    existing = admin.list_topics(timeout=timeout_s).topics
    present = [spec for spec in specs if spec.name in existing]
    configs = _describe_configs(admin, [spec.name for spec in present], timeout_s)
    actions = []
    for spec in specs:
        if spec.name not in existing:
            actions.append(TopicAction(spec, "create"))
            continue
        differences = []
        partitions = len(existing[spec.name].partitions)
        if partitions != spec.partitions:
            differences.append(f"partitions {partitions}, catalog says {spec.partitions}")
        actual = configs.get(spec.name, {})
        for key, wanted in sorted(spec.config.items()):
            have = actual.get(key)
            # A broker that does not report a config it was never given holds the default;
            # only a value that is reported and differs is drift.
            if have is not None and have != wanted:
                differences.append(f"{key}={have}, catalog says {wanted}")
        actions.append(TopicAction(spec, "drift" if differences else "ok", tuple(differences)))
    return actions


def apply(admin: AdminClient, actions: list[TopicAction], timeout_s: float = 30.0) -> None:
    """Create every topic whose action is ``create``; drift is only reported.

    Raises:
        TopicProvisioningError: when the broker refuses to create a topic.
    """
    to_create = [
        NewTopic(a.spec.name, a.spec.partitions, a.spec.replication_factor, config=a.spec.config)
        for a in actions
        if a.action == "create"
    ]
    if not to_create:
        return
    futures = admin.create_topics(to_create, operation_timeout=timeout_s, request_timeout=timeout_s)
    for name, future in futures.items():
        try:
            future.result()
        except KafkaException as exc:
            error = exc.args[0]
            if error.name() == "TOPIC_ALREADY_EXISTS":
                continue
            raise TopicProvisioningError(f"could not create topic {name}: {error.str()}") from exc
    logger.info("created %d topics", len(to_create))


def ensure_topics(admin: AdminClient, specs: list[TopicSpec]) -> list[TopicAction]:
    """Plan and apply in one call; return the plan."""
    actions = plan(admin, specs)
    apply(admin, actions)
    return actions


def _describe_configs(admin: AdminClient, names: list[str], timeout_s: float) -> dict[str, dict[str, str]]:
    if not names:
        return {}
    resources = [ConfigResource("topic", name) for name in names]
    result: dict[str, dict[str, str]] = {}
    for resource, future in admin.describe_configs(resources, request_timeout=timeout_s).items():
        try:
            entries = future.result(timeout=timeout_s)
        except KafkaException as exc:
            logger.warning("could not describe configs of %s: %s", resource.name, exc)
            continue
        result[resource.name] = {
            entry.name: entry.value for entry in entries.values() if entry.value is not None
        }
    return result
