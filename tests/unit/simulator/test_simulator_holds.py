"""The ground truth of held deals: out of the ledger figures while held, in once the quote is approved."""

from __future__ import annotations

from connectors.simulator.config import SimulationConfig
from connectors.simulator.emissions import Emission
from connectors.simulator.expectations import expect
from connectors.simulator.simulate import simulate
from revstream.demo.approval import held_deal, with_deal


def test_a_held_deal_posts_nothing_until_its_quote_is_approved() -> None:
    company = simulate(SimulationConfig(months=2, seed=7, customers=6))
    deal = held_deal(company)
    _, held = with_deal(company, deal, approved=False)
    _, approved = with_deal(company, deal, approved=True)
    base = expect(company.emissions)
    assert base["expected_holds"] == []
    (hold,) = held.summary["expected_holds"]
    assert (hold["quote_id"], hold["events"]) == (deal.quote_id, [e.event_id for e in deal.booking])
    assert hold["order_value_minor"] == {
        deal.booking[1].value_of("currency"): deal.booking[1].value_of("total_minor")
    }
    assert held.summary["expected_invoices"] == base["expected_invoices"]
    assert approved.summary["expected_holds"] == []
    assert approved.summary["expected_invoices"] != base["expected_invoices"]
    # The quote's discount is raised either way: an approval given later does not unsay it.
    discounts = [
        i for i in approved.summary["expected_exceptions"]["items"] if i["quote_id"] == deal.quote_id
    ]
    assert len(discounts) == 1


def test_a_corrected_quote_releases_the_opportunity() -> None:
    company = simulate(SimulationConfig(months=2, seed=7, customers=6))
    deal = held_deal(company)
    quote = deal.emissions[1].record
    assert quote is not None
    corrected = quote.model_copy(update={"event_id": "E-corrected", "quote_id": "Q-corrected", "lines": ()})
    emissions = (
        *company.emissions,
        *deal.emissions,
        Emission("event", "quote_approved", "k", corrected),
    )
    assert expect(emissions)["expected_holds"] == []
