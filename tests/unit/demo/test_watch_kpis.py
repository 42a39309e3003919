"""The demo's and the KPI exporter's view of the exceptions topic: approvals close what they name."""

from __future__ import annotations

from processors.kpis import CycleEvents, compute_kpis
from revstream.demo.watch import PipelineOutput
from schemas.models.enums import ReasonCode
from tests.unit.processors.test_kpis import exception


def test_an_approved_discount_is_counted_raised_once_and_no_longer_open() -> None:
    raised = exception("x1", ReasonCode.DISCOUNT_NOT_APPROVED)
    # The worker's closing revision of an approved discount keeps the exception's id (approval_closures).
    closed = exception(
        "x1", ReasonCode.DISCOUNT_NOT_APPROVED, exception_key="x1", revision=1, resolution="approved"
    )
    other = exception("x2", ReasonCode.DISCOUNT_NOT_APPROVED)
    output = PipelineOutput()
    for record in (raised, other, closed):
        output.take_exception(record)

    assert output.exceptions_by_reason() == {"DISCOUNT_NOT_APPROVED": 2}
    kpis = compute_kpis(CycleEvents(), [], output.kpi_exceptions(), 0, 1, 0)
    assert kpis.open_exceptions == 1
