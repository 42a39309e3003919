"""One customer's life at the simulated SaaS company, as the canonical events its systems emit.

A new customer gets a quote (sometimes with a discount nobody approved, then a corrected one),
an order, a subscription activation and, when onboarding was sold, a services milestone. An
existing customer's contract renews inside the horizon. Every contract meters API usage (some of
it reported late, after its month was invoiced), is invoiced by the billing platform (subscription
lines in advance, usage in arrears by calendar month, services, tax; sometimes with a wrong usage
quantity), is paid (sometimes after failed attempts, sometimes never) and may be amended or have
its revenue schedule adjusted.

Pure and deterministic: everything random comes from the ``random.Random`` given, and no clock is
read. Amendments and the ordinary schedule adjustments happen to monthly-billed contracts and take
effect on the first of a month. Some quarterly and annual contracts also get a schedule adjustment
effective in the middle of a month inside an invoiced period, which happens after that invoice but
is published before it (arrival order is not guaranteed): its prospective re-spread moves minor
units between months, and the expectations re-spread the schedule by DOMAIN.md's rule. Some
services milestones carry no amount: they name their order line, and the amount is what was
invoiced for its product.
"""

from __future__ import annotations

import logging
import random
from datetime import date, datetime, timedelta
from fractions import Fraction

from connectors.simulator.billing import bill, meter_usage, pay
from connectors.simulator.config import BusinessRates
from connectors.simulator.dates import add_months, at, next_month, round_half_up
from connectors.simulator.story import HOUR, Contract, Line, Story
from connectors.simulator.world import CustomerPlan, product_id, spec
from schemas.models import (
    ActivationKind,
    Approval,
    BillingFrequency,
    ContractAmended,
    ContractRenewed,
    InvoicePosted,
    LineKind,
    OrderAccepted,
    QuoteApproved,
    QuoteLine,
    RevenueScheduleAdjusted,
    ServiceActivated,
)

__all__ = ["customer_story"]

logger = logging.getLogger(__name__)

ADJUSTMENT_REASONS = (
    "finance review: pricing correction",
    "finance review: service credit",
    "audit follow-up",
)


def customer_story(
    plan: CustomerPlan, rng: random.Random, start: date, end: date, rates: BusinessRates
) -> Story:
    """Return the records one customer's systems emit over [start, end)."""
    story = Story(plan, rng, start, end, rates)
    contract = _existing_contract(story) if plan.renewing else _new_business(story)
    if contract is None:
        return story
    _amend(story, contract)
    _renew(story, contract)
    _adjust(story, contract)
    metered = meter_usage(story, contract)
    invoices = bill(story, contract, metered)
    pay(story, invoices)
    _adjust_ahead(story, contract, invoices)
    return story


# -- selling ----------------------------------------------------------------------------------------


def _quote(
    story: Story, when: datetime, number: int, lines: list[tuple[Line, int]], approved_bp: int | None
) -> str:
    plan = story.plan
    quote_id = f"Q-{plan.customer_id}-{number}"
    approvals = (
        ()
        if approved_bp is None
        else (Approval(approver="deal-desk", level=2, approved_at=when, max_discount_bp=approved_bp),)
    )
    quote_lines = tuple(
        QuoteLine(
            line_id=f"QL-{index}",
            product_id=product_id(line.code, plan.currency),
            quantity=line.quantity,
            list_price_minor=spec(line.code).prices[plan.currency],
            net_price_minor=line.unit_price,
            discount_bp=discount,
        )
        for index, (line, discount) in enumerate(lines, start=1)
    )
    story.add(
        QuoteApproved(
            **story.envelope(when, "crm", f"OPP-{plan.customer_id}-1"),
            quote_id=quote_id,
            currency=plan.currency,
            lines=quote_lines,
            approvals=approvals,
        ),
        when,
    )
    return quote_id


def _priced(story: Story, line_id: str, code: str, quantity: int, discount_bp: int) -> tuple[Line, int]:
    product = spec(code)
    unit = product.prices[story.plan.currency] * (10_000 - discount_bp) // 10_000
    return Line(line_id, code, product.kind, quantity, unit), discount_bp


def _new_business(story: Story) -> Contract | None:
    plan, rng = story.plan, story.rng
    horizon_days = (story.end - story.start).days
    sign_day = story.start + timedelta(days=rng.randint(0, max(0, horizon_days // 2)))
    seats = rng.randint(5, 80)
    discount, approved_bp = rng.choice((0, 500, 1000, 1500)), None
    unapproved = plan.unapproved_discount
    if plan.approved_over_max:
        discount, approved_bp = 2000, 2500
    lines = [_priced(story, "OL-1", "PLATFORM", seats, discount)]
    if story.chance(story.rates.analytics):
        lines.append(_priced(story, "OL-2", "ANALYTICS", 1, rng.choice((0, 500))))
    usage, _ = _priced(story, "OL-3", "API", 0, 0)
    services = None
    if story.chance(story.rates.services):
        priced = _priced(story, "OL-4", "ONBOARDING", 1, rng.choice((0, 1000)))
        services = priced[0]
        lines.append(priced)
    quote_at = story.jitter(sign_day, 9 * HOUR, 17 * HOUR)
    number = 1
    if unapproved:
        # Sales sent 25% off the platform without a deal-desk approval; CPQ let it through, the
        # policy stage must flag it. The corrected quote two days later is within the allowance.
        _quote(story, quote_at, number, [_priced(story, "OL-1", "PLATFORM", seats, 2500), *lines[1:]], None)
        quote_at, number = quote_at + timedelta(days=2), 2
    quote_id = _quote(story, quote_at, number, lines, approved_bp)
    order_day = quote_at.date() + timedelta(days=rng.randint(1, 4))
    term_start = order_day + timedelta(days=rng.randint(1, 5))
    contract = Contract(
        subscription_id=f"SUB-{plan.customer_id}-1",
        correlation_id=f"OPP-{plan.customer_id}-1",
        frequency=plan.frequency,
        term_start=term_start,
        segments=[
            (
                term_start,
                add_months(term_start, 12),
                tuple(line for line, _ in lines if line.code != "ONBOARDING"),
            )
        ],
        usage=usage,
        services=services,
        order_id=f"ORD-{plan.customer_id}-1",
        meter_start=term_start,
        term_starts=[term_start],
    )
    order_at = story.jitter(order_day, 10 * HOUR, 16 * HOUR)
    story.add(
        OrderAccepted(
            **story.envelope(order_at, "crm", contract.correlation_id),
            order_id=contract.order_id,
            quote_id=quote_id,
            subscription_id=contract.subscription_id,
            currency=plan.currency,
            term_start=term_start,
            term_end=contract.end,
            billing_frequency=contract.frequency,
            lines=tuple(line.order_line(plan.currency) for line, _ in [*lines, (usage, 0)]),
        ),
        order_at,
    )
    _activate(
        story,
        contract,
        story.jitter(term_start, 5 * HOUR, 6 * HOUR),
        "OL-1",
        ActivationKind.SUBSCRIPTION,
        None,
    )
    if services is not None:
        day = term_start + timedelta(days=rng.randint(10, 45))
        # Without an amount, the milestone names its order line; the ledger takes what was invoiced.
        amount = None if story.chance(story.rates.milestones_without_amount) else services.monthly
        _activate(
            story,
            contract,
            story.jitter(day, 12 * HOUR, 18 * HOUR),
            "OL-4",
            ActivationKind.SERVICES_MILESTONE,
            amount,
        )
    return contract


def _activate(
    story: Story, contract: Contract, when: datetime, line_id: str, kind: ActivationKind, amount: int | None
) -> None:
    story.add(
        ServiceActivated(
            **story.envelope(when, "provisioning", contract.correlation_id),
            order_id=contract.order_id,
            subscription_id=contract.subscription_id,
            activated_at=when,
            line_kind=kind,
            line_id=line_id,
            milestone_amount_minor=amount,
            currency=story.plan.currency,
        ),
        when,
    )


def _existing_contract(story: Story) -> Contract:
    plan, rng = story.plan, story.rng
    months = (story.end.year - story.start.year) * 12 + story.end.month - story.start.month
    renewal = add_months(story.start, rng.randint(1, months))
    lines = [_priced(story, "OL-1", "PLATFORM", rng.randint(10, 120), rng.choice((0, 500, 1000)))[0]]
    if story.chance(story.rates.analytics):
        lines.append(_priced(story, "OL-2", "ANALYTICS", 1, 0)[0])
    old_start = add_months(renewal, -12)
    return Contract(
        subscription_id=f"SUB-{plan.customer_id}-1",
        correlation_id=f"SUB-{plan.customer_id}-1",
        frequency=plan.frequency,
        term_start=old_start,
        segments=[(old_start, renewal, tuple(lines))],
        usage=_priced(story, "OL-3", "API", 0, 0)[0],
        order_id=f"ORD-{plan.customer_id}-0",
        meter_start=story.start,
        term_starts=[old_start],
    )


# -- contract changes -------------------------------------------------------------------------------


def _first_of_months_after(story: Story, contract: Contract) -> list[date]:
    # Strictly after the term started and after the horizon's first month, so the change and the
    # event announcing it both fall inside the horizon.
    days, cursor = [], max(next_month(contract.term_start), add_months(story.start, 1))
    while cursor < min(story.end, contract.end):
        days.append(cursor)
        cursor = add_months(cursor, 1)
    return days


def _amend(story: Story, contract: Contract) -> None:
    candidates = _first_of_months_after(story, contract)
    if contract.frequency is not BillingFrequency.MONTHLY or not candidates or not story.plan.amends:
        return
    effective = story.rng.choice(candidates)
    seg_start, seg_end, lines = contract.segments[-1]
    platform = lines[0]
    changed = Line(
        platform.line_id,
        platform.code,
        platform.kind,
        max(1, platform.quantity + story.rng.randint(-3, 20)),
        platform.unit_price,
    )
    contract.segments[-1] = (seg_start, effective, lines)
    contract.segments.append((effective, seg_end, (changed, *lines[1:])))
    when = max(
        story.jitter(effective - timedelta(days=story.rng.randint(3, 12)), 9 * HOUR, 17 * HOUR),
        at(contract.term_start, 11 * HOUR),
    )
    story.add(
        ContractAmended(
            **story.envelope(when, "crm", contract.correlation_id),
            subscription_id=contract.subscription_id,
            currency=story.plan.currency,
            effective_date=effective,
            lines=(changed.order_line(story.plan.currency),),
        ),
        when,
    )


def _renew(story: Story, contract: Contract) -> None:
    while contract.end < story.end:
        renewal = contract.end
        lines = tuple(
            Line(
                line.line_id,
                line.code,
                line.kind,
                line.quantity,
                round_half_up(Fraction(line.unit_price * 105, 100)),
            )
            for line in contract.segments[-1][2]
        )
        new_end = add_months(renewal, 12)
        contract.segments.append((renewal, new_end, lines))
        contract.term_starts.append(renewal)
        when = max(
            story.jitter(renewal - timedelta(days=story.rng.randint(20, 30)), 9 * HOUR, 17 * HOUR),
            at(story.start, 3 * HOUR),
        )
        story.add(
            ContractRenewed(
                **story.envelope(when, "crm", contract.correlation_id),
                subscription_id=contract.subscription_id,
                currency=story.plan.currency,
                new_term_start=renewal,
                new_term_end=new_end,
                lines=tuple(line.order_line(story.plan.currency) for line in (*lines, contract.usage)),
            ),
            when,
        )


def _adjust(story: Story, contract: Contract) -> None:
    candidates = _first_of_months_after(story, contract)
    if contract.frequency is not BillingFrequency.MONTHLY or not candidates or not story.plan.adjusts:
        return
    effective = story.rng.choice(candidates)
    when = story.jitter(effective, 10 * HOUR, 12 * HOUR)
    story.add(
        RevenueScheduleAdjusted(
            **story.envelope(when, "finance", contract.correlation_id),
            subscription_id=contract.subscription_id,
            effective_date=effective,
            reason=story.rng.choice(ADJUSTMENT_REASONS),
        ),
        when,
    )


def _adjust_ahead(story: Story, contract: Contract, invoices: list[InvoicePosted]) -> None:
    if contract.frequency is BillingFrequency.MONTHLY or not story.chance(story.rates.adjustments_ahead):
        return
    spanning = [
        (invoice, line)
        for invoice in invoices
        for line in invoice.lines
        if line.kind is LineKind.SUBSCRIPTION and next_month(line.period_start) < line.period_end
    ]
    if not spanning:
        return
    invoice, line = story.rng.choice(spanning)
    # The 16th of the period's second month: mid-month, inside the invoiced period.
    effective = next_month(line.period_start).replace(day=16)
    occurred = invoice.occurred_at + timedelta(days=story.rng.randint(1, 5))
    # Published an hour before the invoice it changes, though it happened after it.
    published = invoice.occurred_at - timedelta(hours=1)
    story.add(
        RevenueScheduleAdjusted(
            **story.envelope(occurred, "finance", contract.correlation_id),
            subscription_id=contract.subscription_id,
            effective_date=effective,
            reason=story.rng.choice(ADJUSTMENT_REASONS),
        ),
        published,
    )
