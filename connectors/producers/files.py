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
import io
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, Literal, Protocol

from connectors.errors import EventValidationError, FieldProblem, InputFileError
from connectors.producers.publisher import Delivery, Publisher
from connectors.producers.validation import (
    csv_row_to_data,
    event_model,
    master_model,
    parse_event,
    parse_master,
)
from schemas.models import AvroRecord, Customer, EventEnvelope, LegalEntity, Product

__all__ = [
    "MAX_LINE_CHARS",
    "FileFormat",
    "Line",
    "PublishSummary",
    "Rejection",
    "TextSink",
    "detect_format",
    "input_text",
    "publish_lines",
    "read_lines",
]

logger = logging.getLogger(__name__)

FileFormat = Literal["jsonl", "csv"]


def input_text(binary: IO[bytes]) -> io.TextIOWrapper:
    """Return ``binary`` (an input file or stdin's bytes) as the text the readers take.

    A byte-order mark (what spreadsheet programs write) is skipped, and bytes that are not UTF-8
    are kept as escapes so that their line is rejected, not the whole file.
    """
    return io.TextIOWrapper(binary, encoding="utf-8-sig", errors="surrogateescape", newline="")


MAX_LINE_CHARS: Final = 10_000_000
"""A JSON Lines line longer than this is rejected without being parsed (or held whole in memory)."""

_BOM: Final = "\ufeff"


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
        text = json.dumps(
            {
                "line": self.line,
                "problems": [{"field": p.field, "reason": p.reason} for p in self.problems],
                "original": self.original,
            },
            ensure_ascii=False,
        )
        return _printable(text)

    def describe(self) -> str:
        """Return a one-line description for the terminal."""
        return f"line {self.line}: " + "; ".join(str(problem) for problem in self.problems)


@dataclass(frozen=True)
class Line:
    """One input line: the record it validated to, or why it was rejected."""

    number: int
    record: AvroRecord | None
    rejection: Rejection | None
    original: str | dict[str, Any] = ""
    """The line as given, for a rejection the publisher makes (a record over the size limit)."""


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

    model = master_model(master_kind) if master_kind is not None else event_model(event_type or "")

    def parse(data: dict[str, Any] | str) -> AvroRecord:
        if master_kind is not None:
            return parse_master(master_kind, data)
        assert event_type is not None
        return parse_event(event_type, data)

    if file_format == "jsonl":
        yield from _jsonl_lines(stream, parse)
    else:
        yield from _csv_lines(stream, lambda row: parse(csv_row_to_data(row, model)))


def _printable(text: str) -> str:
    # Undecodable input bytes arrive as surrogate escapes (see input_text); show them as \xNN so
    # that the terminal and the reject file (UTF-8) can hold every line, whatever it contained.
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _undecodable(text: str) -> FieldProblem | None:
    for position, char in enumerate(text):
        if "\udc80" <= char <= "\udcff":
            return FieldProblem(
                "(line)", f"is not valid UTF-8 (byte 0x{ord(char) - 0xDC00:02x} at {position})"
            )
    return None


def _bounded_lines(stream: IO[str]) -> Iterator[tuple[str, int]]:
    # Like iterating the stream, but a line over MAX_LINE_CHARS is not read whole: its first
    # MAX_LINE_CHARS + 1 characters come with its true length (line end not counted), the rest is
    # skipped.
    while True:
        text = stream.readline(MAX_LINE_CHARS + 1)
        if not text:
            return
        length, last = len(text), text
        if length > MAX_LINE_CHARS and text[-1] not in "\r\n":
            while True:
                last = stream.readline(MAX_LINE_CHARS)
                length += len(last)
                if not last or last[-1] in "\r\n":
                    break
        yield text, length - (len(last) - len(last.rstrip("\r\n")))


def _jsonl_lines(stream: IO[str], parse: Callable[[dict[str, Any] | str], AvroRecord]) -> Iterator[Line]:
    for number, (raw, length) in enumerate(_bounded_lines(stream), start=1):
        text = (raw.removeprefix(_BOM) if number == 1 else raw).strip()
        if not text:
            continue
        if length > MAX_LINE_CHARS:
            problem = FieldProblem(
                "(line)", f"is {length:,} characters; a line is at most {MAX_LINE_CHARS:,}"
            )
            yield Line(number, None, Rejection(number, (problem,), _printable(text[:200]) + "..."))
            continue
        undecodable = _undecodable(text)
        if undecodable is not None:
            yield Line(number, None, Rejection(number, (undecodable,), _printable(text)))
            continue
        try:
            yield Line(number, parse(text), None, text)
        except EventValidationError as exc:
            yield Line(number, None, Rejection(number, exc.problems, text))


def _csv_lines(stream: IO[str], parse: Callable[[dict[str | None, Any]], AvroRecord]) -> Iterator[Line]:
    reader = csv.DictReader(stream)
    try:
        fieldnames = reader.fieldnames
    except csv.Error as exc:
        raise InputFileError(f"the CSV header row cannot be read: {exc}") from exc
    if fieldnames is None:
        return
    if not any(name for name in fieldnames):
        raise InputFileError("the CSV file has no header row; its first row must name the fields")
    if fieldnames[0].startswith(_BOM):
        # A byte-order mark read as text (the stream was not opened with input_text).
        reader.fieldnames = [fieldnames[0].removeprefix(_BOM), *fieldnames[1:]]
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            # A cell over csv's field limit (131,072 characters) or a stray NUL: this row is lost to
            # the parser, which goes on at the next line.
            problem = FieldProblem("(row)", f"cannot be read as CSV ({exc})")
            number = reader.reader.line_num  # DictReader's own count moves only on success
            yield Line(number, None, Rejection(number, (problem,), ""))
            continue
        # The header is line 1; a row's line number is where it ends (quoted cells may span lines).
        number = reader.line_num
        if not any(value for value in row.values() if isinstance(value, str)):
            continue
        original = {
            _printable(key): _printable(value) if isinstance(value, str) else value
            for key, value in row.items()
            if key is not None
        }
        extra = row.get(None)  # DictReader's place for cells beyond the header
        if extra:
            problem = FieldProblem("(row)", f"has {len(extra)} more cells than the header names")
            yield Line(number, None, Rejection(number, (problem,), original))
            continue
        undecodable = next(
            (
                found
                for cell in (*row.keys(), *row.values())
                if isinstance(cell, str) and (found := _undecodable(cell))
            ),
            None,
        )
        if undecodable is not None:
            problem = FieldProblem("(row)", undecodable.reason)
            yield Line(number, None, Rejection(number, (problem,), original))
            continue
        try:
            yield Line(number, parse(row), None, original)
        except EventValidationError as exc:
            yield Line(number, None, Rejection(number, exc.problems, original))


def publish_lines(
    publisher: Publisher,
    lines: Iterator[Line],
    rejects: TextSink | None,
    *,
    on_rejection: Callable[[Rejection], None] | None = None,
    on_line: Callable[[int], None] | None = None,
    summary: PublishSummary | None = None,
) -> PublishSummary:
    """Send every good line, write every bad one to ``rejects``; return the counts.

    Sent means acknowledged by the broker: the publisher is flushed before returning, and a line
    the broker did not take is counted as failed (its reason in ``failures``), not as sent. A line
    the publisher refuses before sending (its record over the size limit) is rejected like a bad
    line. Pass ``summary`` to keep the counts so far when something stops the run half-way.
    """
    summary = summary if summary is not None else PublishSummary()

    def reject(rejection: Rejection) -> None:
        summary.rejected += 1
        if rejects is not None:
            rejects.write(rejection.as_json() + "\n")
        if on_rejection is not None:
            on_rejection(rejection)

    def delivered(delivery: Delivery | None, error: Exception | None) -> None:
        if error is None:
            summary.sent += 1
        else:
            summary.failed += 1
            if len(summary.failures) < 10:
                summary.failures.append(str(error))

    for line in lines:
        try:
            if line.rejection is not None:
                reject(line.rejection)
            elif isinstance(line.record, EventEnvelope):
                publisher.send(line.record, on_delivery=delivered)
            elif isinstance(line.record, Customer | Product | LegalEntity):
                publisher.publish_master(line.record, on_delivery=delivered)
        except EventValidationError as exc:
            reject(Rejection(line.number, exc.problems, line.original))
        if on_line is not None:
            on_line(line.number)
    publisher.poll(0)
    publisher.flush()
    return summary
