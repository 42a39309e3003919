"""The demo's closing report: the ledger, what the pipeline did, the KPIs, and the ground truth.

The ledger figures come from SQL (the same report as ``revstream ledger report``); the pipeline
figures from the output topics and the workers' metrics; the check compares the ledger with the
simulator's independently computed expectations, to the minor unit.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import psycopg

from connectors.exceptions.queue import AGE_BUCKETS
from connectors.exceptions.stats import queue_stats
from connectors.exceptions.store import Filters, QueueStore
from connectors.ledger.database import connect
from connectors.ledger.report import build_report, format_minor, render_text
from connectors.simulator.simulate import Simulation
from processors.kpis import Kpis, compute_kpis, standing_mismatches
from revstream.demo.watch import PipelineOutput
from schemas.models.enums import ReasonCode
from streams.lag.model import Snapshot
from streams.queue_settings import load_queue_settings
from streams.settings import Settings

__all__ = ["lag_lines", "render"]

_INVOICES = """
SELECT legal_entity, currency, count(*), sum(total_minor)::bigint FROM invoices GROUP BY 1, 2
"""
_CASH = """
SELECT legal_entity, currency, sum(debit_minor - credit_minor)::bigint
  FROM journal_lines WHERE account = '1000' GROUP BY 1, 2
"""


def _ledger_facts(conninfo: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    with connect(conninfo) as connection:
        invoices: dict[str, Any] = defaultdict(dict)
        for entity, currency, count, total in connection.execute(_INVOICES).fetchall():
            invoices[str(entity)][str(currency)] = {"count": count, "total_minor": total}
        cash: dict[str, Any] = defaultdict(dict)
        for entity, currency, total in connection.execute(_CASH).fetchall():
            cash[str(entity)][str(currency)] = total
        revenue: dict[str, Any] = defaultdict(lambda: defaultdict(lambda: defaultdict(dict)))
        for row in build_report(connection).revenue_by_month:
            revenue[row.legal_entity][row.currency][row.month][row.account] = row.amount_minor
    return dict(invoices), dict(cash), _plain(revenue)


def _plain(tree: Any) -> Any:
    return {k: _plain(v) for k, v in tree.items()} if isinstance(tree, dict) else tree


def _check(label: str, ok: bool, detail: str = "") -> str:
    mark = "ok  " if ok else "DIFF"
    return f"  [{mark}] {label}" + (f": {detail}" if detail and not ok else "")


def ground_truth_lines(
    output: PipelineOutput, summary: dict[str, Any], ledger: tuple[dict[str, Any], ...], duplicates: float
) -> list[str]:
    """Compare the run with the simulator's summary; one line per check."""
    invoices, cash, revenue = ledger
    expected_dead = {
        (entry["stage"], reason): entry["count"]
        for reason, entry in summary["expected_dead_letters"]["by_reason"].items()
    }
    dead = dict(output.dead_letters_by_reason())
    items = summary["expected_exceptions"]["items"]
    discounts = sum(1 for i in items if i["reason"] == "DISCOUNT_NOT_APPROVED")
    mismatches = {
        (i["subscription_id"], i["metric"], i["period"]): (
            i["quantity_difference"],
            i["amount_difference_minor"],
        )
        for i in items
        if i["reason"] == "USAGE_BILLING_MISMATCH"
    }
    found_discounts = sum(
        1 for e in output.exceptions.values() if e.reason_code is ReasonCode.DISCOUNT_NOT_APPROVED
    )
    found_mismatches = {
        key: (e.quantity_difference, e.amount_difference_minor)
        for key, e in standing_mismatches(output.kpi_exceptions()).items()
    }
    expected_cash = {
        entity: {currency: facts["total_minor"] for currency, facts in currencies.items()}
        for entity, currencies in summary["expected_cash"].items()
    }
    return [
        _check("duplicates dropped", duplicates == summary["duplicates"]["total"],
               f"{duplicates:g} dropped, {summary['duplicates']['total']} expected"),
        _check("dead letters by stage and reason", dead == expected_dead, f"{dead} vs {expected_dead}"),
        _check("unapproved discounts raised", found_discounts == discounts,
               f"{found_discounts} vs {discounts}"),
        _check("usage-to-billing mismatches standing (quantity and amount)", found_mismatches == mismatches,
               f"{len(found_mismatches)} vs {len(mismatches)}"),
        _check("invoices per entity and currency (count, total)", invoices == summary["expected_invoices"],
               f"{invoices} vs {summary['expected_invoices']}"),
        _check("revenue per entity, currency, month and account", revenue == summary["expected_revenue"]),
        _check("cash per entity and currency", cash == expected_cash, f"{cash} vs {expected_cash}"),
    ]  # fmt: skip


def _kpi_lines(kpis: Kpis) -> list[str]:
    def days(value: tuple[float, float] | None) -> str:
        return f"median {value[0]:.1f} d, p90 {value[1]:.1f} d" if value else "n/a"

    def pct(value: float | None) -> str:
        return f"{100 * value:.1f} %" if value is not None else "n/a"

    leakage = ", ".join(f"{format_minor(v, c)} {c}" for c, v in kpis.usage_leakage_minor.items()) or "none"
    rates = ", ".join(f"{r} {100 * v:.2f} %" for r, v in kpis.exception_rate_by_reason.items()) or "none"
    return [
        f"  order-to-activation cycle time   {days(kpis.order_to_activation_days)}",
        f"  order-to-invoice cycle time      {days(kpis.order_to_invoice_days)}",
        f"  touchless processing rate        {pct(kpis.touchless_rate)}",
        f"  exception rate by reason         {rates}",
        f"  dead-letter volume               {kpis.dead_letters}",
        f"  duplicate rate                   {pct(kpis.duplicate_rate)}",
        f"  usage-to-billing leakage         {leakage}",
        f"  open exceptions                  {kpis.open_exceptions}",
        f"  invoice accuracy                 {pct(kpis.invoice_accuracy)}",
    ]


def lag_lines(snapshot: Snapshot, groups: dict[str, str]) -> list[str]:
    """One line per ``{role: group}``: the lag measured at the end of the run, in words."""
    lines = []
    for role, name in groups.items():
        label = f"  consumer lag, {role} group".ljust(35)
        group = snapshot.group(name)
        if group is None or not group.partitions:
            lines.append(f"{label}not measured: {name} has no committed offsets (not drained)")
            continue
        seconds = group.max_lag_seconds
        behind = "unknown" if math.isnan(seconds) else f"{seconds:.1f} s"
        state = "drained" if group.sum_lag == 0 else "not drained"
        lines.append(
            f"{label}{group.sum_lag:,} records, {behind} behind over {len(group.partitions)} partitions: "
            f"{state} ({group.status.name}, {name})"
        )
    return lines


def queue_lines(connection: psycopg.Connection[Any], now: datetime) -> list[str]:
    """The exception queue by team and age (open items), with what is still held for an approval."""
    store = QueueStore(connection, load_queue_settings())
    stats = queue_stats(store.rows(Filters(), now), now, store.holds(waiting_only=True)).as_dict()
    labels = [label for label, _ in AGE_BUCKETS]
    lines = [
        f"  open {stats['open']}, closed {stats['closed']}, past their SLA {stats['sla_breaches']}",
        f"    {'team':<12} {'open':>5} {'late':>5}  " + "  ".join(f"{label:>5}" for label in labels),
    ]
    for team, detail in stats["by_team"].items():
        ages = "  ".join(f"{detail['by_age'][label]:>5}" for label in labels)
        lines.append(f"    {team:<12} {detail['open']:>5} {detail['sla_breaches']:>5}  {ages}")
        for reason, count in detail["by_reason"].items():
            lines.append(f"      {reason:<26} {count:>4}")
    held = ", ".join(f"{format_minor(v, c)} {c}" for c, v in stats["held_order_value_minor"].items())
    lines.append(f"  orders held for an approval: {stats['held_orders']}" + (f" ({held})" if held else ""))
    return lines


def render(
    settings: Settings,
    output: PipelineOutput,
    simulation: Simulation,
    metrics: dict[str, Any],
    drained: bool,
    lag: tuple[Snapshot, dict[str, str]] | None = None,
    approval: Sequence[str] = (),
) -> str:
    """Return the whole report as text; ``approval`` tells the story of the approval worked through."""
    conninfo = settings.database.conninfo()
    with connect(conninfo) as connection:
        ledger_text = render_text(build_report(connection, as_of=simulation.config.end))
    lines = ["", "ERP ledger", "==========", ledger_text, "", "Pipeline", "========"]
    lines.append(f"  events consumed          {metrics['events_consumed']:g}")
    lines.append(f"  duplicates dropped       {metrics['duplicates_dropped']:g}")
    lines.append(f"  ERP commands             {len(output.commands)}")
    lines.append("  business exceptions by reason:")
    for reason, count in sorted(output.exceptions_by_reason().items()):
        lines.append(f"    {reason:<28} {count}")
    lines.append("  dead letters by stage and reason:")
    for (stage, reason), count in sorted(output.dead_letters_by_reason().items()):
        lines.append(f"    {stage:<10} {reason:<24} {count}")
    kpis = compute_kpis(
        output.cycle, list(output.commands.values()), output.kpi_exceptions(),
        len(output.dead_letters), int(metrics["events_consumed"]), int(metrics["duplicates_dropped"]),
    )  # fmt: skip
    lines += ["", "Process intelligence", "====================", *_kpi_lines(kpis)]
    if lag is not None:
        lines += lag_lines(*lag)
    with connect(conninfo, autocommit=True) as connection:
        queue = queue_lines(connection, datetime.now(UTC))
    lines += ["", "Exception queue (by team and age)", "=================================", *queue, *approval]
    lines += ["", "Against the simulator's ground truth", "===================================="]
    lines += ground_truth_lines(
        output, simulation.summary, _ledger_facts(conninfo), metrics["duplicates_dropped"]
    )
    if not drained:
        lines.append("  (the deadline passed before the streams were drained: figures may be partial)")
    return "\n".join(lines)
