"""``revstream stack up | down | status``: the embedded broker, PostgreSQL and registry."""

from __future__ import annotations

import sys

import click

from revstream.cli.common import echo_json, settings_for_cli
from streams.stack import EmbeddedStack, ServiceStatus

__all__ = ["stack"]


def _print_status(statuses: dict[str, ServiceStatus]) -> None:
    for name, status in statuses.items():
        where = status.endpoint or "-"
        pid = f"pid {status.pid}" if status.pid else ""
        detail = f" ({status.detail})" if status.detail else ""
        click.echo(f"{name:<9} {status.state:<9} {where:<48} {pid}{detail}")


def _stack() -> EmbeddedStack:
    return EmbeddedStack(settings_for_cli(resolve_endpoints=False).home)


@click.group(short_help="Run the embedded broker, PostgreSQL and registry.")
def stack() -> None:
    """Run the embedded broker, PostgreSQL and schema registry on loopback."""


@stack.command()
@click.option("--broker-port", default=0, show_default="a free port", help="Loopback port of the broker.")
@click.option("--registry-port", default=0, show_default="a free port", help="Port of the schema registry.")
def up(broker_port: int, registry_port: int) -> None:
    """Start the stack (or reuse the running one) and wait until it is usable."""
    statuses = EmbeddedStack(settings_for_cli(resolve_endpoints=False).home).up(broker_port, registry_port)
    _print_status(statuses)


@stack.command()
def down() -> None:
    """Stop exactly the services `stack up` started."""
    stopped = _stack().down()
    click.echo(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")


@stack.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def status(as_json: bool) -> None:
    """Show each service's state and endpoint; exit 1 unless all are running."""
    statuses = _stack().status()
    if as_json:
        echo_json({name: s.as_dict() for name, s in statuses.items()})
    else:
        _print_status(statuses)
    wanted = [s for s in statuses.values() if s.detail != "not installed"]
    if any(s.state != "running" for s in wanted):
        sys.exit(1)
