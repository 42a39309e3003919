"""Errors raised by the shared stream platform (settings, stack, topics, serde, dead letters)."""

from __future__ import annotations

__all__ = [
    "PlatformError",
    "SettingsError",
    "StackError",
    "PortInUseError",
    "BrokerUnreachableError",
    "TopicProvisioningError",
]


class PlatformError(Exception):
    """Root of every error the stream platform raises; its message is one line a user can act on."""


class SettingsError(PlatformError):
    """Raised when a ``REVSTREAM_*`` setting is missing or invalid; names the variable and the reason."""


class StackError(PlatformError):
    """Raised when the embedded stack cannot start, is not running, or a service never became usable."""


class PortInUseError(StackError):
    """Raised when a port asked for explicitly is already taken on the loopback interface."""


class BrokerUnreachableError(PlatformError):
    """Raised when no broker answers a metadata request at the configured bootstrap servers."""


class TopicProvisioningError(PlatformError):
    """Raised when creating or altering a topic fails for a reason other than it already existing."""
