"""The simulated REST API: routing, authentication, rate limits, paging and ETags."""

from __future__ import annotations

import datetime
import hashlib
import math
import re
import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple
from urllib.parse import urlencode

from copilot_exporter.simulator import billing, seats
from copilot_exporter.simulator.downloads import signed_links
from copilot_exporter.simulator.legacy import LegacyMetrics
from copilot_exporter.simulator.reports import DAILY_REPORTS, WINDOW_REPORTS, ReportFile
from copilot_exporter.simulator.transport import JSON, Handler, Reply, encode_json, github_error
from copilot_exporter.simulator.world import Scope

_ORG = r"/orgs/(?P<org>[^/]+)"
_ENTERPRISE = r"/enterprises/(?P<enterprise>[^/]+)"
_TEAM = r"/team/(?P<team>[^/]+)"
_REPORT = r"/copilot/metrics/reports/(?P<report>[a-z0-9-]+)(?P<latest>/latest)?"
_AI_CREDITS = r"/settings/billing/ai_credit/usage"
# (method, path pattern, handler method, authentication: "token", "billing" (a token that may
# read billing, see Simulator.billing_token) or "app" for a GitHub App JWT)
_ROUTES = [
    ("GET", _ORG + "/copilot/metrics", "_legacy", "token"),
    ("GET", _ORG + _TEAM + "/copilot/metrics", "_legacy", "token"),
    ("GET", _ENTERPRISE + "/copilot/metrics", "_legacy", "token"),
    ("GET", _ENTERPRISE + _TEAM + "/copilot/metrics", "_legacy", "token"),
    ("GET", _ORG + _REPORT, "_report", "token"),
    ("GET", _ENTERPRISE + _REPORT, "_report", "token"),
    ("GET", _ORG + "/copilot/billing", "_billing", "token"),
    ("GET", _ORG + "/copilot/billing/seats", "_seats", "token"),
    ("GET", _ENTERPRISE + "/copilot/billing/seats", "_enterprise_seats", "token"),
    ("GET", r"/organizations/(?P<org>[^/]+)" + _AI_CREDITS, "_ai_credits", "billing"),
    ("GET", _ENTERPRISE + _AI_CREDITS, "_ai_credits", "billing"),
    ("GET", _ORG + "/installation", "_installation", "app"),
    ("POST", r"/app/installations/(?P<installation>\d+)/access_tokens", "_access_token", "app"),
]


class _Route(NamedTuple):
    method: str
    pattern: re.Pattern
    handler: str  # name of the ApiHandler method answering it
    auth: str  # "token", "billing" or "app"


_COMPILED = [_Route(method, re.compile(pattern + "/?"), handler, auth) for method, pattern, handler, auth in _ROUTES]
_RATE_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"


class BadParameter(ValueError):
    """A query parameter GitHub would refuse with 400."""


class RateLimit:
    """The primary rate limit: a budget per window that refills when the window resets."""

    def __init__(self, limit: int = 5000, window: float = 3600.0):
        self.limit = limit
        self.window = window
        self._remaining = limit
        self._reset_at = time.time() + window
        self._lock = threading.Lock()

    def set(self, remaining: int, reset_in: float) -> None:
        with self._lock:
            self._remaining = remaining
            self._reset_at = time.time() + reset_in

    def _refill(self) -> None:
        now = time.time()
        if now >= self._reset_at:
            self._remaining = self.limit
            self._reset_at = now + self.window

    def exhausted(self) -> bool:
        with self._lock:
            self._refill()
            return self._remaining <= 0

    def take(self) -> None:
        with self._lock:
            self._refill()
            self._remaining = max(0, self._remaining - 1)

    def headers(self) -> dict[str, str]:
        with self._lock:
            return {
                "X-RateLimit-Limit": str(self.limit),
                "X-RateLimit-Remaining": str(self._remaining),
                "X-RateLimit-Used": str(self.limit - self._remaining),
                "X-RateLimit-Reset": str(math.ceil(self._reset_at)),
                "X-RateLimit-Resource": "core",
            }


def _credential(header: str | None) -> str | None:
    scheme, _, value = (header or "").partition(" ")
    return value.strip() if scheme.lower() in ("bearer", "token") and value.strip() else None


def _date(value: str, name: str, date_only: bool = False) -> datetime.date:
    try:
        if date_only:
            return datetime.date.fromisoformat(value)
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        raise BadParameter(f"Invalid value for parameter '{name}': {value!r}") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(datetime.timezone.utc)
    return moment.date()


def _int(query: dict[str, str], name: str, default: int) -> int:
    value = query.get(name)
    if value is None:
        return default
    if not value.isdigit() or int(value) < 1:
        raise BadParameter(f"Invalid value for parameter '{name}': {value!r}")
    return int(value)


class ApiHandler(Handler):
    kind = "api"
    server_version = "GitHub.com"

    def respond(self, method: str, path: str, query: dict[str, str], transform: Callable[[Any], Any]) -> Reply:
        sim = self.server.sim
        route, params = next(
            ((r, m.groupdict()) for r in _COMPILED if r.method == method and (m := r.pattern.fullmatch(path))),
            (None, {}),
        )
        credential = _credential(self.headers.get("Authorization"))
        if route is not None and route.auth == "app":
            problem = sim._app_jwt_problem(credential)
            if problem:
                return github_error(401, problem)
        elif not sim._accepts(credential):
            return github_error(401, "Bad credentials")
        elif problem := sim._scope_problem(
            credential, route is not None and route.auth == "billing", path.startswith("/enterprises/")
        ):
            return github_error(403, problem)
        if sim._rate.exhausted():
            return github_error(
                403,
                "API rate limit exceeded for user ID 1. If you reach out to GitHub Support "
                "for help, please include the request ID and timestamp.",
                _RATE_DOCS,
            )
        if route is None:
            reply = github_error(404, "Not Found")
        else:
            self._path, self._query, self._transform = path, query, transform
            try:
                given = {name: value for name, value in params.items() if value is not None}
                reply = getattr(self, route.handler)(**given)
            except BadParameter as err:
                reply = github_error(400, str(err))
        if reply.status != 304:  # conditional requests answered 304 are free on GitHub too
            sim._rate.take()
        return reply

    def decorate(self, reply: Reply) -> None:
        reply.headers.update(self.server.sim._rate.headers())
        reply.headers.setdefault("Content-Type", JSON)

    # -- replies and paging ----------------------------------------------------------------

    def _json(self, payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
        """A JSON answer with a strong ETag; 304 when the client already holds this body."""
        body = encode_json(self._transform(payload))
        etag = f'"{hashlib.sha256(body).hexdigest()[:40]}"'
        headers = {"ETag": etag, **(headers or {})}
        held = {tag.strip().removeprefix("W/") for tag in self.headers.get("If-None-Match", "").split(",")}
        if status == 200 and etag in held:
            return Reply(304, b"", headers)
        return Reply(status, body, {"Content-Type": JSON, **headers})

    def _page(self, items_total: int, default_per_page: int) -> tuple[int, int, dict[str, str]]:
        """(start, stop, headers with the Link header) of the requested page."""
        limit = self.server.sim.max_per_page
        page = _int(self._query, "page", 1)
        per_page = min(_int(self._query, "per_page", default_per_page), limit)
        last = max(1, math.ceil(items_total / per_page))
        base = f"{self.server.sim.api_url}{self._path}"

        def url(number: int) -> str:
            return f"{base}?{urlencode({**self._query, 'page': str(number)})}"

        links = []
        if page > 1:
            links += [f'<{url(min(page - 1, last))}>; rel="prev"', f'<{url(1)}>; rel="first"']
        if page < last:
            links += [f'<{url(page + 1)}>; rel="next"', f'<{url(last)}>; rel="last"']
        start = (page - 1) * per_page
        return start, start + per_page, {"Link": ", ".join(links)} if links else {}

    def _scope(self, org: str | None, enterprise: str | None, team: str | None = None) -> Scope | None:
        world = self.server.sim.world
        return world.scope("org", org, team) if org else world.scope("enterprise", enterprise, team)

    # -- routes ----------------------------------------------------------------------------

    def _legacy(self, org: str | None = None, enterprise: str | None = None, team: str | None = None) -> Reply:
        scope = self._scope(org, enterprise, team)
        if scope is None:
            return github_error(404, "Not Found")
        since = _date(self._query["since"], "since") if "since" in self._query else None
        until = _date(self._query["until"], "until") if "until" in self._query else None
        if since and until and until < since:
            raise BadParameter("'until' must not be before 'since'")
        sim = self.server.sim
        revisions = sim._revisions_of(scope.kind, scope.name)
        metrics = LegacyMetrics(sim.world, scope)
        days = metrics.reported_days(since, until)
        start, stop, headers = self._page(len(days), 28)
        page = [metrics.day(day, revisions.get(day, 0)) for day in days[start:stop]]
        return self._json(page, headers=headers)

    def _report(
        self, report: str, org: str | None = None, enterprise: str | None = None, latest: str | None = None
    ) -> Reply:
        sim = self.server.sim
        scope = self._scope(org, enterprise)
        if scope is None or report not in (WINDOW_REPORTS if latest else DAILY_REPORTS)[scope.kind]:
            return github_error(404, "Not Found")
        org_spec = sim.world.org(scope.name) if scope.kind == "org" else None
        if org_spec is not None and not org_spec.reports_api:
            return github_error(404, "Not Found")
        if latest:
            days = sim._window()
            if not days:
                return Reply(204)
            if shape := sim._withheld(scope.name, report, days[-1]):
                return self._no_report(shape, {})
            revisions = sim._revisions_of(scope.kind, scope.name)
            covered = tuple((day, revisions.get(day, 0)) for day in days)
            file = ReportFile(sim.world, scope, report, covered)
            return self._json(
                {
                    "download_links": signed_links(sim, file),
                    "report_start_day": days[0].isoformat(),
                    "report_end_day": days[-1].isoformat(),
                }
            )
        if "day" not in self._query:
            raise BadParameter("Missing required parameter 'day'")
        day = _date(self._query["day"], "day", date_only=True)
        if shape := sim._withheld(scope.name, report, day):
            return self._no_report(shape, {"report_day": day.isoformat()})
        if not sim._report_available(day):
            return Reply(204)
        revision = sim._revisions_of(scope.kind, scope.name, report).get(day, 0)
        file = ReportFile(sim.world, scope, report, ((day, revision),))
        return self._json({"download_links": signed_links(sim, file), "report_day": day.isoformat()})

    def _no_report(self, shape: str, fields: dict[str, str]) -> Reply:
        """GitHub's answer, in the given NO_REPORT_SHAPES shape, when it has no report."""
        if shape.isdigit():
            status = int(shape)
            return (
                Reply(204) if status == 204 else github_error(status, "Not Found" if status == 404 else "Server Error")
            )
        body = {
            "empty_string": b'""',
            "message": b'"No report available for this day"',
            "null": b"null",
            "empty_body": b"",
        }.get(shape)
        if body is None:  # no_links
            return self._json({"download_links": [], **fields})
        return Reply(200, body, {"Content-Type": JSON})

    def _billing(self, org: str) -> Reply:
        sim = self.server.sim
        spec = sim.world.org(org)
        if spec is None:
            return github_error(404, "Not Found")
        return self._json(seats.billing(sim.world, spec.name, sim.reference_time))

    def _seats(self, org: str) -> Reply:
        sim = self.server.sim
        spec = sim.world.org(org)
        if spec is None:
            return github_error(404, "Not Found")
        start, stop, headers = self._page(spec.seat_count, 50)
        listing = [
            seats.seat_object(sim.world, spec, i, sim.reference_time, sim.api_url)
            for i in range(start, min(stop, spec.seat_count))
        ]
        return self._json({"total_seats": spec.seat_count, "seats": listing}, headers=headers)

    def _enterprise_seats(self, enterprise: str) -> Reply:
        sim = self.server.sim
        spec = sim.world.enterprise(enterprise)
        if spec is None:
            return github_error(404, "Not Found")
        listed, distinct = seats.enterprise_seat_count(sim.world, spec.name)
        start, stop, headers = self._page(listed, 50)
        listing = seats.enterprise_seats(sim.world, spec.name, start, stop, sim.reference_time, sim.api_url)
        return self._json({"total_seats": distinct, "seats": listing}, headers=headers)

    def _ai_credits(self, org: str | None = None, enterprise: str | None = None) -> Reply:
        scope = self._scope(org, enterprise)
        if scope is None:
            return github_error(404, "Not Found")
        today = self.server.sim.world.today
        year, month = _int(self._query, "year", today.year), _int(self._query, "month", today.month)
        if month > 12:
            raise BadParameter(f"Invalid value for parameter 'month': {month}")
        return self._json(billing.usage(self.server.sim.world, scope.kind, scope.name, year, month))

    def _installation(self, org: str) -> Reply:
        world = self.server.sim.world
        spec = world.org(org)
        if spec is None:
            return github_error(404, "Not Found")
        return self._json(
            {
                "id": world.installation_id(spec.name),
                "app_id": world.app.app_id,
                "account": {"login": spec.name, "id": world.scope_id("org", spec.name), "type": "Organization"},
                "target_type": "Organization",
                "repository_selection": "all",
                "permissions": {"organization_copilot_seat_management": "read", "organization_copilot_metrics": "read"},
            }
        )

    def _access_token(self, installation: str) -> Reply:
        sim = self.server.sim
        installations = {sim.world.installation_id(org.name) for org in sim.world.organizations}
        if int(installation) not in installations:
            return github_error(404, "Not Found")
        token, expires_at = sim._issue_app_token()
        return self._json(
            {
                "token": token,
                "expires_at": datetime.datetime.fromtimestamp(expires_at, datetime.timezone.utc).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"
                ),
                "permissions": {"organization_copilot_seat_management": "read", "organization_copilot_metrics": "read"},
                "repository_selection": "all",
            },
            status=201,
        )
