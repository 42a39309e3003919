"""Turn what producers hand in (JSON text, CSV rows, dicts) into canonical models, or say why not.

Pure functions, no I/O: the SDK, the file publisher and the HTTP gateway share them, so an event is
refused for the same reason, in the same words, whichever way it came in. Every problem names the
field by its dotted path (``lines.0.quantity``) so the producer knows exactly what to fix.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any, Final, TypeVar

from pydantic import ValidationError

from connectors.errors import EventValidationError, FieldProblem
from schemas.loader import EVENT_MODELS
from schemas.models import AvroRecord, Customer, EventEnvelope, LegalEntity, MasterRecord, Product
from schemas.names import EVENT_TYPES, MASTER_DATA_KINDS

__all__ = [
    "MASTER_MODELS",
    "csv_row_to_data",
    "event_model",
    "master_key",
    "master_model",
    "parse_event",
    "parse_master",
    "problems_of",
]

logger = logging.getLogger(__name__)

MASTER_MODELS: Final[Mapping[str, type[MasterRecord]]] = {
    "customer": Customer,
    "product": Product,
    "legal_entity": LegalEntity,
}
"""Master-data kind → its model (and so its compacted topic and key field ``<kind>_id``)."""

_MAX_PROBLEMS: Final = 20

_M = TypeVar("_M", bound=AvroRecord)


def event_model(event_type: str) -> type[EventEnvelope]:
    """Return the model of canonical ``event_type``.

    Raises:
        EventValidationError: when ``event_type`` is not a canonical event type.
    """
    try:
        return EVENT_MODELS[event_type]
    except KeyError:
        raise EventValidationError(
            f"unknown event type {event_type!r}; use one of {', '.join(EVENT_TYPES)}",
            (FieldProblem("event_type", "unknown event type"),),
        ) from None


def master_model(kind: str) -> type[MasterRecord]:
    """Return the model of master-data ``kind``.

    Raises:
        EventValidationError: when ``kind`` is not a master-data kind.
    """
    try:
        return MASTER_MODELS[kind]
    except KeyError:
        raise EventValidationError(
            f"unknown master-data kind {kind!r}; use one of {', '.join(MASTER_DATA_KINDS)}",
            (FieldProblem("kind", "unknown master-data kind"),),
        ) from None


def master_key(record: MasterRecord) -> str:
    """Return the record's own id, the key of its compacted topic."""
    if isinstance(record, Customer):
        return record.customer_id
    if isinstance(record, Product):
        return record.product_id
    return record.legal_entity_id


def problems_of(exc: ValidationError) -> tuple[FieldProblem, ...]:
    """Return one :class:`FieldProblem` per error pydantic found, field named by its dotted path."""
    problems = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "(record)"
        problems.append(FieldProblem(where, error["msg"].removeprefix("Value error, ")))
    return tuple(problems)


def _refuse(what: str, problems: tuple[FieldProblem, ...]) -> EventValidationError:
    shown = "; ".join(str(problem) for problem in problems[:_MAX_PROBLEMS])
    more = f" (and {len(problems) - _MAX_PROBLEMS} more)" if len(problems) > _MAX_PROBLEMS else ""
    return EventValidationError(f"invalid {what}: {shown}{more}", problems)


def _validate(model: type[_M], data: Mapping[str, Any] | str | bytes, what: str) -> _M:
    try:
        if isinstance(data, str | bytes):
            return model.model_validate_json(data)
        if not isinstance(data, Mapping):
            raise _refuse(what, (FieldProblem("(record)", f"must be an object, got {type(data).__name__}"),))
        return model.model_validate(data)
    except ValidationError as exc:
        raise _refuse(what, problems_of(exc)) from exc


def parse_event(
    event_type: str, data: Mapping[str, Any] | str | bytes, *, source: str | None = None
) -> EventEnvelope:
    """Validate ``data`` (a dict or JSON text) as an event of ``event_type``.

    A missing ``event_type`` is filled in; one that names another type is refused. With
    ``source``, a missing ``source`` is filled in and a different one is refused.

    Raises:
        EventValidationError: naming each bad field and why.
    """
    model = event_model(event_type)
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as exc:
            raise _refuse(
                f"{event_type} event", (FieldProblem("(record)", f"not valid JSON: {exc.msg}"),)
            ) from exc
    if not isinstance(data, Mapping):
        raise _refuse(
            f"{event_type} event",
            (FieldProblem("(record)", f"must be a JSON object, got {type(data).__name__}"),),
        )
    problems: list[FieldProblem] = []
    claimed = data.get("event_type", event_type)
    if claimed != event_type:
        problems.append(FieldProblem("event_type", f"is {claimed!r} but the event is sent as {event_type!r}"))
    if source is not None:
        given = data.get("source", source)
        if given != source:
            problems.append(FieldProblem("source", f"is {given!r} but this producer speaks for {source!r}"))
        data = {**data, "source": source}
    try:
        event = _validate(model, {**data, "event_type": event_type}, f"{event_type} event")
    except EventValidationError as exc:
        raise _refuse(f"{event_type} event", (*problems, *exc.problems)) from exc
    if problems:
        raise _refuse(f"{event_type} event", tuple(problems))
    return event


def parse_master(kind: str, data: Mapping[str, Any] | str | bytes) -> MasterRecord:
    """Validate ``data`` (a dict or JSON text) as a master-data record of ``kind``.

    Raises:
        EventValidationError: naming each bad field and why.
    """
    return _validate(master_model(kind), data, f"{kind} record")


def csv_row_to_data(row: Mapping[str, str | None]) -> dict[str, Any]:
    """Return a CSV row as the dict a model validates.

    CSV has no nesting, so a cell that holds a JSON array or object (``lines``, ``approvals``) is
    decoded; an empty cell means "not given" (the field's default, or null for an optional one);
    every other cell stays text and pydantic converts it (``"5"`` to 5, ISO dates and instants).

    Raises:
        EventValidationError: when a cell that looks like JSON is not valid JSON.
    """
    data: dict[str, Any] = {}
    for column, cell in row.items():
        if column is None or cell is None or cell == "":
            continue
        text = cell.strip()
        if text[:1] in ("[", "{"):
            try:
                data[column] = json.loads(text)
            except json.JSONDecodeError as exc:
                raise _refuse(
                    "CSV row", (FieldProblem(column, f"cell is not valid JSON ({exc.msg})"),)
                ) from exc
        else:
            data[column] = cell
    return data
