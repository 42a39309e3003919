"""Bearer tokens of the HTTP ingest gateway: which producing source a token speaks for, and what it may send.

Tokens are compared in constant time (``hmac.compare_digest``) against every configured token, so
the time an answer takes says nothing about how much of a guessed token was right.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from streams.settings import GatewayToken

__all__ = ["Grant", "TokenBook", "bearer_token"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Grant:
    """What one token allows: the source it speaks for and the event types it may send."""

    source: str
    event_types: frozenset[str]

    def allows(self, event_type: str) -> bool:
        """Whether this token may send ``event_type``."""
        return event_type in self.event_types


class TokenBook:
    """The configured tokens, looked up in constant time per token."""

    def __init__(self, tokens: Iterable[GatewayToken]) -> None:
        """Keep the tokens as bytes next to their grants."""
        self._entries = [
            (token.token.get_secret_value().encode(), Grant(token.source, frozenset(token.event_types)))
            for token in tokens
        ]

    def __len__(self) -> int:
        return len(self._entries)

    def grant_for(self, token: str | None) -> Grant | None:
        """Return the grant of ``token``, or ``None`` when it is missing or not configured."""
        if not token:
            return None
        given = token.encode()
        found = None
        for secret, grant in self._entries:
            # No early exit: every token is compared, whatever matched.
            if hmac.compare_digest(secret, given):
                found = grant
        return found


def bearer_token(authorization: str | None) -> str | None:
    """Return the token of an ``Authorization: Bearer <token>`` header, else ``None``."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()
