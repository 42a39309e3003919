"""REVSTREAM_LAG_* reach the lag exporter's configuration, and bad values stop it with one line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from streams.errors import SettingsError
from streams.lag.collector import LagConfig
from streams.settings import load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(os.environ):
        if name.startswith("REVSTREAM_"):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_lag_variables_reach_the_collector(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVSTREAM_LAG_PORT", "9400")
    monkeypatch.setenv("REVSTREAM_LAG_POLL_INTERVAL", "2.5")
    monkeypatch.setenv("REVSTREAM_LAG_GROUP_ALLOW", "revstream-.*")
    monkeypatch.setenv("REVSTREAM_LAG_GROUP_DENY", ".*-probe")
    monkeypatch.setenv("REVSTREAM_LAG_WINDOW", "4")
    lag = load_settings().lag
    assert (lag.port, lag.poll_interval, lag.window, lag.lookup_table_size) == (9400, 2.5, 4, 60)
    config = LagConfig.from_settings(lag)
    assert config.groups.wants("revstream-sink") and not config.groups.wants("revstream-x-probe")
    assert not config.groups.wants("other-sink")


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("REVSTREAM_LAG_GROUP_ALLOW", "(", "REVSTREAM_LAG_GROUP_ALLOW: not a regular expression"),
        ("REVSTREAM_LAG_WINDOW", "1", "REVSTREAM_LAG_WINDOW: Input should be greater than or equal to 2"),
        ("REVSTREAM_LAG_POLL_INTERVAL", "0", "REVSTREAM_LAG_POLL_INTERVAL: Input should be greater than 0"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    assert str(raised.value).startswith(message)
