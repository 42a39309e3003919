"""Sink throughput against a raw COPY of the same ledger rows into PostgreSQL, in the same run.

The sink consumes Avro ERP commands from a fresh topic and applies them as it does in production:
decode through the registry, batch, one transaction per batch with its offsets, exactly-once by
command id, deferred double-entry check. Its time runs from the first record received to the last
batch committed (the group join is not throughput). The baseline writes exactly the rows the sink
wrote (every table, the applied-command log included) with one ``COPY`` per table in one
transaction, into an identically migrated database: the fastest way PostgreSQL can take the same
data with the same constraints.

    python -m bench.sink_bench [--n 50000] [--batch-size 2000]

uses the running embedded stack (or ``REVSTREAM_*`` settings), else starts a temporary one.
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

from psycopg import sql
from pydantic import SecretStr

from bench.common import bench_settings
from connectors.ledger.database import connect, create_database, drop_database
from connectors.ledger.migrate import migrate
from connectors.ledger.rows import (
    COLUMNS,
    UPSERT_ORDER,
    LedgerRows,
    applied_row,
    customer_row,
    first_per_key,
    newest_per_key,
    rows_for,
)
from connectors.sink.sink import ErpSink, SinkConfig
from schemas.models.enums import LineKind, SubscriptionStatus
from schemas.models.erp import (
    ErpCommand,
    Invoice,
    JournalEntry,
    JournalLine,
    Payload,
    PaymentApplication,
    RevenueSchedule,
    ScheduleEntry,
    Subscription,
)
from schemas.models.events import InvoiceLine
from streams.clients import admin_client, producer
from streams.provisioning import ensure_topics
from streams.serde import AvroSerde
from streams.settings import DatabaseSettings, Settings
from streams.topics import TopicSpec

__all__ = ["make_commands", "run"]

logger = logging.getLogger(__name__)

START = datetime(2026, 1, 1, tzinfo=UTC)
PARTITIONS = 3


def _lines(*pairs: tuple[str, int, int]) -> tuple[JournalLine, ...]:
    return tuple(JournalLine(account=a, debit_minor=d, credit_minor=c) for a, d, c in pairs)


def _cycle(i: int, customer: str) -> list[Payload]:
    """What the processors emit for one invoice of one customer: 8 commands."""
    month = 1 + i % 12
    day = date(2026, month, 1)
    amount, tax = 120_000 + i % 997, 12_000
    invoice = Invoice(
        invoice_id=f"inv-{i}", subscription_id=f"sub-{customer}", currency="USD", issued_on=day,
        due_date=day + timedelta(days=30), total_minor=amount + tax,
        lines=(
            InvoiceLine(line_id="L1", kind=LineKind.SUBSCRIPTION, product_id="P1", quantity=1,
                        unit_price_minor=amount, amount_minor=amount, period_start=day,
                        period_end=day + timedelta(days=90)),
            InvoiceLine(line_id="L2", kind=LineKind.TAX, quantity=1, unit_price_minor=tax, amount_minor=tax,
                        period_start=day, period_end=day + timedelta(days=90)),
        ),
    )  # fmt: skip
    thirds = [amount // 3, amount // 3, amount - 2 * (amount // 3)]
    months = [f"2026-{month:02d}", f"2026-{month % 12 + 1:02d}", f"2026-{(month + 1) % 12 + 1:02d}"]
    schedule = RevenueSchedule(
        schedule_id=f"sch-{i}", subscription_id=f"sub-{customer}", invoice_id=f"inv-{i}", line_id="L1",
        currency="USD", total_minor=amount,
        entries=tuple(
            ScheduleEntry(month=m, recognition_date=day + timedelta(days=28 + 30 * k), amount_minor=a)
            for k, (m, a) in enumerate(zip(months, thirds, strict=True))
        ),
    )  # fmt: skip
    return [
        invoice,
        JournalEntry(entry_id=f"je-inv-{i}", posting_date=day, currency="USD", description="invoice",
                     lines=_lines(("1200", amount + tax, 0), ("2400", 0, amount), ("2200", 0, tax))),
        schedule,
        *(
            JournalEntry(entry_id=f"je-rec-{i}-{k}", posting_date=entry.recognition_date, currency="USD",
                         description="recognition", lines=_lines(("2400", entry.amount_minor, 0),
                                                                 ("4000", 0, entry.amount_minor)))
            for k, entry in enumerate(schedule.entries)
        ),
        PaymentApplication(payment_id=f"pay-{i}", invoice_id=f"inv-{i}", currency="USD",
                           amount_minor=amount + tax, applied_minor=amount + tax, excess_minor=0,
                           received_at=START + timedelta(days=i % 300)),
        Subscription(subscription_id=f"sub-{customer}", order_id=f"ord-{customer}",
                     status=SubscriptionStatus.ACTIVE, currency="USD", term_start=date(2026, 1, 1),
                     term_end=date(2027, 1, 1), version=i),
    ]  # fmt: skip


def make_commands(n: int, customers: int = 500) -> list[ErpCommand]:
    """Return ``n`` valid ERP commands: invoice cycles of ``customers`` customers."""
    commands: list[ErpCommand] = []
    i = 0
    while len(commands) < n:
        customer = f"C-{i % customers:05d}"
        for position, payload in enumerate(_cycle(i, customer)):
            commands.append(
                ErpCommand.model_validate(
                    {
                        "command_id": f"bench-{i}-{position}",
                        "source_event_id": f"evt-{i}",
                        "correlation_id": f"corr-{i}",
                        "customer_id": customer,
                        "legal_entity": "LE-US",
                        "issued_at": START + timedelta(minutes=i),
                        "payload": payload,
                    }
                )
            )
        i += 1
    return commands[:n]


def _ledger_rows(commands: list[ErpCommand], topic: str) -> LedgerRows:
    """The rows of the final ledger: for versioned tables only the version that wins."""
    rows = LedgerRows()
    for offset, command in enumerate(commands):
        rows.add("applied_commands", applied_row(command, topic, 0, offset))
        rows.extend(rows_for(command))
    rows.tables["customers"] = first_per_key((customer_row(c) for c in commands), key=lambda r: r[0])
    for table, order in UPSERT_ORDER.items():
        rows.tables[table] = newest_per_key(rows.get(table), key=lambda r: r[0], order=order)
    return rows


def _rows_in(conninfo: str) -> int:
    total = 0
    with connect(conninfo) as connection:
        for table in COLUMNS:
            row = connection.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))
            ).fetchone()
            total += int(str(row[0])) if row else 0
    return total


def _raw_copy(conninfo: str, rows: LedgerRows) -> float:
    with connect(conninfo) as connection:
        cursor = connection.cursor()
        started = time.perf_counter()
        for table, table_rows in rows.tables.items():
            statement = sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(table), sql.SQL(", ").join(map(sql.Identifier, COLUMNS[table]))
            )
            with cursor.copy(statement) as copy:
                for row in table_rows:
                    copy.write_row(row)
        connection.commit()
        return time.perf_counter() - started


def run(settings: Settings, n: int = 50_000, batch_size: int = 2000) -> dict[str, Any]:
    """Measure sink and raw-COPY throughput on a fresh topic and databases; return the figures."""
    token = uuid.uuid4().hex[:8]
    topic = f"bench-{token}.erp.commands"
    ensure_topics(
        admin_client(settings.kafka), [TopicSpec(topic, "commands", PARTITIONS, 1, key="customer_id")]
    )
    commands = make_commands(n)
    serde = AvroSerde.from_settings(settings.registry)
    kafka = producer(settings.kafka)
    for command in commands:
        kafka.produce(topic, key=command.customer_id.encode(), value=serde.serialize(topic, command))
        kafka.poll(0)
    kafka.flush(60)

    server = settings.database.conninfo()
    names = {"sink": f"bench_sink_{token}", "copy": f"bench_copy_{token}"}
    databases = {role: create_database(server, name) for role, name in names.items()}
    try:
        for conninfo in databases.values():
            migrate(conninfo)
        sink_settings = settings.model_copy(
            update={"database": DatabaseSettings(url=SecretStr(databases["sink"]))}
        )
        config = SinkConfig(group_id=f"bench-{token}", topic=topic, batch_size=batch_size, max_records=n)
        # The harness holds every command as a model (about 600k objects, six times what a sink
        # process holds): without the freeze, each full collection the sink's allocations trigger
        # rescans them, which cost the measured sink 0.5 s of 5 (gc callbacks) and is the harness's
        # cost, not the sink's. The baseline runs frozen too.
        gc.freeze()
        try:
            stats = ErpSink(sink_settings, config, serde=serde).run()
            if stats.applied != n:
                raise RuntimeError(f"the sink applied {stats.applied} of {n} commands")
            rows = _ledger_rows(commands, topic)
            ledger_rows = _rows_in(databases["sink"])
            if rows.count() != ledger_rows:
                raise RuntimeError(f"row count mismatch: sink ledger {ledger_rows}, baseline {rows.count()}")
            copy_seconds = _raw_copy(databases["copy"], rows)
        finally:
            gc.unfreeze()
        if _rows_in(databases["copy"]) != ledger_rows:
            raise RuntimeError("the baseline COPY did not produce the sink's ledger")
    finally:
        for name in names.values():
            drop_database(server, name)
    sink_seconds = stats.busy_seconds
    sink_rows_per_s = ledger_rows / sink_seconds
    copy_rows_per_s = ledger_rows / copy_seconds
    return {
        "commands": n,
        "ledger_rows": ledger_rows,
        "sink_rows_written_incl_superseded_versions": stats.rows_written,
        "batch_size": batch_size,
        "batches": stats.batches,
        "sink_seconds": round(sink_seconds, 3),
        "sink_commands_per_s": round(n / sink_seconds),
        "sink_ledger_rows_per_s": round(sink_rows_per_s),
        "copy_seconds": round(copy_seconds, 3),
        "copy_ledger_rows_per_s": round(copy_rows_per_s),
        "copy_commands_per_s": round(n / copy_seconds),
        "ratio": round(sink_rows_per_s / copy_rows_per_s, 3),
    }


def main() -> None:
    """Run the benchmark and print its figures as JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=50_000, help="ERP commands to apply")
    parser.add_argument("--batch-size", type=int, default=2000, help="the sink's batch size")
    args = parser.parse_args()
    logging.getLogger("librdkafka").setLevel(logging.CRITICAL)
    with bench_settings() as settings:
        print(json.dumps(run(settings, args.n, args.batch_size), indent=2))


if __name__ == "__main__":
    main()
