"""Source `billing`: the AI credits and dollars GitHub billed this month (COPILOT-APIS.md §7).

One call per refresh: `GET /organizations/{org}/settings/billing/ai_credit/usage` or
`GET /enterprises/{enterprise}/settings/billing/ai_credit/usage`, with `year` and `month` of the
current UTC month. At a month boundary the figures switch to the new month (which starts near
zero); `copilot_billing_period_start_timestamp_seconds` says which month is served.

Enterprise billing endpoints accept classic personal access tokens only, so an entry can give
this source its own credentials (`billing_github`); the refresher passes the matching client.
"""

from __future__ import annotations

import datetime as dt
import time

from copilot_exporter.github.client import GitHubClient, GitHubError
from copilot_exporter.metrics import billing
from copilot_exporter.model import ORG, MAX_SERIES_PER_FAMILY, FamilyBuilder, Scope
from copilot_exporter.sources import Result

SOURCE = "billing"

HINTS = {
    403: (
        "the token may not read billing: organizations need an organization admin (fine-grained "
        '"Administration" read); enterprises need a classic token with manage_billing:enterprise '
        "(set billing_github on the entry)"
    ),
    404: "usage-based billing in AI credits is not available for this account, or the name is wrong",
    422: "GitHub reports a billing problem (no active subscription, or billing is not set up)",
}


def route(scope: Scope) -> str:
    base = "/organizations/{org}" if scope.kind == ORG else "/enterprises/{enterprise}"
    return base + "/settings/billing/ai_credit/usage"


def fetch(
    client: GitHubClient, scope: Scope, now: float | None = None, max_series: int = MAX_SERIES_PER_FAMILY
) -> Result:
    moment = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.timezone.utc)
    template = route(scope)
    path = template.format(org=scope.name, enterprise=scope.name)
    try:
        body = client.get(path, template, {"year": moment.year, "month": moment.month}, conditional=True).json(template)
    except GitHubError as err:
        if err.status == 422:
            err.reason = "billing_problem"
        err.hint = HINTS.get(err.status, "")
        raise
    builder = FamilyBuilder(scope.labels(), max_series)
    billing.add_usage(builder, body, moment.year, moment.month)
    return Result.built(builder, {"billing": f"{moment.year}-{moment.month:02d}"})
