"""Errors of the schema registry service, each carrying Confluent's HTTP status and error code.

The REST layer turns any ``RegistryError`` into Confluent's body ``{"error_code": …, "message": …}``
so that confluent-kafka's ``SchemaRegistryClient`` raises the same ``SchemaRegistryError`` it would
against Confluent Schema Registry.
"""

from __future__ import annotations

from typing import ClassVar

from streams.errors import PlatformError

__all__ = [
    "BadRequestError",
    "BodyTooLargeError",
    "IdDoesNotMatchError",
    "IncompatibleSchemaError",
    "InvalidCompatibilityLevelError",
    "InvalidModeError",
    "InvalidSchemaError",
    "InvalidVersionError",
    "OperationNotPermittedError",
    "RegistryError",
    "SchemaNotFoundError",
    "StoreError",
    "SubjectCompatibilityNotConfiguredError",
    "SubjectModeNotConfiguredError",
    "SubjectNotFoundError",
    "SubjectNotSoftDeletedError",
    "SubjectSoftDeletedError",
    "VersionNotFoundError",
    "VersionNotSoftDeletedError",
    "VersionSoftDeletedError",
]


class RegistryError(PlatformError):
    """Root of the registry's errors; ``http_status`` and ``error_code`` follow Confluent's API."""

    http_status: ClassVar[int] = 500
    error_code: ClassVar[int] = 50001


class BadRequestError(RegistryError):
    """Raised when a request body is not JSON at all."""

    http_status = 400
    error_code = 400


class BodyTooLargeError(RegistryError):
    """Raised when a request body is over the registry's size limit."""

    http_status = 413
    error_code = 413


class SubjectNotFoundError(RegistryError):
    """Raised when a subject has no versions (none at all, or none visible without ``deleted``)."""

    http_status = 404
    error_code = 40401


class VersionNotFoundError(RegistryError):
    """Raised when a subject exists but the requested version does not."""

    http_status = 404
    error_code = 40402


class SchemaNotFoundError(RegistryError):
    """Raised when a schema id, guid or schema text is not registered (under the subject asked)."""

    http_status = 404
    error_code = 40403


class SubjectSoftDeletedError(RegistryError):
    """Raised when soft-deleting a subject that is already soft-deleted."""

    http_status = 404
    error_code = 40404


class SubjectNotSoftDeletedError(RegistryError):
    """Raised when permanently deleting a subject that still has live versions."""

    http_status = 404
    error_code = 40405


class VersionSoftDeletedError(RegistryError):
    """Raised when soft-deleting a version that is already soft-deleted."""

    http_status = 404
    error_code = 40406


class VersionNotSoftDeletedError(RegistryError):
    """Raised when permanently deleting a version that was not soft-deleted first."""

    http_status = 404
    error_code = 40407


class SubjectCompatibilityNotConfiguredError(RegistryError):
    """Raised when reading a subject's compatibility level that was never set on the subject."""

    http_status = 404
    error_code = 40408


class SubjectModeNotConfiguredError(RegistryError):
    """Raised when reading a subject's mode that was never set on the subject."""

    http_status = 404
    error_code = 40409


class IncompatibleSchemaError(RegistryError):
    """Raised when a schema breaks the subject's compatibility level; names field, version, kind."""

    http_status = 409
    error_code = 409


class InvalidSchemaError(RegistryError):
    """Raised when a schema does not parse as Avro (with the parser's reason) or is not AVRO."""

    http_status = 422
    error_code = 42201


class InvalidVersionError(RegistryError):
    """Raised when a version is neither an integer in [1, 2^31-1] nor ``latest``."""

    http_status = 422
    error_code = 42202


class InvalidCompatibilityLevelError(RegistryError):
    """Raised when a compatibility level is not one of the seven levels."""

    http_status = 422
    error_code = 42203


class InvalidModeError(RegistryError):
    """Raised when a mode is not READWRITE, READONLY or IMPORT."""

    http_status = 422
    error_code = 42204


class OperationNotPermittedError(RegistryError):
    """Raised when the subject's mode forbids the operation (READONLY, or ids outside IMPORT)."""

    http_status = 422
    error_code = 42205


class IdDoesNotMatchError(RegistryError):
    """Raised when an import gives a schema an id other than the one it is registered with."""

    http_status = 422
    error_code = 42207


class StoreError(RegistryError):
    """Raised when the registry's PostgreSQL store cannot be reached or fails a statement."""

    http_status = 500
    error_code = 50001
