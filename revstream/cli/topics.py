"""``revstream topics apply | list``: the topic catalog against the cluster."""

from __future__ import annotations

import sys

import click

from revstream.cli.common import echo_json, settings_for_cli
from streams.clients import admin_client, cluster_metadata
from streams.provisioning import apply as apply_actions
from streams.provisioning import plan
from streams.topics import catalog_for

__all__ = ["topics"]

DRIFT_EXIT_CODE = 3


@click.group()
def topics() -> None:
    """Provision and inspect the topic catalog."""


@topics.command("apply")
@click.option("--dry-run", is_flag=True, help="Print the plan without changing anything.")
def apply_command(dry_run: bool) -> None:
    """Create missing topics; report drift (exit 3) without touching existing data."""
    settings = settings_for_cli()
    cluster_metadata(settings.kafka)
    admin = admin_client(settings.kafka)
    actions = plan(admin, catalog_for(settings).specs())
    for action in actions:
        click.echo(("would " if dry_run and action.action == "create" else "") + action.describe())
    if not dry_run:
        apply_actions(admin, actions)
    created = sum(a.action == "create" for a in actions)
    drifted = sum(a.action == "drift" for a in actions)
    verb = "to create" if dry_run else "created"
    click.echo(f"{created} {verb}, {len(actions) - created - drifted} unchanged, {drifted} drifted")
    if drifted:
        click.echo(
            "drift is reported, never fixed automatically: review and change those topics by hand", err=True
        )
        sys.exit(DRIFT_EXIT_CODE)


@topics.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def list_command(as_json: bool) -> None:
    """List the catalog: name, kind, partitions, key and config."""
    specs = catalog_for(settings_for_cli(resolve_endpoints=False)).specs()
    if as_json:
        echo_json(
            [
                {
                    "name": s.name,
                    "kind": s.kind,
                    "partitions": s.partitions,
                    "replication_factor": s.replication_factor,
                    "key": s.key,
                    "config": s.config,
                }
                for s in specs
            ]
        )
        return
    for s in specs:
        click.echo(f"{s.name:<44} {s.kind:<11} p={s.partitions:<3} key={s.key:<16} {s.cleanup_policy}")
