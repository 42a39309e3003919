"""``revstream schemas lint | check | register | diff``: schema governance, usable as a CI gate."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import ParamSpec, TypeVar

import click
import httpx2
from confluent_kafka.schema_registry import SchemaRegistryClient

from revstream.cli.common import echo_json, settings_for_cli
from schemas.lint import lint_all
from schemas.loader import SCHEMA_DIR
from streams.errors import GovernanceError
from streams.governance import (
    SubjectBinding,
    bind_subjects,
    check_subject,
    diff_fields,
    latest_registered,
    register_subject,
)
from streams.secrets import redact_url
from streams.topics import catalog_for
from streams.wire import SubjectStrategy

__all__ = ["schemas"]

directory_option = click.option(
    "--dir",
    "directory",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=SCHEMA_DIR,
    show_default="the shipped schemas",
    help="Folder of .avsc files.",
)
strategy_option = click.option(
    "--strategy",
    type=click.Choice(["topic", "record"]),
    default="topic",
    show_default=True,
    help="Subject naming: TopicNameStrategy (<topic>-value) or RecordNameStrategy (<namespace.Name>).",
)


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _reaching_registry(command: Callable[_P, _R]) -> Callable[_P, _R]:
    # confluent-kafka's client lets its HTTP library's errors through: a registry that is down is
    # a ConnectError with a traceback. Say it in one line.
    @functools.wraps(command)
    def run(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return command(*args, **kwargs)
        except httpx2.HTTPError as exc:
            try:
                url = exc.request.url
                where = f" at {redact_url(str(url.copy_with(path='/', query=None)))}"
            except RuntimeError:  # an error raised before any request was built
                where = ""
            raise GovernanceError(
                f"the schema registry{where} did not answer ({type(exc).__name__}: {exc}); check "
                "REVSTREAM_REGISTRY_URL, or start the embedded stack with `revstream stack up`"
            ) from exc

    return run


def _context(directory: Path, strategy: str) -> tuple[SchemaRegistryClient, list[SubjectBinding]]:
    settings = settings_for_cli()
    client = SchemaRegistryClient(settings.registry.client_config())
    chosen: SubjectStrategy = "record" if strategy == "record" else "topic"
    return client, bind_subjects(catalog_for(settings), directory, chosen)


@click.group(short_help="Lint, check, register and diff the Avro schemas.")
def schemas() -> None:
    """Govern the Avro schemas: lint, compatibility check, register, diff."""


@schemas.command()
@directory_option
@click.option(
    "--previous",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Folder of the previous release's .avsc files (enables the added-field-default rule).",
)
def lint(directory: Path, previous: Path | None) -> None:
    """Check every schema against the conventions; exit 1 on any finding."""
    findings = lint_all(directory, previous)
    for finding in findings:
        click.echo(str(finding))
    count = len(list(directory.glob("*.avsc")))
    click.echo(f"{count} schemas, {len(findings)} findings", err=bool(findings))
    if findings:
        sys.exit(1)


@schemas.command()
@directory_option
@strategy_option
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@_reaching_registry
def check(directory: Path, strategy: str, as_json: bool) -> None:
    """Check each local schema against its subject's registered versions; exit 1 on any break."""
    client, bindings = _context(directory, strategy)
    results = [check_subject(client, binding) for binding in bindings]
    if as_json:
        echo_json(
            [
                {
                    "subject": r.subject,
                    "level": r.level.value,
                    "versions": list(r.versions),
                    "ok": r.ok,
                    "registered_as": r.already_registered,
                    "problems": [str(p) for p in r.problems],
                }
                for r in results
            ]
        )
    else:
        for result in results:
            if result.already_registered is not None:
                state = f"ok      {result.subject}: identical to version {result.already_registered}"
            elif not result.versions:
                state = f"ok      {result.subject}: new subject"
            elif result.ok:
                state = (
                    f"ok      {result.subject}: compatible ({result.level.value}) with {_versions(result)}"
                )
            else:
                state = f"BREAK   {result.subject} ({result.level.value}):"
            click.echo(state)
            for problem in result.problems:
                click.echo(f"          {problem}")
        broken = sum(not r.ok for r in results)
        click.echo(f"{len(results)} subjects checked, {broken} incompatible")
    if any(not r.ok for r in results):
        sys.exit(1)


def _versions(result: object) -> str:
    versions = getattr(result, "versions", ())
    return "version " + ", ".join(str(v) for v in versions) if versions else "nothing"


@schemas.command()
@directory_option
@strategy_option
@_reaching_registry
def register(directory: Path, strategy: str) -> None:
    """Register every local schema (idempotent); print subject, version and id."""
    client, bindings = _context(directory, strategy)
    for binding in bindings:
        result = register_subject(client, binding)
        marker = "registered" if result.new else "unchanged "
        click.echo(f"{marker} {result.subject} version={result.version} id={result.schema_id}")


@schemas.command()
@click.argument("subject")
@directory_option
@strategy_option
@_reaching_registry
def diff(subject: str, directory: Path, strategy: str) -> None:
    """Show the registered latest version of SUBJECT against the local schema, field by field."""
    client, bindings = _context(directory, strategy)
    binding = next((b for b in bindings if b.subject == subject), None)
    if binding is None:
        known = ", ".join(b.subject for b in bindings[:3])
        raise GovernanceError(f"no local schema is governed under {subject} (e.g. {known}, ...)")
    version, registered = latest_registered(client, subject)
    changes = diff_fields(registered, json.loads(binding.schema.canonical_json))
    click.echo(f"{subject}: registered version {version} vs local {binding.schema.path.name}")
    for change in changes:
        click.echo(f"  {change}")
    if not changes:
        click.echo("  no field differences")
