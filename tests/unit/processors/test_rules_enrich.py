"""Enrichment: what master data an event lacks, and which master-data version wins."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given
from hypothesis import strategies as st

from processors.rules.enrich import MasterView, master_key, master_newer, missing_master_data, product_ids
from tests.unit.processors import factories as f

FULL = MasterView(
    customers={"C1": f.customer()},
    products={"P1": f.product(), "P2": f.product("P2")},
    legal_entities={"LE-DE": f.legal_entity()},
)


def test_nothing_missing_when_all_master_data_is_there() -> None:
    assert missing_master_data(f.invoice(), FULL) == []
    assert missing_master_data(f.usage(), FULL) == []
    assert missing_master_data(f.quote(), FULL) == []


def test_reports_each_missing_kind_with_its_id() -> None:
    event = f.invoice(
        lines=(f.invoice_line(product_id="P7"), f.invoice_line("IL2", product_id="P1"), f.usage_line()),
        envelope={"customer_id": "C9", "legal_entity": "LE-FR"},
    )
    assert missing_master_data(event, FULL) == ["customer:C9", "product:P7", "legal_entity:LE-FR"]
    assert missing_master_data(event, MasterView()) == [
        "customer:C9",
        "product:P7",
        "product:P1",
        "legal_entity:LE-FR",
    ]


def test_events_without_product_lines_need_only_customer_and_legal_entity() -> None:
    assert missing_master_data(f.payment(), MasterView()) == ["customer:C1", "legal_entity:LE-DE"]
    assert missing_master_data(f.usage(), MasterView(customers={"C1": f.customer()})) == [
        "legal_entity:LE-DE"
    ]


def test_product_ids_are_distinct_in_order_and_skip_lines_without_a_product() -> None:
    event = f.invoice(
        lines=(
            f.invoice_line("A", product_id="P2"),
            f.usage_line("B"),
            f.invoice_line("C", product_id="P1"),
            f.invoice_line("D", product_id="P2"),
        )
    )
    assert product_ids(event) == ["P2", "P1"]
    assert product_ids(f.payment()) == []


def test_master_key_of_each_kind() -> None:
    assert [master_key(r) for r in (f.customer("C3"), f.product("P3"), f.legal_entity("LE-X"))] == [
        "C3",
        "P3",
        "LE-X",
    ]


def test_newer_wins_by_version_then_updated_at() -> None:
    v1 = f.customer(version=1)
    assert master_newer(None, v1)
    assert master_newer(v1, f.customer(version=2, updated_at=f.T0 - timedelta(days=1)))
    assert not master_newer(f.customer(version=2), f.customer(version=1, updated_at=f.T0 + timedelta(days=1)))
    assert master_newer(v1, f.customer(version=1, updated_at=f.T0 + timedelta(seconds=1)))
    assert not master_newer(v1, v1)


@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5)), min_size=1, max_size=20))
def test_applying_updates_newer_wins_ends_at_the_maximum_whatever_the_order(
    versions: list[tuple[int, int]],
) -> None:
    records = [f.product(version=v, updated_at=f.T0 + timedelta(seconds=s)) for v, s in versions]
    current = None
    for record in records:
        if master_newer(current, record):
            current = record
    assert current is not None
    assert (current.version, current.updated_at) == max((r.version, r.updated_at) for r in records)
