"""The queue's rules with an injected clock: routing, revisions into one row, ageing and SLA breaches."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from connectors.exceptions.queue import ExceptionRecord, age_bucket, apply_record, breaches_sla, fold
from connectors.exceptions.stats import queue_stats
from streams.errors import SettingsError
from streams.queue_settings import ExceptionQueueSettings, load_queue_settings

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SETTINGS = ExceptionQueueSettings()


def record(
    exception_id: str = "X1",
    reason: str = "DISCOUNT_NOT_APPROVED",
    seen_at: datetime = NOW,
    offset: int = 0,
    **fields: Any,
) -> ExceptionRecord:
    exception = {
        "exception_id": exception_id,
        "reason_code": reason,
        "source_event_id": "E1",
        "event_type": "quote_approved",
        "customer_id": "C1",
        "legal_entity": "LE-DE",
        "correlation_id": "K1",
        "detail": "line 1: discount too high",
        **fields,
    }
    return ExceptionRecord(exception, seen_at, "ns.exceptions", 0, offset)


def mismatch(
    revision: int, amount: int, resolution: str | None = None, exception_id: str = ""
) -> ExceptionRecord:
    return record(
        exception_id or f"M{revision}",
        "USAGE_BILLING_MISMATCH",
        seen_at=NOW + timedelta(minutes=revision),
        offset=revision,
        exception_key="K-sub1-api-2026-02",
        revision=revision,
        resolution=resolution,
        amount_difference_minor=amount,
        quantity_difference=amount // 10,
        currency="EUR",
        subscription_id="S1",
    )


def test_each_reason_lands_in_its_teams_queue_with_its_sla() -> None:
    discount = apply_record(None, record(), SETTINGS)
    usage = apply_record(None, mismatch(1, 500), SETTINGS)
    currency = apply_record(None, record("X2", "CURRENCY_MISMATCH"), SETTINGS)
    assert discount is not None and usage is not None and currency is not None
    assert (discount.row.team, discount.row.due_at) == ("deal-desk", NOW + timedelta(hours=24))
    assert (usage.row.team, usage.row.due_at - usage.row.first_seen) == ("billing-ops", timedelta(hours=72))
    assert currency.row.team == "finance"
    assert discount.row.status == "open" and discount.action == "raised"


def test_a_reason_without_a_route_goes_to_the_default_team() -> None:
    change = apply_record(None, record(reason="UNKNOWN"), SETTINGS)
    assert change is not None
    assert (change.row.team, change.row.due_at) == ("finance", NOW + timedelta(hours=72))


def test_routes_from_the_environment_override_one_reason_and_keep_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REVSTREAM_EXCEPTIONS_ROUTES", '{"CURRENCY_MISMATCH": {"team": "tax", "sla": "PT8H"}}')
    settings = load_queue_settings()
    assert settings.route("CURRENCY_MISMATCH").team == "tax"
    assert settings.route("CURRENCY_MISMATCH").sla == timedelta(hours=8)
    assert settings.route("DISCOUNT_NOT_APPROVED").team == "deal-desk"


def test_a_bad_route_stops_with_the_variable_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVSTREAM_EXCEPTIONS_ROUTES", '{"CURRENCY_MISMATCH": {"team": "Tax Team"}}')
    with pytest.raises(SettingsError, match="REVSTREAM_EXCEPTIONS_ROUTES"):
        load_queue_settings()


def test_mismatch_revisions_collapse_into_one_row_that_follows_the_latest_and_closes_itself() -> None:
    changes = fold({}, [mismatch(1, 500), mismatch(2, 900), mismatch(3, 0, "resolved")], SETTINGS)
    rows = {c.row.exception_key for c in changes}
    assert rows == {"K-sub1-api-2026-02"}
    assert [c.action for c in changes] == ["raised", "revised", "closed"]
    last = changes[-1].row
    assert (last.status, last.revision, last.exception_id) == ("resolved", 3, "M3")
    assert (last.first_seen, last.closed_at) == (NOW + timedelta(minutes=1), NOW + timedelta(minutes=3))
    assert changes[1].row.amount_minor == 900


def test_an_older_or_repeated_revision_changes_nothing() -> None:
    latest = fold({}, [mismatch(1, 500), mismatch(2, 900)], SETTINGS)[-1].row
    stored = {latest.exception_key: latest}
    assert fold(stored, [mismatch(1, 500), mismatch(2, 900)], SETTINGS) == []


def test_a_restated_revision_after_a_crash_supersedes_the_one_it_repeats() -> None:
    latest = fold({}, [mismatch(2, 900)], SETTINGS)[-1].row
    change = apply_record(latest, mismatch(2, 700, exception_id="M2-restated"), SETTINGS)
    assert change is not None and change.row.amount_minor == 700


def test_a_revision_that_stands_again_reopens_a_closed_row() -> None:
    closed = fold({}, [mismatch(1, 500), mismatch(2, 0, "resolved")], SETTINGS)[-1].row
    change = apply_record(closed, mismatch(3, 300), SETTINGS)
    assert change is not None
    assert (change.action, change.row.status, change.row.closed_at) == ("reopened", "open", None)


def test_ages_and_sla_breaches_follow_the_injected_clock() -> None:
    change = apply_record(None, record(), SETTINGS)
    assert change is not None
    row = change.row
    assert age_bucket(row, NOW + timedelta(hours=2)) == "<1d"
    assert age_bucket(row, NOW + timedelta(days=2)) == "1-3d"
    assert age_bucket(row, NOW + timedelta(days=30)) == ">7d"
    assert not breaches_sla(row, NOW + timedelta(hours=24))
    assert breaches_sla(row, NOW + timedelta(hours=24, seconds=1))


def test_stats_count_open_work_by_team_age_breaches_and_leakage() -> None:
    rows = [
        c.row for c in fold({}, [record(), mismatch(1, 500), record("X2", "CURRENCY_MISMATCH")], SETTINGS)
    ]
    closed = fold({}, [mismatch(1, 100), mismatch(2, 0, "resolved")], SETTINGS)[-1].row
    stats = queue_stats([*rows, replace(closed, exception_key="other")], NOW + timedelta(hours=30)).as_dict()
    assert stats["open"] == 3 and stats["closed"] == 1
    assert stats["by_team"]["deal-desk"] == {
        "open": 1,
        "sla_breaches": 1,
        "by_reason": {"DISCOUNT_NOT_APPROVED": 1},
        "by_age": {"<1d": 0, "1-3d": 1, "3-7d": 0, ">7d": 0},
    }
    assert stats["by_team"]["billing-ops"]["sla_breaches"] == 0
    assert stats["sla_breaches"] == 1
    assert stats["oldest_open_seconds"] == pytest.approx(30 * 3600)
    assert stats["leakage_minor"] == {"EUR": 500}
