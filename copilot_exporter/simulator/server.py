"""The simulator: a GitHub API and a report storage host on two loopback addresses."""

from __future__ import annotations

import datetime
import os
import secrets
import threading
import time
from collections import deque
from typing import Any

from copilot_exporter.simulator.api import ApiHandler, RateLimit
from copilot_exporter.simulator.downloads import DownloadHandler
from copilot_exporter.simulator.faults import NO_REPORT_SHAPES, Fault, FaultRules, NoReport
from copilot_exporter.simulator.reports import WINDOW_DAYS, ReportFile
from copilot_exporter.simulator.transport import RecordedRequest, Server
from copilot_exporter.simulator.world import World

_LATEST_SEARCH = 10  # days back from yesterday to look for the newest report


class Simulator:
    """Both servers and everything tests steer: faults, rate limit, revisions, missing days.

    `token=None` accepts any request as authenticated. With `billing_token`, only that token
    may read the billing endpoints and it may read nothing else (a classic token scoped to
    billing); App installation tokens never read enterprise billing. `latency` seconds pass before every
    answer of both servers (a distant GitHub); faults' delays add to it. Use as a context manager
    or call `start()` and `stop()`.
    """

    def __init__(
        self,
        world: World | None = None,
        token: str | None = None,
        *,
        billing_token: str | None = None,
        api_port: int = 0,
        download_port: int = 0,
        host: str = "127.0.0.1",
        download_host: str = "127.0.0.2",
        records_per_link: int = 25,
        max_links: int = 16,
        link_ttl: float = 300.0,
        max_per_page: int = 100,
        log_limit: int = 100_000,
        latency: float = 0.0,
    ):
        self.world = world or World.default()
        self.token = token
        self.billing_token = billing_token
        self.latency = latency
        self.records_per_link = records_per_link
        self.max_links = max_links  # caps the links of very large reports
        self.link_ttl = link_ttl
        self.max_per_page = max_per_page  # GitHub's is 100; smaller forces clients to page
        # Reports land within about two days: by default yesterday's are not there yet.
        yesterday = self.world.today - datetime.timedelta(days=1)
        self.missing_report_days: set[datetime.date] = {yesterday}
        self.issued_app_tokens: list[str] = []
        # Seat timestamps are relative to this moment: the start time, moved to the world's day.
        now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
        self.reference_time = datetime.datetime.combine(self.world.today, now.timetz())
        self._addresses = {"api": (host, api_port), "download": (download_host, download_port)}
        self._servers: dict[str, Server] = {}
        self._lock = threading.Lock()
        self._log: deque[RecordedRequest] = deque(maxlen=log_limit)  # a long demo must not grow
        self._violations = 0
        self._faults = FaultRules()
        self._no_reports: list[NoReport] = []
        self._rate = RateLimit()
        self._revisions: dict[tuple[str, str, str | None], dict[datetime.date, int]] = {}
        self._reports: dict[str, tuple[ReportFile, int]] = {}
        self._app_tokens: dict[str, float] = {}
        self._secret = os.urandom(32)

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> Simulator:
        for name, handler in (("api", ApiHandler), ("download", DownloadHandler)):
            server = Server(self._addresses[name], handler, self)
            threading.Thread(
                target=server.serve_forever, kwargs={"poll_interval": 0.05}, name=f"simulator-{name}", daemon=True
            ).start()
            self._servers[name] = server
        return self

    def stop(self) -> None:
        for server in self._servers.values():
            server.shutdown()
            server.server_close()
        self._servers.clear()

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def _url(self, name: str) -> str:
        host, port = self._servers[name].server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        return self._url("api")

    @property
    def download_url(self) -> str:
        return self._url("download")

    # -- request log -----------------------------------------------------------------------

    def _record(self, entry: RecordedRequest) -> RecordedRequest:
        with self._lock:
            self._log.append(entry)
        return entry

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._log)

    def request_count(self, path_prefix: str = "", server: str = "api") -> int:
        with self._lock:
            return sum(1 for entry in self._log if entry.server == server and entry.path.startswith(path_prefix))

    def reset_log(self) -> None:
        """Forgets the logged requests and the download credential violations."""
        with self._lock:
            self._log.clear()
            self._violations = 0

    def _count_violation(self) -> None:
        with self._lock:
            self._violations += 1

    @property
    def download_auth_violations(self) -> int:
        with self._lock:
            return self._violations

    # -- steering --------------------------------------------------------------------------

    def add_fault(self, path_prefix: str, fault: Fault, times: int | None = None, server: str = "api") -> None:
        self._faults.add(server, path_prefix, fault, times)

    def clear_faults(self) -> None:
        self._faults.clear()

    def set_rate_limit(self, remaining: int, reset_in: float, limit: int | None = None) -> None:
        """The primary budget left, its reset in seconds, and (when given) the hourly limit."""
        if limit is not None:
            self._rate.limit = limit
        self._rate.set(remaining, reset_in)

    def withhold_report(
        self, shape: str, day: datetime.date | None = None, name: str | None = None, report: str | None = None
    ) -> None:
        """Answer "no report" in one of GitHub's shapes (NO_REPORT_SHAPES) for the matching
        requests: a `day` (of a 1-day report, or the end day of a 28-day one), a scope `name`,
        a `report` endpoint (e.g. "users-1-day", "enterprise-28-day"); None matches any."""
        if shape not in NO_REPORT_SHAPES:
            raise ValueError(f"unknown no-report shape {shape!r}; known: {NO_REPORT_SHAPES}")
        with self._lock:
            self._no_reports.append(NoReport(shape, day, name and name.lower(), report))

    def clear_withheld_reports(self) -> None:
        with self._lock:
            self._no_reports.clear()

    def _withheld(self, name: str, report: str, day: datetime.date) -> str | None:
        """The no-report shape to answer with, or None for the report itself."""
        with self._lock:
            return next((rule.shape for rule in self._no_reports if rule.matches(name, report, day)), None)

    def revise(self, scope_kind: str, name: str, day: datetime.date, report: str | None = None) -> None:
        """GitHub revises a day's data: its content, and so its download paths, change; with
        `report`, only that report's 1-day file is produced again (new paths, same rows for a
        user-teams report, whose rows carry no activity)."""
        spec = self.world.org(name) if scope_kind == "org" else self.world.enterprise(name)
        if spec is None:
            raise ValueError(f"no {scope_kind} named {name!r} in the world")
        with self._lock:
            days = self._revisions.setdefault((scope_kind, spec.name, report), {})
            days[day] = days.get(day, 0) + 1

    def _revisions_of(self, kind: str, name: str, report: str | None = None) -> dict[datetime.date, int]:
        """Per day, its revisions (with `report`: that report's 1-day file's, the day's included)."""
        with self._lock:
            days = dict(self._revisions.get((kind, name, None), {}))
            if report is not None:
                for day, count in self._revisions.get((kind, name, report), {}).items():
                    days[day] = days.get(day, 0) + count
            return days

    # -- reports ---------------------------------------------------------------------------

    def _report_available(self, day: datetime.date) -> bool:
        today = self.world.today
        return today - datetime.timedelta(days=365) <= day < today and day not in self.missing_report_days

    def _window(self) -> list[datetime.date]:
        """The days of the latest 28-day report, oldest first; empty when there is none."""
        yesterday = self.world.today - datetime.timedelta(days=1)
        end = next(
            (
                yesterday - datetime.timedelta(days=n)
                for n in range(_LATEST_SEARCH)
                if self._report_available(yesterday - datetime.timedelta(days=n))
            ),
            None,
        )
        if end is None:
            return []
        days = (end - datetime.timedelta(days=n) for n in range(WINDOW_DAYS - 1, -1, -1))
        return [day for day in days if self._report_available(day)]

    def _register_report(self, file: ReportFile, parts: int) -> str:
        """Remembers what a content id names, so links issued before a revision keep working."""
        content = file.content_id
        with self._lock:
            self._reports[content] = (file, parts)
        return content

    def _report(self, content: str) -> tuple[ReportFile, int] | None:
        with self._lock:
            return self._reports.get(content)

    # -- credentials -----------------------------------------------------------------------

    def _accepts(self, credential: str | None) -> bool:
        if (
            self.token is None
            or credential == self.token
            or (credential is not None and credential == self.billing_token)
        ):
            return True
        with self._lock:
            expiry = self._app_tokens.get(credential or "")
        return expiry is not None and time.time() < expiry

    def _scope_problem(self, credential: str | None, billing: bool, enterprise: bool) -> str | None:
        """Why an accepted credential may not call the route (GitHub answers 403), or None."""
        billing_only = self.billing_token is not None and self.billing_token != self.token
        if not billing:
            refused = billing_only and credential == self.billing_token
            return "Resource not accessible by personal access token" if refused else None
        with self._lock:
            app_token = credential in self._app_tokens
        if enterprise and app_token:
            return "Resource not accessible by integration"
        if billing_only and credential != self.billing_token:
            return "Resource not accessible by personal access token"
        return None

    def _issue_app_token(self) -> tuple[str, float]:
        token = "ghs_" + secrets.token_hex(18)
        assert self.world.app is not None, "the world has no GitHub App"
        expires_at = time.time() + self.world.app.token_ttl
        with self._lock:
            self._app_tokens[token] = expires_at
            self.issued_app_tokens.append(token)
        return token, expires_at

    def _app_jwt_problem(self, credential: str | None) -> str | None:
        """Why a GitHub App JWT is refused, or None when it is valid."""
        app = self.world.app
        if app is None:
            return "This simulator has no GitHub App configured"
        if not credential:
            return "A JSON web token could not be decoded"
        import jwt  # PyJWT is needed only when the world has an app

        try:
            claims = jwt.decode(
                credential,
                app.public_key_pem,
                algorithms=["RS256"],
                options={"require": ["exp", "iat", "iss"], "verify_iss": False},
            )
        except jwt.ExpiredSignatureError:
            return "'Expiration time' claim ('exp') is in the past"
        except jwt.PyJWTError:
            return "A JSON web token could not be decoded"
        if str(claims["iss"]) != str(app.app_id):
            return "'Issuer' claim ('iss') must be an Integer"
        if claims["exp"] - claims["iat"] > 660:
            return "'Expiration time' claim ('exp') is too far in the future"
        return None

    def _tokens(self) -> list[str]:
        """Every credential the API accepts, which must never reach the download host."""
        with self._lock:
            return (
                ([self.token] if self.token else [])
                + ([self.billing_token] if self.billing_token else [])
                + list(self._app_tokens)
            )
