"""Source `legacy`: the legacy Copilot Metrics API (`GET .../copilot/metrics`).

GitHub shut it down on github.com on 2026-04-02 (it answers 404 there since), but GHES and
archives still carry it. We ask for a few recent days and export the newest one present;
`fetch_days` and `day_result` are the two halves of that, shared with `copilot-exporter backfill`.
"""

from __future__ import annotations

import datetime as dt

from copilot_exporter.errors import PayloadError
from copilot_exporter.github.client import GitHubClient, GitHubError
from copilot_exporter.metrics import legacy
from copilot_exporter.metrics.fields import Fields
from copilot_exporter.model import ENTERPRISE, MAX_SERIES_PER_FAMILY, FamilyBuilder, Scope, day_timestamp
from copilot_exporter.sources import Result, explain_forbidden

SOURCE = "legacy"  # the `source` label and config value; its day keeps report="metrics"
HINTS = {
    404: "github.com shut the legacy Copilot Metrics API down on 2026-04-02: set `source: reports` "
    "(or `auto`) to use the Copilot usage metrics reports API",
    422: 'the "Copilot Metrics API access" policy is disabled: an owner must enable it in the '
    "organization or enterprise Copilot policies",
}
# With `source: auto`, the legacy API is only asked after the reports API answered 404.
UNKNOWN_TO_BOTH = (
    "neither the reports API nor the legacy API knows this scope: check its name and that the token can see it"
)


def route_and_path(scope: Scope) -> tuple[str, str]:
    base = "/enterprises/{enterprise}" if scope.kind == ENTERPRISE else "/orgs/{org}"
    route = base + ("/team/{team_slug}" if scope.team else "") + "/copilot/metrics"
    path = route.format(enterprise=scope.name, org=scope.name, team_slug=scope.team)
    return route, path


def fetch(
    client: GitHubClient,
    scope: Scope,
    lookback_days: int,
    today: dt.date | None = None,
    after_reports_404: bool = False,
    max_series: int = MAX_SERIES_PER_FAMILY,
) -> Result:
    today = today or dt.datetime.now(dt.timezone.utc).date()
    since = today - dt.timedelta(days=lookback_days)
    try:
        days = fetch_days(client, scope, since)
    except GitHubError as err:
        if after_reports_404 and err.status == 404:
            err.hint = UNKNOWN_TO_BOTH
        raise
    if not days:
        return Result(
            (),
            notes=(
                f"the legacy API reported no day since {since} (a scope needs five or more licensed "
                "members to be reported); exporting no data for it",
            ),
        )
    newest = max(days)
    return day_result(scope, newest, days[newest], max_series)


def fetch_days(client: GitHubClient, scope: Scope, since: dt.date) -> dict[str, dict]:
    """Every day the API reports for a scope since `since`: {YYYY-MM-DD: day object}.

    All pages are read; a date given twice keeps its first object.
    """
    route, path = route_and_path(scope)
    pages: list[dict] = []
    try:
        for page in client.get_pages(path, route, {"since": f"{since}T00:00:00Z", "per_page": 28}):
            if not isinstance(page, list):
                raise PayloadError(f"{route}: expected an array of days, got {type(page).__name__}")
            pages.extend(page)
    except GitHubError as err:
        if err.status in HINTS:
            err.hint = HINTS[err.status]
        explain_forbidden(err, SOURCE, scope.kind)
        raise
    days: dict[str, dict] = {}
    for record in pages:
        days.setdefault(_date(record, route), record)
    return days


def day_result(scope: Scope, day: str, record: dict, max_series: int = MAX_SERIES_PER_FAMILY) -> Result:
    """The families of one reported day, as served for it (also by `copilot-exporter backfill`)."""
    builder = FamilyBuilder(scope.labels(), max_series)
    legacy.add_day(builder, record)
    builder.add("copilot_report_day_timestamp_seconds", day_timestamp(day), report="metrics")
    return Result.built(builder, {"metrics": day})


def _date(day: object, route: str) -> str:
    value = Fields(day, route).get("date", "string")
    try:
        return dt.date.fromisoformat(value or "").isoformat()
    except ValueError:
        raise PayloadError(f"{route}: date: expected YYYY-MM-DD, got {value!r}") from None
