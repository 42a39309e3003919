"""The reference workload (``bench.peers.workload``) as a Quix Streams app, as a user would write it.

Runs in its own virtualenv (``bench/.peers/quix``): ``python -m bench.peers.quix_app …``. The ten
canonical topics are concatenated into one StreamingDataFrame; dedupe and the per-customer totals
live in Quix's own state (RocksDB with changelog topics), under the message key, which is the
customer id: a repeat or a conflict of an event carries the same key as the original. Stops
itself once every input record is settled (output, dead-lettered or dropped) and prints its figures.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile

from quixstreams import Application, State

from bench.peers.workload import CONFLICT, Codec, DecodeError, Watch, arguments, fingerprint, money

Routed = tuple[str, bytes, str]
"""(route: ``out``, ``dead`` or ``drop``; value to produce; dead-letter reason)."""


def main() -> None:
    """Build the app from the command line and run it until every record is settled."""
    parser = arguments(__doc__.splitlines()[0])
    parser.add_argument("--poll-timeout", type=float, required=True, help="consumer_poll_timeout, seconds")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    codec = Codec(args.registry, args.output_schema_id)
    watch = Watch()
    settled = {"records": 0}
    with tempfile.TemporaryDirectory(prefix="bench-quix-") as state_dir:
        app = Application(
            broker_address=args.bootstrap,
            consumer_group=f"bench-quix-{hashlib.sha1(args.output.encode()).hexdigest()[:10]}",
            auto_offset_reset="earliest",
            state_dir=state_dir,
            consumer_poll_timeout=args.poll_timeout,
            # The embedded profile's client settings (PEERS.md), as revstream's own clients use them.
            consumer_extra_config={
                "session.timeout.ms": 6000,
                "heartbeat.interval.ms": 1000,
                "fetch.wait.max.ms": 50,
            },
            producer_extra_config={"enable.idempotence": False, "max.in.flight.requests.per.connection": 1},
            loglevel="WARNING",
        )
        topics = [
            app.topic(t, value_deserializer="bytes", key_deserializer="bytes") for t in args.topics.split(",")
        ]
        output = app.topic(args.output, value_serializer="bytes", key_serializer="bytes")
        deadletter = app.topic(args.deadletter, value_serializer="bytes", key_serializer="bytes")
        merged = app.dataframe(topics[0])
        for topic in topics[1:]:
            merged = merged.concat(app.dataframe(topic))
        # Quix names a concatenated stream's state (and its changelog topic) after all its topics:
        # over 255 characters for ten, which Kafka refuses. A short, stable id keeps the same store.
        short = hashlib.sha1(merged.stream_id.encode()).hexdigest()[:12]
        sdf = merged.__dataframe_clone__(stream=merged.stream, stream_id=f"peer-{short}")

        def process(value: bytes, state: State) -> Routed:
            watch.start()
            settled["records"] += 1
            if settled["records"] >= args.n:
                app.stop()
            try:
                record, body = codec.decode(value)
            except DecodeError as exc:
                return ("dead", value, exc.reason)
            event_id = record["event_id"]
            digest = fingerprint(body)
            seen = state.get(f"id:{event_id}")
            if seen is not None:
                return ("drop", b"", "") if seen == digest else ("dead", value, CONFLICT)
            state.set(f"id:{event_id}", digest)
            count = int(state.get("count", 0)) + 1
            amount = int(state.get("amount", 0)) + money(record)
            state.set("count", count)
            state.set("amount", amount)
            return ("out", codec.encode(event_id, record["customer_id"], count, amount), "")

        routed = sdf.apply(process, stateful=True)
        outputs = routed.filter(lambda r: r[0] == "out")
        outputs.apply(lambda r: r[1]).to_topic(output)
        dead = routed.filter(lambda r: r[0] == "dead")
        dead = dead.set_headers(lambda value, key, timestamp, headers: [("reason", value[2].encode())])
        dead.apply(lambda r: r[1]).to_topic(deadletter)
        app.run()
    watch.report(settled["records"], contender="quix", poll_timeout_s=args.poll_timeout)


if __name__ == "__main__":
    main()
