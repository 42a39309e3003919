"""docker-compose.yml stays consistent with the settings model (no Docker engine runs here)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from streams.settings import ENV_PREFIX, Settings, load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]


def known_variables() -> set[str]:
    names = {"DATABASE_URL"}
    for field, info in Settings.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names |= {f"{ENV_PREFIX}{field}_{sub}".upper() for sub in annotation.model_fields}
        else:
            names.add(f"{ENV_PREFIX}{field}".upper())
    return names


def environment(service: dict[str, Any]) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def is_one_shot(service: dict[str, Any]) -> bool:
    return str(service.get("restart", "")) == "no"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_service_has_image_ports_and_healthcheck(name: str) -> None:
    service = SERVICES[name]
    assert service.get("image") or service.get("build"), f"{name} has neither image nor build"
    if ":" in str(service.get("image", "")):
        assert not str(service["image"]).endswith(":latest") or service.get("build"), f"{name}: pin the image"
    for port in service.get("ports", []):
        host, container = str(port).rsplit(":", 1)
        assert int(host.split(":")[-1]) > 0 and int(container) > 0
    if not is_one_shot(service):
        assert "healthcheck" in service, f"{name} has no healthcheck"
        assert service["healthcheck"]["test"], name


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_dependencies_exist_and_are_healthchecked(name: str) -> None:
    depends = SERVICES[name].get("depends_on") or {}
    if isinstance(depends, list):
        depends = {d: {"condition": "service_started"} for d in depends}
    for target, rule in depends.items():
        assert target in SERVICES, f"{name} depends on unknown service {target}"
        condition = rule.get("condition", "service_started")
        assert condition in {"service_started", "service_healthy", "service_completed_successfully"}
        if condition == "service_healthy":
            assert "healthcheck" in SERVICES[target], f"{name} waits for {target}, which has no healthcheck"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_revstream_environment_matches_the_settings_model(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = environment(SERVICES[name])
    ours = {k: v for k, v in env.items() if k.startswith(ENV_PREFIX) or k == "DATABASE_URL"}
    unknown = set(ours) - known_variables()
    assert not unknown, f"{name} sets variables the settings model does not know: {sorted(unknown)}"
    if not ours:
        return
    import os

    for variable in list(os.environ):
        if variable.startswith(ENV_PREFIX):
            monkeypatch.delenv(variable)
    for variable, value in ours.items():
        monkeypatch.setenv(variable, value)
    settings = load_settings()  # raises SettingsError on any invalid value
    assert settings.profile == "external"
    host = settings.kafka.require_bootstrap().split(":")[0]
    assert host in SERVICES, f"{name} points at broker host {host}, which is not a service"
    if settings.registry.url:
        assert settings.registry.require_url().split("//")[1].split(":")[0] in SERVICES
    if settings.database.url is not None:
        assert "@postgres:" in settings.database.conninfo()


def test_postgres_credentials_match_the_database_url() -> None:
    postgres = environment(SERVICES["postgres"])
    anchor = COMPOSE["x-revstream-env"]["REVSTREAM_DATABASE_URL"]
    expected = (
        f"postgresql://{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}"
        f"@postgres:5432/{postgres['POSTGRES_DB']}"
    )
    assert anchor == expected


def test_known_variables_cover_the_documented_ones() -> None:
    names = known_variables()
    for expected in (
        "REVSTREAM_KAFKA_BOOTSTRAP_SERVERS",
        "REVSTREAM_KAFKA_SASL_MECHANISM",
        "REVSTREAM_REGISTRY_URL",
        "REVSTREAM_DATABASE_URL",
        "REVSTREAM_PROFILE",
    ):
        assert expected in names
