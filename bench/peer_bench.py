"""The peers on the full path's records: each in its own virtualenv and process, counted back.

``make bench`` builds the peers' virtualenvs on first use under ``bench/.peers/<peer>`` (gitignored)
from the requirements files shipped in ``bench/peers/`` (they pin other client versions than
revstream: Quix Streams pins its own confluent-kafka), and rebuilds one when its requirements change.
The simulated company is published once per run into a namespace of its own; every peer reads the
same canonical topics with its own consumer (or, Bytewax, its own assignment), writes to topics of
its own, and its outputs are read back against the simulator's ground truth (``bench.peer_truth``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from confluent_kafka.schema_registry import Schema, SchemaRegistryClient

from bench.common import REPO_ROOT, run_contender
from bench.peer_truth import Truth, check_peer
from bench.peers.workload import OUTPUT_SCHEMA
from bench.pipeline import namespace
from connectors.simulator.output import publish_simulation
from connectors.simulator.simulate import Simulation
from schemas.names import EVENT_TYPES
from streams.clients import admin_client
from streams.provisioning import ensure_topics
from streams.settings import Settings
from streams.topics import CANONICAL_RETENTION_MS, TopicSpec

__all__ = ["PEERS", "PeerMode", "Peer", "available", "ensure_venv", "run"]

logger = logging.getLogger(__name__)

PeerMode = Literal["build", "existing", "off"]
"""``build``: create missing virtualenvs; ``existing``: run only the peers already built; ``off``."""

VENVS = REPO_ROOT / "bench" / ".peers"
PEER_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class Peer:
    """One contender of the peers: its virtualenv, module and settings."""

    name: str
    venv: str
    module: str
    args: tuple[str, ...] = ()

    @property
    def requirements(self) -> Path:
        """The pinned requirements its virtualenv is built from."""
        return REPO_ROOT / "bench" / "peers" / f"requirements-{self.venv}.txt"

    @property
    def python(self) -> Path:
        """Its virtualenv's interpreter."""
        return VENVS / self.venv / "bin" / "python"


# Quix Streams twice: as tuned for the embedded broker (PEERS.md: each buffer refill of merged
# topics otherwise waits the full poll timeout) and with its default, so both are on the record.
PEERS = (
    Peer("quix", "quix", "bench.peers.quix_app", ("--poll-timeout", "0.02")),
    Peer("quix_default_poll", "quix", "bench.peers.quix_app", ("--poll-timeout", "1.0")),
    Peer("bytewax", "bytewax", "bench.peers.bytewax_flow"),
)


def _stamp(peer: Peer) -> Path:
    return VENVS / peer.venv / ".installed"


def _digest(peer: Peer) -> str:
    return hashlib.sha256(peer.requirements.read_bytes()).hexdigest()


def ready(peer: Peer) -> bool:
    """Whether the peer's virtualenv exists and was built from its current requirements."""
    stamp = _stamp(peer)
    return stamp.exists() and stamp.read_text().strip() == _digest(peer)


def ensure_venv(peer: Peer) -> None:
    """Build the peer's virtualenv from its requirements unless it is already current.

    Raises:
        subprocess.CalledProcessError: when ``venv`` or ``pip`` fails.
    """
    if ready(peer):
        return
    target = VENVS / peer.venv
    logger.warning("building the %s virtualenv in %s (once)", peer.venv, target)
    began = time.monotonic()
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(target)], check=True)
    pip = [str(peer.python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(peer.requirements)], check=True)
    _stamp(peer).write_text(_digest(peer) + "\n")
    logger.warning("built the %s virtualenv in %.0fs", peer.venv, time.monotonic() - began)


def available(mode: PeerMode) -> list[Peer]:
    """The peers to run in ``mode``, their virtualenvs built first when ``mode`` is ``build``."""
    if mode == "off":
        return []
    if mode == "build":
        for peer in PEERS:
            ensure_venv(peer)
    return [peer for peer in PEERS if ready(peer)]


def run(
    settings: Settings, simulation: Simulation, truth: Truth, peers: list[Peer]
) -> dict[str, dict[str, Any]]:
    """Publish the simulation once, run every peer on it in turn; return each one's figures.

    Raises:
        RuntimeError: when a peer fails, prints no result, or does not settle every record.
    """
    figures: dict[str, dict[str, Any]] = {}
    if not peers:
        return figures
    with namespace(settings) as ns:
        counts = publish_simulation(simulation, settings, ns.catalog)
        n = counts["events"] + counts["raw"]
        if n != truth.records:
            raise RuntimeError(f"published {n} canonical records, the ground truth counts {truth.records}")
        topics = ",".join(ns.catalog.event_topic(t) for t in EVENT_TYPES)
        registry = SchemaRegistryClient(settings.registry.client_config())
        for peer in peers:
            logger.warning("peer %s", peer.name)
            output, deadletter = _topics(settings, ns.catalog.partitions, peer.name)
            schema_id = registry.register_schema(f"{output}-value", Schema(json.dumps(OUTPUT_SCHEMA), "AVRO"))
            args = [
                "--bootstrap", settings.kafka.require_bootstrap(),
                "--registry", settings.registry.require_url(),
                "--topics", topics,
                "--output", output,
                "--deadletter", deadletter,
                "--output-schema-id", str(schema_id),
                "--n", str(n),
                *peer.args,
            ]  # fmt: skip
            line = run_contender(peer.module, args, PEER_TIMEOUT_S, python=peer.python)
            check = check_peer(settings, truth, output, deadletter)
            if int(line["records"]) != n:
                check["mismatches"].append(f"settled {line['records']} of {n} records")
                check["correct"] = False
            seconds = float(line["seconds"])
            figures[peer.name] = {
                "records": n,
                "seconds": round(seconds, 3),
                "records_per_s": round(n / seconds, 1),
                "cpu_s_per_1000": round(float(line["cpu_seconds"]) * 1000 / n, 4),
                "peak_rss_mb": float(line["peak_rss_mb"]),
                "check": check,
                **{k: v for k, v in line.items() if k == "poll_timeout_s"},
            }
            if not check["correct"]:
                logger.warning("peer %s does not match the ground truth: %s", peer.name, check["mismatches"])
    return figures


def _topics(settings: Settings, partitions: int, name: str) -> tuple[str, str]:
    token = uuid.uuid4().hex[:8]
    output, deadletter = f"bench-peer-{name}-{token}-out", f"bench-peer-{name}-{token}-dlq"
    # An explicit retention: Quix derives its changelogs' configs from its topics' and the embedded
    # broker's DescribeConfigs returns only the configs set on a topic (PEERS.md).
    specs = [
        TopicSpec(topic, "canonical", partitions, 1, key="customer_id", retention_ms=CANONICAL_RETENTION_MS)
        for topic in (output, deadletter)
    ]
    ensure_topics(admin_client(settings.kafka), specs)
    return output, deadletter
