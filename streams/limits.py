"""Bounds on what hostile input may make the code do (shared by the producers and the registry)."""

from __future__ import annotations

import logging
from typing import Any

__all__ = ["deeper_than"]

logger = logging.getLogger(__name__)


def deeper_than(data: Any, limit: int) -> bool:
    """Return whether parsed JSON ``data`` nests objects and arrays more than ``limit`` levels deep.

    Iterative: a recursive walk would fail on exactly the input it is meant to refuse.
    """
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > limit:
                return True
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list))
    return False
