"""``revstream worker``: run one stream-processing worker (several may run and share partitions)."""

from __future__ import annotations

from pathlib import Path

import click

from revstream.cli.common import settings_for_cli

__all__ = ["worker"]


@click.command(short_help="Run a stream-processing worker.")
@click.option(
    "--web-port", type=int, default=None, help="Port of /metrics (default REVSTREAM_WORKER_WEB_PORT)."
)
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory of this worker's table stores (default REVSTREAM_WORKER_DATA_DIR); one per worker.",
)
def worker(web_port: int | None, data_dir: Path | None) -> None:
    """Run a processors worker until stopped (Ctrl-C or SIGTERM)."""
    from processors.worker import run_worker

    run_worker(settings_for_cli(), data_dir=data_dir, web_port=web_port)
