"""The gateway's OpenAPI document: the contract in words, and each event type's body schema.

The handlers read the raw body themselves (to enforce the size limit before parsing and to tell
malformed JSON, 400, from invalid events, 422), so FastAPI cannot infer the request schemas; they
are declared here from the same pydantic models the gateway validates with.
"""

from __future__ import annotations

import logging
from typing import Any, Final, Literal

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, ConfigDict

from schemas.loader import EVENT_MODELS

__all__ = [
    "BATCH_RESPONSES",
    "DESCRIPTION",
    "ERROR_RESPONSES",
    "EVENT_RESPONSES",
    "HEALTH_RESPONSES",
    "NOT_FOUND_RESPONSES",
    "body_schema",
    "install_openapi",
]

logger = logging.getLogger(__name__)

DESCRIPTION: Final = """
Systems that push webhooks (billing, payments, CRM, the usage meter) send canonical events here;
the gateway validates them, encodes them as Avro with the schema registry and publishes them to
the event type's topic, keyed by `customer_id`.

**Authentication.** `Authorization: Bearer <token>`. Each token belongs to one producing source
and may send a configured set of event types: no or an unknown token is **401**, an event type the
token may not send is **403**. The token decides the event's `source`: a missing `source` is filled
in with the token's source, a different one is refused (422, field `source`).

**Acknowledgement.** **202** is returned only after the broker acknowledged the write
(`acks=all`, idempotent producer): a 202 is never lost. When the broker is unreachable the gateway
answers **503** at once (or after at most the delivery timeout for a record already in flight)
with `Retry-After`; nothing answered 503 counts as accepted, so retry it.

**Errors.** 400 malformed JSON (or JSON nested over 32 levels, or an integer literal over 4,300
digits, or a batch that is not a JSON array), 404 an event type there is not, 413 body over the
size limit (or a batch over the item limit, or an event whose encoded record is over the
producer's record limit: it cannot be published as it is), 422 an event that does not validate:
the body lists every bad field by its path (`lines.0.quantity`) with the reason (amounts and
quantities are JSON integers: `true`, `1.0` and `"1"` are refused). Every error body is
`{"error": <code>, "detail": <one line>, "problems": [{"field", "reason"}]?}`.

**Idempotency on `event_id`.** Sending the same event again (same `event_id`, same content) is
answered 202 with `status: duplicate` and is not published again; the same `event_id` with other
content is **409**. The memory of ids is per gateway process and bounded (least recently used);
a retry that reaches another process or arrives after a restart is published again and dropped by
the pipeline's dedupe on `event_id` downstream.

**Batches** (`POST /v1/events/{event_type}:batch`, a JSON array) are *not* all-or-nothing: every
item is validated and published on its own. When every item was accepted (or was a duplicate) the
answer is 202; otherwise it is **207** and `items[i].status` says what happened to item `i`
(202 accepted/duplicate, 409 conflict, 413 record too large, 422 invalid with its problems,
503 not delivered: retry that item; 500 a gateway defect, nothing acknowledged for that item).
Requests that are wrong as a whole (401, 403, 400, 413) and a broker known to be unreachable
before anything was sent (503) are answered for the whole batch.
"""


class _Answer(BaseModel):
    # Response bodies, declared so that a client (and schemathesis' response checks) can hold the
    # gateway to them; no extra keys beyond these.
    model_config = ConfigDict(extra="forbid")


class Problem(_Answer):
    """One bad field of a refused event."""

    field: str
    reason: str


class ErrorBody(_Answer):
    """Every answer that is not 202 or 207."""

    error: str
    detail: str
    problems: list[Problem] | None = None


class Accepted(_Answer):
    """202: the broker acknowledged the event (``accepted``), or an identical copy before it."""

    event_id: str
    status: Literal["accepted", "duplicate"]
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None


class BatchItem(_Answer):
    """What happened to one item of a batch."""

    index: int
    event_id: Any = None
    status: Literal[202, 409, 413, 422, 500, 503]
    outcome: Literal["accepted", "duplicate"] | None = None
    topic: str | None = None
    partition: int | None = None
    offset: int | None = None
    error: str | None = None
    detail: str | None = None
    problems: list[Problem] | None = None


class BatchResult(_Answer):
    """202 or 207: the counts and one answer per item."""

    accepted: int
    duplicates: int
    rejected: int
    failed: int
    items: list[BatchItem]


class Health(_Answer):
    """The gateway's health and whether it reaches the broker."""

    status: Literal["ok", "unavailable"]
    broker: Literal["up", "down"]
    detail: str | None = None


def _error(description: str) -> dict[str, Any]:
    return {"description": description, "model": ErrorBody}


ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    400: _error("Malformed JSON (or nested too deeply, or an over-long integer), or not a JSON array."),
    401: _error("No bearer token, or one the gateway does not know."),
    403: _error("The token may not send this event type."),
    409: _error("This event_id was already accepted with other content."),
    413: _error("The body is over the size limit, the batch over the item limit, or the record too large."),
    422: _error("The event does not validate; `problems` names every bad field."),
    500: _error("A defect of the gateway: nothing was acknowledged."),
    503: _error("The broker is unreachable (or the record was not acknowledged): retry."),
}

EVENT_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    202: {
        "description": "Acknowledged by the broker (or a duplicate of an acknowledged event).",
        "model": Accepted,
    },
    **ERROR_RESPONSES,
}

BATCH_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    202: {"description": "Every item was accepted or a duplicate.", "model": BatchResult},
    207: {"description": "Not every item was accepted; see items[].status.", "model": BatchResult},
    **{status: answer for status, answer in ERROR_RESPONSES.items() if status not in (409, 422)},
}

NOT_FOUND_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    404: _error("No such event type; the detail lists the event types there are."),
}

HEALTH_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    200: {"description": "The gateway runs and reaches the broker.", "model": Health},
    503: {"description": "The broker is unreachable.", "model": Health},
}


def body_schema(event_type: str, batch: bool, max_items: int = 500) -> dict[str, Any]:
    """Return the ``openapi_extra`` declaring the request body of an event type's route.

    A batch's items are declared as objects only: each is validated on its own and a bad one is
    answered in its item of a 207, not by refusing the request, so a schema per item would promise
    a 4xx the gateway does not give.
    """
    name = EVENT_MODELS[event_type].__name__
    ref = {"$ref": f"#/components/schemas/{name}"}
    schema: dict[str, Any] = ref
    if batch:
        schema = {
            "type": "array",
            "minItems": 1,
            "maxItems": max_items,
            "items": {"type": "object", "description": f"one {name} event, validated on its own"},
        }
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def install_openapi(app: FastAPI, sources: tuple[str, ...] = ()) -> None:
    """Make ``app.openapi()`` include every event model (and the records it nests) as components.

    ``event_type`` and ``source`` are filled in by the gateway, so they are optional in the body;
    given, ``event_type`` must name the route's type and ``source`` one of the tokens' ``sources``
    (the caller's own, or 422).
    """

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = document.setdefault("components", {}).setdefault("schemas", {})
        for event_type, model in EVENT_MODELS.items():
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(schema.pop("$defs", {}))
            schema["properties"]["event_type"] = {"const": event_type}
            if sources:
                schema["properties"]["source"] = {"enum": list(sources)}
            schema["required"] = [name for name in schema["required"] if name not in ("event_type", "source")]
            components[model.__name__] = schema
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
