"""The gateway's OpenAPI document: the contract in words, and each event type's body schema.

The handlers read the raw body themselves (to enforce the size limit before parsing and to tell
malformed JSON, 400, from invalid events, 422), so FastAPI cannot infer the request schemas; they
are declared here from the same pydantic models the gateway validates with.
"""

from __future__ import annotations

import logging
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from schemas.loader import EVENT_MODELS

__all__ = ["DESCRIPTION", "ERROR_RESPONSES", "body_schema", "install_openapi"]

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

**Errors.** 400 malformed JSON (or a batch that is not a JSON array), 413 body over the size limit
(or a batch over the item limit), 422 an event that does not validate: the body lists every bad
field by its path (`lines.0.quantity`) with the reason. Every error body is
`{"error": <code>, "detail": <one line>, "problems": [{"field", "reason"}]?}`.

**Idempotency on `event_id`.** Sending the same event again (same `event_id`, same content) is
answered 202 with `status: duplicate` and is not published again; the same `event_id` with other
content is **409**. The memory of ids is per gateway process and bounded (least recently used);
a retry that reaches another process or arrives after a restart is published again and dropped by
the pipeline's dedupe on `event_id` downstream.

**Batches** (`POST /v1/events/{event_type}:batch`, a JSON array) are *not* all-or-nothing: every
item is validated and published on its own. When every item was accepted (or was a duplicate) the
answer is 202; otherwise it is **207** and `items[i].status` says what happened to item `i`
(202 accepted/duplicate, 409 conflict, 422 invalid with its problems, 503 not delivered: retry
that item). Requests that are wrong as a whole (401, 403, 400, 413) and a broker known to be
unreachable before anything was sent (503) are answered for the whole batch.
"""

ERROR_RESPONSES: Final[dict[int | str, dict[str, Any]]] = {
    400: {"description": "Malformed JSON, or a batch that is not a JSON array."},
    401: {"description": "No bearer token, or one the gateway does not know."},
    403: {"description": "The token may not send this event type."},
    409: {"description": "This event_id was already accepted with other content."},
    413: {"description": "The body is over the size limit, or the batch over the item limit."},
    422: {"description": "The event does not validate; `problems` names every bad field."},
    503: {"description": "The broker is unreachable (or the record was not acknowledged): retry."},
}


def body_schema(event_type: str, batch: bool) -> dict[str, Any]:
    """Return the ``openapi_extra`` declaring the request body of an event type's route."""
    ref = {"$ref": f"#/components/schemas/{EVENT_MODELS[event_type].__name__}"}
    schema = {"type": "array", "items": ref} if batch else ref
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def install_openapi(app: FastAPI) -> None:
    """Make ``app.openapi()`` include every event model (and the records it nests) as components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        document = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        components = document.setdefault("components", {}).setdefault("schemas", {})
        for model in EVENT_MODELS.values():
            schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
            components.update(schema.pop("$defs", {}))
            components[model.__name__] = schema
        app.openapi_schema = document
        return document

    app.openapi = openapi  # type: ignore[method-assign]
