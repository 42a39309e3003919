"""Keeping secrets out of everything a process prints: connection strings, errors and log records.

``redact_conninfo`` masks the password of a PostgreSQL connection string in either of its forms
(``postgresql://user:pw@host/db`` and libpq's ``host=… password=…``). Masking what we print
ourselves is not enough: libpq quotes the part of a connection string it cannot parse (an invalid
``%`` escape in a password, say) in its own error message, and such messages reach retry warnings
and one-line CLI errors. So :func:`install` takes every secret value of the settings once, at
process start, and from then on :func:`scrub` replaces them in every log record (through the
logging record factory, so every logger and handler is covered, uvicorn's and Faust's too) and
in the CLI's error line.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final
from urllib.parse import parse_qsl, unquote, urlsplit, urlunsplit

if TYPE_CHECKING:
    from streams.settings import Settings

__all__ = ["MASK", "install", "redact_conninfo", "redact_url", "scrub", "secret_values"]

logger = logging.getLogger(__name__)

MASK: Final = "***"
_MIN_SECRET_CHARS: Final = 3  # shorter values would mask ordinary words; such passwords are not secrets
_KEYWORD_PASSWORD: Final = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s']*)", re.IGNORECASE)
_QUERY_PASSWORD: Final = re.compile(r"([?&]password=)[^&#]*", re.IGNORECASE)

_lock = threading.Lock()
_secrets: tuple[str, ...] = ()


def redact_url(url: str) -> str:
    """Return ``url`` with any password (in the user part or a ``password=`` parameter) masked."""
    parts = urlsplit(url)
    if parts.password is not None:
        user = parts.netloc.rpartition("@")[0].partition(":")[0]
        host = parts.netloc.rpartition("@")[2]
        url = urlunsplit(parts._replace(netloc=f"{user}:{MASK}@{host}"))
    return _QUERY_PASSWORD.sub(rf"\g<1>{MASK}", url)


def redact_conninfo(conninfo: str) -> str:
    """Return a PostgreSQL connection string (URL or ``key=value`` form) with its password masked."""
    if "://" in conninfo:
        return redact_url(conninfo)
    return _KEYWORD_PASSWORD.sub(rf"\g<1>{MASK}", conninfo)


def _conninfo_passwords(conninfo: str) -> list[str]:
    found: list[str] = []
    if "://" in conninfo:
        parts = urlsplit(conninfo)
        if parts.password:
            found += [parts.password, unquote(parts.password)]
        found += [value for key, value in parse_qsl(parts.query) if key.lower() == "password"]
    for match in _KEYWORD_PASSWORD.finditer(conninfo):
        value = match.group(2)
        found += [value, value.strip("'").replace("\\'", "'").replace("\\\\", "\\")]
    return found


def secret_values(settings: Settings) -> tuple[str, ...]:
    """Return every secret the settings hold (each in the forms it may be printed in), longest first."""
    values: list[str] = []
    kafka, registry = settings.kafka, settings.registry
    for secret in (kafka.sasl_password, kafka.ssl_key_password, registry.password):
        if secret is not None:
            values.append(secret.get_secret_value())
    if registry.server_users is not None:
        for entry in registry.server_users.get_secret_value().split(","):
            values.append(entry.strip().partition(":")[2])
    if registry.url:
        values += _conninfo_passwords(registry.url)
    if settings.database.url is not None:
        values += _conninfo_passwords(settings.database.url.get_secret_value())
    values += [grant.token.get_secret_value() for grant in settings.gateway.tokens]
    return _ordered(values)


def _ordered(values: Iterable[str]) -> tuple[str, ...]:
    # Longest first, so that a secret containing another one is masked whole.
    unique = {value for value in values if len(value) >= _MIN_SECRET_CHARS}
    return tuple(sorted(unique, key=len, reverse=True))


def scrub(text: str, secrets: Iterable[str] | None = None) -> str:
    """Return ``text`` with every secret (by default: those installed) replaced by ``***``."""
    for secret in _secrets if secrets is None else _ordered(secrets):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


class _ScrubbedRecord(logging.LogRecord):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.exc_info and self.exc_info[0] is not None:
            # Formatters use exc_text when it is set: give them the traceback already scrubbed.
            self.exc_text = scrub("".join(traceback.format_exception(*self.exc_info)).rstrip("\n"))

    def getMessage(self) -> str:
        return scrub(super().getMessage())


def install(settings: Settings) -> None:
    """Mask ``settings``' secrets in every log record of this process from now on (idempotent)."""
    global _secrets
    with _lock:
        _secrets = _ordered((*_secrets, *secret_values(settings)))
        if logging.getLogRecordFactory() is not _ScrubbedRecord:
            logging.setLogRecordFactory(_ScrubbedRecord)
