"""Fixtures of the exception-queue tests."""

from __future__ import annotations

import pytest

from streams.serde import AvroSerde
from streams.settings import Settings


@pytest.fixture(scope="module")
def serde(stack_settings: Settings) -> AvroSerde:
    """The Avro serde over the session's schema registry."""
    return AvroSerde.from_settings(stack_settings.registry)
