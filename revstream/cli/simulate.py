"""``revstream simulate``: a deterministic SaaS company's events, to files or to the topics."""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path

import click

from connectors.simulator import FaultRates, SimulationConfig, simulate
from connectors.simulator.config import DEFAULT_START
from connectors.simulator.output import publish_simulation, write_files
from revstream.cli.common import settings_for_cli
from streams.clients import cluster_metadata

__all__ = ["simulate_command"]

logger = logging.getLogger(__name__)

_RATE = click.FloatRange(0.0, 1.0)


@click.command("simulate", short_help="Simulate a SaaS company: events and ground truth.")
@click.option(
    "--months", type=click.IntRange(1, 60), default=3, show_default=True, help="Months to simulate."
)
@click.option(
    "--seed", type=int, default=7, show_default=True, help="Same seed, same records, byte for byte."
)
@click.option("--customers", type=click.IntRange(1, 100_000), default=20, show_default=True)
@click.option(
    "--start",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    default=DEFAULT_START.isoformat(),
    show_default=True,
    help="First day simulated (the first of a month).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("simulation"),
    show_default=True,
    help="Directory for events/*.jsonl, master/*.jsonl, raw_faults.jsonl and summary.json.",
)
@click.option("--publish", is_flag=True, help="Also publish the records, in order, to the topics.")
@click.option("--duplicate-rate", type=_RATE, default=FaultRates.duplicates, show_default=True)
@click.option("--conflict-rate", type=_RATE, default=FaultRates.conflicts, show_default=True)
@click.option("--corrupt-rate", type=_RATE, default=FaultRates.corrupt, show_default=True)
@click.option("--unknown-schema-rate", type=_RATE, default=FaultRates.unknown_schema, show_default=True)
@click.option(
    "--missing-master-rate",
    type=_RATE,
    default=FaultRates.missing_master,
    show_default=True,
    help="Share of customers whose master record never arrives.",
)
def simulate_command(
    months: int,
    seed: int,
    customers: int,
    start: datetime,
    out: Path,
    publish: bool,
    duplicate_rate: float,
    conflict_rate: float,
    corrupt_rate: float,
    unknown_schema_rate: float,
    missing_master_rate: float,
) -> None:
    """Simulate a SaaS company and write its events (and the ground truth) to --out.

    Customers in three legal entities and currencies, quotes (some with unapproved discounts),
    orders, activations, usage (some late, some duplicated), invoices (some with usage mismatches),
    payments (some failing), renewals and amendments, and master data that sometimes arrives late or
    never. summary.json says what a correct pipeline must make of it.
    """
    config = SimulationConfig(
        months=months,
        seed=seed,
        customers=customers,
        start=date(start.year, start.month, start.day),
        faults=FaultRates(
            duplicates=duplicate_rate,
            conflicts=conflict_rate,
            corrupt=corrupt_rate,
            unknown_schema=unknown_schema_rate,
            missing_master=missing_master_rate,
        ),
    )
    simulation = simulate(config)
    written = write_files(simulation, out)
    records = simulation.summary["records"]
    click.echo(
        f"simulated {months} months from {config.start}: {records['events_published_total']} events, "
        f"{sum(records['master_published'].values())} master records, {records['raw_faults']} raw faults; "
        f"wrote {len(written)} files to {out} (ground truth: {out / 'summary.json'})"
    )
    if publish:
        settings = settings_for_cli()
        cluster_metadata(settings.kafka)
        counts = publish_simulation(simulation, settings)
        click.echo(
            f"published {counts['events']} events, {counts['master']} master records and "
            f"{counts['raw']} raw faults to namespace {settings.topics.namespace}"
        )
