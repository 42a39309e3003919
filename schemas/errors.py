"""Errors raised by the schema layer (loading ``.avsc`` files and looking schemas up)."""

from __future__ import annotations

__all__ = ["SchemaError", "SchemaNotFoundError", "SchemaParseError"]


class SchemaError(Exception):
    """Root of every error the schema layer raises; its message is one line a user can act on."""


class SchemaNotFoundError(SchemaError, LookupError):
    """Raised when no shipped schema has the event type, record name or file stem asked for."""


class SchemaParseError(SchemaError):
    """Raised when an ``.avsc`` file is not valid JSON or not a valid Avro schema."""
