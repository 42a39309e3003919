"""Secrets never printed: connection strings in both forms, settings errors, log records."""

from __future__ import annotations

import logging

import pytest

from streams.errors import SettingsError
from streams.secrets import install, redact_conninfo, scrub, secret_values
from streams.settings import load_settings

SECRET = "S3cr3t-Wh1sky-7731"


@pytest.mark.parametrize(
    ("conninfo", "shown"),
    [
        (f"postgresql://ledger:{SECRET}@db:5432/erp", "postgresql://ledger:***@db:5432/erp"),
        (f"host=db user=ledger password={SECRET} dbname=erp", "host=db user=ledger password=*** dbname=erp"),
        (f"host=db password = '{SECRET} x' dbname=erp", "host=db password = *** dbname=erp"),
        (
            f"postgresql://db/erp?user=ledger&password={SECRET}",
            "postgresql://db/erp?user=ledger&password=***",
        ),
        ("postgresql://db/erp", "postgresql://db/erp"),
        (f"postgresql://ledger:{SECRET}@x@db/erp", "postgresql://ledger:***@db/erp"),
        (f"postgresql://ledger:{SECRET}%zz@db/erp", "postgresql://ledger:***@db/erp"),
    ],
)
def test_both_conninfo_forms_are_redacted(conninfo: str, shown: str) -> None:
    assert redact_conninfo(conninfo) == shown


def test_every_secret_setting_is_collected_and_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVSTREAM_DATABASE_URL", f"postgresql://u:{SECRET}%zz@db/erp")
    monkeypatch.setenv("REVSTREAM_KAFKA_SASL_PASSWORD", f"{SECRET}-sasl")
    monkeypatch.setenv("REVSTREAM_REGISTRY_SERVER_USERS", f"admin:{SECRET}-srv")
    monkeypatch.setenv(
        "REVSTREAM_GATEWAY_TOKENS", f'{{"{SECRET}-token": {{"source": "b", "event_types": []}}}}'
    )
    settings = load_settings(profile="external")
    values = secret_values(settings)
    for variant in (f"{SECRET}%zz", f"{SECRET}-sasl", f"{SECRET}-srv", f"{SECRET}-token"):
        assert variant in values
    # libpq quotes the token it cannot decode: the scrubbed message keeps no part of the secret.
    message = f'invalid percent-encoded token: "{SECRET}%zz"'
    assert SECRET not in scrub(message, values)


def test_installed_secrets_are_masked_in_log_records(caplog: pytest.LogCaptureFixture) -> None:
    settings = load_settings(profile="external", database={"url": f"host=db password={SECRET}"})
    install(settings)
    with caplog.at_level(logging.WARNING):
        logging.getLogger("test.secrets").warning(
            "retrying after: %s", f"connection failed password={SECRET}"
        )
        try:
            raise RuntimeError(f"boom {SECRET}")
        except RuntimeError:
            logging.getLogger("test.secrets").exception("defect")
    assert SECRET not in caplog.text
    assert "***" in caplog.text


NUMERIC = '[{"token": 98765432109876543210, "source": "b", "event_types": []}]'


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("REVSTREAM_GATEWAY_TOKENS", '{"a": ', "REVSTREAM_GATEWAY_TOKENS: not valid JSON"),
        ("REVSTREAM_GATEWAY_TOKENS", "98765432109876543210", "REVSTREAM_GATEWAY_TOKENS: Input should be"),
        (
            "REVSTREAM_GATEWAY_TOKENS",
            '[{"token": 98765432109876543210, "source": "b", "event_types": []}]',
            "",
        ),
    ],
)
def test_settings_errors_are_one_line_and_quote_no_secret(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, expected: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as exc:
        load_settings()
    message = str(exc.value)
    assert "\n" not in message
    assert expected in message
    assert "98765432109876543210" not in message


def test_registry_credentials_given_twice_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVSTREAM_REGISTRY_URL", f"http://reg:{SECRET}@registry:8081")
    monkeypatch.setenv("REVSTREAM_REGISTRY_USERNAME", "reg")
    with pytest.raises(SettingsError, match="credentials are given twice") as exc:
        load_settings()
    assert SECRET not in str(exc.value)
