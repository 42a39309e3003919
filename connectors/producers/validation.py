"""Turn what producers hand in (JSON text, CSV rows, dicts) into canonical models, or say why not.

Pure functions, no I/O: the SDK, the file publisher and the HTTP gateway share them, so an event is
refused for the same reason, in the same words, whichever way it came in. Every problem names the
field by its dotted path (``lines.0.quantity``) so the producer knows exactly what to fix.
"""

from __future__ import annotations

import json
import logging
import re
import types
import typing
from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar

from pydantic import ValidationError

from connectors.errors import EventValidationError, FieldProblem
from schemas.loader import EVENT_MODELS
from schemas.models import AvroRecord, Customer, EventEnvelope, LegalEntity, MasterRecord, Product
from schemas.names import EVENT_TYPES, MASTER_DATA_KINDS
from streams.limits import deeper_than

__all__ = [
    "MAX_JSON_DEPTH",
    "MASTER_MODELS",
    "csv_row_to_data",
    "event_model",
    "load_json",
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

MAX_JSON_DEPTH: Final = 32
"""How deep JSON may nest: the deepest canonical record is 3 levels; 1,000 would exhaust the stack."""

_INTEGER_TEXT: Final = re.compile(r"\s*[+-]?[0-9]+\s*")

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


def load_json(text: str | bytes, what: str = "record") -> Any:
    """Parse JSON text, refusing what a later step could not take (one problem, field ``(record)``).

    Refused: invalid JSON or UTF-8, nesting deeper than :data:`MAX_JSON_DEPTH`, and an integer
    literal over Python's 4,300-digit conversion limit. A number without a fraction (``100.0``,
    ``1e2``) is an int, as JSON Schema counts it.

    Raises:
        EventValidationError: naming why the text is refused.
    """
    try:
        data = json.loads(text, parse_float=_json_number)
    except RecursionError:
        reason = f"nested deeper than {MAX_JSON_DEPTH} levels"
    except UnicodeDecodeError as exc:
        reason = f"not valid UTF-8 (byte {exc.start})"
    except json.JSONDecodeError as exc:
        reason = f"not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
    except ValueError:
        # The only other ValueError json raises: an integer literal over sys.int_info's limit.
        reason = "holds an integer literal over 4,300 digits"
    else:
        if deeper_than(data, MAX_JSON_DEPTH):
            reason = f"nested deeper than {MAX_JSON_DEPTH} levels"
        else:
            return data
    raise _refuse(what, (FieldProblem("(record)", reason),))


def _json_number(text: str) -> int | float:
    # JSON (and JSON Schema, which the gateway's OpenAPI document speaks) has no integer type of
    # its own: 100.0 and 1e2 are the integer 100. Integer fields are strict, so give them an int;
    # a number with a fraction stays a float and is refused there. The exponent bound keeps
    # 1e999999 from becoming a million-digit int.
    try:
        number = Decimal(text)
    except InvalidOperation:
        return float(text)
    if number.is_finite() and number.adjusted() < 40 and number == number.to_integral_value():
        return int(number)
    return float(text)


def _text_problems(data: Any) -> tuple[FieldProblem, ...]:
    # A lone surrogate ("\ud800") is valid JSON but not Unicode: it cannot be encoded as UTF-8,
    # so Avro (and every header and log line) would fail on it later. Name the field now.
    problems: list[FieldProblem] = []
    stack: list[tuple[Any, str]] = [(data, "")]
    while stack and len(problems) < _MAX_PROBLEMS:
        value, path = stack.pop()
        if isinstance(value, str):
            if not _encodable(value):
                problems.append(FieldProblem(path or "(record)", "is not valid Unicode (a lone surrogate)"))
        elif isinstance(value, Mapping):
            for key, child in value.items():
                name = str(key) if _encodable(str(key)) else repr(key)
                where = f"{path}.{name}" if path else name
                if not _encodable(str(key)):
                    problems.append(FieldProblem(where, "field name is not valid Unicode (a lone surrogate)"))
                stack.append((child, where))
        elif isinstance(value, list | tuple):
            stack.extend(
                (child, f"{path}.{index}" if path else str(index)) for index, child in enumerate(value)
            )
    return tuple(sorted(problems, key=lambda problem: problem.field))


def _encodable(text: str) -> bool:
    try:
        text.encode()
    except UnicodeEncodeError:
        return False
    return True


def _validate(model: type[_M], data: Mapping[str, Any] | str | bytes, what: str) -> _M:
    if isinstance(data, str | bytes):
        data = load_json(data, what)
    if not isinstance(data, Mapping):
        raise _refuse(what, (FieldProblem("(record)", f"must be an object, got {type(data).__name__}"),))
    unencodable = _text_problems(data)
    if unencodable:
        raise _refuse(what, unencodable)
    try:
        return model.model_validate(data)
    except (ValidationError, RecursionError) as exc:
        if isinstance(exc, RecursionError):
            raise _refuse(what, (FieldProblem("(record)", "nested too deeply"),)) from None
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
        data = load_json(data, f"{event_type} event")
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


def csv_row_to_data(
    row: Mapping[Any, str | list[str] | None], model: type[AvroRecord] | None = None
) -> dict[str, Any]:
    """Return a CSV row as the dict a model validates.

    CSV has no nesting, so a cell that holds a JSON array or object (``lines``, ``approvals``) is
    decoded; an empty cell means "not given" (the field's default, or null for an optional one).
    Integer fields of ``model`` are strict, so their cells are converted here when they hold an
    integer (``"5"``, not ``"5.0"`` or ``"true"``); every other cell stays text and pydantic
    converts it (ISO dates and instants).

    Raises:
        EventValidationError: when a cell that looks like JSON is not valid JSON.
    """
    integers = _integer_fields(model) if model is not None else frozenset()
    data: dict[str, Any] = {}
    for column, cell in row.items():
        if column is None or not isinstance(cell, str) or cell == "":
            continue
        text = cell.strip()
        if text[:1] in ("[", "{"):
            try:
                data[column] = load_json(text)
            except EventValidationError as exc:
                reason = exc.problems[0].reason if exc.problems else str(exc)
                raise _refuse("CSV row", (FieldProblem(column, f"cell is {reason}"),)) from exc
        elif column in integers and _INTEGER_TEXT.fullmatch(cell) and len(text) <= 40:
            data[column] = int(text)
        else:
            data[column] = cell
    return data


def _integer_fields(model: type[AvroRecord]) -> frozenset[str]:
    names = set()
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
            options = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
            annotation = options[0] if len(options) == 1 else None
        if annotation is int:
            names.add(name)
    return frozenset(names)
