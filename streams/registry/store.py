"""The registry's PostgreSQL store: schemas, subject versions and settings in ``registry_*`` tables.

Schema ids are global and never reused for another schema: a schema row stays when its last
subject version is permanently deleted, so registering the same schema again brings back the
same id. Every write runs in one transaction holding an advisory lock, which serialises id and
version assignment across threads and across registry processes sharing the database; reads
take no lock.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import psycopg
from psycopg.rows import TupleRow

from streams.registry.errors import StoreError

__all__ = ["GLOBAL_SCOPE", "RegistryStore", "SchemaRow", "StoreTx", "VersionRow"]

logger = logging.getLogger(__name__)

# Scope key of the registry-wide settings; no subject can be empty, so it cannot collide.
GLOBAL_SCOPE = ""

# Arbitrary but fixed: every registry process on one database must use the same key.
_WRITE_LOCK = 0x7265_7673_7265_6731

_DDL = """
CREATE TABLE IF NOT EXISTS registry_schemas (
    id integer PRIMARY KEY CHECK (id > 0),
    schema_type text NOT NULL DEFAULT 'AVRO',
    schema_text text NOT NULL,
    fingerprint text NOT NULL UNIQUE,
    guid uuid NOT NULL UNIQUE,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS registry_subject_versions (
    subject text NOT NULL,
    version integer NOT NULL CHECK (version > 0),
    schema_id integer NOT NULL REFERENCES registry_schemas (id),
    deleted boolean NOT NULL DEFAULT false,
    registered_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subject, version)
);
CREATE INDEX IF NOT EXISTS registry_subject_versions_schema_id
    ON registry_subject_versions (schema_id);
CREATE TABLE IF NOT EXISTS registry_settings (
    scope text PRIMARY KEY,
    compatibility text,
    mode text
);
"""

_VERSION_COLUMNS = "v.subject, v.version, v.schema_id, v.deleted, s.schema_text, s.guid::text"


@dataclass(frozen=True)
class SchemaRow:
    """A registered schema: its global id, canonical text and guid."""

    id: int
    text: str
    guid: str


@dataclass(frozen=True)
class VersionRow:
    """One version of one subject and the schema it holds."""

    subject: str
    version: int
    schema_id: int
    deleted: bool
    text: str
    guid: str


def _version(row: TupleRow) -> VersionRow:
    return VersionRow(row[0], row[1], row[2], row[3], row[4], row[5])


def _schema(row: TupleRow | None) -> SchemaRow | None:
    return SchemaRow(row[0], row[1], row[2]) if row is not None else None


class StoreTx:
    """The statements the registry runs, inside one open transaction."""

    def __init__(self, connection: psycopg.Connection[TupleRow]) -> None:
        """Wrap ``connection``, which has a transaction open."""
        self._db = connection

    # -- subjects and versions ----------------------------------------------------------------

    def versions(self, subject: str, *, deleted: bool) -> list[VersionRow]:
        """Return the subject's versions, oldest first; soft-deleted ones only with ``deleted``."""
        rows = self._db.execute(
            f"SELECT {_VERSION_COLUMNS} FROM registry_subject_versions v "  # noqa: S608
            "JOIN registry_schemas s ON s.id = v.schema_id "
            "WHERE v.subject = %s AND (%s OR NOT v.deleted) ORDER BY v.version",
            (subject, deleted),
        ).fetchall()
        return [_version(row) for row in rows]

    def subjects(self, prefix: str, *, deleted: bool, deleted_only: bool) -> list[str]:
        """Return subject names starting with ``prefix`` that have live versions (or deleted)."""
        if deleted_only:
            having = "bool_and(deleted)"
        elif deleted:
            having = "true"
        else:
            having = "NOT bool_and(deleted)"
        rows = self._db.execute(
            "SELECT subject FROM registry_subject_versions WHERE starts_with(subject, %s) "  # noqa: S608
            f"GROUP BY subject HAVING {having} ORDER BY subject",
            (prefix,),
        ).fetchall()
        return [row[0] for row in rows]

    def has_live_versions(self, subject: str | None) -> bool:
        """Whether ``subject`` (any subject when None) has a version that is not soft-deleted."""
        row = self._db.execute(
            "SELECT EXISTS (SELECT 1 FROM registry_subject_versions "
            "WHERE NOT deleted AND (%s::text IS NULL OR subject = %s))",
            (subject, subject),
        ).fetchone()
        return bool(row and row[0])

    def usages(self, schema_id: int) -> list[VersionRow]:
        """Return every subject version holding the schema, soft-deleted ones included."""
        rows = self._db.execute(
            f"SELECT {_VERSION_COLUMNS} FROM registry_subject_versions v "  # noqa: S608
            "JOIN registry_schemas s ON s.id = v.schema_id "
            "WHERE v.schema_id = %s ORDER BY v.subject, v.version",
            (schema_id,),
        ).fetchall()
        return [_version(row) for row in rows]

    def insert_version(self, subject: str, version: int, schema_id: int) -> None:
        """Add ``version`` of ``subject`` holding ``schema_id``."""
        self._db.execute(
            "INSERT INTO registry_subject_versions (subject, version, schema_id) VALUES (%s, %s, %s)",
            (subject, version, schema_id),
        )

    def mark_deleted(self, subject: str, versions: list[int]) -> None:
        """Soft-delete the given versions of ``subject``."""
        self._db.execute(
            "UPDATE registry_subject_versions SET deleted = true WHERE subject = %s AND version = ANY(%s)",
            (subject, versions),
        )

    def remove_versions(self, subject: str, versions: list[int]) -> None:
        """Permanently delete the given versions of ``subject`` (their schemas keep their ids)."""
        self._db.execute(
            "DELETE FROM registry_subject_versions WHERE subject = %s AND version = ANY(%s)",
            (subject, versions),
        )

    # -- schemas ------------------------------------------------------------------------------

    def schema(self, schema_id: int) -> SchemaRow | None:
        """Return the schema with ``schema_id``, if any."""
        return _schema(
            self._db.execute(
                "SELECT id, schema_text, guid::text FROM registry_schemas WHERE id = %s", (schema_id,)
            ).fetchone()
        )

    def schema_by_guid(self, guid: str) -> SchemaRow | None:
        """Return the schema with ``guid``, if any."""
        try:
            key = uuid.UUID(guid)
        except ValueError:
            return None
        return _schema(
            self._db.execute(
                "SELECT id, schema_text, guid::text FROM registry_schemas WHERE guid = %s", (key,)
            ).fetchone()
        )

    def schema_by_fingerprint(self, fingerprint: str) -> SchemaRow | None:
        """Return the schema whose canonical text has ``fingerprint``, if any."""
        return _schema(
            self._db.execute(
                "SELECT id, schema_text, guid::text FROM registry_schemas WHERE fingerprint = %s",
                (fingerprint,),
            ).fetchone()
        )

    def insert_schema(self, text: str, fingerprint: str, schema_id: int | None = None) -> SchemaRow:
        """Store a new schema under ``schema_id``, or the next free id when None."""
        if schema_id is None:
            row = self._db.execute("SELECT coalesce(max(id), 0) + 1 FROM registry_schemas").fetchone()
            schema_id = int(row[0]) if row else 1
        guid = str(uuid.uuid4())
        self._db.execute(
            "INSERT INTO registry_schemas (id, schema_text, fingerprint, guid) VALUES (%s, %s, %s, %s)",
            (schema_id, text, fingerprint, guid),
        )
        return SchemaRow(schema_id, text, guid)

    # -- settings -----------------------------------------------------------------------------

    def setting(self, scope: str, name: Literal["compatibility", "mode"]) -> str | None:
        """Return the compatibility level or mode set on ``scope`` (a subject, or GLOBAL_SCOPE)."""
        row = self._db.execute(
            f"SELECT {name} FROM registry_settings WHERE scope = %s",  # noqa: S608
            (scope,),
        ).fetchone()
        return str(row[0]) if row and row[0] is not None else None

    def set_setting(self, scope: str, name: Literal["compatibility", "mode"], value: str | None) -> None:
        """Set (or with None clear) the compatibility level or mode of ``scope``."""
        self._db.execute(
            f"INSERT INTO registry_settings (scope, {name}) VALUES (%s, %s) "  # noqa: S608
            f"ON CONFLICT (scope) DO UPDATE SET {name} = EXCLUDED.{name}",
            (scope, value),
        )
        self._db.execute(
            "DELETE FROM registry_settings WHERE scope = %s AND compatibility IS NULL AND mode IS NULL",
            (scope,),
        )


class RegistryStore:
    """Opens transactions on the registry's PostgreSQL database."""

    def __init__(self, conninfo: str, connect_timeout_s: int = 5) -> None:
        """Use the database at ``conninfo`` (a URL or key=value string psycopg accepts)."""
        self._conninfo = conninfo
        self._connect_timeout_s = connect_timeout_s

    def initialize(self) -> None:
        """Create the ``registry_*`` tables if they do not exist yet.

        Raises:
            StoreError: when the database cannot be reached or refuses the DDL.
        """
        with self.transaction(write=True) as tx:
            # Under the write lock, so two registries starting together do not race on CREATE.
            tx._db.execute(_DDL)
        logger.info("registry store ready")

    def ping(self) -> bool:
        """Whether the database answers a trivial query now."""
        try:
            with self.transaction(write=False) as tx:
                tx._db.execute("SELECT 1")
        except StoreError:
            return False
        return True

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[StoreTx]:
        """Run the block in one transaction; ``write`` also takes the registry's write lock.

        Raises:
            StoreError: when the database is unreachable or a statement fails (rolled back).
        """
        try:
            # A connection per transaction: the registry's request rate is low (clients cache
            # ids), and nothing stale survives a database restart.
            with psycopg.connect(
                self._conninfo, connect_timeout=self._connect_timeout_s, autocommit=True
            ) as db:
                with db.transaction():
                    if write:
                        db.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_LOCK,))
                    yield StoreTx(db)
        except psycopg.Error as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise StoreError(
                f"the registry's PostgreSQL store failed ({reason}); check that the database at "
                "REVSTREAM_DATABASE_URL is running and retry"
            ) from exc
