"""Background refreshes: which (entry, source) jobs exist, when they run, what a result changes.

Jobs run in a bounded worker pool. Each credential's requests stay within request_budget_share
of GitHub's hourly limit (the client waits past it); before that, when what is left of the
hour would no longer cover the data jobs' next-day probes, seats and billing refreshes and
report re-reads are put off, and counted in copilot_exporter_deferred_jobs_total.

A job that fails is retried sooner, with a backoff that grows up to its interval, without
delaying the other jobs; its last good data stays served.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from copilot_exporter.config import Config, Credentials, Entry
from copilot_exporter.errors import RefreshError
from copilot_exporter.github.auth import token_provider
from copilot_exporter.github.client import ConnectionFailed, Connection, GitHubClient, Timeout
from copilot_exporter.metrics import reports
from copilot_exporter.model import ORG, FamilyBuilder, Scope
from copilot_exporter.sources import Result, billing, legacy, seats
from copilot_exporter.sources.reports import USERS, ReportsSource, ReportsUnavailable
from copilot_exporter.state import StateStore
from copilot_exporter.store import Store
from copilot_exporter.telemetry import Telemetry

log = logging.getLogger(__name__)

FIRST_RETRY = 30.0  # seconds before the first retry of a failed job; doubles up to the interval
# The Store key of copilot_organizations_active_users, which belongs to no one scope.
ORGANIZATIONS = (Scope("", ""), "organizations")

# Seconds a seats or billing refresh is put off when the request budget runs low: requests of
# the last hour leave the budget's window continuously, so a few minutes free some.
DEFER_DELAY = 300.0
# The least urgent work, put off first when the request budget runs low (the next-day probes of
# the data jobs are kept); reports re-reads are put off inside the data job.
LOW_URGENCY = ("seats", "billing")
RESERVE = 10  # requests kept beyond the probes: a found day asks for the other reports too


@dataclass
class Job:
    entry: Entry
    kind: str  # a key of JOB_KINDS
    interval: float
    next_run: float = 0.0
    failures: int = 0
    running: bool = False
    api: str | None = None  # the API the last data refresh used: "reports" or "legacy"
    reports: ReportsSource | None = None


@dataclass(frozen=True)
class JobKind:
    """How often a kind of job runs, for which entries, and what one run does."""

    interval: Callable[[Config], float]
    enabled: Callable[[Entry], bool]
    run: Callable[[Refresher, Job], bool]


JOB_KINDS: dict[str, JobKind] = {
    "data": JobKind(
        lambda config: config.refresh_interval, lambda entry: True, lambda refresher, job: refresher._data(job)
    ),
    "seats": JobKind(
        lambda config: config.seats_refresh_interval,
        lambda entry: entry.seats,
        lambda refresher, job: refresher._seats(job),
    ),
    "billing": JobKind(
        lambda config: config.billing_refresh_interval,
        lambda entry: entry.billing,
        lambda refresher, job: refresher._billing(job),
    ),
}


class Refresher:
    def __init__(
        self,
        config: Config,
        store: Store,
        telemetry: Telemetry,
        stop: threading.Event | None = None,
        state: StateStore | None = None,
        today: Callable[[], dt.date] | None = None,
    ):
        self.config = config
        self.store = store
        self.telemetry = telemetry
        self.state = state
        self.today = today or _today
        self.stop_event = stop or threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._connections: dict[tuple[Credentials, Scope | None], Connection] = {}
        self._noted: set[tuple[Scope, str]] = set()
        self._organizations_lock = threading.Lock()  # one count at a time, whichever job ends first
        self._data_jobs: Counter[int] | None = None  # see _data_jobs_per_connection
        self._organizations_counted: tuple | None = None  # what the served counts were computed from
        # per organization, the users days held with their identities (its own refresh changes them)
        self._users_days_held: dict[str, tuple[tuple[str, str], ...]] = {}
        self.jobs = [
            Job(
                entry,
                name,
                kind.interval(config),
                reports=ReportsSource(entry, config, state) if name == "data" else None,
            )
            for name, kind in JOB_KINDS.items()
            for entry in config.own_entries()
            if kind.enabled(entry)
        ]
        for job in self.jobs:  # error counters exist from start-up (the legacy API's after a switch)
            first = {
                "seats": seats.SOURCE,
                "billing": billing.SOURCE,
                "data": legacy.SOURCE if config.source == "legacy" else "reports",
            }
            scopes = self._legacy_scopes(job.entry) if first[job.kind] == legacy.SOURCE else [job.entry.scope]
            for scope in scopes:
                telemetry.expect(scope, first[job.kind])
        if config.shard is not None:
            log.info(
                "shard %s: refreshing %d of the %d configured scopes",
                config.shard,
                len(config.own_entries()),
                len(config.entries),
            )
        self._pool = ThreadPoolExecutor(config.workers, thread_name_prefix="refresh")
        self._thread: threading.Thread | None = None
        self._restore()

    def _restore(self) -> None:
        """Serve what the state kept from before a restart, until the first refresh replaces it."""
        if self.state is None or self.config.source == legacy.SOURCE:
            return
        for job in self.jobs:
            restored = job.reports.restored() if job.reports is not None else None
            if restored is not None:
                self.store.replace(job.entry.scope, "reports", restored.families)
                job.api = "reports"  # what it serves: a fall-back to legacy drops it (`_using`)
        self._count_organizations()

    # Running ---------------------------------------------------------------------------------
    def run_once(self) -> bool:
        """Refresh every job once, in the pool; True when every scope and source succeeded."""
        results = list(self._pool.map(self._run, self.jobs))  # wait for all, not just the first failure
        return all(results)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="scheduler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.stop_event.set()
        self._wake.set()
        if self._thread:
            self._thread.join(timeout=10)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        while not self.stop_event.is_set():
            now = time.time()
            with self._lock:
                due = [job for job in self.jobs if not job.running and job.next_run <= now]
            due = [job for job in due if not self._defer(job, now)]
            with self._lock:
                for job in due:
                    job.running = True
                idle = [job.next_run for job in self.jobs if not job.running]
            for job in due:
                self._pool.submit(self._run_scheduled, job)
            for connection in list(self._connections.values()):
                connection.publish_budget()  # the hour's window moves on even when idle
            timeout = max(0.05, min(min(idle, default=now + 60), now + 60) - time.time())
            self._wake.wait(timeout)
            self._wake.clear()

    def _run_scheduled(self, job: Job) -> None:
        try:
            ok = self._run(job)
        except Exception:  # never let a bug stop the schedule
            log.exception("refresh of %s crashed", job.entry.scope)
            ok = False
        with self._lock:
            job.failures = 0 if ok else job.failures + 1
            delay = job.interval if ok else min(job.interval, FIRST_RETRY * 2 ** (job.failures - 1))
            job.next_run = time.time() + delay
            job.running = False
        self._wake.set()

    # The request budget -----------------------------------------------------------------------
    def _budget_low(self, connection: Connection) -> bool:
        """Whether what is left of the credential's hourly share would not cover, beyond the
        data jobs' next-day probes for the coming hour, more than a few requests."""
        left = connection.budget_left()
        if left is None:
            return False
        probes = self._data_jobs_per_connection().get(id(connection), 0)
        per_hour = max(1, math.ceil(3600 / self.config.refresh_interval))
        return left < probes * per_hour + RESERVE

    def _data_jobs_per_connection(self) -> Counter[int]:
        """Per connection (its id), how many data jobs use it: the jobs and their connections
        never change, so this is counted once."""
        if self._data_jobs is None:
            self._data_jobs = Counter(id(self._connection(job.entry)) for job in self.jobs if job.kind == "data")
        return self._data_jobs

    def _defer(self, job: Job, now: float) -> bool:
        """Put a due seats or billing job off when its credential's budget runs low."""
        if job.kind not in LOW_URGENCY:
            return False
        if not self._budget_low(self._connection(job.entry, for_billing=job.kind == "billing")):
            return False
        log.info("%s: %s refresh put off %.0fs: the request budget runs low", job.entry.scope, job.kind, DEFER_DELAY)
        self.telemetry.count_deferred(job.kind)
        with self._lock:
            job.next_run = now + DEFER_DELAY
        return True

    # One job ---------------------------------------------------------------------------------
    def _run(self, job: Job) -> bool:
        return JOB_KINDS[job.kind].run(self, job)

    def _seats(self, job: Job) -> bool:
        client, config = self._connection(job.entry).client(), self.config
        return self._refresh(
            job.entry.scope,
            seats.SOURCE,
            client,
            lambda client: seats.fetch(
                client,
                job.entry.scope,
                included_credits=config.included_ai_credits,
                prices=config.seat_prices,
                max_series=config.max_series_per_family,
            ),
        )

    def _billing(self, job: Job) -> bool:
        client = self._connection(job.entry, for_billing=True).client()
        return self._refresh(
            job.entry.scope,
            billing.SOURCE,
            client,
            lambda client: billing.fetch(client, job.entry.scope, max_series=self.config.max_series_per_family),
        )

    def _data(self, job: Job) -> bool:
        client = self._connection(job.entry).client()
        if self.config.source == "legacy":
            return self._legacy(job, client)
        if self.config.source == "reports":
            return self._reports(job, client)
        try:
            return self._reports(job, client, fall_back=True)
        except ReportsUnavailable:
            if job.api != "reports":
                self.telemetry.forget(job.entry.scope, "reports")  # never served: no status to show
            return self._legacy(job, client, after_reports_404=True)

    def _reports(self, job: Job, client: GitHubClient, fall_back: bool = False) -> bool:
        unreachable: list[RefreshError] = []

        source = job.reports
        assert source is not None  # a job on the reports API has its source

        def fetch(client: GitHubClient) -> Result:
            deferred = source.deferred_rereads
            try:
                return source.fetch(client, self.today(), rereads=not self._budget_low(client.connection))
            except (Timeout, ConnectionFailed) as err:
                unreachable.append(err)
                raise
            finally:
                if source.deferred_rereads > deferred:
                    self.telemetry.count_deferred("reports", source.deferred_rereads - deferred)

        ok = self._refresh(
            job.entry.scope, "reports", client, fetch, "reports", passthrough=ReportsUnavailable if fall_back else ()
        )
        if not unreachable:  # no answer says nothing about which API serves the scope
            self._using(job, "reports")
        if ok:
            self._count_organizations(source)
        return ok

    def _count_organizations(self, refreshed: ReportsSource | None = None) -> None:
        """copilot_organizations_active_users: distinct users over the users reports of every
        configured organization, per window ending at their newest users day, once the state
        holds every day of that window for each of them (two or more organizations only).

        Counted again only when what the counts depend on changed (the end day, or a users day
        kept, replaced or pruned): each organization's refresh calls this, and a count over
        100,000 users takes seconds. Only the organization just `refreshed` can have changed its
        users days (None: read every one's)."""
        sources = [job.reports for job in self.jobs if job.reports is not None and job.entry.scope.kind == ORG]
        if self.state is None or len(sources) < 2:
            return
        with self._organizations_lock:
            if not all(source.entry.reports.users or source.entry.reports.teams for source in sources):
                return
            end = max((day for source in sources if (day := source.users_day())), default=None)
            # the users days held, each with its identity (a revised day comes with new links)
            stale = sources if refreshed is None else [source for source in sources if source is refreshed]
            for source in stale:
                self._users_days_held[source.key] = self.state.identities(source.key, USERS.key)
            inputs = (end, tuple(self._users_days_held.get(source.key, ()) for source in sources))
            if inputs == self._organizations_counted:
                return
            counts = {
                window: self.state.distinct_users([source.key for source in sources], end, days)
                for window, days in reports.ORGANIZATION_WINDOWS.items()
                if end and all(source.held(end, days) for source in sources)
            }
            builder = FamilyBuilder((), self.config.max_series_per_family)
            reports.add_organizations_active_users(builder, counts)
            self.store.replace(*ORGANIZATIONS, builder.build())
            self._organizations_counted = inputs

    def _using(self, job: Job, api: str) -> None:
        """Note which API serves the job; on a change, forget what the other one exported."""
        if job.api == api:
            return
        if job.api is not None or self.config.source == "auto":
            log.info("%s: using the %s API", job.entry.scope, api)
        previous = {"reports": [job.entry.scope], legacy.SOURCE: self._legacy_scopes(job.entry)}.get(job.api or "", [])
        source = "reports" if job.api == "reports" else legacy.SOURCE
        for scope in previous:
            self.store.drop(scope, source)
            self.telemetry.forget(scope, source)
        if job.api == "reports" and self.state is not None:
            self.state.forget_served(str(job.entry.scope))  # not restored at the next start either
        job.api = api

    def _legacy(self, job: Job, client: GitHubClient, after_reports_404: bool = False) -> bool:
        self._using(job, legacy.SOURCE)
        results = [
            # mypy cannot infer a lambda whose default argument binds the loop variable
            self._refresh(
                scope,
                legacy.SOURCE,
                client,
                lambda client, scope=scope: legacy.fetch(  # type: ignore[misc]
                    client,
                    scope,
                    self.config.lookback_days,
                    self.today(),
                    after_reports_404,
                    self.config.max_series_per_family,
                ),
                api=legacy.SOURCE,
            )
            for scope in self._legacy_scopes(job.entry)
        ]
        return all(results)

    @staticmethod
    def _legacy_scopes(entry: Entry) -> list[Scope]:
        return [entry.scope] + [entry.scope.with_team(team) for team in entry.teams]

    def _refresh(
        self,
        scope: Scope,
        source: str,
        client: GitHubClient,
        fetch: Callable[[GitHubClient], Result],
        api: str | None = None,
        passthrough: type[Exception] | tuple = (),
    ) -> bool:
        """Run one fetch; store its families on success, keep the last good ones on failure.

        The fetch gets `client` with this refresh's deadline (refresh_timeout from now): every
        request, download and wait of the refresh ends by then, else it fails as `timeout`.
        Exceptions of type `passthrough` are the caller's to handle (e.g. falling back to another API).
        """
        started = time.monotonic()
        self.telemetry.expect(scope, source)
        self.telemetry.refresh_started(scope, source)
        try:
            result = fetch(client.until(started + self.config.limits.refresh_timeout))
        except passthrough:
            raise
        except RefreshError as err:
            duration = time.monotonic() - started
            hint = getattr(err, "hint", "")
            log.warning("%s source=%s failed (%s): %s%s", scope, source, err.reason, err, f"; {hint}" if hint else "")
            self.telemetry.refresh_failed(scope, source, duration, err.reason, f"{err}; {hint}" if hint else str(err))
            return False
        except Exception as err:
            duration = time.monotonic() - started
            log.exception("%s source=%s failed unexpectedly", scope, source)
            self.telemetry.refresh_failed(scope, source, duration, "internal_error", type(err).__name__)
            return False
        for note in result.notes:
            if (scope, note) not in self._noted:  # a lasting condition is said once
                self._noted.add((scope, note))
                log.info("%s source=%s: %s", scope, source, note)
        for problem in result.problems:
            log.warning(
                "%s source=%s: %d value(s) dropped or repaired (%s), e.g. %s",
                scope,
                source,
                problem.count,
                problem.reason,
                problem.example,
            )
            self.telemetry.count_dropped(scope, source, problem.reason, problem.count)
        for family, count in result.folded:
            if (scope, f"folded {family}") not in self._noted:
                self._noted.add((scope, f"folded {family}"))
                log.warning(
                    "%s source=%s: %s has more series than max_series_per_family; %d folded into others",
                    scope,
                    source,
                    family,
                    count,
                )
        self.telemetry.set_folded(scope, source, result.folded)
        self.store.replace(scope, source, result.families)
        self.telemetry.refresh_succeeded(scope, source, time.monotonic() - started, result.days, api, result.notes)
        return True

    def _credential_label(self, credentials: Credentials, scope: Scope | None) -> str:
        """credential_label, with `#2`, `#3`... for other credentials of the same name; under the lock."""
        label = credential_label(credentials, scope)
        taken = {connection.credential for connection in self._connections.values()}
        number = 1
        while (f"{label}#{number}" if number > 1 else label) in taken:
            number += 1
        return f"{label}#{number}" if number > 1 else label

    def _connection(self, entry: Entry, for_billing: bool = False) -> Connection:
        """One connection per set of credentials; per organization too for a GitHub App whose
        installation is looked up, since each organization has its own installation token.
        `for_billing`: the entry's billing credentials when it has its own."""
        credentials = (
            (entry.billing_credentials if for_billing else None) or entry.credentials or self.config.github.credentials
        )
        per_org = credentials.app is not None and credentials.app.installation_id is None
        key = (credentials, entry.scope if per_org else None)
        with self._lock:
            if key not in self._connections:
                github = self.config.github
                token = token_provider(
                    credentials,
                    api_url=github.api_url,
                    scope=entry.scope,
                    ca_bundle=github.ca_bundle,
                    connect_timeout=github.connect_timeout,
                    read_timeout=github.read_timeout,
                    count=self.telemetry.count_request,
                    limits=self.config.limits,
                    api_version=github.api_version,
                )
                self._connections[key] = Connection(
                    github.api_url,
                    token,
                    self.telemetry,
                    ca_bundle=github.ca_bundle,
                    connect_timeout=github.connect_timeout,
                    read_timeout=github.read_timeout,
                    max_retries=github.max_retries,
                    retry_backoff=github.retry_backoff,
                    max_rate_limit_wait=github.max_rate_limit_wait,
                    api_version=github.api_version,
                    stop=self.stop_event,
                    limits=self.config.limits,
                    budget_share=self.config.request_budget_share,
                    credential=self._credential_label(credentials, entry.scope if per_org else None),
                )
            return self._connections[key]


def credential_label(credentials: Credentials, scope: Scope | None = None) -> str:
    """A name for a credential in metrics that reveals nothing secret: `token`,
    `token_file:<file name>`, `app:<app id>` (`app:<app id>:<org>` per installation)."""
    if credentials.app is not None:
        return f"app:{credentials.app.app_id}" + (f":{scope.name}" if scope is not None else "")
    if credentials.token_file:
        return f"token_file:{os.path.basename(credentials.token_file)}"
    return "token"


def _today() -> dt.date:
    return dt.datetime.now(dt.timezone.utc).date()
