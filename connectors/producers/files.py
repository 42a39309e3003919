"""Publish events from JSON Lines or CSV files: good lines are sent, bad lines are set aside.

Each input line becomes a model or a rejection naming the line number, the field and the reason;
rejections are written to a reject file (JSON Lines, one object per bad line with the original
text) so that a person can fix them and publish that file again. Nothing a producer sends is
dropped silently: every line is either sent or in the reject file, and the summary counts both.

CSV has no nesting: a nested field (``lines``, ``approvals``) is one cell holding its JSON array;
an empty cell means "not given" (see :func:`connectors.producers.validation.csv_row_to_data`).
"""

from __future__ import annotations

import csv
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Literal, Protocol

from connectors.errors import EventValidationError, FieldProblem, InputFileError
from connectors.producers.publisher import Delivery, Publisher
from connectors.producers.validation import csv_row_to_data, parse_event, parse_master
from schemas.models import AvroRecord, Customer, EventEnvelope, LegalEntity, Product

__all__ = [
    "FileFormat",
    "Line",
    "PublishSummary",
    "Rejection",
    "TextSink",
    "detect_format",
    "publish_lines",
    "read_lines",
]

logger = logging.getLogger(__name__)

FileFormat = Literal["jsonl", "csv"]


class TextSink(Protocol):
    """Where rejections are written: an open text file, or anything with ``write(str)``."""

    def write(self, text: str, /) -> int:
        """Write ``text``; return how many characters were written."""
        ...


@dataclass(frozen=True)
class Rejection:
    """A line that was not published: where it is, what is wrong, and the line as it was given."""

    line: int
    problems: tuple[FieldProblem, ...]
    original: str | dict[str, Any]

    def as_json(self) -> str:
        """Return the rejection as one JSON object (a line of the reject file)."""
        return json.dumps(
            {
                "line": self.line,
                "problems": [{"field": p.field, "reason": p.reason} for p in self.problems],
                "original": self.original,
            },
            ensure_ascii=False,
        )

    def describe(self) -> str:
        """Return a one-line description for the terminal."""
        return f"line {self.line}: " + "; ".join(str(problem) for problem in self.problems)


@dataclass(frozen=True)
class Line:
    """One input line: the record it validated to, or why it was rejected."""

    number: int
    record: AvroRecord | None
    rejection: Rejection | None


@dataclass
class PublishSummary:
    """What happened to the lines of one file."""

    sent: int = 0
    rejected: int = 0
    failed: int = 0
    failures: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Lines read (blank lines are not counted)."""
        return self.sent + self.rejected + self.failed


def detect_format(path: str, explicit: FileFormat | None = None) -> FileFormat:
    """Return the format of ``path``: ``explicit`` if given, else from its extension.

    Raises:
        InputFileError: when neither says (stdin without ``--format``, an unknown extension).
    """
    if explicit is not None:
        return explicit
    suffix = Path(path).suffix.lower()
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise InputFileError(
        f"cannot tell the format of {path!r} from its name; pass --format jsonl or --format csv"
    )


def read_lines(
    stream: IO[str], file_format: FileFormat, event_type: str | None, master_kind: str | None = None
) -> Iterator[Line]:
    """Yield one :class:`Line` per non-blank input line (CSV: per data row), validated.

    Exactly one of ``event_type`` and ``master_kind`` says what the lines are.

    Raises:
        InputFileError: when a CSV file has no header row.
    """
    if (event_type is None) == (master_kind is None):
        raise ValueError("give exactly one of event_type and master_kind")

    def parse(data: dict[str, Any] | str) -> AvroRecord:
        if master_kind is not None:
            return parse_master(master_kind, data)
        assert event_type is not None
        return parse_event(event_type, data)

    if file_format == "jsonl":
        yield from _jsonl_lines(stream, parse)
    else:
        yield from _csv_lines(stream, parse)


def _jsonl_lines(stream: IO[str], parse: Callable[[dict[str, Any] | str], AvroRecord]) -> Iterator[Line]:
    for number, text in enumerate(stream, start=1):
        text = text.strip()
        if not text:
            continue
        try:
            yield Line(number, parse(text), None)
        except EventValidationError as exc:
            yield Line(number, None, Rejection(number, exc.problems, text))


def _csv_lines(stream: IO[str], parse: Callable[[dict[str, Any] | str], AvroRecord]) -> Iterator[Line]:
    reader = csv.DictReader(stream)
    if reader.fieldnames is None:
        return
    if not any(name for name in reader.fieldnames):
        raise InputFileError("the CSV file has no header row; its first row must name the fields")
    for row in reader:
        # The header is line 1; a row's line number is where it ends (quoted cells may span lines).
        number = reader.line_num
        if not any(value for value in row.values() if isinstance(value, str)):
            continue
        original = {key: value for key, value in row.items() if key is not None}
        extra = row.get(None)  # DictReader's place for cells beyond the header
        if extra:
            problem = FieldProblem("(row)", f"has {len(extra)} more cells than the header names")
            yield Line(number, None, Rejection(number, (problem,), original))
            continue
        try:
            yield Line(number, parse(csv_row_to_data(row)), None)
        except EventValidationError as exc:
            yield Line(number, None, Rejection(number, exc.problems, original))


def publish_lines(
    publisher: Publisher,
    lines: Iterator[Line],
    rejects: TextSink | None,
    *,
    on_rejection: Callable[[Rejection], None] | None = None,
    on_line: Callable[[int], None] | None = None,
) -> PublishSummary:
    """Send every good line, write every bad one to ``rejects``; return the counts.

    Sent means acknowledged by the broker: the publisher is flushed before returning, and a line
    the broker did not take is counted as failed (its reason in ``failures``), not as sent.
    """
    summary = PublishSummary()

    def delivered(delivery: Delivery | None, error: Exception | None) -> None:
        if error is None:
            summary.sent += 1
        else:
            summary.failed += 1
            if len(summary.failures) < 10:
                summary.failures.append(str(error))

    for line in lines:
        if line.rejection is not None:
            summary.rejected += 1
            if rejects is not None:
                rejects.write(line.rejection.as_json() + "\n")
            if on_rejection is not None:
                on_rejection(line.rejection)
        elif isinstance(line.record, EventEnvelope):
            publisher.send(line.record, on_delivery=delivered)
        elif isinstance(line.record, Customer | Product | LegalEntity):
            publisher.publish_master(line.record, on_delivery=delivered)
        if on_line is not None:
            on_line(line.number)
    publisher.poll(0)
    publisher.flush()
    return summary
