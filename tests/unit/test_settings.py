"""Settings: environment parsing, client configs, secret hygiene and one-line errors."""

from __future__ import annotations

import pytest

from streams.errors import SettingsError, StackError
from streams.settings import EMBEDDED_SESSION_TIMEOUT_MS, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("REVSTREAM_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_flat_environment_variables_reach_each_system(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVSTREAM_PROFILE", "external")
    monkeypatch.setenv("REVSTREAM_KAFKA_BOOTSTRAP_SERVERS", "k1:9092,k2:9092")
    monkeypatch.setenv("REVSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("REVSTREAM_KAFKA_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("REVSTREAM_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("REVSTREAM_KAFKA_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("REVSTREAM_REGISTRY_URL", "https://sr.example:8081/")
    monkeypatch.setenv("REVSTREAM_REGISTRY_USERNAME", "sr")
    monkeypatch.setenv("REVSTREAM_REGISTRY_PASSWORD", "s3cret")
    monkeypatch.setenv("DATABASE_URL", "postgresql://ledger:pw@db:5432/erp")
    settings = load_settings()

    config = settings.kafka.confluent_config()
    assert config["bootstrap.servers"] == "k1:9092,k2:9092"
    assert config["security.protocol"] == "SASL_SSL"
    assert config["sasl.mechanism"] == "SCRAM-SHA-512"
    assert config["sasl.password"] == "hunter2"
    aio = settings.kafka.aiokafka_config()
    assert aio["bootstrap_servers"] == ["k1:9092", "k2:9092"]
    assert aio["sasl_plain_password"] == "hunter2"
    assert settings.kafka.faust_broker_urls() == ["kafka://k1:9092", "kafka://k2:9092"]
    assert settings.registry.client_config() == {
        "url": "https://sr.example:8081",
        "basic.auth.user.info": "sr:s3cret",
    }
    assert settings.database.conninfo() == "postgresql://ledger:pw@db:5432/erp"
    # External profile: no embedded broker deviations applied.
    assert "session.timeout.ms" not in settings.kafka.consumer_config("g")


def test_secrets_never_appear_in_repr_or_redacted_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    monkeypatch.setenv("REVSTREAM_KAFKA_SASL_MECHANISM", "PLAIN")
    monkeypatch.setenv("REVSTREAM_KAFKA_SASL_USERNAME", "svc")
    monkeypatch.setenv("REVSTREAM_KAFKA_SASL_PASSWORD", "hunter2")
    monkeypatch.setenv("REVSTREAM_DATABASE_URL", "postgresql://ledger:topsecret@db/erp")
    settings = load_settings()
    text = repr(settings) + str(settings) + settings.database.redacted()
    assert "hunter2" not in text
    assert "topsecret" not in text
    assert settings.database.redacted() == "postgresql://ledger:***@db/erp"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("REVSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_PLAIN", "REVSTREAM_KAFKA_SECURITY_PROTOCOL"),
        ("REVSTREAM_PROFILE", "cloud", "REVSTREAM_PROFILE"),
        ("REVSTREAM_TOPICS_PARTITIONS", "zero", "REVSTREAM_TOPICS_PARTITIONS"),
        ("REVSTREAM_KAFKA_SESSION_TIMEOUT_MS", "5", "REVSTREAM_KAFKA_SESSION_TIMEOUT_MS"),
    ],
)
def test_invalid_value_is_one_line_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(expected)
    assert repr(value) in message


def test_sasl_without_credentials_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVSTREAM_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    with pytest.raises(SettingsError, match="SASL_MECHANISM must be set"):
        load_settings()


def test_missing_ssl_file_is_rejected(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.setenv("REVSTREAM_KAFKA_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("REVSTREAM_KAFKA_SSL_CA_LOCATION", str(tmp_path / "nope.pem"))
    with pytest.raises(SettingsError, match=r"nope\.pem does not exist"):
        load_settings()


def test_embedded_profile_reads_endpoints_from_stack_state(tmp_path) -> None:
    (tmp_path / "stack.json").write_text(
        '{"services": {}, "endpoints": {"bootstrap_servers": "127.0.0.1:1234",'
        ' "registry_url": "http://127.0.0.1:8081", "database_url": "postgresql://x@/db"}}'
    )
    settings = load_settings(home=tmp_path).with_embedded_endpoints()
    assert settings.kafka.bootstrap_servers == "127.0.0.1:1234"
    assert settings.registry.url == "http://127.0.0.1:8081"
    assert settings.database.conninfo() == "postgresql://x@/db"
    # The embedded broker's slow group join is handled here and only here.
    assert settings.kafka.consumer_config("g")["session.timeout.ms"] == EMBEDDED_SESSION_TIMEOUT_MS


def test_producers_are_idempotent_except_on_the_embedded_broker(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REVSTREAM_KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1234")
    external = load_settings(profile="external").kafka.producer_config()
    assert external["enable.idempotence"] is True
    assert "max.in.flight.requests.per.connection" not in external
    (tmp_path / "stack.json").write_text(
        '{"services": {}, "endpoints": {"bootstrap_servers": "127.0.0.1:1234",'
        ' "registry_url": "http://127.0.0.1:8081", "database_url": "postgresql://x@/db"}}'
    )
    embedded = load_settings(home=tmp_path).with_embedded_endpoints().kafka.producer_config()
    # Order is kept by one request in flight; a retry's duplicate carries the same id.
    assert embedded["enable.idempotence"] is False
    assert embedded["max.in.flight.requests.per.connection"] == 1
    monkeypatch.setenv("REVSTREAM_KAFKA_IDEMPOTENCE", "true")
    forced = load_settings(home=tmp_path).with_embedded_endpoints().kafka.producer_config()
    assert forced["enable.idempotence"] is True


def test_embedded_profile_without_stack_says_what_to_do(tmp_path) -> None:
    with pytest.raises(StackError, match="revstream stack up"):
        load_settings(home=tmp_path).with_embedded_endpoints()


def test_missing_endpoint_names_the_variable() -> None:
    settings = load_settings(profile="external")
    with pytest.raises(SettingsError, match="REVSTREAM_KAFKA_BOOTSTRAP_SERVERS"):
        settings.kafka.confluent_config()
    with pytest.raises(SettingsError, match="REVSTREAM_DATABASE_URL"):
        settings.database.conninfo()
