"""AI-credit usage of a month (`.../settings/billing/ai_credit/usage`), as GitHub bills it.

Usage grows day by day up to the world's today (later months are empty), per SKU and model,
with fractional credits at $0.01 each. The included pool (seats × credits per licence of the
plan) is taken as a discount until it runs out; what is left is the net amount.
"""

from __future__ import annotations

import calendar
import datetime

from copilot_exporter.simulator.world import Draws, OrgSpec, World

PRICE_PER_CREDIT = 0.01
INCLUDED_CREDITS = {"business": 1900, "enterprise": 3900}
_MODELS = ("gpt-4.1", "claude-sonnet-4.5", "gpt-5-mini", "gemini-2.5-pro", "o4-mini")
# SKU -> (models billed under it, share of a user's daily credits); None = the item has no model.
_SKUS: dict[str, tuple[tuple[str | None, ...], float]] = {
    "copilot_chat": (_MODELS, 0.35),
    "copilot_agent_mode": (_MODELS[:3], 0.35),
    "copilot_cli": (("gpt-5-mini", "claude-sonnet-4.5"), 0.1),
    "copilot_cloud_agent": (("claude-sonnet-4.5",), 0.15),
    "copilot_code_review": ((None,), 0.05),
}


def _orgs(world: World, kind: str, name: str) -> tuple[OrgSpec, ...]:
    if kind != "org":
        return world.enterprise_orgs(name)
    org = world.org(name)
    assert org is not None, name
    return (org,)


def _days(world: World, year: int, month: int) -> int:
    """Days of the month with usage so far: all of a past month, up to today in this one."""
    first = datetime.date(year, month, 1)
    if first > world.today:
        return 0
    if (year, month) == (world.today.year, world.today.month):
        return world.today.day
    return calendar.monthrange(year, month)[1]


def usage(world: World, kind: str, name: str, year: int, month: int) -> dict:
    """The answer for a scope ("org" or "enterprise") and a month."""
    orgs = _orgs(world, kind, name)
    days = _days(world, year, month)
    users = sum(org.users for org in orgs)
    # Credits per user and day differ between scopes, so some stay within their pool and some not.
    intensity = Draws(world.seed, "billing-intensity", kind, name).int(40, 110)
    gross: dict[tuple[str, str | None], float] = {}
    for sku, (models, share) in _SKUS.items():
        for model in models:
            d = Draws(world.seed, "billing", kind, name, year, month, sku, model)
            per_day = users * intensity * share / len(models)
            total = sum(per_day * (0.6 + 0.8 * d.random()) for _ in range(days))
            if total:
                gross[(sku, model)] = round(total, 1)
    pool = sum(org.seat_count * INCLUDED_CREDITS.get(org.plan_type, 0) for org in orgs)
    covered = min(1.0, pool / sum(gross.values())) if gross else 0.0
    items = [_item(sku, model, quantity, covered) for (sku, model), quantity in gross.items()]
    return {
        "timePeriod": {"year": year, "month": month},
        ("organization" if kind == "org" else "enterprise"): name,
        "usageItems": items,
    }


def _item(sku: str, model: str | None, quantity: float, covered: float) -> dict:
    discount = round(quantity * covered, 1)
    item = {
        "product": "copilot",
        "sku": sku,
        "unitType": "ai-credits",
        "pricePerUnit": PRICE_PER_CREDIT,
        "grossQuantity": quantity,
        "grossAmount": round(quantity * PRICE_PER_CREDIT, 4),
        "discountQuantity": discount,
        "discountAmount": round(discount * PRICE_PER_CREDIT, 4),
        "netQuantity": round(quantity - discount, 1),
        "netAmount": round((quantity - discount) * PRICE_PER_CREDIT, 4),
    }
    if model is not None:
        item["model"] = model
    return item
