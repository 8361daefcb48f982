"""Copilot cost -> metric samples: AI-credit usage, included credits and seat prices.

Pure functions. `add_usage` reads the body of `GET /organizations/{org}/settings/billing/ai_credit/usage`
(or the enterprise's): `{timePeriod {year, month}, usageItems [{product, sku, model, unitType,
pricePerUnit, grossQuantity, grossAmount, discountQuantity, discountAmount, netQuantity,
netAmount}]}`, quantities in AI credits and amounts in US dollars. A sample series:

    copilot_billing_ai_credits{org="acme",kind="net",product="copilot",sku="copilot_agent",model="gpt-5-mini"} 1234.5
    copilot_billing_amount_usd{org="acme",kind="net",product="copilot",sku="copilot_agent",model="gpt-5-mini"} 12.345

Tolerance: items sharing (product, sku, model) are summed; an absent or empty label field reads
as `none` (Prometheus drops empty labels, and `model` is absent for items billed without a
model); an absent quantity or amount gives no sample of that kind. An item that is not an
object or has a value of the wrong type is dropped and counted, not the whole answer; a body or
`usageItems` of the wrong type raises PayloadError.

Amounts are only ever what GitHub billed (USD) or what the operator configured (any currency,
exported as configured): nothing here converts or adds across currencies.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from copilot_exporter.errors import PayloadError
from copilot_exporter.metrics.fields import Fields
from copilot_exporter.model import FamilyBuilder

USAGE = "settings/billing/ai_credit/usage"

NONE = "none"  # label value of an item field that is absent or empty

# `kind` label -> (quantity field, amount field) of a usage item.
_KINDS: dict[str, tuple[str, str]] = {
    "gross": ("grossQuantity", "grossAmount"),
    "discount": ("discountQuantity", "discountAmount"),
    "net": ("netQuantity", "netAmount"),
}
_ITEM_LABELS = ("product", "sku", "model")


def period_start(year: int, month: int) -> float:
    """UTC midnight of the first day of the month, as Unix seconds."""
    return dt.datetime(year, month, 1, tzinfo=dt.timezone.utc).timestamp()


def add_usage(builder: FamilyBuilder, body: object, year: int, month: int) -> None:
    """Samples of one month's usage answer; `year`/`month` are the month asked for, which the
    answer's `timePeriod`, when present, must match."""
    fields = Fields(body, USAGE)
    period = fields.child("timePeriod")
    if period is not None:
        answered = (period.get("year", "integer"), period.get("month", "integer"))
        if None not in answered and answered != (year, month):
            raise PayloadError(
                f"{USAGE}: timePeriod {answered[0]}-{answered[1]:02d} is not the month asked for, {year}-{month:02d}"
            )
    items = fields.get("usageItems", "list") or []
    for index, item in enumerate(items):
        try:
            _add_item(builder, Fields(item, USAGE, f"usageItems[{index}]"))
        except PayloadError as err:
            builder.problems.note("bad_billing_item", str(err))
    builder.add("copilot_billing_period_start_timestamp_seconds", period_start(year, month))


def _add_item(builder: FamilyBuilder, item: Fields) -> None:
    labels = {key: item.label(key) or NONE for key in _ITEM_LABELS}
    values = [
        (kind, item.number(quantity), item.number(amount)) for kind, (quantity, amount) in _KINDS.items()
    ]  # read all first: all or nothing
    for kind, quantity, amount in values:
        builder.add("copilot_billing_ai_credits", quantity, kind=kind, **labels)
        builder.add("copilot_billing_amount_usd", amount, kind=kind, **labels)


def add_included_credits(
    builder: FamilyBuilder, seats_per_plan: Mapping[str, int], credits_per_plan: Mapping[str, float]
) -> None:
    """Estimated credits included this month: seats of each plan × that plan's credits per
    licence. Seats of a plan without a configured credit count add nothing."""
    known = [(count, credits_per_plan[plan]) for plan, count in seats_per_plan.items() if plan in credits_per_plan]
    if known:
        builder.add("copilot_billing_included_ai_credits", sum(count * per for count, per in known))


def add_seat_prices(
    builder: FamilyBuilder, seats_per_plan: Mapping[str, int], prices: Mapping[str, tuple[float, str]]
) -> None:
    """The configured monthly price of each plan the scope has seats of; none invented."""
    for plan, count in seats_per_plan.items():
        if count > 0 and plan in prices:
            amount, currency = prices[plan]
            builder.add("copilot_seat_price", amount, plan=plan, currency=currency)
