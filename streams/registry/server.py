"""The registry's HTTP face: Confluent Schema Registry's REST API, so stock clients work unchanged.

``create_app(settings)`` builds the FastAPI app over the PostgreSQL store at
``settings.database``; ``serve(settings, host, port)`` runs it with uvicorn (what
``revstream registry serve`` and ``revstream stack up`` start). The store's tables exist before
the first request is answered, so ``GET /subjects`` answering 200 means the registry is usable.
Request bodies are read as JSON whatever their content type (Confluent's clients send
``application/vnd.schemaregistry.v1+json``); errors are Confluent's ``{"error_code", "message"}``.
With ``REVSTREAM_REGISTRY_SERVER_USERS`` set, every endpoint but ``/healthz`` needs HTTP basic auth.
"""

from __future__ import annotations

import base64
import binascii
import logging
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from streams.errors import SettingsError
from streams.registry.errors import RegistryError
from streams.registry.routes import router
from streams.registry.service import Registry
from streams.registry.store import RegistryStore
from streams.settings import Settings

__all__ = ["MEDIA_TYPE", "RegistryMetrics", "create_app", "parse_users", "serve"]

logger = logging.getLogger(__name__)

MEDIA_TYPE = "application/vnd.schemaregistry.v1+json"
_OPEN_PATHS = frozenset({"/healthz"})


class RegistryJSONResponse(JSONResponse):
    """JSON in Confluent's media type."""

    media_type = MEDIA_TYPE


@dataclass(frozen=True)
class RegistryMetrics:
    """The registry's Prometheus metrics, on a registry of their own (one per app)."""

    registry: CollectorRegistry
    requests: Counter
    duration: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry | None = None) -> RegistryMetrics:
        """Build the metrics on ``registry`` (a fresh one when None)."""
        registry = registry or CollectorRegistry()
        return cls(
            registry=registry,
            requests=Counter(
                "revstream_registry_requests",
                "HTTP requests answered by the schema registry, by route template and status.",
                ["method", "endpoint", "status"],
                registry=registry,
            ),
            duration=Histogram(
                "revstream_registry_request_duration_seconds",
                "Time to answer a schema registry request, by route template.",
                ["method", "endpoint"],
                registry=registry,
            ),
        )


def parse_users(spec: str | None) -> dict[str, str]:
    """Return ``{user: password}`` from ``"user:password[,user:password...]"``.

    Raises:
        SettingsError: for an entry without a colon or with an empty user name.
    """
    users: dict[str, str] = {}
    for entry in (spec or "").split(","):
        if not entry.strip():
            continue
        user, sep, password = entry.strip().partition(":")
        if not sep or not user:
            raise SettingsError(
                "REVSTREAM_REGISTRY_SERVER_USERS: each entry must be user:password, separated by commas"
            )
        users[user] = password
    return users


def _error(status: int, code: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return RegistryJSONResponse({"error_code": code, "message": message}, status_code=status, headers=headers)


def _authorized(header: str | None, users: dict[str, str]) -> bool:
    scheme, _, encoded = (header or "").partition(" ")
    if scheme.lower() != "basic":
        return False
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    expected = users.get(user)
    # Compare even for unknown users, so response time does not reveal which users exist.
    return secrets.compare_digest(password.encode(), (expected or "\0").encode()) and expected is not None


def create_app(settings: Settings, store: RegistryStore | None = None) -> FastAPI:
    """Return the registry app over ``store`` (by default the database in ``settings``).

    Raises:
        SettingsError: when no database URL is configured or the basic-auth users are malformed.
    """
    store = store or RegistryStore(settings.database.conninfo())
    secret = settings.registry.server_users
    users = parse_users(secret.get_secret_value() if secret is not None else None)
    metrics = RegistryMetrics.create()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Before uvicorn accepts connections: nobody sees the API until the tables exist.
        await run_in_threadpool(store.initialize)
        yield

    app = FastAPI(
        title="revstream schema registry",
        description="Confluent Schema Registry compatible REST API",
        default_response_class=RegistryJSONResponse,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.state.registry = Registry(store)
    app.state.metrics = metrics
    app.include_router(router)

    @app.exception_handler(RegistryError)
    async def registry_error(request: Request, exc: RegistryError) -> Response:
        if exc.http_status >= 500:
            logger.error("%s %s failed: %s", request.method, request.url.path, exc)
        return _error(exc.http_status, exc.error_code, str(exc))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, exc.status_code, f"HTTP {exc.status_code} {exc.detail}")

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, exc: RequestValidationError) -> Response:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        return _error(422, 422, f"Invalid request: {problems}")

    @app.exception_handler(Exception)
    async def defect(request: Request, exc: Exception) -> Response:
        # A bug, not a client error: keep the traceback in the log, answer in Confluent's shape.
        logger.exception("%s %s failed", request.method, request.url.path)
        return _error(500, 50001, f"internal error ({type(exc).__name__}); see the registry's log")

    @app.get("/metrics", include_in_schema=False)
    def prometheus() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> Response:
        if store.ping():
            return RegistryJSONResponse({"status": "ok"})
        return _error(503, 50001, "the registry's PostgreSQL store does not answer")

    @app.middleware("http")
    async def refuse_nul(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        # PostgreSQL text cannot hold NUL: a subject or query value with one can name nothing stored.
        if "\x00" in request.url.path or any("\x00" in value for value in request.query_params.values()):
            return _error(400, 400, "Bad request: subjects and parameters cannot contain NUL characters")
        return await call_next(request)

    @app.middleware("http")
    async def authenticate(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        if users and request.url.path not in _OPEN_PATHS:
            if not _authorized(request.headers.get("authorization"), users):
                return _error(
                    401,
                    401,
                    "Unauthorized: send HTTP basic credentials of a registry user",
                    {"WWW-Authenticate": 'Basic realm="revstream schema registry"'},
                )
        return await call_next(request)

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        status = 500  # a defect propagates to the outermost handler, which answers 500
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            # The route template, never the concrete path: subjects and ids stay out of labels.
            endpoint = getattr(request.scope.get("route"), "path", "unmatched")
            metrics.requests.labels(request.method, endpoint, str(status)).inc()
            metrics.duration.labels(request.method, endpoint).observe(time.perf_counter() - started)

    return app


def serve(settings: Settings, host: str = "127.0.0.1", port: int = 8081) -> None:
    """Run the registry until interrupted (SIGINT/SIGTERM stop it cleanly).

    Raises:
        SettingsError: when no database URL is configured.
        StoreError: when the database cannot be reached.
    """
    store = RegistryStore(settings.database.conninfo())
    store.initialize()  # fail here, as one line, rather than inside uvicorn's startup
    app = create_app(settings, store)
    logger.info("schema registry on http://%s:%d, store %s", host, port, settings.database.redacted())
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=settings.loglevel,
        access_log=settings.loglevel == "debug",
        lifespan="on",
    )
    uvicorn.Server(config).run()
