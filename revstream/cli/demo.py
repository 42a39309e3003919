"""``revstream demo``: the main job, end to end on the embedded stack."""

from __future__ import annotations

import click

from revstream.cli.common import settings_for_cli
from revstream.demo.run import DemoOptions, run_demo
from streams.stack import EmbeddedStack

__all__ = ["demo"]


@click.command(short_help="Run the whole pipeline on generated data; report.")
@click.option("--months", type=click.IntRange(1, 24), default=3, show_default=True, help="Months simulated.")
@click.option("--customers", type=click.IntRange(1, 2000), default=30, show_default=True)
@click.option("--seed", type=int, default=7, show_default=True, help="Simulation seed.")
@click.option("--workers", type=click.IntRange(1, 4), default=1, show_default=True, help="Worker processes.")
@click.option("--deadline", type=float, default=300.0, show_default=True, help="Seconds allowed to drain.")
@click.option("--keep", is_flag=True, help="Leave the stack running afterwards.")
def demo(months: int, customers: int, seed: int, workers: int, deadline: float, keep: bool) -> None:
    """Run the whole pipeline on generated data and print a report."""
    base = settings_for_cli(resolve_endpoints=False)
    stack = EmbeddedStack(base.home)
    options = DemoOptions(months, customers, seed, workers, deadline, keep)
    try:
        run_demo(stack, base, options)
    except BaseException:
        if not keep:
            stack.down()
        raise
