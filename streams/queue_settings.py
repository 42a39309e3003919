"""Settings of the exception queue and the discount approvals (``REVSTREAM_EXCEPTIONS_*``).

Kept apart from :mod:`streams.settings` (which composes the external systems) because these are
business policy: which team works which reason code and in how long, and which approval level may
approve which discount. Both have documented defaults; a deployment overrides them as JSON, e.g.
``REVSTREAM_EXCEPTIONS_ROUTES='{"CURRENCY_MISMATCH": {"team": "tax", "sla": "PT8H"}}'`` (merged over
the defaults, reason by reason) or ``REVSTREAM_EXCEPTIONS_APPROVAL_LEVELS='{"1": 1000, "2": 5000}'``
(replaces the matrix).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta
from types import MappingProxyType
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from streams.errors import SettingsError

__all__ = [
    "DEFAULT_APPROVAL_LEVELS",
    "DEFAULT_ROUTES",
    "ExceptionQueueSettings",
    "Route",
    "load_queue_settings",
]

logger = logging.getLogger(__name__)

_PREFIX: Final = "REVSTREAM_EXCEPTIONS_"


class Route(BaseModel):
    """Where one reason code's exceptions go: the team's queue and the time it has to act."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    team: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9_-]*$")
    sla: timedelta = Field(gt=timedelta(0))


def _route(team: str, hours: int) -> Route:
    return Route(team=team, sla=timedelta(hours=hours))


DEFAULT_ROUTES: Final[Mapping[str, Route]] = MappingProxyType(
    {
        # Discounts and their approvals belong to the deal desk, who can reach sales the same day.
        "DISCOUNT_NOT_APPROVED": _route("deal-desk", 24),
        "APPROVAL_NOT_ALLOWED": _route("deal-desk", 24),
        # Usage and invoice corrections are billing operations' work; a corrective invoice takes days.
        "USAGE_BILLING_MISMATCH": _route("billing-ops", 72),
        "UNBALANCED_INVOICE": _route("billing-ops", 24),
        # Currency, tax, amounts and customer or product master data: finance.
        "CURRENCY_MISMATCH": _route("finance", 48),
        "NEGATIVE_AMOUNT": _route("finance", 48),
        "INACTIVE_CUSTOMER": _route("finance", 48),
        "UNKNOWN_PRODUCT": _route("finance", 48),
    }
)
"""Reason code → route. A reason not listed goes to ``default_team`` with ``default_sla``."""

DEFAULT_APPROVAL_LEVELS: Final[Mapping[int, int]] = MappingProxyType({1: 1500, 2: 3000, 3: 5000, 4: 10000})
"""The discount matrix: approval level → the largest discount (basis points) it may approve."""


class ExceptionQueueSettings(BaseSettings):
    """Routing of business exceptions to teams, their SLAs, and the discount approval matrix."""

    model_config = SettingsConfigDict(env_prefix=_PREFIX, env_file=".env", extra="ignore", frozen=True)

    routes: dict[str, Route] = Field(default_factory=lambda: dict(DEFAULT_ROUTES))
    default_team: str = Field(default="finance", min_length=1)
    default_sla: timedelta = Field(default=timedelta(hours=72), gt=timedelta(0))
    approval_levels: dict[int, int] = Field(default_factory=lambda: dict(DEFAULT_APPROVAL_LEVELS))
    consumer_group: str = Field(default="revstream-exceptions", pattern=r"^[A-Za-z0-9._-]+$")

    @field_validator("routes", mode="after")
    @classmethod
    def _over_defaults(cls, routes: dict[str, Route]) -> dict[str, Route]:
        # A deployment names the reasons it routes differently; the others keep their defaults.
        return {**DEFAULT_ROUTES, **routes}

    @field_validator("approval_levels", mode="after")
    @classmethod
    def _sound_matrix(cls, levels: dict[int, int]) -> dict[int, int]:
        if not levels:
            msg = "the approval matrix needs at least one level"
            raise ValueError(msg)
        for level, bp in levels.items():
            if level < 1 or not 0 < bp <= 10_000:
                msg = f"level {level}: levels start at 1 and approve 1..10000 bp (got {bp})"
                raise ValueError(msg)
        return dict(sorted(levels.items()))

    def route(self, reason_code: str) -> Route:
        """Return the route of ``reason_code`` (the default team and SLA when it has none)."""
        return self.routes.get(reason_code) or Route(team=self.default_team, sla=self.default_sla)


def load_queue_settings(**overrides: Any) -> ExceptionQueueSettings:
    """Read the queue settings from the environment, overrides taking precedence.

    Raises:
        SettingsError: one line per problem, naming the variable and the reason.
    """
    try:
        return ExceptionQueueSettings(**overrides)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "*"
            problems.append(f"{_PREFIX}{field.upper()}: {error['msg'].removeprefix('Value error, ')}")
        raise SettingsError("; ".join(problems)) from exc
