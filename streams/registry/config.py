"""Compatibility levels and modes, per subject and registry-wide, and which one is in force.

A subject without its own setting follows the registry-wide one, which defaults to BACKWARD and
READWRITE. Confluent's rules apply: reading a subject's own setting that was never set is 40408
or 40409 unless ``defaultToGlobal=true``; switching to IMPORT needs an empty scope or ``force``.
"""

from __future__ import annotations

import logging

from streams.registry.compat import DEFAULT_LEVEL, CompatibilityLevel, parse_level
from streams.registry.errors import (
    InvalidModeError,
    OperationNotPermittedError,
    SubjectCompatibilityNotConfiguredError,
    SubjectModeNotConfiguredError,
    SubjectNotFoundError,
)
from streams.registry.store import GLOBAL_SCOPE, RegistryStore, StoreTx

__all__ = ["DEFAULT_MODE", "MODES", "RegistryConfig", "level_in_scope", "mode_in_scope"]

logger = logging.getLogger(__name__)

MODES = ("READWRITE", "READONLY", "IMPORT")
DEFAULT_MODE = "READWRITE"


def level_in_scope(tx: StoreTx, subject: str | None) -> CompatibilityLevel:
    """Return the compatibility level in force for ``subject`` (None: registry-wide)."""
    level = (tx.setting(subject, "compatibility") if subject else None) or tx.setting(
        GLOBAL_SCOPE, "compatibility"
    )
    return CompatibilityLevel(level) if level else DEFAULT_LEVEL


def mode_in_scope(tx: StoreTx, subject: str | None) -> str:
    """Return the mode in force for ``subject`` (None: registry-wide)."""
    mode = (tx.setting(subject, "mode") if subject else None) or tx.setting(GLOBAL_SCOPE, "mode")
    return mode or DEFAULT_MODE


class RegistryConfig:
    """The ``/config`` and ``/mode`` operations on one store."""

    def __init__(self, store: RegistryStore) -> None:
        """Read and write the settings kept in ``store``."""
        self.store = store

    def get_config(self, subject: str | None = None, default_to_global: bool = False) -> dict[str, str]:
        """Return ``{"compatibilityLevel": …}`` of a subject or (``None``) the registry.

        Raises:
            SubjectCompatibilityNotConfiguredError: for a subject without its own level.
        """
        with self.store.transaction(write=False) as tx:
            if subject is None:
                return {"compatibilityLevel": level_in_scope(tx, None).value}
            level = tx.setting(subject, "compatibility")
            if level is None and default_to_global:
                level = level_in_scope(tx, None).value
        if level is None:
            raise SubjectCompatibilityNotConfiguredError(
                f"Subject '{subject}' does not have subject-level compatibility configured; ask with "
                "defaultToGlobal=true for the level in force"
            )
        return {"compatibilityLevel": level}

    def set_config(self, subject: str | None, body: object) -> dict[str, str]:
        """Set the compatibility level from ``{"compatibility": …}``; echo it back.

        Raises:
            InvalidCompatibilityLevelError: for an unknown level.
        """
        given = body.get("compatibility", body.get("compatibilityLevel")) if isinstance(body, dict) else None
        level = parse_level(given)
        with self.store.transaction(write=True) as tx:
            tx.set_setting(subject or GLOBAL_SCOPE, "compatibility", level.value)
        return {"compatibility": level.value}

    def delete_config(self, subject: str | None = None) -> dict[str, str]:
        """Remove a subject's level (or reset the registry's); return the level it had.

        Raises:
            SubjectNotFoundError: for a subject without its own level.
        """
        with self.store.transaction(write=True) as tx:
            scope = subject or GLOBAL_SCOPE
            level = tx.setting(scope, "compatibility") or (DEFAULT_LEVEL.value if subject is None else None)
            if level is None:
                raise SubjectNotFoundError(
                    f"Subject '{subject}' has no subject-level compatibility to delete"
                )
            tx.set_setting(scope, "compatibility", None)
        return {"compatibilityLevel": level}

    def get_mode(self, subject: str | None = None, default_to_global: bool = False) -> dict[str, str]:
        """Return ``{"mode": …}`` of a subject or (``None``) the registry.

        Raises:
            SubjectModeNotConfiguredError: for a subject without its own mode.
        """
        with self.store.transaction(write=False) as tx:
            if subject is None:
                return {"mode": mode_in_scope(tx, None)}
            mode = tx.setting(subject, "mode")
            if mode is None and default_to_global:
                mode = mode_in_scope(tx, None)
        if mode is None:
            raise SubjectModeNotConfiguredError(
                f"Subject '{subject}' does not have subject-level mode configured; ask with "
                "defaultToGlobal=true for the mode in force"
            )
        return {"mode": mode}

    def set_mode(self, subject: str | None, body: object, force: bool = False) -> dict[str, str]:
        """Set the mode from ``{"mode": …}``; echo it back.

        Raises:
            InvalidModeError: for an unknown mode.
            OperationNotPermittedError: switching to IMPORT while schemas exist, without ``force``.
        """
        given = body.get("mode") if isinstance(body, dict) else None
        mode = str(given).upper()
        if mode not in MODES:
            raise InvalidModeError(f"Invalid mode {given!r}. Valid values are {', '.join(MODES)}")
        with self.store.transaction(write=True) as tx:
            if mode == "IMPORT" and mode_in_scope(tx, subject) != "IMPORT" and not force:
                if tx.has_live_versions(subject):
                    raise OperationNotPermittedError(
                        "Cannot import since found existing subjects; delete them first or set the "
                        "mode with force=true"
                    )
            tx.set_setting(subject or GLOBAL_SCOPE, "mode", mode)
        return {"mode": mode}

    def delete_mode(self, subject: str) -> dict[str, str]:
        """Remove a subject's own mode; return the mode it had.

        Raises:
            SubjectNotFoundError: for a subject without its own mode.
        """
        with self.store.transaction(write=True) as tx:
            mode = tx.setting(subject, "mode")
            if mode is None:
                raise SubjectNotFoundError(f"Subject '{subject}' has no subject-level mode to delete")
            tx.set_setting(subject, "mode", None)
        return {"mode": mode}
