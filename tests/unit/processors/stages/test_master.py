"""Master data lookups: the decoded-customer cache is bounded, reference data is kept whole."""

from __future__ import annotations

from typing import Any

from processors.stages.master import MasterLookup
from tests.unit.processors import factories as f


class FakeSerde:
    def decode_model(self, raw: bytes, model: Any, topic: str | None = None) -> Any:
        return f.customer(raw.decode())


def test_the_customer_cache_is_bounded_and_a_miss_reads_the_table_again() -> None:
    table = {f"C{i}".encode(): f"C{i}".encode() for i in range(5)}
    lookup: MasterLookup[Any] = MasterLookup("customer", table, FakeSerde(), cache_max=2)  # type: ignore[arg-type]
    for i in range(5):
        assert lookup.get(f"C{i}").customer_id == f"C{i}"
    assert len(lookup._cache) == 2
    assert lookup.get("C0").customer_id == "C0"  # evicted, read from the table again
    # Reference data has no table behind its cache: nothing is evicted there.
    products: MasterLookup[Any] = MasterLookup("product", None, FakeSerde(), cache_max=1)  # type: ignore[arg-type]
    for i in range(3):
        products._remember(f"P{i}", f.product(f"P{i}"))
    assert len(products._cache) == 3
