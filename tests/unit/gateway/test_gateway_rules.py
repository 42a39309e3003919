"""The gateway's pure parts: bearer tokens, the idempotency cache and the token settings."""

from __future__ import annotations

import json
from concurrent.futures import Future

import pytest

from connectors.gateway.auth import TokenBook, bearer_token
from connectors.gateway.idempotency import IdempotencyCache, fingerprint
from schemas.models import UsageRecorded
from streams.errors import SettingsError
from streams.settings import GatewaySettings, load_settings
from tests.unit.schemas.strategies import sample

TOKENS = {
    "billing-token-0123456789": {"source": "billing", "event_types": ["invoice_posted"]},
    "meter-token-0123456789ab": {"source": "meter", "event_types": ["usage_recorded", "invoice_posted"]},
}


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("REVSTREAM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer   abc  ") == "abc"
    assert bearer_token("Basic abc") is None
    assert bearer_token("Bearer ") is None
    assert bearer_token(None) is None


def test_tokens_map_to_their_source_and_event_types() -> None:
    book = TokenBook(GatewaySettings(tokens=TOKENS).tokens)  # type: ignore[arg-type]
    meter = book.grant_for("meter-token-0123456789ab")
    assert meter is not None and meter.source == "meter"
    assert meter.allows("usage_recorded") and not meter.allows("payment_received")
    assert book.grant_for("meter-token-0123456789a") is None
    assert book.grant_for("") is None


def test_tokens_from_the_environment_are_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVSTREAM_GATEWAY_TOKENS", json.dumps(TOKENS))
    monkeypatch.setenv("REVSTREAM_GATEWAY_MAX_REQUEST_BYTES", "2048")
    gateway = load_settings().gateway
    assert gateway.max_request_bytes == 2048
    assert [token.source for token in gateway.tokens] == ["billing", "meter"]
    assert "billing-token" not in repr(gateway) and "billing-token" not in str(gateway.model_dump())


@pytest.mark.parametrize(
    ("tokens", "message"),
    [
        (
            {"short": {"source": "x", "event_types": []}},
            "REVSTREAM_GATEWAY_TOKENS: the token of source 'x' is shorter",
        ),
        ({"long-enough-token-123": {"source": "x", "event_types": ["shipment"]}}, "unknown event types"),
    ],
)
def test_bad_tokens_are_one_line_settings_errors(
    monkeypatch: pytest.MonkeyPatch, tokens: dict, message: str
) -> None:
    monkeypatch.setenv("REVSTREAM_GATEWAY_TOKENS", json.dumps(tokens))
    with pytest.raises(SettingsError, match=message) as exc:
        load_settings()
    assert "\n" not in str(exc.value)
    assert "long-enough-token-123" not in str(exc.value) and "short'" not in str(exc.value)


def test_cache_new_repeat_conflict_and_failure() -> None:
    cache = IdempotencyCache(10)
    assert cache.claim("e1", "a").outcome == "new"
    pending: Future[object] = Future()
    cache.publishing("e1", pending)
    repeat = cache.claim("e1", "a")
    assert repeat.outcome == "repeat" and repeat.pending is pending
    assert cache.claim("e1", "b").outcome == "conflict"
    cache.accepted("e1")
    assert cache.claim("e1", "a").pending is None
    cache.claim("e2", "a")
    cache.failed("e2")
    assert cache.claim("e2", "a").outcome == "new"


def test_cache_is_bounded_least_recently_used_first() -> None:
    cache = IdempotencyCache(2)
    cache.claim("e1", "a")
    cache.claim("e2", "a")
    cache.claim("e1", "a")  # e1 used again: e2 is now the oldest
    cache.claim("e3", "a")
    assert len(cache) == 2
    assert cache.claim("e1", "a").outcome == "repeat"
    assert cache.claim("e2", "a").outcome == "new"
    assert IdempotencyCache(0).claim("e1", "a").outcome == "new"
    assert IdempotencyCache(0).claim("e1", "a").outcome == "new"


def test_fingerprint_follows_content_not_spelling() -> None:
    event = sample(UsageRecorded)
    same = UsageRecorded.model_validate_json(
        json.dumps(dict(reversed(list(json.loads(event.model_dump_json()).items()))))
    )
    assert fingerprint(event) == fingerprint(same)
    assert fingerprint(event) != fingerprint(event.model_copy(update={"quantity": 2}))
