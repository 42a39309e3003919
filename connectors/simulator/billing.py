"""Usage metering, the billing platform's invoices and the payment gateway's payments."""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from fractions import Fraction

from connectors.simulator.dates import add_months, at, month_start, next_month, prorated, round_half_up
from connectors.simulator.story import DAY, HOUR, Contract, Story
from connectors.simulator.world import product_id
from schemas.models import (
    BillingFrequency,
    InvoiceLine,
    InvoicePosted,
    LineKind,
    PaymentFailed,
    PaymentReceived,
    UsageRecorded,
)

__all__ = ["bill", "meter_usage", "pay"]

logger = logging.getLogger(__name__)

FAILURE_REASONS = ("card_declined", "insufficient_funds", "expired_card")


def meter_usage(story: Story, contract: Contract) -> dict[date, tuple[date, int, bool]]:
    """Emit usage; return per usage month: (period start, quantity billing saw, billing errs)."""
    assert contract.meter_start is not None
    rng = story.rng
    per_day = rng.randint(200, 4000)
    metered: dict[date, tuple[date, int, bool]] = {}
    month = month_start(contract.meter_start)
    stop = min(story.end, contract.end)
    while month < stop:
        period_start = max(month, contract.meter_start)
        mismatch = not story.plan.master_missing and story.chance(story.rates.billing_mismatches)
        seen, cursor = 0, period_start
        while cursor < min(next_month(month), stop):
            window_end = min(cursor + timedelta(days=7), next_month(month), stop)
            quantity = per_day * (window_end - cursor).days * rng.randint(70, 130) // 100
            late = not mismatch and not story.plan.master_missing and story.chance(story.rates.late_usage)
            if late:
                # Reported days after the month was invoiced: billing never saw it.
                when = story.jitter(next_month(month) + timedelta(days=rng.randint(2, 6)), 0, DAY - 1)
            else:
                when = at(window_end, rng.randint(60, 3000))
                seen += quantity
            story.add(
                UsageRecorded(
                    **story.envelope(when, "meter", contract.correlation_id),
                    subscription_id=contract.subscription_id,
                    metric="api_calls",
                    quantity=quantity,
                    window_start=at(cursor, 0),
                    window_end=at(window_end, 0),
                ),
                when,
            )
            cursor = window_end
        metered[month] = (period_start, seen, mismatch)
        month = next_month(month)
    return metered


def _period_starts(contract: Contract) -> list[date]:
    starts: set[date] = set(contract.term_starts)
    for term in contract.term_starts:
        anchor = term if term.day == 1 or contract.frequency is BillingFrequency.MONTHLY else next_month(term)
        step = {BillingFrequency.MONTHLY: 1, BillingFrequency.QUARTERLY: 3}.get(contract.frequency)
        if step is None:
            continue
        cursor = (
            next_month(term) if contract.frequency is BillingFrequency.MONTHLY else add_months(anchor, step)
        )
        while cursor < add_months(term, 12):
            starts.add(cursor)
            cursor = add_months(cursor, step)
    return sorted(day for day in starts if day < contract.end)


def _subscription_lines(contract: Contract, period: tuple[date, date], currency: str) -> list[InvoiceLine]:
    lines = []
    for seg_start, seg_end, seg_lines in contract.segments:
        begin, finish = max(period[0], seg_start), min(period[1], seg_end)
        if begin >= finish:
            continue
        for line in seg_lines:
            amount = prorated(line.monthly, begin, finish)
            lines.append(
                InvoiceLine(
                    line_id="IL-0",
                    kind=LineKind.SUBSCRIPTION,
                    product_id=product_id(line.code, currency),
                    quantity=line.quantity,
                    unit_price_minor=line.unit_price,
                    amount_minor=amount,
                    period_start=begin,
                    period_end=finish,
                )
            )
    return lines


def bill(
    story: Story, contract: Contract, metered: dict[date, tuple[date, int, bool]]
) -> list[InvoicePosted]:
    plan, rng, currency = story.plan, story.rng, story.plan.currency
    starts = _period_starts(contract)
    bounds = [*starts, contract.end]
    periods = {start: (start, bounds[index + 1]) for index, start in enumerate(starts)}
    usage_days = {next_month(month) for month in metered}
    invoices = []
    for number, day in enumerate(
        sorted(d for d in set(starts) | usage_days if story.start <= d < story.end), start=1
    ):
        lines = _subscription_lines(contract, periods[day], currency) if day in periods else []
        usage_month = add_months(day, -1)
        if day.day == 1 and usage_month in metered:
            period_start, seen, mismatch = metered[usage_month]
            billed = seen
            if mismatch:
                delta = max(500, seen // 8)
                billed = seen + delta if rng.random() < 0.5 or seen < delta else seen - delta
            lines.append(
                InvoiceLine(
                    line_id="IL-0",
                    kind=LineKind.USAGE,
                    product_id=product_id("API", currency),
                    metric="api_calls",
                    quantity=billed,
                    unit_price_minor=contract.usage.unit_price,
                    amount_minor=billed * contract.usage.unit_price,
                    period_start=period_start,
                    period_end=day,
                )
            )
        if contract.services is not None and day == contract.term_start:
            services = contract.services
            lines.append(
                InvoiceLine(
                    line_id="IL-0",
                    kind=LineKind.SERVICES,
                    product_id=product_id(services.code, currency),
                    quantity=1,
                    unit_price_minor=services.unit_price,
                    amount_minor=services.unit_price,
                    period_start=day,
                    period_end=next_month(day),
                )
            )
        if not lines:
            continue
        taxable = sum(line.amount_minor for line in lines)
        tax = round_half_up(Fraction(taxable * plan.tax_rate_bp, 10_000))
        if tax:
            lines.append(
                InvoiceLine(
                    line_id="IL-0",
                    kind=LineKind.TAX,
                    quantity=1,
                    unit_price_minor=tax,
                    amount_minor=tax,
                    period_start=lines[0].period_start,
                    period_end=lines[0].period_end,
                )
            )
        numbered = tuple(
            line.model_copy(update={"line_id": f"IL-{i}"}) for i, line in enumerate(lines, start=1)
        )
        when = story.jitter(day, 2 * HOUR, 3 * HOUR)
        invoice = InvoicePosted(
            **story.envelope(when, "billing", contract.correlation_id),
            invoice_id=f"INV-{plan.customer_id}-{number:03d}",
            subscription_id=contract.subscription_id,
            currency=currency,
            issued_on=day,
            due_date=day + timedelta(days=30),
            total_minor=sum(line.amount_minor for line in numbered),
            lines=numbered,
        )
        story.add(invoice, when)
        invoices.append(invoice)
    return invoices


def pay(story: Story, invoices: list[InvoicePosted]) -> None:
    rng = story.rng
    for invoice in invoices:
        when = story.jitter(invoice.issued_on + timedelta(days=rng.randint(5, 25)), 6 * HOUR, 20 * HOUR)
        attempt = 1
        if story.chance(story.rates.payment_failures):
            recovers = not story.chance(story.rates.unrecovered_failures)
            for _ in range(1 if recovers else 2):
                _payment(story, invoice, when, attempt, rng.choice(FAILURE_REASONS))
                attempt += 1
                when += timedelta(days=rng.randint(3, 10))
            if not recovers:
                continue
        _payment(story, invoice, when, attempt, None)


def _payment(story: Story, invoice: InvoicePosted, when: datetime, attempt: int, failure: str | None) -> None:
    common = {
        **story.envelope(when, "payments", invoice.correlation_id),
        "payment_id": f"PAY-{invoice.invoice_id}-{attempt}",
        "invoice_id": invoice.invoice_id,
        "amount_minor": invoice.total_minor,
        "currency": invoice.currency,
    }
    if failure is None:
        story.add(PaymentReceived(**common, received_at=when), when)
    else:
        story.add(PaymentFailed(**common, failure_reason=failure, attempt=attempt), when)
