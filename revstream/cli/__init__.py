"""The ``revstream`` command: one entry point for everything a user runs.

Each concern registers its command group in ``COMMANDS`` below, explicitly (no discovery). Errors a
user can act on end as one line on stderr and exit code 1; anything else is a defect and keeps its
traceback.
"""

from __future__ import annotations

import logging
import sys
import traceback
import warnings

import click

from revstream import __version__
from revstream.cli.common import USER_ERRORS
from revstream.cli.demo import demo
from revstream.cli.dlq import dlq
from revstream.cli.exceptions import exceptions
from revstream.cli.gateway import gateway
from revstream.cli.kpis import kpis
from revstream.cli.lag import lag
from revstream.cli.ledger import ledger
from revstream.cli.publish import publish
from revstream.cli.registry import registry
from revstream.cli.schemas import schemas
from revstream.cli.simulate import simulate_command
from revstream.cli.sink import sink
from revstream.cli.stack import stack
from revstream.cli.topics import topics
from revstream.cli.worker import worker
from streams.secrets import scrub

__all__ = ["cli", "main"]

COMMANDS: list[click.Command] = [
    stack,
    topics,
    schemas,
    demo,
    registry,
    ledger,
    sink,
    exceptions,
    publish,
    gateway,
    simulate_command,
    worker,
    lag,
    kpis,
    dlq,
]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="revstream")
@click.option("-v", "--verbose", is_flag=True, help="Log debug detail to stderr.")
def cli(verbose: bool) -> None:
    """revstream: a Kafka pipeline from quote to cash, exact to the cent."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    # librdkafka's own connection chatter is noise for a CLI user; errors surface as one line.
    logging.getLogger("librdkafka").setLevel(logging.DEBUG if verbose else logging.CRITICAL)


for _command in COMMANDS:
    cli.add_command(_command)


def main() -> None:
    """Run the CLI, turning user errors into one line and a non-zero exit."""
    warnings.filterwarnings("ignore", module="platformdirs")
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except USER_ERRORS as exc:
        # A library's message may quote what it could not parse (libpq quotes a bad conninfo).
        click.echo(f"revstream: error: {scrub(str(exc))}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        sys.exit(130)
    except Exception:
        # A defect keeps its traceback for the report, without the secrets it may quote.
        sys.stderr.write(scrub(traceback.format_exc()))
        sys.exit(1)
