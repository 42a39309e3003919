"""Connections to the ledger database, and creating a database of its own for a test or a bench run.

psycopg's connection errors are turned into :class:`LedgerUnavailableError` here, the one error the
sink treats as "retry later" rather than "this record is bad".
"""

from __future__ import annotations

import logging
import re

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from connectors.errors import ConnectorError, LedgerUnavailableError

__all__ = [
    "CONNECT_TIMEOUT_S",
    "connect",
    "create_database",
    "database_conninfo",
    "drop_database",
    "is_connection_error",
]

logger = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 5
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def is_connection_error(exc: BaseException) -> bool:
    """Whether ``exc`` means the database went away (retry) rather than rejected a statement."""
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        # Operator intervention (57P*: shutdown, cannot connect now) and connection exceptions
        # (08*) are outages; other operational errors (e.g. lock timeouts) are too, as retrying
        # them is always safe: nothing was committed.
        return True
    return False


def connect(conninfo: str, autocommit: bool = False) -> psycopg.Connection[tuple[object, ...]]:
    """Open a connection to the ledger database.

    Raises:
        LedgerUnavailableError: when the database does not answer.
    """
    try:
        return psycopg.connect(conninfo, autocommit=autocommit, connect_timeout=CONNECT_TIMEOUT_S)
    except psycopg.Error as exc:
        raise LedgerUnavailableError(
            f"the ledger database is unreachable ({str(exc).strip().splitlines()[0]}); "
            "check REVSTREAM_DATABASE_URL or start the embedded stack with `revstream stack up`"
        ) from exc


def database_conninfo(conninfo: str, dbname: str) -> str:
    """Return ``conninfo`` pointing at database ``dbname`` on the same server."""
    return make_conninfo(conninfo, dbname=dbname)


def _checked_name(name: str) -> str:
    if not _NAME.match(name):
        raise ConnectorError(
            f"database name {name!r} is not a plain lower-case identifier; use letters, digits and _"
        )
    return name


def create_database(conninfo: str, name: str) -> str:
    """Create database ``name`` on the server of ``conninfo`` (if absent) and return its conninfo.

    Raises:
        ConnectorError: when the name is not a plain identifier.
        LedgerUnavailableError: when the server does not answer.
    """
    _checked_name(name)
    with connect(conninfo, autocommit=True) as connection:
        exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if exists is None:
            connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            logger.info("created database %s", name)
    return database_conninfo(conninfo, name)


def drop_database(conninfo: str, name: str) -> None:
    """Drop database ``name`` (closing its sessions) on the server of ``conninfo``.

    Raises:
        ConnectorError: when the name is not a plain identifier or is the database ``conninfo`` uses.
        LedgerUnavailableError: when the server does not answer.
    """
    _checked_name(name)
    if conninfo_to_dict(conninfo).get("dbname") == name:
        raise ConnectorError(f"refusing to drop {name!r}: it is the database the connection uses")
    with connect(conninfo, autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
