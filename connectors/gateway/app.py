"""The HTTP ingest gateway: webhooks in, acknowledged Avro records on the canonical topics out.

``create_app(settings)`` builds the FastAPI app (served by uvicorn, ``revstream gateway``). Its
contract (auth, status codes, idempotency, batch semantics) is written once, in
:data:`connectors.gateway.openapi.DESCRIPTION`, served at ``/docs`` and ``/openapi.json``.

One :class:`Publisher` per app publishes with a background poller; a request awaits its record's
delivery future, so answering 202 means the broker acknowledged the write. The broker's state is
tracked from librdkafka's error callback and a metadata probe every half second while it is down,
so that an unreachable broker is answered 503 at once instead of after the delivery timeout.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

from confluent_kafka import KafkaException
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from connectors.errors import DeliveryFailedError, EventValidationError, RecordTooLargeError
from connectors.gateway.auth import Grant, TokenBook, bearer_token
from connectors.gateway.errors import RETRY_AFTER_S, Problem, install_error_handlers, internal_error
from connectors.gateway.idempotency import IdempotencyCache, fingerprint
from connectors.gateway.metrics import GatewayMetrics
from connectors.gateway.openapi import (
    BATCH_RESPONSES,
    DESCRIPTION,
    ERROR_RESPONSES,
    EVENT_RESPONSES,
    HEALTH_RESPONSES,
    NOT_FOUND_RESPONSES,
    body_schema,
    install_openapi,
)
from connectors.producers.publisher import Delivery, Publisher
from connectors.producers.validation import load_json, parse_event
from schemas.models import EventEnvelope
from schemas.names import EVENT_TYPES
from streams.errors import SerdeError, SettingsError
from streams.settings import Settings
from streams.topics import TopicCatalog

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

PROBE_INTERVAL_S: Final = 0.5
PROBE_TIMEOUT_S: Final = 1.0
# The catch-all route answers only names no event route takes (the OpenAPI says so, too).
_OTHER_TYPE_PARAMETER: Final = {
    "name": "event_type",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "not": {"enum": [*EVENT_TYPES, *(f"{name}:batch" for name in EVENT_TYPES)]}},
}


@dataclass
class _Gateway:
    settings: Settings
    tokens: TokenBook
    metrics: GatewayMetrics
    catalog: TopicCatalog | None
    publisher: Publisher | None = None

    def __post_init__(self) -> None:
        self.cache = IdempotencyCache(self.settings.gateway.idempotency_cache_size)

    # -- lifecycle --------------------------------------------------------------------------------

    @asynccontextmanager
    async def lifespan(self, app: FastAPI) -> AsyncIterator[None]:
        gateway = self.settings.gateway
        self.publisher = Publisher(
            self.settings,
            catalog=self.catalog,
            max_in_flight=10_000,
            delivery_timeout_ms=gateway.delivery_timeout_ms,
            fail_fast=False,
            background_poll=True,
        )
        await asyncio.to_thread(self._probe)
        watcher = asyncio.create_task(self._watch_broker())
        try:
            yield
        finally:
            watcher.cancel()
            try:
                await asyncio.to_thread(self.publisher.close, gateway.delivery_timeout_ms / 1000)
            except DeliveryFailedError as exc:
                logger.warning("gateway stopped with records not acknowledged: %s", exc)

    def _probe(self) -> None:
        assert self.publisher is not None
        try:
            self.publisher.producer.list_topics(timeout=PROBE_TIMEOUT_S)
        except KafkaException as exc:
            self.publisher.mark_broker_unreachable(str(exc.args[0].str() if exc.args else exc))
        else:
            self.publisher.mark_broker_reachable()

    async def _watch_broker(self) -> None:
        assert self.publisher is not None
        while True:
            if self.publisher.broker_error is not None:
                await asyncio.to_thread(self._probe)
            self.metrics.broker_up.set(0 if self.publisher.broker_error else 1)
            self.metrics.in_flight.set(self.publisher.in_flight)
            await asyncio.sleep(PROBE_INTERVAL_S)

    # -- request steps ----------------------------------------------------------------------------

    def authorize(self, request: Request, event_type: str) -> Grant:
        grant = self.tokens.grant_for(bearer_token(request.headers.get("authorization")))
        if grant is None:
            raise Problem(401, "unauthorized", "send Authorization: Bearer <token> with a configured token")
        if not grant.allows(event_type):
            self.metrics.events.labels(event_type, "forbidden").inc()
            raise Problem(
                403, "forbidden", f"the token of source {grant.source!r} may not send {event_type} events"
            )
        return grant

    async def read_json(self, request: Request) -> Any:
        limit = self.settings.gateway.max_request_bytes
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise Problem(413, "too_large", f"the body is {declared} bytes; the limit is {limit} bytes")
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise Problem(413, "too_large", f"the body is over the limit of {limit} bytes")
            chunks.append(chunk)
        try:
            return load_json(b"".join(chunks), "body")
        except EventValidationError as exc:
            reason = exc.problems[0].reason if exc.problems else str(exc)
            raise Problem(400, "malformed_json", f"the body is {reason}") from exc

    def validate(self, event_type: str, data: Any, grant: Grant) -> EventEnvelope:
        try:
            return parse_event(event_type, data, source=grant.source)
        except EventValidationError as exc:
            self.metrics.events.labels(event_type, "invalid").inc()
            raise Problem(422, "validation_failed", str(exc), exc.problems) from exc

    def require_broker(self) -> None:
        assert self.publisher is not None
        if self.publisher.broker_error is not None:
            raise Problem(
                503, "broker_unavailable", f"the broker is unreachable ({self.publisher.broker_error}); retry"
            )

    async def publish(self, event: EventEnvelope) -> dict[str, Any]:
        """Publish one valid event once; return its 202 body or raise the problem."""
        try:
            outcome = await self._publish(event)
        except Problem as problem:
            if problem.status in (409, 503):
                label = "conflict" if problem.status == 409 else "unavailable"
                self.metrics.events.labels(event.event_type, label).inc()
            raise
        self.metrics.events.labels(event.event_type, outcome["status"]).inc()
        return outcome

    async def _publish(self, event: EventEnvelope) -> dict[str, Any]:
        assert self.publisher is not None
        claim = self.cache.claim(event.event_id, fingerprint(event))
        if claim.outcome == "conflict":
            raise Problem(
                409, "conflict", f"event_id {event.event_id!r} was already accepted with other content"
            )
        if claim.outcome == "repeat":
            if claim.pending is not None:
                await self._await_delivery(event, claim.pending)
            return {"event_id": event.event_id, "status": "duplicate"}
        try:
            self.require_broker()
            if self.publisher.in_flight >= self.publisher.max_in_flight:
                raise Problem(503, "busy", "too many records wait for the broker; retry")
            try:
                future = self.publisher.publish(event)
            except SerdeError as exc:
                raise Problem(
                    503, "registry_unavailable", f"the schema registry failed: {exc}; retry"
                ) from exc
            except RecordTooLargeError as exc:
                self.metrics.events.labels(event.event_type, "too_large").inc()
                raise Problem(413, "record_too_large", str(exc)) from exc
            except EventValidationError as exc:
                self.metrics.events.labels(event.event_type, "invalid").inc()
                raise Problem(422, "validation_failed", str(exc), exc.problems) from exc
            self.cache.publishing(event.event_id, future)
            delivery = await self._await_delivery(event, future)
        except BaseException:
            # Whatever went wrong, nothing was acknowledged: forget the id, so that a retry is
            # published rather than answered "duplicate" for an event that is not on the topic.
            self.cache.failed(event.event_id)
            raise
        self.cache.accepted(event.event_id)
        return {
            "event_id": event.event_id,
            "status": "accepted",
            "topic": delivery.topic,
            "partition": delivery.partition,
            "offset": delivery.offset,
        }

    async def _await_delivery(self, event: EventEnvelope, future: Future[Any]) -> Delivery:
        timeout = self.settings.gateway.delivery_timeout_ms / 1000 + 2
        try:
            delivery: Delivery = await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(future)), timeout)
        except (DeliveryFailedError, TimeoutError) as exc:
            if isinstance(exc, DeliveryFailedError) and exc.too_large:
                self.metrics.events.labels(event.event_type, "too_large").inc()
                raise Problem(
                    413, "record_too_large", f"the broker refused the record as too large ({exc})"
                ) from exc
            raise Problem(
                503, "not_delivered", f"the broker did not acknowledge the event ({exc}); retry"
            ) from exc
        return delivery

    # -- handlers ---------------------------------------------------------------------------------

    async def post_event(self, event_type: str, request: Request) -> JSONResponse:
        grant = self.authorize(request, event_type)
        event = self.validate(event_type, await self.read_json(request), grant)
        return JSONResponse(await self.publish(event), status_code=202)

    async def post_batch(self, event_type: str, request: Request) -> JSONResponse:
        grant = self.authorize(request, event_type)
        items = await self.read_json(request)
        if not isinstance(items, list) or not items:
            raise Problem(400, "not_a_batch", "a batch is a non-empty JSON array of events")
        strays = [index for index, item in enumerate(items) if not isinstance(item, dict)]
        if strays:
            # Not an event at all, so the array is not a batch: refuse it whole, send nothing.
            raise Problem(
                400, "not_a_batch", f"a batch holds JSON objects only; item {strays[0]} is not an object"
            )
        limit = self.settings.gateway.max_batch_items
        if len(items) > limit:
            raise Problem(413, "too_many_items", f"the batch has {len(items)} items; the limit is {limit}")
        results: list[dict[str, Any]] = [{} for _ in items]
        valid: list[tuple[int, EventEnvelope]] = []
        for index, item in enumerate(items):
            try:
                valid.append((index, self.validate(event_type, item, grant)))
            except Problem as problem:
                event_id = item.get("event_id") if isinstance(item, dict) else None
                results[index] = {"index": index, "event_id": event_id, "status": 422, **problem.body()}
        if valid:
            self.require_broker()  # nothing sent yet: the whole batch can be retried
        outcomes = await asyncio.gather(*(self.publish(event) for _, event in valid), return_exceptions=True)
        for (index, event), outcome in zip(valid, outcomes, strict=True):
            if isinstance(outcome, Problem):
                results[index] = {
                    "index": index,
                    "event_id": event.event_id,
                    "status": outcome.status,
                    **outcome.body(),
                }
            elif isinstance(outcome, Exception):
                # A defect, not the client's fault; the other items' outcomes still stand, so say
                # per item what happened rather than failing the whole answer.
                logger.error("publishing item %d of a batch failed", index, exc_info=outcome)
                results[index] = {
                    "index": index,
                    "event_id": event.event_id,
                    "status": 500,
                    **internal_error(outcome).body(),
                }
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                results[index] = {"index": index, **outcome, "status": 202, "outcome": outcome["status"]}
        counts = {
            "accepted": sum(r.get("outcome") == "accepted" for r in results),
            "duplicates": sum(r.get("outcome") == "duplicate" for r in results),
            "rejected": sum(r["status"] in (409, 413, 422) for r in results),
            "failed": sum(r["status"] >= 500 for r in results),
        }
        status = 202 if all(r["status"] == 202 for r in results) else 207
        return JSONResponse({**counts, "items": results}, status_code=status)

    async def healthz(self) -> JSONResponse:
        assert self.publisher is not None
        if self.publisher.broker_error is not None:
            body = {"status": "unavailable", "broker": "down", "detail": self.publisher.broker_error}
            return JSONResponse(body, status_code=503, headers={"Retry-After": RETRY_AFTER_S})
        return JSONResponse({"status": "ok", "broker": "up"})

    def metrics_text(self) -> Response:
        if self.publisher is not None:
            self.metrics.in_flight.set(self.publisher.in_flight)
        return Response(generate_latest(self.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def create_app(
    settings: Settings, *, catalog: TopicCatalog | None = None, metrics: GatewayMetrics | None = None
) -> FastAPI:
    """Build the gateway app for ``settings`` (tokens, limits, broker and registry).

    Raises:
        SettingsError: when no tokens are configured (nobody could send anything).
    """
    tokens = TokenBook(settings.gateway.tokens)
    if not len(tokens):
        raise SettingsError(
            "REVSTREAM_GATEWAY_TOKENS: no tokens configured; set it to JSON like "
            '{"<token>": {"source": "billing", "event_types": ["invoice_posted"]}}'
        )
    gateway = _Gateway(settings, tokens, metrics or GatewayMetrics.create(), catalog)
    app = FastAPI(
        title="revstream ingest gateway",
        version="1",
        description=DESCRIPTION,
        lifespan=gateway.lifespan,
    )
    app.state.gateway = gateway

    install_error_handlers(app)

    @app.middleware("http")
    async def observe(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        status = str(response.status_code)
        gateway.metrics.requests.labels(path, status).inc()
        gateway.metrics.request_seconds.labels(path, status).observe(time.perf_counter() - started)
        return response

    for event_type in EVENT_TYPES:
        _add_routes(app, gateway, event_type)

    @app.post(
        "/v1/events/{event_type}",
        status_code=404,
        summary="Any other event type: 404 naming the event types there are",
        operation_id="publish_unknown_event_type",
        responses={**ERROR_RESPONSES, **NOT_FOUND_RESPONSES},
        # A name that is an event type is served by that type's own route, whatever it answers.
        openapi_extra={"parameters": [_OTHER_TYPE_PARAMETER]},
        tags=["events"],
    )
    async def unknown_type(request: Request) -> JSONResponse:
        event_type = request.path_params["event_type"]
        raise Problem(
            404, "unknown_event_type", f"no event type {event_type!r}; use one of {', '.join(EVENT_TYPES)}"
        )

    app.get(
        "/healthz",
        summary="Liveness and broker reachability (503 while the broker is down)",
        responses=HEALTH_RESPONSES,
    )(gateway.healthz)
    app.get(
        "/metrics",
        summary="Prometheus metrics",
        response_class=Response,
        responses={200: {"description": "Prometheus text format", "content": {CONTENT_TYPE_LATEST: {}}}},
    )(gateway.metrics_text)
    install_openapi(app, tuple(sorted({grant.source for grant in settings.gateway.tokens})))
    return app


def _add_routes(app: FastAPI, gateway: _Gateway, event_type: str) -> None:
    # The batch route goes first: "{event_type}:batch" would otherwise match the single-event route.
    async def batch(request: Request) -> JSONResponse:
        return await gateway.post_batch(event_type, request)

    async def single(request: Request) -> JSONResponse:
        return await gateway.post_event(event_type, request)

    app.post(
        f"/v1/events/{event_type}:batch",
        status_code=202,
        summary=f"Publish a batch of {event_type} events (per-item status; 207 when not all accepted)",
        operation_id=f"publish_{event_type}_batch",
        openapi_extra=body_schema(event_type, batch=True, max_items=gateway.settings.gateway.max_batch_items),
        responses=BATCH_RESPONSES,
        tags=["events"],
    )(batch)
    app.post(
        f"/v1/events/{event_type}",
        status_code=202,
        summary=f"Publish one {event_type} event (202 once the broker acknowledged it)",
        operation_id=f"publish_{event_type}",
        openapi_extra=body_schema(event_type, batch=False),
        responses=EVENT_RESPONSES,
        tags=["events"],
    )(single)
