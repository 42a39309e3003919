"""``python -m bench`` (``make bench``): every contender side by side on the embedded stack.

Writes ``bench/results/<timestamp>.json`` and ``latest.json``, ``latest.md`` (also printed) and
``latest.png``. Uses the running embedded stack (or ``REVSTREAM_*`` settings), else starts a
temporary one. ``--quick`` uses tiny sizes (a smoke of the harness, figures meaningless).
``--dedupe-rss`` measures only a worker's memory as its dedupe state grows (``dedupe_rss.json``);
``--parked-rss`` only a worker's memory through a master-data outage (``parked_rss.json``).
``--lag-scrape`` measures only the lag exporter: one poll and one scrape of 50 groups x 60 partitions
(``lag_scrape.json``).
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
from pathlib import Path

from bench import dedupe_rss, lag_scrape, parked_rss
from bench.common import REPO_ROOT, bench_settings
from bench.harness import FULL, QUICK, benchmark
from bench.report import markdown, write

__all__ = ["main"]

logger = logging.getLogger(__name__)


def main() -> None:
    """Run the benchmark and print the Markdown table."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per figure (the median counts)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes: checks the harness, not speed")
    parser.add_argument(
        "--peers",
        choices=["build", "existing", "off"],
        default="build",
        help="Quix Streams and Bytewax beside revstream: build their virtualenvs when missing (default), "
        "run only those already built, or none",
    )
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "bench" / "results", help="output folder")
    parser.add_argument(
        "--dedupe-rss", action="store_true", help="only measure a worker's RSS as its dedupe state grows"
    )
    parser.add_argument("--dedupe-ids", type=int, default=5_000_000, help="distinct ids for --dedupe-rss")
    parser.add_argument(
        "--parked-rss", action="store_true", help="only measure a worker's RSS through a master-data outage"
    )
    parser.add_argument("--parked-records", type=int, default=100_000, help="events parked for --parked-rss")
    parser.add_argument(
        "--lag-scrape", action="store_true", help="only measure the lag exporter's poll and scrape"
    )
    parser.add_argument("--lag-groups", type=int, default=50, help="consumer groups for --lag-scrape")
    parser.add_argument(
        "--lag-partitions", type=int, default=60, help="partitions per group for --lag-scrape"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s bench: %(message)s")
    logging.getLogger("librdkafka").setLevel(logging.CRITICAL)
    if args.lag_scrape:
        with bench_settings() as settings:
            figures = lag_scrape.run(settings, args.lag_groups, args.lag_partitions, max(args.runs, 3))
        print(json.dumps(figures, indent=2))
        print(f"results: {lag_scrape.save(figures, args.out)}")
        return
    if args.dedupe_rss or args.parked_rss:
        with bench_settings() as settings, tempfile.TemporaryDirectory(prefix="bench-logs-") as logs:
            if args.dedupe_rss:
                name, figures = "dedupe_rss", dedupe_rss.run(settings, args.dedupe_ids, Path(logs))
            else:
                name, figures = "parked_rss", parked_rss.run(settings, args.parked_records, Path(logs))
        args.out.mkdir(parents=True, exist_ok=True)
        text = json.dumps(figures, indent=2)
        (args.out / f"{name}.json").write_text(text + "\n", encoding="utf-8")
        print(text)
        return
    with bench_settings() as settings, tempfile.TemporaryDirectory(prefix="bench-logs-") as logs:
        results = benchmark(settings, QUICK if args.quick else FULL, args.runs, Path(logs), args.peers)
    paths = write(results, args.out)
    print(markdown(results))
    print(f"results: {paths['json']}  table: {paths['markdown']}  plot: {paths['plot']}")


if __name__ == "__main__":
    main()
