"""Versioned ledger migrations: ``migrations/NNNN_name.sql``, applied in order, each in a transaction.

Applied migrations are recorded in ``schema_migrations`` with a checksum of their text; running
``migrate`` again applies only what is missing, and a migration edited after it was applied is
refused rather than silently diverging. A session-level advisory lock keeps two migrators (say a
CLI run and a test) from applying the same version twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
from dataclasses import dataclass
from functools import cache
from importlib import resources

import psycopg

from connectors.errors import LedgerUnavailableError, MigrationError, SchemaNotCurrentError
from connectors.ledger.database import connect

__all__ = [
    "Migration",
    "applied_migrations",
    "available_migrations",
    "connect_current",
    "ensure_current",
    "migrate",
    "pending_migrations",
]

logger = logging.getLogger(__name__)

# Any constant works; it only has to be the same for every revstream migrator.
_LOCK_KEY = 0x7265_7673_6C65_6467  # "revsledg"
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_BOOTSTRAP = b"""
CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    checksum   text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now()
)
"""


@dataclass(frozen=True)
class Migration:
    """One migration file: its version, name and SQL text."""

    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        """SHA-256 of the SQL text, recorded when applied."""
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def label(self) -> str:
        """``0001_name``, as the file is called."""
        return f"{self.version:04d}_{self.name}"


@cache
def available_migrations() -> tuple[Migration, ...]:
    """Return the migrations shipped with this version, in order.

    Raises:
        MigrationError: when versions are duplicated or have gaps (a packaging defect).
    """
    found = []
    for entry in (resources.files("connectors.ledger") / "migrations").iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.version)
    if [m.version for m in found] != list(range(1, len(found) + 1)):
        raise MigrationError(
            f"ledger migrations are not numbered 1..n ({[m.label for m in found]}); reinstall revstream"
        )
    return tuple(found)


def applied_migrations(connection: psycopg.Connection[tuple[object, ...]]) -> dict[int, str]:
    """Return ``version -> checksum`` of the migrations applied to this database (empty if none)."""
    exists = connection.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not exists or not exists[0]:
        return {}
    rows = connection.execute("SELECT version, checksum FROM schema_migrations").fetchall()
    return {int(str(version)): str(checksum) for version, checksum in rows}


def pending_migrations(applied: dict[int, str]) -> list[Migration]:
    """Return the shipped migrations not in ``applied``.

    Raises:
        MigrationError: when an applied migration's text differs from the shipped one.
    """
    pending = []
    for migration in available_migrations():
        checksum = applied.get(migration.version)
        if checksum is None:
            pending.append(migration)
        elif checksum != migration.checksum:
            raise MigrationError(
                f"migration {migration.label} was changed after it was applied to this database; "
                "restore the original file and add a new migration instead"
            )
    return pending


def migrate(conninfo: str) -> list[Migration]:
    """Apply every pending migration, each in its own transaction; return those applied.

    Raises:
        LedgerUnavailableError: when the database cannot be reached.
        MigrationError: when a migration fails (it is rolled back) or was changed after applying.
    """
    applied_now: list[Migration] = []
    with connect(conninfo, autocommit=True) as connection:
        connection.execute("SELECT pg_advisory_lock(%s)", (_LOCK_KEY,))
        try:
            connection.execute(_BOOTSTRAP)
            for migration in pending_migrations(applied_migrations(connection)):
                try:
                    with connection.transaction():
                        connection.execute(migration.sql.encode())
                        connection.execute(
                            "INSERT INTO schema_migrations (version, name, checksum) VALUES (%s, %s, %s)",
                            (migration.version, migration.name, migration.checksum),
                        )
                except psycopg.Error as exc:
                    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                    raise MigrationError(
                        f"migration {migration.label} failed and was rolled back: {reason}"
                    ) from exc
                logger.info("applied ledger migration %s", migration.label)
                applied_now.append(migration)
        finally:
            # The lock dies with the session anyway; don't let a dead connection hide the real error.
            with contextlib.suppress(psycopg.Error):
                connection.execute("SELECT pg_advisory_unlock(%s)", (_LOCK_KEY,))
    return applied_now


def ensure_current(connection: psycopg.Connection[tuple[object, ...]]) -> None:
    """Check that every shipped migration has been applied to this database.

    Raises:
        SchemaNotCurrentError: when some are missing.
        MigrationError: when an applied migration was changed.
    """
    pending = pending_migrations(applied_migrations(connection))
    if pending:
        raise SchemaNotCurrentError(
            f"the ledger database lacks {len(pending)} migration(s) ({pending[0].label}, ...); "
            "run `revstream ledger migrate` first"
        )


def connect_current(conninfo: str) -> psycopg.Connection[tuple[object, ...]]:
    """Open an autocommit connection to a ledger database whose migrations are all applied.

    Raises:
        LedgerUnavailableError: when the database does not answer (or went away while checking).
        SchemaNotCurrentError: when some migrations are missing.
        MigrationError: when an applied migration was changed.
    """
    connection = connect(conninfo, autocommit=True)
    try:
        ensure_current(connection)
    except psycopg.OperationalError as exc:
        connection.close()
        raise LedgerUnavailableError(f"the ledger database went away ({exc})") from exc
    except BaseException:
        connection.close()
        raise
    return connection
