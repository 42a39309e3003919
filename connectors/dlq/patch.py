"""RFC 7386 JSON merge patches on decoded values, and the diff they made (pure functions).

A merge patch is a JSON document shaped like the record: an object member replaces the field of
the same name (recursively for objects), ``null`` removes it, and anything that is not an object
(an array, a number) replaces the target whole. Values are handled in their JSON view: timestamps
and dates as ISO-8601 strings, bytes as hex, which is also what ``dlq show`` prints.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from enum import Enum
from pathlib import Path
from typing import Any

from connectors.dlq.errors import PatchError

__all__ = ["MAX_DEPTH", "diff", "json_view", "load_patch", "merge_patch"]

logger = logging.getLogger(__name__)

MAX_DEPTH = 32
"""Deeper than any revstream record; keeps the recursive merge and diff far from Python's limit."""


def load_patch(path: Path) -> dict[str, Any]:
    """Read a merge patch file: a JSON object.

    Raises:
        PatchError: when the file cannot be read, is not JSON, or is not an object.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PatchError(f"cannot read the patch {path}: {exc}") from exc
    try:
        patch = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PatchError(
            f"the patch {path} is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from exc
    except RecursionError as exc:
        raise PatchError(f"the patch {path} is nested too deeply to be a record's patch") from exc
    if _depth(patch) > MAX_DEPTH:
        raise PatchError(f"the patch {path} is nested deeper than {MAX_DEPTH} levels; no record is that deep")
    if not isinstance(patch, dict):
        raise PatchError(
            f"the patch {path} is a JSON {type(patch).__name__}, not an object; a merge patch names fields, "
            'e.g. {"currency": "EUR"}'
        )
    return patch


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def merge_patch(target: Any, patch: Any) -> Any:
    """Return ``target`` with the RFC 7386 merge ``patch`` applied (neither argument is changed)."""
    if not isinstance(patch, Mapping):
        return patch
    result = dict(target) if isinstance(target, Mapping) else {}
    for name, value in patch.items():
        if value is None:
            result.pop(name, None)
        else:
            result[name] = merge_patch(result.get(name), value)
    return result


def json_view(value: Any) -> Any:
    """Return a decoded Avro value as plain JSON data (ISO-8601 times, hex bytes, enum symbols)."""
    if isinstance(value, Mapping):
        return {str(k): json_view(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_view(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Decimal):
        return str(value)
    return value


def diff(before: Any, after: Any, path: str = "") -> list[dict[str, Any]]:
    """Return every field that differs, as ``{"field": dotted path, "before": ..., "after": ...}``."""
    if isinstance(before, Mapping) and isinstance(after, Mapping):
        changes = []
        for name in sorted(set(before) | set(after), key=str):
            where = f"{path}.{name}" if path else str(name)
            if name not in after:
                changes.append({"field": where, "before": before[name], "after": None})
            elif name not in before:
                changes.append({"field": where, "before": None, "after": after[name]})
            else:
                changes += diff(before[name], after[name], where)
        return changes
    if before == after:
        return []
    return [{"field": path or "(value)", "before": before, "after": after}]
