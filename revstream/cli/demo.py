"""``revstream demo``: the main job, end to end on the embedded stack."""

from __future__ import annotations

import time

import click

from revstream.cli.common import settings_for_cli
from streams.clients import admin_client, cluster_metadata
from streams.provisioning import ensure_topics
from streams.stack import EmbeddedStack
from streams.topics import catalog_for

__all__ = ["demo"]


def _step(message: str) -> None:
    click.echo(click.style("==> ", fg="cyan", bold=True) + message)


@click.command()
@click.option("--keep", is_flag=True, help="Leave the stack running afterwards.")
def demo(keep: bool) -> None:
    """Run the pipeline on the embedded stack and print a report."""
    started = time.monotonic()
    base = settings_for_cli(resolve_endpoints=False)
    embedded = EmbeddedStack(base.home)
    _step("starting the embedded stack (broker, PostgreSQL, registry)")
    statuses = embedded.up()
    try:
        for name, status in statuses.items():
            click.echo(f"    {name:<9} {status.state:<9} {status.endpoint or status.detail}")
        settings = base.with_embedded_endpoints()
        _step("provisioning topics")
        actions = ensure_topics(admin_client(settings.kafka), catalog_for(settings).specs())
        created = sum(a.action == "create" for a in actions)
        click.echo(f"    {len(actions)} topics in the catalog, {created} created")
        _step("health check")
        metadata = cluster_metadata(settings.kafka)
        catalog_names = {spec.name for spec in catalog_for(settings).specs()}
        missing = catalog_names - set(metadata.topics)
        click.echo(
            f"    broker answers; {len(catalog_names) - len(missing)}/{len(catalog_names)} topics present"
        )
        if missing:
            raise click.ClickException(f"topics missing after provisioning: {', '.join(sorted(missing))}")
    finally:
        if not keep:
            _step("shutting down")
            embedded.down()
    _step(f"done in {time.monotonic() - started:.1f}s")
