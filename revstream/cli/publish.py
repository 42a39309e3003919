"""``revstream publish EVENT_TYPE FILE`` and ``revstream publish --master-data KIND FILE``.

Reads JSON Lines or CSV (``-`` for stdin), publishes every good line through the SDK and writes
every bad one, with its line number, field and reason, to a reject file. Exit codes: 0 when every
line was sent, 2 when lines were rejected (unless ``--allow-rejects``), 1 when the broker did not
take every good line or the input cannot be read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import click

from connectors.errors import DeliveryFailedError, InputFileError
from connectors.producers.files import (
    FileFormat,
    Line,
    PublishSummary,
    Rejection,
    TextSink,
    detect_format,
    input_text,
    publish_lines,
    read_lines,
)
from connectors.producers.publisher import Publisher
from revstream.cli.common import settings_for_cli
from schemas.names import EVENT_TYPES, MASTER_DATA_KINDS
from streams.clients import cluster_metadata

__all__ = ["publish"]

logger = logging.getLogger(__name__)

REJECTED_EXIT_CODE = 2
SHOWN_REJECTIONS = 20
PROGRESS_MIN_BYTES = 1_048_576


class _LazyRejects:
    """The reject file, created only when the first line is rejected."""

    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self.source = source
        self._stream: IO[str] | None = None

    def check_writable(self) -> None:
        """Fail before anything is published when the reject file could not be written.

        Raises:
            InputFileError: naming the input file and why its rejects cannot go to ``path``.
        """
        parent = self.path.parent
        if self.path.is_dir():
            self._refuse("it is a directory")
        if not parent.is_dir():
            self._refuse(f"the directory {parent} does not exist")
        if not os.access(self.path if self.path.exists() else parent, os.W_OK):
            self._refuse("permission denied")

    def _refuse(self, why: str) -> None:
        raise InputFileError(
            f"cannot write the rejected lines of {self.source} to {self.path}: {why}; pass --rejects PATH"
        )

    def write(self, text: str) -> int:
        try:
            if self._stream is None:
                self._stream = self.path.open("w", encoding="utf-8")
            return self._stream.write(text)
        except OSError as exc:
            self._refuse(exc.strerror or str(exc))
            raise  # unreachable: _refuse raises

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()


@contextlib.contextmanager
def _open_input(file: str) -> Iterator[IO[str]]:
    if file == "-":
        # stdin's own decoding would stop the run at the first byte that is not UTF-8.
        binary = getattr(sys.stdin, "buffer", None)
        if binary is None:
            yield sys.stdin
            return
        stream = input_text(binary)
        try:
            yield stream
        finally:
            stream.detach()
        return
    try:
        handle = open(file, "rb")
    except OSError as exc:
        raise click.FileError(file, hint=exc.strerror or str(exc)) from exc
    with input_text(handle) as stream:
        yield stream


def _count_lines(file: str) -> int:
    with open(file, "rb") as stream:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: stream.read(1 << 20), b""))


@click.command("publish", short_help="Publish events from a JSON Lines or CSV file.")
@click.argument("args", nargs=-1, metavar="EVENT_TYPE FILE")
@click.option(
    "--master-data",
    "master_kind",
    type=click.Choice(MASTER_DATA_KINDS),
    help="Publish master data of this kind (then give only FILE) to its compacted topic.",
)
@click.option(
    "--format", "file_format", type=click.Choice(["jsonl", "csv"]), help="Default: from FILE's extension."
)
@click.option(
    "--rejects",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where bad lines go (JSON Lines). Default: FILE.rejects.jsonl.",
)
@click.option("--allow-rejects", is_flag=True, help="Exit 0 even when lines were rejected.")
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar on stderr. Default: on for files over 1 MiB when stderr is a terminal.",
)
@click.option(
    "--delivery-timeout",
    type=click.FloatRange(1, 3600),
    default=30.0,
    show_default=True,
    help="Seconds the broker may take to acknowledge a record before it counts as failed.",
)
def publish(
    args: tuple[str, ...],
    master_kind: str | None,
    file_format: FileFormat | None,
    rejects: Path | None,
    allow_rejects: bool,
    progress: bool | None,
    delivery_timeout: float,
) -> None:
    """Publish events from a JSON Lines or CSV FILE ('-' for stdin) to EVENT_TYPE's topic.

    Every bad line is reported with its line number, field and reason and written to the reject
    file; the good lines are published. In CSV, nested fields (lines, approvals) are one cell
    holding their JSON array, and an empty cell means "not given".
    """
    event_type, file = _arguments(args, master_kind)
    fmt = detect_format(file, file_format)
    settings = settings_for_cli()
    cluster_metadata(settings.kafka)
    reject_path = rejects or Path(("stdin" if file == "-" else file) + ".rejects.jsonl")
    reject_file = _LazyRejects(reject_path, "stdin" if file == "-" else file)
    reject_file.check_writable()
    shown = 0

    def report(rejection: Rejection) -> None:
        nonlocal shown
        shown += 1
        if shown <= SHOWN_REJECTIONS:
            click.echo(rejection.describe(), err=True)

    show_progress = progress
    if show_progress is None:
        show_progress = (
            file != "-" and sys.stderr.isatty() and Path(file).stat().st_size >= PROGRESS_MIN_BYTES
        )
    publisher = Publisher(settings, fail_fast=False, delivery_timeout_ms=int(delivery_timeout * 1000))
    summary = PublishSummary()
    try:
        with _open_input(file) as stream:
            lines = read_lines(stream, fmt, event_type, master_kind)
            _run(publisher, lines, reject_file, report, show_progress, file, summary)
    except BaseException:
        # Stopped half-way: say what is already done before the error's own line.
        with contextlib.suppress(DeliveryFailedError):
            publisher.close(timeout_s=delivery_timeout)
        click.echo(
            f"stopped: sent {summary.sent}, rejected {summary.rejected}, failed {summary.failed}; "
            "the lines after the last one counted were not published",
            err=True,
        )
        raise
    finally:
        reject_file.close()
        with contextlib.suppress(DeliveryFailedError):
            publisher.close(timeout_s=delivery_timeout)
    if shown > SHOWN_REJECTIONS:
        click.echo(f"... and {shown - SHOWN_REJECTIONS} more rejected lines", err=True)
    _finish(summary, reject_path, allow_rejects)


def _arguments(args: tuple[str, ...], master_kind: str | None) -> tuple[str | None, str]:
    if master_kind is not None:
        if len(args) != 1:
            raise click.UsageError(
                "with --master-data give only FILE: revstream publish --master-data KIND FILE"
            )
        return None, args[0]
    if len(args) != 2:
        raise click.UsageError("give EVENT_TYPE and FILE: revstream publish EVENT_TYPE FILE")
    if args[0] not in EVENT_TYPES:
        raise click.BadParameter(
            f"{args[0]!r} is not one of {', '.join(EVENT_TYPES)}", param_hint="EVENT_TYPE"
        )
    return args[0], args[1]


def _run(
    publisher: Publisher,
    lines: Iterator[Line],
    rejects: TextSink,
    report: Callable[[Rejection], None],
    show_progress: bool,
    file: str,
    summary: PublishSummary,
) -> PublishSummary:
    if not show_progress:
        return publish_lines(publisher, lines, rejects, on_rejection=report, summary=summary)
    length = _count_lines(file) if file != "-" else None
    with click.progressbar(length=length, label="publishing", file=sys.stderr) as bar:  # type: ignore[var-annotated]
        last = 0

        def advance(number: int) -> None:
            nonlocal last
            bar.update(number - last)
            last = number

        return publish_lines(publisher, lines, rejects, on_rejection=report, on_line=advance, summary=summary)


def _finish(summary: PublishSummary, reject_path: Path, allow_rejects: bool) -> None:
    where = f" (see {reject_path})" if summary.rejected else ""
    click.echo(f"sent {summary.sent}, rejected {summary.rejected}{where}, failed {summary.failed}")
    if summary.failed:
        raise DeliveryFailedError(
            f"{summary.failed} records were not acknowledged by the broker (first: {summary.failures[0]}); "
            "check the broker and publish the file again (the pipeline drops repeated event ids)"
        )
    if summary.rejected and not allow_rejects:
        sys.exit(REJECTED_EXIT_CODE)
