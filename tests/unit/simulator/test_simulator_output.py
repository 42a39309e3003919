"""`revstream simulate` output: same bytes for the same seed, and a summary its own files agree with.

The recount below reads the written JSON Lines as plain dicts, with its own few lines of logic, so
it checks the simulator's expectations rather than repeating them.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from connectors.simulator import SimulationConfig, simulate
from connectors.simulator.output import write_files
from connectors.simulator.world import spec
from revstream.cli import cli
from schemas.names import EVENT_TYPES, MASTER_DATA_KINDS


def digests(folder: Path) -> dict[str, str]:
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("sim") / "out"
    result = CliRunner().invoke(cli, ["simulate", "--months", "3", "--seed", "7", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def test_same_seed_same_bytes_twice(written: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    result = CliRunner().invoke(cli, ["simulate", "--months", "3", "--seed", "7", "--out", str(again)])
    assert result.exit_code == 0, result.output
    assert digests(again) == digests(written)
    assert len(digests(written)) == len(EVENT_TYPES) + len(MASTER_DATA_KINDS) + 2


def test_another_seed_gives_other_records(written: Path, tmp_path: Path) -> None:
    write_files(simulate(SimulationConfig(months=3, seed=8)), tmp_path)
    assert digests(tmp_path)["events/invoice_posted.jsonl"] != digests(written)["events/invoice_posted.jsonl"]


def test_summary_counts_match_the_files(written: Path) -> None:
    summary = json.loads((written / "summary.json").read_text())
    records = summary["records"]
    first: dict[str, dict[str, Any]] = {}
    duplicates: Counter[str] = Counter()
    conflicts: Counter[str] = Counter()
    for event_type in EVENT_TYPES:
        events = read_jsonl(written / "events" / f"{event_type}.jsonl")
        assert records["events_published"][event_type] == len(events)
        for event in events:
            assert event["event_type"] == event_type
            seen = first.setdefault(event["event_id"], event)
            if seen is event:
                continue
            same = {k: v for k, v in seen.items() if k != "schema_version"} == {
                k: v for k, v in event.items() if k != "schema_version"
            }
            (duplicates if same else conflicts)[event_type] += 1
        unique = len({event["event_id"] for event in events})
        assert records["events_unique"][event_type] == unique
    assert summary["duplicates"]["total"] == sum(duplicates.values()) > 0
    assert summary["conflicts"]["total"] == sum(conflicts.values()) > 0
    assert summary["duplicates"]["by_event_type"] == {t: duplicates[t] for t in EVENT_TYPES}
    assert summary["conflicts"]["by_event_type"] == {t: conflicts[t] for t in EVENT_TYPES}

    master = {kind: read_jsonl(written / "master" / f"{kind}.jsonl") for kind in MASTER_DATA_KINDS}
    assert records["master_published"] == {kind: len(rows) for kind, rows in master.items()}
    customers_with_master = {row["customer_id"] for row in master["customer"]}
    missing = set(summary["master_data"]["missing_customers"])
    assert missing and not missing & customers_with_master

    raw = read_jsonl(written / "raw_faults.jsonl")
    assert records["raw_faults"] == len(raw)
    reasons = summary["expected_dead_letters"]["by_reason"]
    for fault in ("CORRUPT_RECORD", "UNKNOWN_SCHEMA_ID"):
        assert reasons.get(fault, {"count": 0})["count"] == sum(row["fault"] == fault for row in raw)
    for row in raw:
        value = base64.b64decode(row["value_base64"])
        assert value[:1] != b"\x00" or len(value) < 5 or int.from_bytes(value[1:5], "big") == row["schema_id"]
    assert reasons["DUPLICATE_ID_CONFLICT"]["count"] == sum(conflicts.values())
    orphaned = [event for event in first.values() if event["customer_id"] in missing]
    assert reasons["MASTER_DATA_MISSING"]["count"] == len(orphaned) > 0

    kept = [event for event in first.values() if event["customer_id"] not in missing]
    invoices: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    cash: dict[tuple[str, str], int] = defaultdict(int)
    for event in kept:
        if event["event_type"] == "invoice_posted":
            assert event["total_minor"] == sum(line["amount_minor"] for line in event["lines"])
            invoices[(event["legal_entity"], event["currency"])][0] += 1
            invoices[(event["legal_entity"], event["currency"])][1] += event["total_minor"]
        elif event["event_type"] == "payment_received":
            cash[(event["legal_entity"], event["currency"])] += event["amount_minor"]
    expected = {
        (entity, currency): [totals["count"], totals["total_minor"]]
        for entity, by_currency in summary["expected_invoices"].items()
        for currency, totals in by_currency.items()
    }
    assert expected == dict(invoices)
    assert len({currency for _, currency in expected}) >= 2
    assert {
        (entity, currency): totals["total_minor"]
        for entity, by_currency in summary["expected_cash"].items()
        for currency, totals in by_currency.items()
    } == dict(cash)

    products = {row["product_id"]: row for row in master["product"]}
    unapproved = [
        (event["event_id"], line["line_id"])
        for event in kept
        if event["event_type"] == "quote_approved"
        for line in event["lines"]
        if line["discount_bp"] > products[line["product_id"]]["max_discount_bp"]
        and not any(a["max_discount_bp"] >= line["discount_bp"] for a in event["approvals"])
    ]
    items = summary["expected_exceptions"]["items"]
    assert unapproved and sorted(unapproved) == sorted(
        (item["event_id"], item["line_id"]) for item in items if item["reason"] == "DISCOUNT_NOT_APPROVED"
    )


def test_summary_revenue_and_mismatches_add_up(written: Path) -> None:
    summary = json.loads((written / "summary.json").read_text())
    missing = set(summary["master_data"]["missing_customers"])
    first: dict[str, dict[str, Any]] = {}
    for event_type in ("invoice_posted", "usage_recorded", "service_activated"):
        for event in read_jsonl(written / "events" / f"{event_type}.jsonl"):
            if event["customer_id"] not in missing:
                first.setdefault(event["event_id"], event)
    by_account: Counter[str] = Counter()
    for by_currency in summary["expected_revenue"].values():
        for months in by_currency.values():
            for accounts in months.values():
                by_account.update(accounts)
    invoiced = Counter[str]()
    metered: Counter[tuple[str, str]] = Counter()
    billed: Counter[tuple[str, str]] = Counter()
    services: Counter[str] = Counter()
    milestones_without_amount: list[str] = []
    for event in first.values():
        if event["event_type"] == "invoice_posted":
            for line in event["lines"]:
                if line["kind"] in ("SUBSCRIPTION", "USAGE"):
                    # The product's own revenue account (the price book's), not a constant.
                    invoiced[spec(line["product_id"].rsplit("-", 1)[0]).revenue_account] += line[
                        "amount_minor"
                    ]
                if line["kind"] == "SERVICES":
                    services[event["subscription_id"]] += line["amount_minor"]
                if line["kind"] == "USAGE":
                    billed[(event["subscription_id"], line["period_start"][:7])] += line["quantity"]
        elif event["event_type"] == "usage_recorded":
            metered[(event["subscription_id"], event["window_start"][:7])] += event["quantity"]
        elif event["line_kind"] == "SERVICES_MILESTONE":
            if event["milestone_amount_minor"] is None:
                milestones_without_amount.append(event["subscription_id"])
            else:
                invoiced["4010"] += event["milestone_amount_minor"]
    # A milestone without an amount recognises what was invoiced for its order line's product.
    assert milestones_without_amount
    invoiced["4010"] += sum(services[subscription] for subscription in milestones_without_amount)
    assert "4020" in invoiced  # a product with accounts of its own
    # Spreading by month never creates or loses a minor unit.
    assert dict(by_account) == dict(invoiced)
    mismatches = {
        (item["subscription_id"], item["period"]): item["quantity_difference"]
        for item in summary["expected_exceptions"]["items"]
        if item["reason"] == "USAGE_BILLING_MISMATCH"
    }
    assert mismatches == {key: metered[key] - qty for key, qty in billed.items() if metered[key] != qty}
    assert any(diff > 0 for diff in mismatches.values()) and any(diff < 0 for diff in mismatches.values())
