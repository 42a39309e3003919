"""``revstream lag serve``: poll on an interval, serve /metrics, /healthz and a small JSON API.

Polling runs on a thread of its own and a scrape only renders the newest poll, so a scrape costs
the same with one group or hundreds (kafka-lag-exporter and Burrow work the same way). Routes:

- ``GET /metrics``: Prometheus text (``streams.lag.metrics``);
- ``GET /healthz``: 200 while the last poll succeeded within three intervals, else 503 and why;
- ``GET /api/groups``: the newest poll as JSON (``Snapshot.to_json``);
- ``GET /api/groups/<group>``: one group, 404 when it is not measured.

It also asks the schema registry for ``/subjects`` at each poll (``revstream_registry_up``): the
production registry exports no Prometheus metrics of its own, and a registry that is down stops
producers and new consumers long before anything else shows it.
"""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from streams.errors import PlatformError
from streams.lag.collector import LagCollector
from streams.lag.metrics import LagMetrics
from streams.lag.model import Snapshot, group_json
from streams.settings import RegistrySettings

__all__ = ["LagExporter"]

logger = logging.getLogger(__name__)


class LagExporter:
    """A collector polled on an interval, and the HTTP server that shows its newest poll."""

    def __init__(
        self,
        collector: LagCollector,
        metrics: LagMetrics,
        interval_s: float,
        registry: RegistrySettings | None = None,
    ) -> None:
        self.collector = collector
        self.registry = registry if registry is not None and registry.url else None
        self.metrics = metrics
        self.interval_s = interval_s
        self.snapshot: Snapshot | None = None
        self.last_error: str | None = None
        self._last_ok = -float("inf")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: ThreadingHTTPServer | None = None

    def poll_once(self) -> Snapshot | None:
        """Poll now; on a cluster error keep the previous snapshot and remember the error."""
        try:
            snapshot = self.collector.poll()
        except PlatformError as exc:
            self.last_error = str(exc)
            self.metrics.failed()
            logger.warning("lag poll failed: %s", exc)
            return None
        self.snapshot, self.last_error, self._last_ok = snapshot, None, time.monotonic()
        self.metrics.publish(snapshot)
        return snapshot

    def health(self) -> tuple[bool, dict[str, Any]]:
        """Whether the exporter is healthy, and the details /healthz shows."""
        age = time.monotonic() - self._last_ok
        healthy = age <= 3 * self.interval_s + self.collector.config.timeout_s
        body: dict[str, Any] = {
            "status": "ok" if healthy else "failing",
            "last_poll_age_seconds": round(age, 3) if self.snapshot is not None else None,
            "groups": len(self.snapshot.groups) if self.snapshot is not None else 0,
        }
        if self.last_error is not None:
            body["error"] = self.last_error
        return healthy, body

    def start(self, host: str, port: int) -> int:
        """Start polling and serving; return the port the server listens on."""
        exporter = self

        class Handler(_Handler):
            owner = exporter

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="lag-http", daemon=True).start()
        self._thread = threading.Thread(target=self._loop, name="lag-poll", daemon=True)
        self._thread.start()
        return int(self._server.server_address[1])

    def check_registry(self) -> bool | None:
        """Ask the registry for its subjects; set ``revstream_registry_up`` (None: no registry set)."""
        if self.registry is None:
            return None
        request = urllib.request.Request(f"{self.registry.require_url()}/subjects")  # noqa: S310 - configured URL
        if self.registry.username is not None and self.registry.password is not None:
            pair = f"{self.registry.username}:{self.registry.password.get_secret_value()}".encode()
            request.add_header("Authorization", "Basic " + base64.b64encode(pair).decode())
        try:
            with urllib.request.urlopen(request, timeout=5):  # noqa: S310 - configured URL
                up = True
        except (urllib.error.URLError, OSError) as exc:
            logger.warning("schema registry did not answer: %s", exc)
            up = False
        self.metrics.registry_up.set(1 if up else 0)
        return up

    def _loop(self) -> None:
        while not self._stop.is_set():
            started = time.monotonic()
            self.check_registry()
            self.poll_once()
            self._stop.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def wait(self) -> None:
        """Block until :meth:`stop` is called (from a signal handler or another thread)."""
        while not self._stop.wait(0.5):
            pass

    def request_stop(self) -> None:
        """Ask :meth:`wait` to return (safe from a signal handler)."""
        self._stop.set()

    def stop(self) -> None:
        """Stop polling and serving."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.collector.config.timeout_s + self.interval_s)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        self.collector.close()


class _Handler(BaseHTTPRequestHandler):
    owner: LagExporter

    def do_GET(self) -> None:
        path = urlsplit(self.path).path.rstrip("/") or "/"
        if path == "/metrics":
            self._send(HTTPStatus.OK, generate_latest(self.owner.metrics.registry), CONTENT_TYPE_LATEST)
            return
        if path == "/healthz":
            healthy, body = self.owner.health()
            self._json(HTTPStatus.OK if healthy else HTTPStatus.SERVICE_UNAVAILABLE, body)
            return
        snapshot = self.owner.snapshot
        if path == "/api/groups":
            if snapshot is None:
                self._json(HTTPStatus.SERVICE_UNAVAILABLE, {"error": "no poll has succeeded yet"})
            else:
                self._json(HTTPStatus.OK, snapshot.to_json())
            return
        if path.startswith("/api/groups/"):
            name = unquote(path.removeprefix("/api/groups/"))
            group = snapshot.group(name) if snapshot is not None else None
            if group is None:
                self._json(HTTPStatus.NOT_FOUND, {"error": f"group {name!r} is not measured"})
            else:
                self._json(HTTPStatus.OK, group_json(group))
            return
        self._json(HTTPStatus.NOT_FOUND, {"error": "no such route; try /metrics, /healthz or /api/groups"})

    def _json(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        self._send(status, json.dumps(body, sort_keys=True).encode(), "application/json")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("lag http: " + format, *args)
