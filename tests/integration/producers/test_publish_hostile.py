"""`revstream publish` fed what a hostile or careless producer hands it: every bad line ends in the
reject file with its reason, every good line is published, the summary counts both, no traceback."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

from schemas.models import InvoicePosted
from streams.settings import Settings
from streams.topics import TopicCatalog
from tests.integration.producers.helpers import read_back, usage
from tests.integration.producers.test_publish_cli import publish_env, revstream
from tests.unit.schemas.strategies import sample


def line(event_id: str, **changes: object) -> bytes:
    body = {**json.loads(usage(event_id).model_dump_json()), **changes}
    return json.dumps(body).encode()


def rejects_of(path: Path) -> dict[int, tuple[str, str]]:
    entries = [json.loads(text) for text in path.read_text(encoding="utf-8").splitlines()]
    return {e["line"]: (e["problems"][0]["field"], e["problems"][0]["reason"]) for e in entries}


def test_every_hostile_jsonl_line_is_rejected_and_the_rest_published(
    stack_settings: Settings, catalog: TopicCatalog, tmp_path: Path
) -> None:
    lines = [
        line("ok-1"),  # 1
        line("year-1", occurred_at="0001-01-01T00:30:00+01:00"),  # 2
        b'{"event_id": ' + b"[" * 1000 + b"]" * 1000 + b"}",  # 3
        b'{"event_id": "big", "quantity": ' + b"9" * 5000 + b"}",  # 4
        line("surrogate", metric="\ud800"),  # 5 (json.dumps escapes it, as a producer would send it)
        b"\xff\xfe\x00binary\x80",  # 6
        line("bool", quantity=True),  # 7
        line("huge", metric="m" * 1_100_000),  # 8: valid, but over the producer's record limit
        line("ok-2"),  # 9
    ]
    source = tmp_path / "usage.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n")

    result = revstream(stack_settings, catalog, "publish", "usage_recorded", str(source), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "sent 2, rejected 7" in result.stdout
    rejects = rejects_of(tmp_path / "usage.jsonl.rejects.jsonl")
    assert {number: field for number, (field, _) in rejects.items()} == {
        2: "occurred_at",
        3: "(record)",
        4: "(record)",
        5: "metric",
        6: "(line)",
        7: "quantity",
        8: "(record)",
    }
    assert "outside the years 1 to 9999" in rejects[2][1]
    assert "nested deeper than 32 levels" in rejects[3][1]
    assert "4,300 digits" in rejects[4][1]
    assert "lone surrogate" in rejects[5][1]
    assert "not valid UTF-8" in rejects[6][1]
    assert "limit" in rejects[8][1]

    records = read_back(stack_settings, [catalog.event_topic("usage_recorded")], lambda got: len(got) >= 2)
    assert sorted(r.value["event_id"] for r in records if r.value) == ["ok-1", "ok-2"]


def test_csv_with_a_bom_a_huge_cell_and_bad_bytes(
    stack_settings: Settings, catalog: TopicCatalog, tmp_path: Path
) -> None:
    invoice = json.loads(sample(InvoicePosted).model_dump_json())
    cells = {key: json.dumps(value) if isinstance(value, list) else value for key, value in invoice.items()}
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(cells), lineterminator="\n")
    writer.writeheader()
    writer.writerow({**cells, "event_id": "csv-ok-1"})
    writer.writerow({**cells, "event_id": "csv-huge", "invoice_id": "x" * 200_000})
    writer.writerow({**cells, "event_id": "csv-bool", "total_minor": "true"})
    writer.writerow({**cells, "event_id": "csv-ok-2"})
    data = b"\xef\xbb\xbf" + out.getvalue().encode()  # the byte-order mark spreadsheet programs write
    data += out.getvalue().splitlines()[1].replace("csv-ok-1", "csv-bad\xe9").encode("latin-1") + b"\n"
    source = tmp_path / "invoices.csv"
    source.write_bytes(data)

    result = revstream(stack_settings, catalog, "publish", "invoice_posted", str(source), cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "sent 2, rejected 3" in result.stdout, result.stdout + result.stderr
    rejects = rejects_of(tmp_path / "invoices.csv.rejects.jsonl")
    assert rejects[3][0] == "(row)" and "field larger than field limit" in rejects[3][1]
    assert rejects[4][0] == "total_minor"
    assert rejects[6][0] == "(row)" and "not valid UTF-8" in rejects[6][1]
    records = read_back(stack_settings, [catalog.event_topic("invoice_posted")], lambda got: len(got) >= 2)
    assert sorted(r.value["event_id"] for r in records if r.value) == ["csv-ok-1", "csv-ok-2"]


def test_binary_stdin_is_rejected_per_line(
    stack_settings: Settings, catalog: TopicCatalog, tmp_path: Path
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "revstream", "publish", "usage_recorded", "-", "--format", "jsonl"],
        input=b"\x00\x01\x02\xff\n" + line("stdin-ok") + b"\n",
        capture_output=True,
        env=publish_env(stack_settings, catalog),
        cwd=tmp_path,
        timeout=300,
        check=False,
    )
    stdout, stderr = result.stdout.decode(), result.stderr.decode()
    assert result.returncode == 2, stderr
    assert "sent 1, rejected 1" in stdout
    assert "line 1: (line): is not valid UTF-8" in stderr
    assert "Traceback" not in stderr


def test_an_unwritable_rejects_path_names_the_input_and_sends_nothing(
    stack_settings: Settings, catalog: TopicCatalog, tmp_path: Path
) -> None:
    source = tmp_path / "usage.jsonl"
    source.write_bytes(line("never-sent") + b"\n{bad\n")
    rejects = tmp_path / "no-such-dir" / "rejects.jsonl"
    result = revstream(
        stack_settings,
        catalog,
        "publish",
        "usage_recorded",
        str(source),
        "--rejects",
        str(rejects),
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"revstream: error: cannot write the rejected lines of {source} to {rejects}: the directory "
        f"{rejects.parent} does not exist; pass --rejects PATH"
    ]
