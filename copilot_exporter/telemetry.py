"""The exporter's own metrics and the per-scope status shown on the landing page.

Small and changing with every GitHub request, so kept apart from the data snapshots; `version`
lets the server reuse a rendered body until something here changes.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client import exposition as text_format
from prometheus_client.openmetrics import exposition as openmetrics_format

from copilot_exporter import __version__
from copilot_exporter.model import Family, Scope


# Failure reasons whose counter starts at 0 for each configured scope and source, so that
# `increase()` sees their first failure; rarer reasons (disabled, billing_problem, client_error,
# missing_dependency, internal_error) appear when they first happen.
COMMON_REASONS = (
    "unauthorized",
    "forbidden",
    "not_found",
    "rate_limited",
    "server_error",
    "timeout",
    "connection_error",
    "bad_payload",
)


@dataclass
class SourceStatus:
    """What the landing page tells about one scope and source."""

    up: bool | None = None
    last_refresh: float | None = None
    last_success: float | None = None
    duration: float | None = None
    last_error: str | None = None
    days: dict[str, str] | None = None  # report -> YYYY-MM-DD exported
    api: str | None = None  # which GitHub API served it (source auto)
    notes: tuple[str, ...] = ()  # lasting conditions the last success reported (Result.notes)


class Telemetry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str], int] = {}
        self._errors: dict[tuple[Scope, str, str], int] = {}
        self._dropped: dict[tuple[Scope, str, str], int] = {}
        self._folded: dict[tuple[Scope, str], tuple[tuple[str, int], ...]] = {}
        self._rate_limits: dict[int, tuple[int, float]] = {}
        self._budgets: dict[str, tuple[int, int | None]] = {}  # credential -> (spent in the last hour, allowance)
        self._deferred: dict[str, int] = {}  # source -> jobs or re-reads put off for the request budget
        self._status: dict[tuple[Scope, str], SourceStatus] = {}
        self._process = CollectorRegistry()
        ProcessCollector(registry=self._process)
        self.version = 0

    def process(self, openmetrics: bool) -> str:
        """This process's CPU, memory, file descriptor and start time metrics, read now
        (rendered by prometheus-client's ProcessCollector; nothing on systems without /proc)."""
        if openmetrics:
            return openmetrics_format.generate_latest(self._process).decode("utf-8").removesuffix("# EOF\n")
        return text_format.generate_latest(self._process).decode("utf-8")

    def count_request(self, route: str, code: str) -> None:
        with self._lock:
            key = (route, code)
            self._requests[key] = self._requests.get(key, 0) + 1
            self.version += 1

    def set_rate_limit(self, connection: int, remaining: int, reset: float) -> None:
        with self._lock:
            self._rate_limits[connection] = (remaining, reset)
            self.version += 1

    def set_request_budget(self, credential: str, spent: int, allowance: int | None) -> None:
        with self._lock:
            if self._budgets.get(credential) != (spent, allowance):
                self._budgets[credential] = (spent, allowance)
                self.version += 1

    def count_deferred(self, source: str, count: int = 1) -> None:
        """Work of `source` put off because the request budget ran low."""
        with self._lock:
            self._deferred[source] = self._deferred.get(source, 0) + count
            self.version += 1

    def budgets(self) -> tuple[dict[str, tuple[int, int | None]], dict[str, int]]:
        """Per credential (spent in the last hour, hourly allowance); per source, work deferred."""
        with self._lock:
            return dict(self._budgets), dict(self._deferred)

    def expect(self, scope: Scope, source: str) -> None:
        """Create the error counters of a scope and source at 0 for the common reasons."""
        with self._lock:
            for reason in COMMON_REASONS:
                if (scope, source, reason) not in self._errors:
                    self._errors[(scope, source, reason)] = 0
                    self.version += 1

    def refresh_started(self, scope: Scope, source: str) -> None:
        with self._lock:
            self._status.setdefault((scope, source), SourceStatus()).last_refresh = time.time()
            self.version += 1

    def refresh_succeeded(
        self,
        scope: Scope,
        source: str,
        duration: float,
        days: dict[str, str] | None = None,
        api: str | None = None,
        notes: tuple[str, ...] = (),
    ) -> None:
        with self._lock:
            status = self._status.setdefault((scope, source), SourceStatus())
            status.up, status.duration, status.last_error = True, duration, None
            status.last_success = time.time()
            status.days, status.api, status.notes = days or {}, api, notes
            self.version += 1

    def refresh_failed(self, scope: Scope, source: str, duration: float, reason: str, message: str) -> None:
        with self._lock:
            status = self._status.setdefault((scope, source), SourceStatus())
            status.up, status.duration, status.last_error = False, duration, f"{reason}: {message}"
            key = (scope, source, reason)
            self._errors[key] = self._errors.get(key, 0) + 1
            self.version += 1

    def count_dropped(self, scope: Scope, source: str, reason: str, count: int) -> None:
        with self._lock:
            key = (scope, source, reason)
            self._dropped[key] = self._dropped.get(key, 0) + count
            self.version += 1

    def set_folded(self, scope: Scope, source: str, folded: tuple[tuple[str, int], ...]) -> None:
        """Per family, the series the last successful refresh folded into `others`."""
        with self._lock:
            if self._folded.get((scope, source), ()) != folded:
                self._folded[(scope, source)] = folded
                self.version += 1

    def forget(self, scope: Scope, source: str) -> None:
        """Drop the status of a scope and source that is no longer refreshed (e.g. auto switched API)."""
        with self._lock:
            self._folded.pop((scope, source), None)
            if self._status.pop((scope, source), None) is not None:
                self.version += 1

    def statuses(self) -> list[tuple[Scope, str, SourceStatus]]:
        with self._lock:
            return [
                (scope, source, SourceStatus(**vars(status)))
                for (scope, source), status in sorted(self._status.items())
            ]

    def families(self) -> list[Family]:
        with self._lock:
            statuses = list(self._status.items())
            errors = list(self._errors.items())
            dropped = list(self._dropped.items())
            folded = list(self._folded.items())
            requests = list(self._requests.items())
            limits = list(self._rate_limits.values())
            budgets = sorted(self._budgets.items())
            deferred = sorted(self._deferred.items())
        up, success, duration = [], [], []
        for (scope, source), status in statuses:
            labels = scope.labels() + (("source", source),)
            if status.up is not None:
                up.append((labels, 1 if status.up else 0))
            if status.last_success is not None:
                success.append((labels, status.last_success))
            if status.duration is not None:
                duration.append((labels, status.duration))
        families = [
            Family("copilot_exporter_build_info", (((("version", __version__),), 1),)),
            Family("copilot_exporter_up", tuple(up)),
            Family("copilot_exporter_last_success_timestamp_seconds", tuple(success)),
            Family("copilot_exporter_refresh_duration_seconds", tuple(duration)),
            Family(
                "copilot_exporter_errors_total",
                tuple(
                    (scope.labels() + (("source", source), ("reason", reason)), count)
                    for (scope, source, reason), count in sorted(errors)
                ),
            ),
            Family(
                "copilot_exporter_dropped_values_total",
                tuple(
                    (scope.labels() + (("source", source), ("reason", reason)), count)
                    for (scope, source, reason), count in sorted(dropped)
                ),
            ),
            Family(
                "copilot_exporter_folded_series",
                tuple(
                    (scope.labels() + (("source", source), ("family", family)), count)
                    for (scope, source), families in sorted(folded)
                    for family, count in families
                ),
            ),
            Family(
                "copilot_exporter_github_requests_total",
                tuple(((("endpoint", route), ("code", code)), count) for (route, code), count in sorted(requests)),
            ),
            Family(
                "copilot_exporter_github_requests_per_hour",
                tuple(((("credential", credential),), spent) for credential, (spent, _) in budgets),
            ),
            Family(
                "copilot_exporter_github_request_allowance_per_hour",
                tuple(
                    ((("credential", credential),), allowance)
                    for credential, (_, allowance) in budgets
                    if allowance is not None
                ),
            ),
            Family(
                "copilot_exporter_deferred_jobs_total",
                tuple(((("source", source),), count) for source, count in deferred),
            ),
        ]
        if limits:
            # Several credentials may be in use: the scarcest budget is the one to alert on.
            remaining, reset = min(limits)
            families.append(Family("copilot_exporter_github_rate_limit_remaining", (((), remaining),)))
            families.append(Family("copilot_exporter_github_rate_limit_reset_timestamp_seconds", (((), reset),)))
        return families
