"""`revstream schemas lint | check | register | diff` against the real registry over HTTP."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from schemas.loader import SCHEMA_DIR
from streams.settings import Settings


@pytest.fixture
def governed(stack_settings: Settings, unique):
    if stack_settings.registry.url is None:
        pytest.skip("the stack has no schema registry")
    namespace = unique("gov")
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REVSTREAM_")}
    environment.update(
        {
            "REVSTREAM_PROFILE": "external",
            "REVSTREAM_KAFKA_BOOTSTRAP_SERVERS": stack_settings.kafka.require_bootstrap(),
            "REVSTREAM_REGISTRY_URL": stack_settings.registry.require_url(),
            "REVSTREAM_TOPICS_NAMESPACE": namespace,
        }
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "revstream", "schemas", *args],
            capture_output=True,
            text=True,
            env=environment,
            timeout=120,
        )

    return namespace, run


def breaking_copy(tmp_path: Path) -> Path:
    directory = tmp_path / "avro"
    shutil.copytree(SCHEMA_DIR, directory)
    path = directory / "invoice_posted.avsc"
    definition = json.loads(path.read_text())
    definition["fields"].append({"name": "po_number", "type": "string", "doc": "Purchase order."})
    for field in definition["fields"]:
        if field["name"] == "lines":
            field["type"]["items"]["fields"].append(
                {"name": "discount_bp", "type": "int", "doc": "Discount."}
            )
    path.write_text(json.dumps(definition))
    return directory


def test_register_is_idempotent_and_check_passes(governed) -> None:
    namespace, run = governed
    first = run("register")
    assert first.returncode == 0, first.stderr
    lines = first.stdout.splitlines()
    assert len(lines) == len(list(SCHEMA_DIR.glob("*.avsc")))
    invoice = next(line for line in lines if f"{namespace}.events.invoice_posted-value" in line)
    assert invoice.startswith("registered ") and "version=1" in invoice
    again = run("register")
    assert again.returncode == 0
    assert all(line.startswith("unchanged ") for line in again.stdout.splitlines())
    # Ids are stable: the same schema keeps its id.
    assert invoice.split("id=")[1] in next(
        line for line in again.stdout.splitlines() if "invoice_posted" in line
    )
    check = run("check")
    assert check.returncode == 0
    assert f"ok      {namespace}.events.invoice_posted-value: identical to version 1" in check.stdout


def test_check_names_field_version_and_kind_of_each_break(governed, tmp_path: Path) -> None:
    namespace, run = governed
    assert run("register").returncode == 0
    result = run("check", "--dir", str(breaking_copy(tmp_path)))
    assert result.returncode == 1
    assert f"BREAK   {namespace}.events.invoice_posted-value (BACKWARD):" in result.stdout
    assert "READER_FIELD_MISSING_DEFAULT_VALUE at /fields/15 (po_number) against version 1" in result.stdout
    assert "(lines[].discount_bp) against version 1" in result.stdout
    assert "1 incompatible" in result.stdout
    report = json.loads(run("check", "--json", "--dir", str(breaking_copy(tmp_path / "j"))).stdout)
    broken = [r for r in report if not r["ok"]]
    assert [r["subject"] for r in broken] == [f"{namespace}.events.invoice_posted-value"]
    # The registry refuses what check flags.
    refused = run("register", "--dir", str(breaking_copy(tmp_path / "r")))
    assert refused.returncode == 1
    assert "registry refused" in refused.stderr and "409" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_diff_shows_fields_added_locally(governed, tmp_path: Path) -> None:
    namespace, run = governed
    assert run("register").returncode == 0
    subject = f"{namespace}.events.invoice_posted-value"
    same = run("diff", subject)
    assert "no field differences" in same.stdout
    changed = run("diff", subject, "--dir", str(breaking_copy(tmp_path)))
    assert "+ InvoicePosted.po_number: string (local only)" in changed.stdout
    assert "+ InvoicePosted.lines[].discount_bp: int (local only)" in changed.stdout
    missing = run("diff", f"{namespace}.nope-value")
    assert missing.returncode == 1 and "no local schema is governed under" in missing.stderr


def test_record_name_strategy_subjects(governed) -> None:
    _, run = governed
    result = run("register", "--strategy", "record")
    assert result.returncode == 0, result.stderr
    assert any(line.split()[1] == "io.revstream.events.InvoicePosted" for line in result.stdout.splitlines())


def test_lint_reports_file_field_and_rule(governed, tmp_path: Path) -> None:
    _, run = governed
    clean = run("lint")
    assert clean.returncode == 0
    result = run("lint", "--dir", str(breaking_copy(tmp_path)), "--previous", str(SCHEMA_DIR))
    assert result.returncode == 1
    assert "invoice_posted.avsc: InvoicePosted.po_number: added-field-default" in result.stdout
