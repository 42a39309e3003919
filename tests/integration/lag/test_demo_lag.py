"""`revstream demo --keep` reports the measured lag of its groups, and `revstream lag --once` sees them."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from revstream.demo.services import ChildService
from streams.stack import EmbeddedStack, free_port
from tests.conftest import wait_for
from tests.integration.lag.conftest import environment_without_revstream, revstream_cli


def test_demo_reports_measured_lag_and_lag_once_shows_both_groups(tmp_path: Path) -> None:
    home = Path(tmp_path / "h")
    env = {**environment_without_revstream(), "REVSTREAM_HOME": str(home)}

    def revstream(*args: str) -> subprocess.CompletedProcess[str]:
        return revstream_cli(env, *args, cwd=tmp_path, timeout_s=400)

    try:
        demo = revstream("demo", "--months", "2", "--customers", "8", "--deadline", "240", "--keep")
        assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
        lines = {
            role: re.search(rf"^  consumer lag, {role} group +(.*)$", demo.stdout, re.M)
            for role in ("worker", "sink", "queue")
        }
        for role, line in lines.items():
            assert line is not None, f"no {role} lag line in the report"
            assert re.match(
                r"0 records, 0\.0 s behind over \d+ partitions: drained \(OK, demo-\w+-", line[1]
            ), line[1]
        namespace = re.search(r"\(OK, (demo-\w+)-processors\)", demo.stdout)
        assert namespace is not None

        once = revstream("lag", "--once", "--group", re.escape(namespace[1]) + "-.*", "--interval", "0.3")
        assert once.returncode == 0, once.stdout + once.stderr
        groups = [line.split()[0] for line in once.stdout.splitlines()[1:] if not line.startswith(" ")]
        assert groups == [f"{namespace[1]}-exceptions", f"{namespace[1]}-processors", f"{namespace[1]}-sink"]
        assert all(" OK" in line for line in once.stdout.splitlines()[1:])
        assert_kpis_match_the_report(env, namespace[1], demo.stdout)
    finally:
        EmbeddedStack(home).down()


def assert_kpis_match_the_report(env: dict[str, str], namespace: str, report: str) -> None:
    """`revstream kpis serve` on the kept demo gives the report's process-intelligence figures."""
    port = free_port()
    kpis = ChildService(
        "kpis", ["kpis", "serve", "--port", str(port), "--interval", "0.5"],
        {**env, "REVSTREAM_TOPICS_NAMESPACE": namespace}, Path(env["REVSTREAM_HOME"]) / "kpis.log", port,
    ).start()  # fmt: skip
    try:
        wait_for(lambda: kpis.metric("revstream_kpi_polls_total") >= 2, 60, "two KPI polls")
        touchless = re.search(r"touchless processing rate +([\d.]+) %", report)
        assert touchless is not None
        assert round(100 * kpis.metric("revstream_kpi_touchless_ratio"), 1) == float(touchless[1])
        opened = re.search(r"open exceptions +(\d+)", report)
        assert opened is not None and kpis.metric("revstream_kpi_open_exceptions") == int(opened[1])
        cycle = re.search(r"order-to-invoice cycle time +median ([\d.]+) d, p90 ([\d.]+) d", report)
        assert cycle is not None
        median = kpis.metric("revstream_kpi_order_to_invoice_seconds", quantile="0.5") / 86_400
        assert f"{median:.1f}" == cycle[1]
        for reason, count in re.findall(r"^    ([A-Z_]+) +(\d+)$", report, re.M):
            if reason in {"DISCOUNT_NOT_APPROVED", "USAGE_BILLING_MISMATCH"}:
                assert kpis.metric("revstream_kpi_business_exceptions", reason=reason) == int(count)
    finally:
        kpis.stop()
