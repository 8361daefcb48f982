"""Source `seats`: Copilot licences and how many are used.

Organizations: billing summary plus the seat list; enterprises: the seat list (one seat per
granting organization, each user counted once). The seat list is paged to the end, 100 a page.
The seat counts per plan also give the cost figures that need no billing API: the estimated
included AI credits and the operator's seat prices (`metrics/billing.py`).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Mapping

from copilot_exporter.errors import PayloadError
from copilot_exporter.github.client import GitHubClient, GitHubError
from copilot_exporter.metrics import seats
from copilot_exporter.metrics.billing import add_included_credits, add_seat_prices
from copilot_exporter.model import MAX_SERIES_PER_FAMILY, ORG, FamilyBuilder, Scope
from copilot_exporter.sources import Result, explain_forbidden

SOURCE = "seats"


def _paths(scope: Scope) -> tuple[str, str]:
    base = "/orgs/{org}" if scope.kind == ORG else "/enterprises/{enterprise}"
    return base, base.format(org=scope.name, enterprise=scope.name)


def fetch(
    client: GitHubClient,
    scope: Scope,
    now: float | None = None,
    *,
    included_credits: Mapping[str, float] | None = None,
    prices: Mapping[str, tuple[float, str]] | None = None,
    max_series: int = MAX_SERIES_PER_FAMILY,
) -> Result:
    """Seats of the scope; with `included_credits` (credits per licence, per plan) and `prices`
    (monthly amount and currency, per plan) also the included credits and seat prices."""
    now = time.time() if now is None else now
    route_base, path_base = _paths(scope)
    builder = FamilyBuilder(scope.labels(), max_series)
    try:
        if scope.kind == ORG:
            route = route_base + "/copilot/billing"
            billing = client.get(path_base + "/copilot/billing", route, conditional=True).json(route)
            if not isinstance(billing, dict):
                raise PayloadError(f"{route}: expected an object")
            seats.add_billing(builder, billing)
        route = route_base + "/copilot/billing/seats"
        accumulator = seats.SeatsAccumulator(now)
        pages = client.get_pages(
            path_base + "/copilot/billing/seats",
            route,
            {"per_page": 100},
            items=lambda page: page.get("seats") if isinstance(page, dict) else None,
        )
        for page in pages:
            seat_list = page.get("seats") if isinstance(page, dict) else None
            if not isinstance(seat_list, list):
                raise PayloadError(f"{route}: seats: expected a list")
            accumulator.add_page(seat_list)
    except GitHubError as err:
        explain_forbidden(err, SOURCE, scope.kind)
        if err.status == 422:
            err.reason = "billing_problem"
            err.hint = "GitHub reports a billing problem for Copilot (no active subscription, or billing is not set up)"
        raise
    accumulator.add_to(builder)
    plans = accumulator.plans()
    add_included_credits(builder, plans, included_credits or {})
    add_seat_prices(builder, plans, prices or {})
    builder.add("copilot_report_day_timestamp_seconds", now, report="seats")
    return Result.built(builder, {"seats": dt.datetime.fromtimestamp(now, dt.timezone.utc).date().isoformat()})
