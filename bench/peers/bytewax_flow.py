"""The reference workload (``bench.peers.workload``) as a Bytewax dataflow, as a user would write it.

Runs in its own virtualenv (``bench/.peers/bytewax``): ``python -m bench.peers.bytewax_flow …``.
Bytewax assigns the partitions itself (no consumer group) and reads them to their end (``tail=False``),
so the flow ends on its own once the input is read. Dedupe is a ``stateful_map`` keyed by event id,
the totals one keyed by customer id; state is snapshotted to Bytewax's SQLite recovery store every
epoch (its default 10 s), which is its durability, as changelogs are Quix's and revstream's.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeAlias

import bytewax.operators as op
from bytewax._bytewax import cli_main
from bytewax.connectors.kafka import KafkaSinkMessage, KafkaSourceMessage
from bytewax.connectors.kafka import operators as kop
from bytewax.dataflow import Dataflow
from bytewax.recovery import RecoveryConfig, init_db_dir

from bench.peers.workload import CONFLICT, Codec, DecodeError, Watch, arguments, fingerprint, money

Message: TypeAlias = KafkaSourceMessage[bytes | None, bytes | None]
Sink: TypeAlias = KafkaSinkMessage[bytes | None, bytes | None]
EPOCH = timedelta(seconds=10)


def build(args: argparse.Namespace, watch: Watch, settled: dict[str, int]) -> Dataflow:
    """The dataflow: decode → dedupe by event id → totals by customer → outputs and dead letters."""
    codec = Codec(args.registry, args.output_schema_id)
    flow = Dataflow("revstream-bench-peer")
    source = kop.input(
        "in",
        flow,
        brokers=[args.bootstrap],
        topics=args.topics.split(","),
        tail=False,
        add_config={"fetch.wait.max.ms": "50"},
    )

    def decode(message: Message) -> tuple[str, Any]:
        watch.start()
        settled["records"] += 1
        try:
            record, body = codec.decode(message.value)
        except DecodeError as exc:
            return ("dead", _dead(message, exc.reason, args.deadletter))
        return ("ok", (message, record, body))

    decoded = op.map("decode", source.oks, decode)
    split = op.branch("decoded", decoded, lambda item: item[0] == "ok")
    undecodable = op.map("undecodable", split.falses, lambda item: item[1])
    by_id = op.key_on(
        "by_event_id", op.map("unwrap", split.trues, lambda item: item[1]), lambda m: m[1]["event_id"]
    )

    def dedupe(seen: str | None, item: tuple[Message, dict[str, Any], bytes]) -> tuple[str, tuple[str, Any]]:
        digest = fingerprint(item[2])
        if seen is None:
            return digest, ("new", item)
        return seen, ("drop", None) if seen == digest else ("dead", _dead(item[0], CONFLICT, args.deadletter))

    judged = op.map("unkey", op.stateful_map("dedupe", by_id, dedupe), lambda kv: kv[1])
    kept = op.filter("drop_repeats", judged, lambda item: item[0] != "drop")
    fresh = op.branch("fresh", kept, lambda item: item[0] == "new")
    conflicts = op.map("conflicts", fresh.falses, lambda item: item[1])
    by_customer = op.key_on(
        "by_customer", op.map("unwrap_new", fresh.trues, lambda item: item[1]), lambda m: m[1]["customer_id"]
    )

    def totals(
        state: tuple[int, int] | None, item: tuple[Message, dict[str, Any], bytes]
    ) -> tuple[tuple[int, int], Sink]:
        message, record, _ = item
        count, amount = state or (0, 0)
        count, amount = count + 1, amount + money(record)
        value = codec.encode(record["event_id"], record["customer_id"], count, amount)
        return (count, amount), KafkaSinkMessage(message.key, value, topic=args.output)

    outputs = op.map("unkey_totals", op.stateful_map("totals", by_customer, totals), lambda kv: kv[1])
    kop.output(
        "out",
        op.merge("all", outputs, conflicts, undecodable),
        brokers=[args.bootstrap],
        topic=args.output,
        add_config={"enable.idempotence": "false", "max.in.flight.requests.per.connection": "1"},
    )
    return flow


def _dead(message: Message, reason: str, topic: str) -> Sink:
    # The original bytes and key, with the reason in a header, as every dead letter here keeps them.
    return KafkaSinkMessage(message.key, message.value, topic=topic, headers=[("reason", reason.encode())])


def main() -> None:
    """Run the dataflow over the input topics to their end, then print the figures."""
    parser = arguments(__doc__.splitlines()[0])
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    watch = Watch()
    settled = {"records": 0}
    flow = build(args, watch, settled)
    with tempfile.TemporaryDirectory(prefix="bench-bytewax-") as recovery:
        init_db_dir(Path(recovery), 1)
        cli_main(flow, epoch_interval=EPOCH, recovery_config=RecoveryConfig(Path(recovery)))
    watch.report(settled["records"], contender="bytewax")


if __name__ == "__main__":
    main()
