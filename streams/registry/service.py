"""The registry's rules, as Confluent Schema Registry applies them, over the PostgreSQL store.

Each public method is one REST operation and returns the JSON-ready answer. The rules worth
knowing: re-registering a schema a subject already holds returns its id without a new version
(even in READONLY mode, so auto-registering producers keep working); a new version number is one
above the highest ever used in the subject, soft-deleted ones included; a soft-deleted version
holding the same schema is purged when that schema is registered again; permanent deletes need a
soft delete first; IMPORT mode takes explicit ids and versions and skips compatibility checks.
"""

from __future__ import annotations

import logging
from typing import Any

from streams.registry.compat import check_compatibility
from streams.registry.config import RegistryConfig, level_in_scope, mode_in_scope
from streams.registry.errors import (
    IdDoesNotMatchError,
    IncompatibleSchemaError,
    InvalidSchemaError,
    OperationNotPermittedError,
    SchemaNotFoundError,
    SubjectNotFoundError,
    SubjectNotSoftDeletedError,
    SubjectSoftDeletedError,
    VersionNotFoundError,
    VersionNotSoftDeletedError,
    VersionSoftDeletedError,
)
from streams.registry.request import LATEST, MAX_ID, SchemaRequest, parse_version
from streams.registry.schema import SCHEMA_TYPES, ParsedSchema, parse_schema
from streams.registry.store import RegistryStore, StoreTx, VersionRow

__all__ = ["Registry"]

logger = logging.getLogger(__name__)


def _version_body(row: VersionRow) -> dict[str, Any]:
    return {
        "subject": row.subject,
        "version": row.version,
        "id": row.schema_id,
        "guid": row.guid,
        "schema": row.text,
    }


class Registry:
    """Confluent Schema Registry's operations on one store."""

    def __init__(self, store: RegistryStore) -> None:
        """Serve the registry kept in ``store``."""
        self.store = store
        self.config = RegistryConfig(store)

    # -- subjects -----------------------------------------------------------------------------

    def list_subjects(self, prefix: str = "", deleted: bool = False, deleted_only: bool = False) -> list[str]:
        """Return subject names (with live versions, or soft-deleted ones as asked)."""
        with self.store.transaction(write=False) as tx:
            return tx.subjects(prefix, deleted=deleted, deleted_only=deleted_only)

    def list_versions(self, subject: str, deleted: bool = False, deleted_only: bool = False) -> list[int]:
        """Return the subject's version numbers.

        Raises:
            SubjectNotFoundError: when it has none (none live without ``deleted``).
        """
        with self.store.transaction(write=False) as tx:
            rows = tx.versions(subject, deleted=deleted or deleted_only)
        if not rows:
            raise _subject_not_found(subject)
        return [row.version for row in rows if row.deleted or not deleted_only]

    def get_version(self, subject: str, version: str, deleted: bool = False) -> dict[str, Any]:
        """Return one version of a subject (``latest``: the newest live one).

        Raises:
            InvalidVersionError, SubjectNotFoundError, VersionNotFoundError.
        """
        number = parse_version(version)
        with self.store.transaction(write=False) as tx:
            rows = tx.versions(subject, deleted=deleted)
        if not rows:
            raise _subject_not_found(subject)
        return _version_body(_pick(rows, number, subject))

    def lookup(self, subject: str, request: SchemaRequest, deleted: bool = False) -> dict[str, Any]:
        """Return the version of ``subject`` holding the schema in ``request``.

        Raises:
            InvalidSchemaError, SubjectNotFoundError, SchemaNotFoundError.
        """
        parsed = request.parse()
        with self.store.transaction(write=False) as tx:
            rows = tx.versions(subject, deleted=deleted)
            known = tx.schema_by_fingerprint(parsed.fingerprint)
        if not rows:
            raise _subject_not_found(subject)
        holding = [row for row in rows if known is not None and row.schema_id == known.id]
        if not holding:
            raise SchemaNotFoundError(
                f"Schema not found under subject '{subject}'; register it with POST "
                f"/subjects/{subject}/versions"
            )
        return _version_body(holding[-1])

    def register(self, subject: str, request: SchemaRequest) -> dict[str, Any]:
        """Register the schema under ``subject``; return its id, version and guid.

        Raises:
            InvalidSchemaError, OperationNotPermittedError, IdDoesNotMatchError,
            IncompatibleSchemaError, StoreError.
        """
        parsed = request.parse()
        wanted_id, wanted_version = request.explicit("id"), request.explicit("version")
        with self.store.transaction(write=True) as tx:
            known = tx.schema_by_fingerprint(parsed.fingerprint)
            rows = tx.versions(subject, deleted=True)
            live = [row for row in rows if not row.deleted]
            if known is not None:
                holding = [row for row in live if row.schema_id == known.id]
                if holding and wanted_id in (None, known.id):
                    return {"id": known.id, "version": holding[-1].version, "guid": known.guid}
                if wanted_id is not None and wanted_id != known.id:
                    raise IdDoesNotMatchError(
                        f"Schema already registered with id {known.id} instead of input id {wanted_id}; "
                        "import it under its existing id"
                    )
            mode = mode_in_scope(tx, subject)
            self._check_register_mode(
                subject, mode, importing=wanted_id is not None or wanted_version is not None
            )
            if mode != "IMPORT":
                self._check_compatible(tx, subject, parsed, live)
            version = wanted_version or max((row.version for row in rows), default=0) + 1
            taken = next((row for row in rows if row.version == version), None)
            if taken is not None:
                raise OperationNotPermittedError(
                    f"Version {version} of subject '{subject}' already holds schema id {taken.schema_id}; "
                    "import under a free version"
                )
            schema = known
            if schema is None:
                if wanted_id is not None and tx.schema(wanted_id) is not None:
                    raise OperationNotPermittedError(
                        f"Overwrite new schema with id {wanted_id} is not permitted; import it under a "
                        "free id"
                    )
                schema = tx.insert_schema(parsed.text, parsed.fingerprint, wanted_id)
            tx.insert_version(subject, version, schema.id)
            # A soft-deleted older version of the same schema would make lookups ambiguous.
            stale = [row.version for row in rows if row.deleted and row.schema_id == schema.id]
            if stale:
                tx.remove_versions(subject, stale)
        logger.info("registered schema id %d as %s version %d", schema.id, subject, version)
        return {"id": schema.id, "version": version, "guid": schema.guid}

    def delete_subject(self, subject: str, permanent: bool = False) -> list[int]:
        """Soft-delete the subject's live versions, or purge a soft-deleted subject.

        Raises:
            SubjectNotFoundError, SubjectSoftDeletedError, SubjectNotSoftDeletedError,
            OperationNotPermittedError.
        """
        with self.store.transaction(write=True) as tx:
            rows = tx.versions(subject, deleted=True)
            live = [row.version for row in rows if not row.deleted]
            if not rows:
                raise _subject_not_found(subject)
            if not permanent and not live:
                raise SubjectSoftDeletedError(
                    f"Subject '{subject}' was soft deleted. Set permanent=true to delete permanently"
                )
            self._refuse_if_read_only(tx, subject)
            if permanent and live:
                raise SubjectNotSoftDeletedError(
                    f"Subject '{subject}' was not deleted first before being permanently deleted; "
                    "delete it without permanent=true first"
                )
            if permanent:
                tx.remove_versions(subject, [row.version for row in rows])
                tx.set_setting(subject, "compatibility", None)
                tx.set_setting(subject, "mode", None)
                return [row.version for row in rows]
            tx.mark_deleted(subject, live)
            return live

    def delete_version(self, subject: str, version: str, permanent: bool = False) -> int:
        """Soft-delete one version, or purge a soft-deleted one; return its number.

        Raises:
            InvalidVersionError, SubjectNotFoundError, VersionNotFoundError,
            VersionSoftDeletedError, VersionNotSoftDeletedError, OperationNotPermittedError.
        """
        number = parse_version(version)
        with self.store.transaction(write=True) as tx:
            rows = tx.versions(subject, deleted=True)
            if not rows:
                raise _subject_not_found(subject)
            if number == LATEST:
                # Soft deletes take the newest live version, permanent ones the newest of all.
                live = [row for row in rows if not row.deleted]
                row = rows[-1] if permanent or not live else live[-1]
            else:
                row = _pick(rows, number, subject)
            if row.deleted and not permanent:
                raise VersionSoftDeletedError(
                    f"Subject '{subject}' Version {row.version} was soft deleted. Set permanent=true to "
                    "delete permanently"
                )
            if not row.deleted and permanent:
                raise VersionNotSoftDeletedError(
                    f"Subject '{subject}' Version {row.version} was not deleted first before being "
                    "permanently deleted; delete it without permanent=true first"
                )
            self._refuse_if_read_only(tx, subject)
            if permanent:
                tx.remove_versions(subject, [row.version])
            else:
                tx.mark_deleted(subject, [row.version])
            return row.version

    # -- schemas by id ------------------------------------------------------------------------

    def schema_by_id(self, schema_id: int) -> dict[str, Any]:
        """Return the schema with ``schema_id``.

        Raises:
            SchemaNotFoundError: when no subject version (live or soft-deleted) holds it.
        """
        if not 1 <= schema_id <= MAX_ID:
            raise _schema_not_found(schema_id)  # no such id can exist; PostgreSQL would refuse it
        with self.store.transaction(write=False) as tx:
            schema = tx.schema(schema_id)
            if schema is None or not tx.usages(schema_id):
                raise _schema_not_found(schema_id)
        return {"schema": schema.text, "guid": schema.guid}

    def schema_by_guid(self, guid: str) -> dict[str, Any]:
        """Return the schema with ``guid``.

        Raises:
            SchemaNotFoundError: when there is none.
        """
        with self.store.transaction(write=False) as tx:
            schema = tx.schema_by_guid(guid)
            if schema is None or not tx.usages(schema.id):
                raise _schema_not_found(guid)
        return {"schema": schema.text, "id": schema.id, "guid": schema.guid}

    def schema_usages(
        self, schema_id: int, subject: str | None = None, deleted: bool = False
    ) -> list[VersionRow]:
        """Return the subject versions holding ``schema_id`` (soft-deleted ones with ``deleted``).

        Raises:
            SchemaNotFoundError: when no subject version holds it at all.
        """
        if not 1 <= schema_id <= MAX_ID:
            raise _schema_not_found(schema_id)
        with self.store.transaction(write=False) as tx:
            rows = tx.usages(schema_id)
        if not rows:
            raise _schema_not_found(schema_id)
        return [
            row
            for row in rows
            if (deleted or not row.deleted) and (subject is None or row.subject == subject)
        ]

    # -- compatibility ------------------------------------------------------------------------

    def test_compatibility(
        self, subject: str, version: str | None, request: SchemaRequest, verbose: bool = False
    ) -> dict[str, Any]:
        """Check the schema against one version (``None``: all live versions, as registering would).

        Raises:
            InvalidVersionError, SubjectNotFoundError, VersionNotFoundError, InvalidSchemaError
            (the latter only without ``verbose``, which reports it as a message instead).
        """
        number = parse_version(version) if version is not None else None
        with self.store.transaction(write=False) as tx:
            live = tx.versions(subject, deleted=False)
            level = level_in_scope(tx, subject)
        if number is None or (number == LATEST and not live):
            targets = live  # nothing registered yet is compatible with anything
        elif not live:
            raise _subject_not_found(subject)
        else:
            # One version is compared whatever the level's transitivity, as Confluent does.
            targets = [_pick(live, number, subject)]
        try:
            parsed = request.parse()
        except InvalidSchemaError as exc:
            if not verbose:
                raise
            return {"is_compatible": False, "messages": [str(exc)]}
        previous = [(row.version, parse_schema(row.text).avro) for row in targets]
        problems = [str(item) for item in check_compatibility(parsed.avro, previous, level)]
        answer: dict[str, Any] = {"is_compatible": not problems}
        if verbose:
            answer["messages"] = problems
        return answer

    def _check_compatible(
        self, tx: StoreTx, subject: str, parsed: ParsedSchema, live: list[VersionRow]
    ) -> None:
        level = level_in_scope(tx, subject)
        previous = [(row.version, parse_schema(row.text).avro) for row in live]
        problems = check_compatibility(parsed.avro, previous, level)
        if problems:
            details = "; ".join(str(item) for item in problems)
            raise IncompatibleSchemaError(
                f'Schema being registered is incompatible with an earlier schema for subject "{subject}" '
                f"under {level.value}: {details}"
            )

    # -- config and mode ----------------------------------------------------------------------
    @staticmethod
    def schema_types() -> list[str]:
        """Return the schema types this registry stores."""
        return list(SCHEMA_TYPES)

    # -- helpers ------------------------------------------------------------------------------
    def _refuse_if_read_only(self, tx: StoreTx, subject: str) -> None:
        if mode_in_scope(tx, subject) == "READONLY":
            raise OperationNotPermittedError(
                f"Subject {subject} is in read-only mode; set its mode to READWRITE first"
            )

    def _check_register_mode(self, subject: str, mode: str, *, importing: bool) -> None:
        if mode == "READONLY":
            raise OperationNotPermittedError(
                f"Subject {subject} is in read-only mode; set its mode to READWRITE first"
            )
        if importing and mode != "IMPORT":
            raise OperationNotPermittedError(
                f"Subject {subject} is not in import mode; set its mode to IMPORT to register with an "
                "explicit id or version"
            )
        if not importing and mode == "IMPORT":
            raise OperationNotPermittedError(
                f"Subject {subject} is not in read-write mode; give an id and version to import, or "
                "set its mode to READWRITE"
            )


def _pick(rows: list[VersionRow], number: int, subject: str) -> VersionRow:
    if number == LATEST:
        return rows[-1]
    for row in rows:
        if row.version == number:
            return row
    raise VersionNotFoundError(f"Version {number} not found under subject '{subject}'")


def _subject_not_found(subject: str) -> SubjectNotFoundError:
    return SubjectNotFoundError(f"Subject '{subject}' not found; check the name (GET /subjects lists them)")


def _schema_not_found(key: int | str) -> SchemaNotFoundError:
    return SchemaNotFoundError(f"Schema {key} not found")
