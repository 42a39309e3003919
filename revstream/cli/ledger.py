"""``revstream ledger migrate | report``: the PostgreSQL ERP ledger's schema and its reports."""

from __future__ import annotations

import logging
from datetime import date, datetime

import click
import psycopg

from connectors.errors import LedgerUnavailableError
from connectors.ledger.database import connect
from connectors.ledger.migrate import ensure_current, migrate
from connectors.ledger.report import build_report, render_text
from revstream.cli.common import echo_json, settings_for_cli

__all__ = ["ledger"]

logger = logging.getLogger(__name__)


@click.group()
def ledger() -> None:
    """Create, upgrade and report on the ERP ledger database."""


@ledger.command("migrate")
def migrate_command() -> None:
    """Apply the ledger migrations that are missing (safe to run again)."""
    settings = settings_for_cli()
    applied = migrate(settings.database.conninfo())
    for migration in applied:
        click.echo(f"applied {migration.label}")
    click.echo(f"ledger schema is current ({len(applied)} applied) at {settings.database.redacted()}")


def _parse_day(_ctx: click.Context, _param: click.Parameter, value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%d").date()  # noqa: DTZ007 - a calendar date, no time
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date; use YYYY-MM-DD") from None


@ledger.command("report")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option(
    "--as-of",
    callback=_parse_day,
    metavar="YYYY-MM-DD",
    help="Age receivables as of this day (default: today).",
)
def report_command(as_json: bool, as_of: date | None) -> None:
    """Trial balance, revenue by month, AR aging and open collections cases."""
    settings = settings_for_cli()
    with connect(settings.database.conninfo(), autocommit=True) as connection:
        try:
            ensure_current(connection)
            report = build_report(connection, as_of)
        except psycopg.OperationalError as exc:
            raise LedgerUnavailableError(
                f"the ledger database went away while reporting ({str(exc).strip().splitlines()[0]}); "
                "run the report again"
            ) from exc
    if as_json:
        echo_json(report.as_dict())
    else:
        click.echo(render_text(report), nl=False)
