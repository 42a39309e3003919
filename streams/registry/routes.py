"""The REST routes of Confluent Schema Registry's API, each a thin call into ``Registry``.

Routes are plain (synchronous) functions, so FastAPI runs them in its thread pool while the
store's blocking queries wait; only reading the body is asynchronous. Bodies are JSON whatever
the content type says, as Confluent accepts ``application/vnd.schemaregistry.v1+json``,
``application/json`` and ``application/octet-stream`` alike.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Final

from fastapi import APIRouter, Depends, Query, Request, Response

from streams.registry.errors import BadRequestError, BodyTooLargeError
from streams.registry.request import SchemaRequest
from streams.registry.service import Registry

__all__ = ["MAX_BODY_BYTES", "router"]

logger = logging.getLogger(__name__)

router = APIRouter()

_RAW = "application/json"

MAX_BODY_BYTES: Final = 4 * 1_048_576
"""Larger request bodies are refused (413) before they are read whole; the largest canonical
schema here is a few kilobytes, and Confluent's clients send one schema per request."""


async def _body(request: Request) -> Any:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise BodyTooLargeError(f"the request body is {declared} bytes; the limit is {MAX_BODY_BYTES} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLargeError(f"the request body is over the limit of {MAX_BODY_BYTES} bytes")
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except RecursionError:
        raise BadRequestError("the request body is JSON nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadRequestError(
            f'the request body is not JSON ({exc}); send a JSON object such as {{"schema": "..."}}'
        ) from exc


def _registry(request: Request) -> Registry:
    registry: Registry = request.app.state.registry
    return registry


Body = Annotated[Any, Depends(_body)]
Reg = Annotated[Registry, Depends(_registry)]
Flag = Annotated[bool, Query()]


@router.get("/")
def root() -> dict[str, Any]:
    """Answer like Confluent's root resource (an empty object)."""
    return {}


@router.get("/contexts")
def contexts() -> list[str]:
    """Return the default context only: this registry has no schema contexts."""
    return ["."]


# -- subjects ----------------------------------------------------------------------------------


@router.get("/subjects")
def list_subjects(
    registry: Reg,
    subject_prefix: Annotated[str, Query(alias="subjectPrefix")] = "",
    deleted: Flag = False,
    deleted_only: Annotated[bool, Query(alias="deletedOnly")] = False,
) -> list[str]:
    """List subjects."""
    return registry.list_subjects(subject_prefix, deleted, deleted_only)


@router.post("/subjects/{subject}")
def lookup(registry: Reg, subject: str, body: Body, deleted: Flag = False, normalize: Flag = False) -> Any:
    """Return the version of the subject holding the posted schema."""
    return registry.lookup(subject, SchemaRequest.from_json(body), deleted)


@router.delete("/subjects/{subject}")
def delete_subject(registry: Reg, subject: str, permanent: Flag = False) -> list[int]:
    """Soft-delete a subject, or purge a soft-deleted one with ``permanent=true``."""
    return registry.delete_subject(subject, permanent)


@router.get("/subjects/{subject}/versions")
def list_versions(
    registry: Reg,
    subject: str,
    deleted: Flag = False,
    deleted_only: Annotated[bool, Query(alias="deletedOnly")] = False,
) -> list[int]:
    """List a subject's versions."""
    return registry.list_versions(subject, deleted, deleted_only)


@router.post("/subjects/{subject}/versions")
def register(registry: Reg, subject: str, body: Body, normalize: Flag = False) -> Any:
    """Register a schema under a subject; return its id."""
    return registry.register(subject, SchemaRequest.from_json(body))


@router.get("/subjects/{subject}/versions/{version}")
def get_version(registry: Reg, subject: str, version: str, deleted: Flag = False) -> Any:
    """Return one version (or ``latest``) of a subject."""
    return registry.get_version(subject, version, deleted)


@router.get("/subjects/{subject}/versions/{version}/schema")
def get_version_schema(registry: Reg, subject: str, version: str, deleted: Flag = False) -> Response:
    """Return the schema text of one version, unescaped."""
    return Response(registry.get_version(subject, version, deleted)["schema"], media_type=_RAW)


@router.get("/subjects/{subject}/versions/{version}/referencedby")
def referenced_by(registry: Reg, subject: str, version: str) -> list[int]:
    """Return the ids of schemas referencing this version: none, as references are not supported."""
    registry.get_version(subject, version, True)
    return []


@router.delete("/subjects/{subject}/versions/{version}")
def delete_version(registry: Reg, subject: str, version: str, permanent: Flag = False) -> int:
    """Soft-delete a version, or purge a soft-deleted one with ``permanent=true``."""
    return registry.delete_version(subject, version, permanent)


# -- schemas -----------------------------------------------------------------------------------


@router.get("/schemas/types")
def schema_types() -> list[str]:
    """Return the schema types this registry stores."""
    return Registry.schema_types()


@router.get("/schemas/ids/{schema_id}")
def schema_by_id(registry: Reg, schema_id: int, subject: str | None = None) -> Any:
    """Return the schema with a global id."""
    return registry.schema_by_id(schema_id)


@router.get("/schemas/ids/{schema_id}/schema")
def raw_schema_by_id(registry: Reg, schema_id: int, subject: str | None = None) -> Response:
    """Return the schema text with a global id, unescaped."""
    return Response(registry.schema_by_id(schema_id)["schema"], media_type=_RAW)


@router.get("/schemas/ids/{schema_id}/subjects")
def subjects_of_schema(
    registry: Reg, schema_id: int, subject: str | None = None, deleted: Flag = False
) -> list[str]:
    """Return the subjects holding the schema."""
    return sorted({row.subject for row in registry.schema_usages(schema_id, subject, deleted)})


@router.get("/schemas/ids/{schema_id}/versions")
def versions_of_schema(
    registry: Reg, schema_id: int, subject: str | None = None, deleted: Flag = False
) -> list[dict[str, Any]]:
    """Return the subject versions holding the schema."""
    rows = registry.schema_usages(schema_id, subject, deleted)
    return [{"subject": row.subject, "version": row.version} for row in rows]


@router.get("/schemas/guids/{guid}")
def schema_by_guid(registry: Reg, guid: str) -> Any:
    """Return the schema with a guid."""
    return registry.schema_by_guid(guid)


# -- compatibility -----------------------------------------------------------------------------


@router.post("/compatibility/subjects/{subject}/versions/{version}")
def test_compatibility(
    registry: Reg, subject: str, version: str, body: Body, verbose: Flag = False, normalize: Flag = False
) -> Any:
    """Check a schema against one version (or ``latest``) under the subject's level."""
    return registry.test_compatibility(subject, version, SchemaRequest.from_json(body), verbose)


@router.post("/compatibility/subjects/{subject}/versions")
def test_compatibility_all(
    registry: Reg, subject: str, body: Body, verbose: Flag = False, normalize: Flag = False
) -> Any:
    """Check a schema as registering it would (every version the level asks for)."""
    return registry.test_compatibility(subject, None, SchemaRequest.from_json(body), verbose)


# -- config and mode ---------------------------------------------------------------------------


@router.get("/config")
def get_global_config(registry: Reg) -> dict[str, str]:
    """Return the registry-wide compatibility level."""
    return registry.config.get_config(None)


@router.put("/config")
def set_global_config(registry: Reg, body: Body) -> dict[str, str]:
    """Set the registry-wide compatibility level."""
    return registry.config.set_config(None, body)


@router.delete("/config")
def delete_global_config(registry: Reg) -> dict[str, str]:
    """Reset the registry-wide compatibility level to BACKWARD; return the old one."""
    return registry.config.delete_config(None)


@router.get("/config/{subject}")
def get_config(
    registry: Reg, subject: str, default_to_global: Annotated[bool, Query(alias="defaultToGlobal")] = False
) -> dict[str, str]:
    """Return a subject's compatibility level."""
    return registry.config.get_config(subject, default_to_global)


@router.put("/config/{subject}")
def set_config(registry: Reg, subject: str, body: Body) -> dict[str, str]:
    """Set a subject's compatibility level."""
    return registry.config.set_config(subject, body)


@router.delete("/config/{subject}")
def delete_config(registry: Reg, subject: str) -> dict[str, str]:
    """Remove a subject's own compatibility level; return it."""
    return registry.config.delete_config(subject)


@router.get("/mode")
def get_global_mode(registry: Reg) -> dict[str, str]:
    """Return the registry-wide mode."""
    return registry.config.get_mode(None)


@router.put("/mode")
def set_global_mode(registry: Reg, body: Body, force: Flag = False) -> dict[str, str]:
    """Set the registry-wide mode."""
    return registry.config.set_mode(None, body, force)


@router.get("/mode/{subject}")
def get_mode(
    registry: Reg, subject: str, default_to_global: Annotated[bool, Query(alias="defaultToGlobal")] = False
) -> dict[str, str]:
    """Return a subject's mode."""
    return registry.config.get_mode(subject, default_to_global)


@router.put("/mode/{subject}")
def set_mode(registry: Reg, subject: str, body: Body, force: Flag = False) -> dict[str, str]:
    """Set a subject's mode."""
    return registry.config.set_mode(subject, body, force)


@router.delete("/mode/{subject}")
def delete_mode(registry: Reg, subject: str) -> dict[str, str]:
    """Remove a subject's own mode; return it."""
    return registry.config.delete_mode(subject)
