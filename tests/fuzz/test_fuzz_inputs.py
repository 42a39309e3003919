"""Hostile files and environments: the CSV/JSONL reader and the settings parser."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

from hypothesis import given
from hypothesis import strategies as st

from connectors.errors import InputFileError
from connectors.producers.files import input_text, read_lines
from schemas.models import InvoicePosted, UsageRecorded
from streams.errors import SettingsError
from streams.settings import load_settings
from tests.fuzz.conftest import TRIED, examples
from tests.unit.schemas.strategies import sample

GOOD_LINES = [
    json.dumps(json.loads(sample(model).model_dump_json())) for model in (UsageRecorded, InvoicePosted)
]
USAGE_FIELDS = list(json.loads(GOOD_LINES[0]))
FRAGMENTS = st.sampled_from(
    [
        "{",
        "}",
        "[",
        "]",
        '"',
        ",",
        ":",
        "\\ud800",
        "\\u0000",
        "1e999",
        "9" * 5000,
        "true",
        "null",
        "\ufeff",
        "\r",
        "\n",
    ]
)


@st.composite
def hostile_files(draw: st.DrawFn) -> bytes:
    """Arbitrary bytes, good lines with bytes changed, or JSON/CSV-looking text built from fragments."""
    kind = draw(st.sampled_from(["bytes", "mutated", "fragments", "csv"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "mutated":
        data = bytearray("\n".join(GOOD_LINES).encode())
        for _ in range(draw(st.integers(1, 6))):
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        return bytes(data)
    if kind == "fragments":
        parts = draw(st.lists(st.one_of(FRAGMENTS, st.text(max_size=8)), max_size=40))
        return "".join(parts).encode("utf-8", "surrogatepass")
    header = ",".join(draw(st.lists(st.sampled_from([*USAGE_FIELDS, "", "x"]), min_size=1, max_size=10)))
    rows = draw(st.lists(st.lists(st.one_of(FRAGMENTS, st.text(max_size=10)), max_size=10), max_size=5))
    text = header + "\n" + "\n".join(",".join(row) for row in rows)
    return text.encode("utf-8", "surrogatepass")


@examples(8_000)
@given(
    hostile_files(), st.sampled_from(["jsonl", "csv"]), st.sampled_from(["usage_recorded", "invoice_posted"])
)
def test_file_reader(data: bytes, file_format: str, event_type: str) -> None:
    TRIED["CSV/JSONL reader (read_lines)"] += 1
    try:
        lines = list(read_lines(input_text(io.BytesIO(data)), file_format, event_type))  # type: ignore[arg-type]
    except InputFileError:
        return
    for line in lines:
        assert (line.record is None) != (line.rejection is None)
        if line.rejection is not None:
            line.rejection.as_json().encode()  # the reject file (UTF-8) can hold every rejection


VARIABLES = [
    "REVSTREAM_PROFILE",
    "REVSTREAM_KAFKA_BOOTSTRAP_SERVERS",
    "REVSTREAM_KAFKA_SECURITY_PROTOCOL",
    "REVSTREAM_KAFKA_SASL_MECHANISM",
    "REVSTREAM_KAFKA_SESSION_TIMEOUT_MS",
    "REVSTREAM_KAFKA_IDEMPOTENCE",
    "REVSTREAM_REGISTRY_URL",
    "REVSTREAM_REGISTRY_USERNAME",
    "REVSTREAM_REGISTRY_PASSWORD",
    "REVSTREAM_DATABASE_URL",
    "DATABASE_URL",
    "REVSTREAM_TOPICS_PARTITIONS",
    "REVSTREAM_TOPICS_NAMESPACE",
    "REVSTREAM_GATEWAY_TOKENS",
    "REVSTREAM_GATEWAY_PORT",
    "REVSTREAM_WORKER_DEDUPE_HORIZON",
    "REVSTREAM_WORKER_MASTER_RETRY_BACKOFF",
    "REVSTREAM_KAFKA",
    "REVSTREAM_GATEWAY",
]
VALUES = st.one_of(
    st.text(max_size=30),
    FRAGMENTS,
    st.integers().map(str),
    st.sampled_from(
        ['{"a": {"source": "b", "event_types": []}}', "[]", "{}", "P7D", "1e400", "nan", "-1", "true"]
    ),
    st.lists(st.one_of(FRAGMENTS, st.text(max_size=5)), max_size=12).map("".join),
)


@contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    saved = {k: v for k, v in os.environ.items() if k.startswith("REVSTREAM_") or k == "DATABASE_URL"}
    for name in saved:
        del os.environ[name]
    try:
        os.environ.update(values)
        yield
    finally:
        for name in values:
            os.environ.pop(name, None)
        os.environ.update(saved)


@examples(5_000)
@given(st.dictionaries(st.sampled_from(VARIABLES), VALUES.filter(lambda v: "\x00" not in v), max_size=6))
def test_settings_parser(values: dict[str, str]) -> None:
    TRIED["settings parser (load_settings)"] += 1
    with environment(values):
        try:
            load_settings()
        except SettingsError as exc:
            assert "\n" not in str(exc)
