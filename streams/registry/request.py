"""What clients send: version ids and the schema request body of register, lookup and checks."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from streams.registry.errors import InvalidSchemaError, InvalidVersionError
from streams.registry.schema import ParsedSchema, parse_schema

__all__ = ["LATEST", "MAX_ID", "SchemaRequest", "parse_version"]

logger = logging.getLogger(__name__)

LATEST = -1
_MAX_VERSION = 2**31 - 1
MAX_ID = 2**31 - 1
"""Ids and versions are PostgreSQL ``integer`` columns, as they are Java ints in Confluent's registry."""


def parse_version(value: str) -> int:
    """Return the version number in ``value``, or ``LATEST`` for ``latest`` (or ``-1``).

    Raises:
        InvalidVersionError: for anything else.
    """
    if value.strip().lower() == "latest":
        return LATEST
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number == LATEST or 1 <= number <= _MAX_VERSION:
        return number
    raise InvalidVersionError(
        f"The specified version '{value}' is not a valid version id. Allowed values are between "
        '[1, 2^31-1] and the string "latest"'
    )


@dataclass(frozen=True)
class SchemaRequest:
    """The body of a register, lookup or compatibility request."""

    schema: object
    schema_type: object = "AVRO"
    references: object = None
    id: object = None
    version: object = None

    @classmethod
    def from_json(cls, body: object) -> SchemaRequest:
        """Read a request body as Confluent's clients send it.

        Raises:
            InvalidSchemaError: when the body is not an object or carries data contracts.
        """
        if not isinstance(body, dict):
            raise InvalidSchemaError('Invalid request: send a JSON object such as {"schema": "..."}')
        if body.get("metadata") or body.get("ruleSet"):
            raise InvalidSchemaError(
                "Schema metadata and rule sets (data contracts) are not supported by this registry; "
                "send the schema without them"
            )
        return cls(
            body.get("schema"),
            body.get("schemaType"),
            body.get("references"),
            body.get("id"),
            body.get("version"),
        )

    def parse(self) -> ParsedSchema:
        """Return the parsed schema.

        Raises:
            InvalidSchemaError: when it is not a valid AVRO schema.
        """
        return parse_schema(self.schema, self.schema_type, self.references)

    def explicit(self, name: str) -> int | None:
        """Return the explicit ``id`` or ``version`` (IMPORT mode), None when absent or <= 0.

        Raises:
            InvalidSchemaError: when it is not an integer, or an id over 2^31-1.
            InvalidVersionError: when it is a version over 2^31-1.
        """
        value = self.id if name == "id" else self.version
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidSchemaError(f"Invalid request: {name} must be an integer, got {value!r}")
        if value > MAX_ID:
            if name == "version":
                raise InvalidVersionError(
                    f"The specified version '{value}' is not a valid version id. Allowed values are "
                    'between [1, 2^31-1] and the string "latest"'
                )
            raise InvalidSchemaError(f"Invalid request: id must be between 1 and 2^31-1, got {value}")
        return value if value > 0 else None
