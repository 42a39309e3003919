"""Reading what clients send: version ids, request bodies, basic-auth users."""

from __future__ import annotations

import base64

import pytest

from streams.errors import SettingsError
from streams.registry.errors import InvalidSchemaError, InvalidVersionError
from streams.registry.request import LATEST, SchemaRequest, parse_version
from streams.registry.server import _authorized, parse_users


@pytest.mark.parametrize(
    ("given", "version"),
    [("1", 1), ("latest", LATEST), ("LATEST", LATEST), ("-1", LATEST), ("2147483647", 2**31 - 1)],
)
def test_valid_versions(given: str, version: int) -> None:
    assert parse_version(given) == version


@pytest.mark.parametrize("given", ["0", "-2", "2147483648", "1.5", "v1", ""])
def test_invalid_versions(given: str) -> None:
    with pytest.raises(InvalidVersionError, match="latest"):
        parse_version(given)


def test_request_body() -> None:
    request = SchemaRequest.from_json(
        {"schema": '"long"', "schemaType": "AVRO", "references": [], "id": 7, "version": 0}
    )
    assert request.parse().text == '"long"'
    assert (request.explicit("id"), request.explicit("version")) == (7, None)
    with pytest.raises(InvalidSchemaError, match="JSON object"):
        SchemaRequest.from_json(["schema"])
    with pytest.raises(InvalidSchemaError, match="rule sets"):
        SchemaRequest.from_json({"schema": '"long"', "ruleSet": {"domainRules": [{"name": "r"}]}})
    with pytest.raises(InvalidSchemaError, match="integer"):
        SchemaRequest.from_json({"schema": '"long"', "id": "7"}).explicit("id")


def test_users_setting() -> None:
    assert parse_users(None) == {}
    assert parse_users("ops:s3:cret, ci:x") == {"ops": "s3:cret", "ci": "x"}
    with pytest.raises(SettingsError, match="user:password"):
        parse_users("ops")


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_basic_auth_header() -> None:
    users = {"ops": "s3cret"}
    assert _authorized(basic("ops", "s3cret"), users)
    assert not _authorized(basic("ops", "wrong"), users)
    assert not _authorized(basic("other", "s3cret"), users)
    assert not _authorized("Bearer token", users)
    assert not _authorized("Basic !!!", users)
    assert not _authorized(None, users)
