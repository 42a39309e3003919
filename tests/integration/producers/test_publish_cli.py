"""`revstream publish` and `revstream simulate --publish`, run as a user runs them."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

from schemas.models import Customer
from schemas.names import EVENT_TYPES, MASTER_DATA_KINDS
from streams.settings import Settings
from streams.topics import TopicCatalog
from tests.integration.producers.helpers import read_back, usage
from tests.unit.schemas.strategies import sample


def publish_env(settings: Settings, catalog: TopicCatalog) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REVSTREAM_")}
    env.update(
        REVSTREAM_PROFILE="external",
        REVSTREAM_KAFKA_BOOTSTRAP_SERVERS=settings.kafka.require_bootstrap(),
        REVSTREAM_REGISTRY_URL=settings.registry.require_url(),
        REVSTREAM_TOPICS_NAMESPACE=catalog.namespace,
    )
    return env


def revstream(
    settings: Settings, catalog: TopicCatalog, *args: str, cwd: Path, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "revstream", *args],
        capture_output=True,
        text=True,
        env=publish_env(settings, catalog),
        cwd=cwd,
        input=stdin,
        timeout=300,
    )


def test_jsonl_good_lines_published_bad_lines_rejected(
    stack_settings: Settings, catalog: TopicCatalog, tmp_path: Path
) -> None:
    good = [json.loads(usage(f"cli-{i}").model_dump_json()) for i in range(3)]
    bad_quantity = {**good[0], "event_id": "cli-bad", "quantity": "many"}
    lines = [
        json.dumps(good[0]),
        json.dumps(good[1]),
        "{not json",
        json.dumps(bad_quantity),
        "",
        json.dumps(good[2]),
    ]
    source = tmp_path / "usage.jsonl"
    source.write_text("\n".join(lines) + "\n")

    result = revstream(stack_settings, catalog, "publish", "usage_recorded", str(source), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "sent 3, rejected 2" in result.stdout
    assert "line 3: (record): not valid JSON" in result.stderr
    assert "line 4: quantity: Input should be a valid integer" in result.stderr
    rejects = [json.loads(line) for line in (tmp_path / "usage.jsonl.rejects.jsonl").read_text().splitlines()]
    assert [(r["line"], r["problems"][0]["field"]) for r in rejects] == [(3, "(record)"), (4, "quantity")]
    assert rejects[1]["original"] == json.dumps(bad_quantity)

    records = read_back(stack_settings, [catalog.event_topic("usage_recorded")], lambda got: len(got) >= 3)
    assert sorted(r.value["event_id"] for r in records if r.value) == ["cli-0", "cli-1", "cli-2"]

    # The fixed reject file goes through; --allow-rejects turns the exit code to 0.
    again = revstream(
        stack_settings, catalog, "publish", "usage_recorded", str(source), "--allow-rejects",
        "--rejects", str(tmp_path / "second.jsonl"), "--progress", cwd=tmp_path,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert (tmp_path / "second.jsonl").exists()
    assert "publishing" in again.stderr  # the progress bar, forced on although stderr is a pipe


def test_csv_from_stdin_and_master_data(
    stack_settings: Settings, catalog: TopicCatalog, tmp_path: Path
) -> None:
    event = json.loads(usage("csv-1", customer_id="CUST-CSV").model_dump_json())
    table = tmp_path / "usage.csv"
    with table.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(event))
        writer.writeheader()
        writer.writerow(event)
    result = revstream(
        stack_settings, catalog, "publish", "usage_recorded", "-", "--format", "csv",
        cwd=tmp_path, stdin=table.read_text(),
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "sent 1, rejected 0, failed 0" in result.stdout

    customer = sample(Customer, customer_id="CUST-CSV")
    master = tmp_path / "customers.jsonl"
    master.write_text(customer.model_dump_json() + "\n")
    result = revstream(
        stack_settings, catalog, "publish", "--master-data", "customer", str(master), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr

    events = read_back(stack_settings, [catalog.event_topic("usage_recorded")], lambda got: len(got) >= 1)
    assert events[0].value is not None and events[0].value["event_id"] == "csv-1"
    masters = read_back(stack_settings, [catalog.master_topic("customer")], lambda got: len(got) >= 1)
    assert masters[0].key == "CUST-CSV"
    assert Customer.from_avro(masters[0].value or {}) == customer


def test_usage_errors_are_one_line(stack_settings: Settings, catalog: TopicCatalog, tmp_path: Path) -> None:
    unknown = revstream(stack_settings, catalog, "publish", "nope", "x.jsonl", cwd=tmp_path)
    assert unknown.returncode == 2
    assert "'nope' is not one of" in unknown.stderr
    no_format = revstream(stack_settings, catalog, "publish", "usage_recorded", "-", cwd=tmp_path, stdin="")
    assert no_format.returncode == 1
    assert no_format.stderr.strip().splitlines() == [
        "revstream: error: cannot tell the format of '-' from its name; pass --format jsonl or --format csv"
    ]


def test_simulation_published_in_full(
    stack_settings: Settings, catalog: TopicCatalog, tmp_path: Path
) -> None:
    out = tmp_path / "sim"
    faults = ["--corrupt-rate", "0.02", "--unknown-schema-rate", "0.02"]
    result = revstream(
        stack_settings, catalog, "simulate", "--months", "2", "--seed", "11", "--customers", "8", *faults,
        "--out", str(out), "--publish", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    published = summary["records"]["events_published"]
    raw_faults = Counter(
        json.loads(line)["event_type"] for line in (out / "raw_faults.jsonl").read_text().splitlines()
    )
    assert sum(raw_faults.values()) == summary["records"]["raw_faults"] > 0
    expected = {t: published[t] + raw_faults[t] for t in EVENT_TYPES}
    topics = [catalog.event_topic(t) for t in EVENT_TYPES]
    total = sum(expected.values())
    records = read_back(stack_settings, topics, lambda got: len(got) >= total, timeout_s=60)
    assert Counter(r.topic.rsplit(".", 1)[-1] for r in records) == {t: n for t, n in expected.items() if n}
    # What the simulator meant to be unreadable is unreadable for an outside consumer too; the rest reads.
    assert sum(r.value is None for r in records) == summary["records"]["raw_faults"]
    master_total = sum(summary["records"]["master_published"].values())
    masters = read_back(
        stack_settings,
        [catalog.master_topic(k) for k in MASTER_DATA_KINDS],
        lambda got: len(got) >= master_total,
    )
    assert len(masters) == master_total
