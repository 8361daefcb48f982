"""Source `reports`: the Copilot usage metrics reports API, what github.com serves today.

Each report endpoint answers with signed links to NDJSON files on another host. Per report the
first refresh asks for yesterday, then goes back a day at a time up to `lookback_days`, and
exports the newest day found. Later refreshes ask only what can be new: the days after the one
held, up to yesterday (in steady state one day, or none once yesterday is held). The aggregated
report is asked first; the others are asked only for days it has (they are published together),
so while a day is not out a refresh of a scope costs one request. A held day can still change
until GitHub finalises it (within three full UTC days), so a report is asked again once
`reread_interval` has passed since it was last asked for one of its last three days (identical
links: nothing downloaded). Which day: the held day, unless the held day was the last one asked;
then the one of the two days before it asked longest ago (D, D-2, D, D-1, ...; with a new day
found each day and the default 6h: D-2, D and D-1, 6, 12 and 18 hours after it). The days
before the held day are asked again only for the report that stands for the day (the aggregated
one, else the users report) and only with a state store, the one place that keeps past days:
when such a day comes back changed, its users and user-teams reports are read again into the
state (those whose links changed; a day whose aggregated links were never seen, in the first
days after the first start, has its users and user-teams links compared with the state's).
Without a state store only the held day is asked again. When the aggregated report comes back
with its held day unchanged, the others' held days count as asked (a revision of a day's data
revises its totals): they are asked again only when it changed. When each day was asked is kept
in the state, so a restart does not ask everything again at once. The links' paths identify the
content (the query string only signs it), so a report whose day and paths are unchanged is not
downloaded again: its parsed result is reused.

"No report that day" comes in many shapes, and each one means: step back a day. They are 204;
200 with an empty body, `null`, `""` or any bare JSON string ("No report available for this
day"); 200 with `download_links: []`; 404 for one day (when every request of a scope answers 404
the scope is unknown: `ReportsUnavailable`); and 502/503 (any 5xx) while a day is still being
produced. Only an object whose `download_links` is not a list of URLs is bad data. A 5xx is
retried like any other first; when every day of the window still answers 5xx, that is GitHub
failing, not a report in production: the refresh fails as `server_error` and the last good data
stays served.

With the aggregated report, `fetch` also reads the 28-day aggregated report (`.../latest`, no
day) for what only it holds, the feature engagement of the window: at most once per UTC day, and
its files only when their paths changed. Any "no report" answer there means no such data.

File shapes: a 1-day file holds one flat record on one line, a 28-day file one wrapper record
whose `day_totals` are in no particular order. Either can arrive where the other is expected:
`as_wrapper` gives every aggregated record the wrapper's shape, and a 1-day read takes the
entry of its day.

With a state store (`state.py`), the users and user-teams reports of each day read are kept
for 28 days: team weekly/monthly actives are distinct counts over the joined rows of 7 / 28
days, and distinct users across organizations over their users reports. Past days missing from
the store are asked for a few at a time (`fill_days_per_refresh`), newest first; a day GitHub
has no report for is kept as such (NO_REPORT), so a window is filled once every one of its days
has been asked. A window's series appear only then. What was served is kept too, and restored
when the source is built: a restart serves at once and downloads nothing it holds.
The families mapped from each dated report downloaded are kept per day as well, with the
fingerprint of the settings that shaped them (those of the users and user-teams reports in the
transaction of their day; per-user ones not at all: they are rebuilt from the users kept, by
the same `reports.add_per_user`), and a past day filled gets its team join, so it is a complete
day for `backfill`.

`fetch_day` reads every report of one given day through the same parsing and mapping; it is what
`copilot-exporter backfill` writes history from, taking the aggregated records of the days the
28-day report covers from that one report (`window_days`), and, given a read-only view of an
exporter's store (`history`), the report-days it holds from there instead of GitHub (`_held`). A
day's values are served from when its report is fetched until a newer day's is, nominally from
two days after the day for one day: the interval `backfill` places that day's history in (see
its module).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Container, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

from copilot_exporter.config import Config, Entry, mapping_fingerprint
from copilot_exporter.errors import PayloadError, RefreshError
from copilot_exporter.github.client import GitHubClient, GitHubError
from copilot_exporter.github.records import iter_records
from copilot_exporter.metrics import reports
from copilot_exporter.metrics.catalogue import CATALOGUE
from copilot_exporter.model import ENTERPRISE, Family, FamilyBuilder, Problem, Problems, day_timestamp
from copilot_exporter.sources import Result, explain_forbidden
from copilot_exporter.state import (
    WINDOW_DAYS,
    Asked,
    DayFamilies,
    Membership,
    Served,
    StateStore,
    StateView,
    UserDay,
)

log = logging.getLogger(__name__)

SOURCE = "reports"
Parse = Callable[[Iterator[dict], Any], "Downloaded"]  # records, the day (None: a `latest` report)
T = TypeVar("T")
NO_REPORT = "none"  # the identity kept for a day GitHub has no report for
# A day can still appear or change until about three full days after it (COPILOT-APIS.md §2):
# a younger day kept as NO_REPORT is asked again.
SETTLED_AFTER = 3  # days
REREAD_DAYS = 3  # the held day and the two before it: the days GitHub may still revise


class ReportsUnavailable(GitHubError):
    """Every reports endpoint asked answered 404: unknown scope, or a GitHub without this API."""

    def __init__(self, route: str):
        super().__init__(404, route, "the reports API does not know this scope")
        self.hint = "check the name and the token's access; GitHub Enterprise Server may only offer `source: legacy`"


class DayUnavailable(GitHubError):
    """A day's links answered 5xx: the day is still being produced (or GitHub is failing)."""

    def __init__(self, error: GitHubError):
        super().__init__(error.status, error.route, "the day's report is not available yet")


@dataclass(frozen=True)
class Report:
    key: str  # the `report` label of copilot_report_day_timestamp_seconds
    endpoint: str  # path segment under .../copilot/metrics/reports/


@dataclass
class Downloaded:
    """A report's parsed result, kept to skip downloading it again while it is unchanged."""

    day: str
    identity: tuple[str, ...]
    families: tuple[Family, ...]
    users: reports.UsersAccumulator | None = None
    problems: tuple[Problem, ...] = ()  # found while parsing; reported once, not on each reuse
    folded: tuple[tuple[str, int], ...] = ()
    notes: tuple[str, ...] = ()  # lasting conditions (e.g. a configured team not listed), kept on reuse
    memberships: list[Membership] | None = None  # the user-teams rows read, to keep in the state


@dataclass(frozen=True)
class HeldDay:
    """A report's day as a state store holds it: its families, or None when GitHub has none."""

    found: Downloaded | None


def aggregated_report(kind: str) -> Report:
    if kind == ENTERPRISE:
        return Report("enterprise", "enterprise-1-day")
    return Report("organization", "organization-1-day")


USERS = Report("users", "users-1-day")
TEAMS = Report("user_teams", "user-teams-1-day")
REPOS = Report("repos", "repos-1-day")
TEAM_WINDOWS = Report("team_windows", "")  # computed from the state, never asked of GitHub
KEPT_BY_DAY = (USERS, TEAMS)  # their families are written with the day's users and memberships (`_keep`)


def window_report(kind: str) -> Report:
    """The 28-day aggregated report, read for what only it holds (feature engagement)."""
    return (
        Report("enterprise_28_day", "enterprise-28-day/latest")
        if kind == ENTERPRISE
        else Report("organization_28_day", "organization-28-day/latest")
    )


def as_wrapper(record: dict, where: str) -> dict:
    """An aggregated record in the 28-day report's shape, `{report_start_day, report_end_day,
    <scope ids>, day_totals: [daily record...]}`: a flat daily record becomes the wrapper of
    its one day; a wrapper's `day_totals` must be a list of objects (in any order)."""
    if "day_totals" not in record:
        day = record.get("day")
        ids = {key: record[key] for key in ("enterprise_id", "organization_id") if key in record}
        return {"report_start_day": day, "report_end_day": day, **ids, "day_totals": [record]}
    totals = record["day_totals"]
    if not isinstance(totals, list) or not all(isinstance(entry, dict) for entry in totals):
        raise PayloadError(f"{where}: day_totals: expected a list of objects")
    return record


def download_links(body: Any, route: str) -> list[str] | None:
    """The links of a decoded answer; None for the bodies that mean "no report": nothing,
    `null`, a bare string such as "No report available for this day", an empty list of links."""
    if body is None or isinstance(body, str):
        return None
    links = body.get("download_links") if isinstance(body, dict) else None
    if not isinstance(links, list) or not all(isinstance(link, str) for link in links):
        raise PayloadError(f"{route}: download_links: expected a list of URLs")
    return links or None


class ReportsSource:
    """The reports of one organization or enterprise; remembers what it downloaded."""

    _now = 0.0  # the Unix time of the current refresh (`fetch`)
    _asking = False  # within `fetch`: a joined report unchanged since it was read is not asked again
    _rereads = True  # whether held days due to be asked again may be (False: the request budget is low)
    deferred_rereads = 0  # re-reads put off so far

    def __init__(self, entry: Entry, config: Config, state: StateStore | None = None, history: StateView | None = None):
        """`state`: the exporter's own store; `history`: a read-only view of one (a backfill's),
        whose held days `fetch_day` takes instead of asking GitHub (listed in `reused`)."""
        self.entry = entry
        self.scope = entry.scope
        self.key = str(entry.scope)  # the scope's key in the state store
        self.lookback_days = config.lookback_days
        self.salt = config.user_hash_salt
        self.max_series = config.max_series_per_family
        self.state = state
        self.history = history
        self.fingerprint = mapping_fingerprint(entry, config)
        self.reused: list[tuple[str, str]] = []  # (report, day) taken from `history`
        self.fill_days = config.fill_days_per_refresh
        self._downloaded: dict[str, Downloaded] = {}
        self.reread_interval = config.reread_interval
        # (report key, day) -> when it was last asked and what it answered, for the recent days
        self._asked_at: dict[tuple[str, str], Asked] = state.asked(self.key) if state is not None else {}
        self._asked_lock = threading.Lock()
        if state is not None:
            for report, served in state.served(self.key).items():
                self._downloaded[report] = Downloaded(served.day, tuple(json.loads(served.identity)), served.families)
        base = "/enterprises/{enterprise}" if self.scope.kind == ENTERPRISE else "/orgs/{org}"
        self._route_base = base + "/copilot/metrics/reports/"
        self._path_base = base.format(enterprise=self.scope.name, org=self.scope.name) + "/copilot/metrics/reports/"

    def fetch(
        self, client: GitHubClient, today: dt.date | None = None, now: float | None = None, rereads: bool = True
    ) -> Result:
        """Per report, the newest day found in the lookback window (what the exporter serves);
        `now` (a Unix time) decides which held days are due to be asked again; with `rereads`
        False none is (the request budget is low), and `deferred_rereads` counts them."""
        today = today or dt.datetime.now(dt.timezone.utc).date()
        self._now = time.time() if now is None else now
        self._rereads = rereads
        aggregated = aggregated_report(self.scope.kind)
        first: dict[str, Downloaded | None] = {}
        self._answered = False
        held = self._downloaded.get(aggregated.key)
        if self.entry.reports.aggregated and held is not None:
            # Steady state: the aggregated report's answer says whether the others can be new.
            first[aggregated.key] = self._newest(client, aggregated, today, self._parse_aggregated)
            self._confirm_others(held, first[aggregated.key])
        newest = first.get(aggregated.key)
        ceiling = newest.day if newest else None
        answered_first = self._answered

        def find(report: Report, parse: Parse) -> Downloaded | None:
            if report.key in first:
                if answered_first:  # it was asked above (never reset what another chain found)
                    self._answered = True
                return first[report.key]
            return self._newest(client, report, today, parse, ceiling)

        self._asking = True
        try:
            result = self._collect(client, find, latest=lambda: self._latest(client, today), today=today)
        finally:
            self._asking = False
        notes = (
            ()
            if result.days
            else (f"no report in the last {self.lookback_days} days yet (reports land within about two days)",)
        )
        return dataclasses.replace(result, notes=result.notes + notes)

    def fetch_day(self, client: GitHubClient, day: str, aggregated: dict | None = None) -> Result:
        """Every enabled report of one day (YYYY-MM-DD), read and mapped exactly as `fetch` does.

        `days` names the reports found; it is empty when GitHub has no report for that day.
        `aggregated`, the day's record from `window_days`, stands in for the 1-day aggregated
        report: the same mapping, no request.
        """

        def find(report: Report, parse: Parse) -> Downloaded | None:
            if aggregated is not None and report == aggregated_report(self.scope.kind):
                self._answered = True
                return parse(iter([aggregated]), day)
            return self._on_day(client, report, day, parse)

        return self._collect(client, find)

    def window_days(self, client: GitHubClient) -> dict[str, dict]:
        """The daily records of the 28-day aggregated report by day ({} when there is none): one
        download where `fetch_day` would read one 1-day aggregated report per day of its window."""
        report = window_report(self.scope.kind)
        try:
            links = self._links(client, report, None)
        except DayUnavailable:
            return {}
        days: dict[str, dict] = {}
        for record in self._records(client, report, links or []):
            for entry in as_wrapper(record, report.endpoint)["day_totals"]:
                if isinstance(entry.get("day"), str):
                    days.setdefault(entry["day"], entry)
        return days

    def restored(self) -> Result | None:
        """What the state kept as last served, as `fetch` would return it; None when nothing."""
        selection = self.entry.reports
        reports_ = [aggregated_report(self.scope.kind), window_report(self.scope.kind)] if selection.aggregated else []
        reports_ += ([USERS] if selection.users else []) + ([TEAMS] if selection.teams else [])
        reports_ += [REPOS] if selection.repositories else []
        found = [(report, self._downloaded[report.key]) for report in reports_ if report.key in self._downloaded]
        users = self._downloaded.get(USERS.key)
        if selection.teams and users is not None:
            found.append((TEAM_WINDOWS, self._team_windows(users.day)))
        if not found:
            return None
        return Result(
            tuple(family for _report, downloaded in found for family in downloaded.families),
            {report.key: downloaded.day for report, downloaded in found},
        )

    def users_day(self) -> str | None:
        """The day of the users report currently served (or restored), None when there is none."""
        users = self._downloaded.get(USERS.key)
        return users.day if users is not None else None

    def held(self, end_day: str, days: int, reports_: tuple[Report, ...] = (USERS,)) -> bool:
        """Whether every day of the `days` ending at `end_day` has been asked of GitHub for each
        report: kept, or known to have no report."""
        if self.state is None:
            return False
        wanted = set(_days_ending(end_day, days))
        return all(wanted <= set(self._state.days_held(self.key, report.key)) for report in reports_)

    def newest_day(self, client: GitHubClient, today: dt.date) -> str | None:
        """The newest day `fetch` would export now, over every enabled report, found from the
        report links alone (nothing is downloaded); None when there is none in the window."""
        self._answered = False
        found = [
            self._first_found(
                report, self._window(today), lambda day: day if self._links(client, report, day) else None
            )
            for report in self._probed_reports()
        ]
        if not self._answered:
            raise ReportsUnavailable(self._route_base + "...")
        return max((day for day in found if day), default=None)

    def _probed_reports(self) -> list[Report]:
        selection = self.entry.reports
        reports_ = [aggregated_report(self.scope.kind)] if selection.aggregated else []
        reports_ += [USERS] if selection.users or selection.teams else []
        return reports_ + ([REPOS] if selection.repositories else [])

    def _collect(
        self,
        client: GitHubClient,
        find: Callable[[Report, Parse], Downloaded | None],
        latest: Callable[[], Downloaded | None] | None = None,
        today: dt.date | None = None,
    ) -> Result:
        """The enabled reports, each on the day `find` picks for it; teams join the users report;
        `latest` reads the 28-day report when a 1-day aggregated report was found.

        The three chains (aggregated; users then teams; repositories) are independent, so they
        run side by side: a scope's refresh takes the time of its longest chain, not their sum.
        """
        selection = self.entry.reports
        self._answered = False  # did any endpoint answer other than 404?

        def aggregated() -> list[tuple[Report, Downloaded | None]]:
            report = aggregated_report(self.scope.kind)
            found = find(report, self._parse_aggregated)
            # No recent 1-day report, no recent 28-day report either: it ends on the newest day.
            window = [(window_report(self.scope.kind), latest())] if found and latest else []
            return [(report, found), *window]

        def users_and_teams() -> list[tuple[Report, Downloaded | None]]:
            users = find(USERS, self._parse_users)
            found = [(USERS, users)] if selection.users else []
            teams, no_teams = None, False
            if selection.teams and users:

                def join(records: Iterator[dict], day: Any) -> Downloaded:
                    return self._parse_teams(records, day, self._members(client, users))

                try:
                    teams = self._on_day(client, TEAMS, users.day, join, depends=users.identity)
                    no_teams = teams is None
                except DayUnavailable:
                    teams = None  # that day's teams are still being produced
                found.append((TEAMS, teams))
            if self.state is not None and users is not None and today is not None:
                self._keep(users.day, users, teams, no_teams)
                self._fill(client, users.day, today)
                if selection.teams:
                    found.append((TEAM_WINDOWS, self._team_windows(users.day)))
            return found

        def repositories() -> list[tuple[Report, Downloaded | None]]:
            return [(REPOS, find(REPOS, self._parse_repos))]

        chains = [
            chain
            for chain, enabled in (
                (aggregated, selection.aggregated),
                (users_and_teams, selection.users or selection.teams),
                (repositories, selection.repositories),
            )
            if enabled
        ]
        with ThreadPoolExecutor(max(1, len(chains)), thread_name_prefix="reports") as pool:
            futures = [pool.submit(chain) for chain in chains]
        found = [pair for future in futures for pair in future.result()]  # in order: stable output
        if not self._answered:
            raise ReportsUnavailable(self._route_base + "...")
        downloads = [downloaded for _report, downloaded in found if downloaded]
        days = {report.key: downloaded.day for report, downloaded in found if downloaded}
        families = tuple(family for downloaded in downloads for family in downloaded.families)
        problems = Problems()
        folded: Counter[str] = Counter()
        for downloaded in downloads:
            problems.merge(downloaded.problems)
            folded.update(dict(downloaded.folded))
        notes = tuple(note for downloaded in downloads for note in downloaded.notes)
        return Result(families, days, notes, problems.frozen(), tuple(sorted(folded.items())))

    # Day selection ---------------------------------------------------------------------------
    def _window(self, today: dt.date) -> list[str]:
        """The days a report is looked for on, newest first."""
        return [(today - dt.timedelta(days=back)).isoformat() for back in range(1, self.lookback_days + 1)]

    def _newest(
        self, client: GitHubClient, report: Report, today: dt.date, parse: Parse, ceiling: str | None = None
    ) -> Downloaded | None:
        """The report's newest day: with a day held, only newer days (up to `ceiling` when
        given) and, when due, the held day again; else the lookback walk."""
        window = self._window(today)
        held = self._downloaded.get(report.key)
        if held is not None and held.day >= window[-1]:
            found = self._after_held(
                client,
                report,
                held,
                [day for day in window if day > held.day and (ceiling is None or day <= ceiling)],
                parse,
            )
            if found is not None:
                return found
            window = [day for day in window if day < held.day]  # the held day has gone: look further back
        found = self._first_found(report, window, lambda day: self._on_day(client, report, day, parse))
        if not found:
            self._downloaded.pop(report.key, None)
        return found

    def _after_held(
        self, client: GitHubClient, report: Report, held: Downloaded, newer: list[str], parse: Parse
    ) -> Downloaded | None:
        """A newer day's report, else the held day's (asked again when due); None when the held
        day has gone (then the window is walked again)."""

        def on_day(day: str) -> Downloaded | None:
            return self._on_day(client, report, day, parse)

        for day in newer:
            try:
                found = on_day(day)
            except DayUnavailable:
                continue  # still being produced
            if found:
                return found
        again = self._reread_day(report, held.day)
        try:
            if again == held.day:
                return on_day(held.day)
            if again is not None:
                self._reread_past(client, report, again)
        except DayUnavailable as err:  # a day it served before: GitHub is failing
            raise GitHubError(err.status, err.route, "a day held answered 5xx: GitHub is failing") from None
        self._answered = True  # the scope answered before: a 404 now is for a day, not for it
        return dataclasses.replace(held, problems=())  # counted when it was parsed

    def _confirm_others(self, held: Downloaded, found: Downloaded | None) -> None:
        """When the aggregated report was just asked again and its held day is unchanged, the
        other reports' held days count as asked too: a revision of a day's data revises its
        totals. (A day revised otherwise is replaced by the next day within a day anyway.)"""
        aggregated = aggregated_report(self.scope.kind).key
        if found is None or found.day != held.day or found.identity != held.identity:
            return  # a new day (the others are asked for it), or the held day changed: they are asked again
        asked_now = [day for day in _days_ending(held.day, REREAD_DAYS) if self._asked(aggregated, day) == self._now]
        if asked_now:
            self._record_asked(
                {
                    (key, downloaded.day): downloaded.identity
                    for key, downloaded in self._downloaded.items()
                    if key in (USERS.key, TEAMS.key, REPOS.key)
                },
            )

    def _asked(self, report_key: str, day: str) -> float:
        asked = self._asked_at.get((report_key, day))
        return asked.at if asked is not None else float("-inf")

    def _record_asked(self, identities: dict[tuple[str, str], tuple[str, ...]]) -> None:
        """Note that these (report key, day)s were asked now and what they answered."""
        self._remember_asked({key: Asked(self._now, _identity_text(identity)) for key, identity in identities.items()})

    def _remember_asked(self, asked: dict[tuple[str, str], Asked]) -> None:
        """Update when (report key, day)s were asked; a report's days before its last
        `REREAD_DAYS` are forgotten. Kept in the state when there is one."""
        reports_ = {report for report, _day in asked}
        with self._asked_lock:  # a scope's report chains run side by side
            self._asked_at.update(asked)
            for report in reports_:
                newest = max(day for key, day in self._asked_at if key == report)
                oldest = _days_ending(newest, REREAD_DAYS)[-1]
                for key, day in [key for key in self._asked_at if key[0] == report and key[1] < oldest]:
                    del self._asked_at[(key, day)]
            kept = {key: at for key, at in self._asked_at.items() if key[0] in reports_}
        if self.state is not None:
            self.state.remember_asked(self.key, kept)

    def _reread_due(self, report: Report, day: str) -> bool:
        """Whether `day` of the report was last asked `reread_interval` ago or more (and the
        budget allows asking it again now: else it counts as deferred)."""
        return self._allowed(self._now - self._asked(report.key, day) >= self.reread_interval)

    def _allowed(self, due: bool) -> bool:
        if due and not self._rereads:
            self.deferred_rereads += 1
            return False
        return due

    def _reread_day(self, report: Report, held_day: str) -> str | None:
        """The day of the report to ask again now, None when none is due: once `reread_interval`
        has passed since the report was last asked for one of its recent days, the held day,
        unless it was the last one asked: then the one of the two days before it asked longest
        ago. Past days only for the report that stands for the day, and only with a state store."""
        days = _days_ending(held_day, REREAD_DAYS if self._rereads_past(report) else 1)
        last = max(days, key=lambda day: self._asked(report.key, day))
        if not self._reread_due(report, last):
            return None
        if last != held_day or len(days) == 1:
            return held_day
        return min(days[1:], key=lambda day: self._asked(report.key, day))

    def _rereads_past(self, report: Report) -> bool:
        """Whether the report's days before the held one are asked again: those of the report that
        stands for the day (the aggregated one, else the users report), kept in a state store."""
        aggregated = aggregated_report(self.scope.kind)
        stands_for_day = report == aggregated if self.entry.reports.aggregated else report == USERS
        return self.state is not None and stands_for_day

    def _reread_past(self, client: GitHubClient, report: Report, day: str) -> None:
        """Ask a day before the held one again; when its links changed, that day's users and
        user-teams reports are read again into the state."""
        before = self._asked_at.get((report.key, day))
        links = self._links(client, report, day) or []
        identity = _paths(links)
        if before is not None and before.identity == _identity_text(identity):
            self._record_asked({(report.key, day): identity})
            return
        log.info("%s: %s of %s changed since it was read: reading it again into the state", self.scope, report.key, day)
        try:
            self._revise_kept(client, day, links if report == USERS else None)
        except RefreshError as err:
            # Keep the identity known before, so the change is seen again at the next re-read.
            log.warning("%s: reading %s again into the state failed: %s", self.scope, day, err)
            self._remember_asked({(report.key, day): Asked(self._now, before.identity if before else "")})
            return
        self._record_asked({(report.key, day): identity})

    def _revise_kept(self, client: GitHubClient, day: str, users_links: list[str] | None) -> None:
        """Read a past day's users and user-teams reports again into the state, when the state
        holds that day and their links changed (the users report is read for the team join too)."""
        if self._state.identity(self.key, USERS.key, day) is None:
            return  # not held: the fill asks for it
        users_links = self._links(client, USERS, day) if users_links is None else users_links
        if not users_links:
            return  # gone for now: what is kept stays
        with_teams = self.entry.reports.teams
        teams_links = self._links(client, TEAMS, day) if with_teams else None
        users_identity = _paths(users_links)
        teams_identity = _paths(teams_links) + users_identity if teams_links else ()
        unchanged = self._state.identity(self.key, USERS.key, day) == _identity_text(users_identity) and (
            not with_teams
            or self._state.identity(self.key, TEAMS.key, day)
            == (_identity_text(teams_identity) if teams_links else NO_REPORT)
        )
        if unchanged:
            return
        users = self._parse_users(self._records(client, USERS, users_links), day)
        users.identity = users_identity
        teams = None
        if teams_links:
            assert users.users is not None  # _parse_users sets it
            teams = self._parse_teams(self._records(client, TEAMS, teams_links), day, users.users)
            teams.identity = teams_identity
        self._keep(day, users, teams, no_teams=with_teams and teams is None)

    def _first_found(self, report: Report, days: list[str], on_day: Callable[[str], T | None]) -> T | None:
        """What `on_day` finds on the first day that has a report. A day answering 5xx is still
        being produced and is stepped over, unless every day does: then GitHub is failing."""
        unavailable: list[DayUnavailable] = []
        for day in days:
            try:
                found = on_day(day)
            except DayUnavailable as err:
                unavailable.append(err)
                continue
            if found:
                return found
        if unavailable and len(unavailable) == len(days):
            error = unavailable[0]
            raise GitHubError(
                error.status,
                error.route,
                f"every day of the last {len(days)} answered 5xx: GitHub is failing, not producing a day",
            )
        if unavailable:
            log.info(
                "%s: %s: %d day(s) answered 5xx, taken as not produced yet",
                self.scope,
                report.endpoint,
                len(unavailable),
            )
        return None

    def _latest(self, client: GitHubClient, today: dt.date) -> Downloaded | None:
        """The 28-day aggregated report, read at most once per UTC day; None when there is none."""
        report = window_report(self.scope.kind)
        known = self._downloaded.get(report.key)
        read_on = (report.key, today.isoformat())  # kept with the days asked: a restart does not read it again
        if known and read_on in self._asked_at:
            return dataclasses.replace(known, problems=())  # counted when it was parsed
        try:
            found = self._on_day(client, report, None, self._parse_window)
        except DayUnavailable:
            found = None  # still being produced: asked again at the next refresh
        if found is None:
            self._downloaded.pop(report.key, None)
        else:
            self._record_asked({read_on: found.identity})
        return found

    def _on_day(
        self,
        client: GitHubClient,
        report: Report,
        day: str | None,
        parse: Parse,
        depends: tuple[str, ...] = (),
        remember: bool = True,
    ) -> Downloaded | None:
        """The report of one day (None: of a `latest` report), downloaded only when new or
        changed; None when there is none.

        `depends` is the identity of another report this one is joined with. `remember`: keep
        it as the report served (and in the state's served values); False for a past day read
        only to fill the state.
        """
        if day is not None:
            held = self._held(report, day)
            if held is not None:
                self._answered = True
                self.reused.append((report.key, day))
                return held.found
        known = self._downloaded.get(report.key)
        if (
            self._asking
            and depends
            and known
            and known.day == day
            and known.identity[-len(depends) :] == depends
            and not self._reread_due(report, known.day)
        ):
            return dataclasses.replace(known, problems=())  # joined with an unchanged report
        links = self._links(client, report, day)
        if not links:
            return None
        identity = _paths(links) + depends
        if day is not None and remember:  # a past day read to fill the state is no re-read
            self._record_asked({(report.key, day): identity})
        if remember and known and day in (None, known.day) and known.identity == identity:
            return dataclasses.replace(known, problems=())  # counted when it was parsed
        try:
            downloaded = parse(self._records(client, report, links), day)
        except GitHubError as err:
            if err.status not in (403, 404):
                raise
            # Signed links expire: ask for fresh ones once before calling the report broken.
            log.info("%s: %s link refused (%d), asking for fresh links", self.scope, report.endpoint, err.status)
            links = self._links(client, report, day) or []
            try:
                downloaded = parse(self._records(client, report, links), day)
            except GitHubError as again:
                raise PayloadError(f"{report.endpoint} {day}: download links refused twice ({again.status})") from None
        downloaded.identity = identity
        if self.state is not None and day is not None and report not in KEPT_BY_DAY:
            self._state.write_day(self.key, day, identities={}, families={report.key: self._day_families(downloaded)})
        if remember:
            self._downloaded[report.key] = downloaded
            if self.state is not None:
                self.state.remember_served(
                    self.key, report.key, Served(downloaded.day, _identity_text(identity), downloaded.families)
                )
        return downloaded

    def _links(self, client: GitHubClient, report: Report, day: str | None) -> list[str] | None:
        """The day's download links (a `latest` report's: day None); None for every "no report"
        answer but 5xx, which raises DayUnavailable (see the module docstring)."""
        route = self._route_base + report.endpoint
        params = {"day": day} if day else None
        try:
            response = client.get(self._path_base + report.endpoint, route, params, ok=(200, 204))
        except GitHubError as err:
            if err.status == 404:
                return None
            if err.status >= 500:
                self._answered = True
                raise DayUnavailable(err) from None
            explain_forbidden(err, SOURCE, self.scope.kind)
            raise
        self._answered = True
        return download_links(response.json(route) if response.status == 200 else None, route)

    def _records(self, client: GitHubClient, report: Report, links: list[str]) -> Iterator[dict]:
        route = "download:" + report.endpoint
        for link in links:
            response = client.download(link, route)
            try:
                yield from iter_records(response, report.endpoint)
            finally:
                response.close()

    # Parsing, one report each ---------------------------------------------------------------
    def _builder(self) -> FamilyBuilder:
        return FamilyBuilder(self.scope.labels(), self.max_series)

    def _stamped(self, builder: FamilyBuilder, report: Report, day: str) -> Downloaded:
        """The built families, with the day they are of (the day asked for, as GitHub files it)."""
        builder.add("copilot_report_day_timestamp_seconds", day_timestamp(day), report=report.key)
        return Downloaded(
            day, (), builder.build(), problems=builder.problems.frozen(), folded=tuple(sorted(builder.folded.items()))
        )

    def _parse_aggregated(self, records: Iterator[dict], day: str) -> Downloaded:
        builder = self._builder()
        report = aggregated_report(self.scope.kind)
        for record in records:
            for entry in as_wrapper(record, report.endpoint)["day_totals"]:
                if entry.get("day", day) == day:  # a wrapper holds other days too
                    reports.add_aggregated(builder, entry)
        return self._stamped(builder, report, day)

    def _parse_window(self, records: Iterator[dict], _day: None) -> Downloaded:
        builder = self._builder()
        report = window_report(self.scope.kind)
        end_day = None
        for record in records:
            end_day = reports.add_28_day(builder, as_wrapper(record, report.endpoint)) or end_day
        if end_day is None:
            raise PayloadError(f"{report.endpoint}: report_end_day: missing")
        return self._stamped(builder, report, end_day)

    def _parse_users(self, records: Iterator[dict], day: str) -> Downloaded:
        users = reports.UsersAccumulator(
            self.entry.per_user,
            self.salt,
            join_id=reports.JOIN_IDS[self.scope.kind],
            keep_members=self.entry.reports.teams or self.state is not None,
        )
        for record in records:
            users.add(record)
        builder = self._builder()
        users.add_to(builder)
        downloaded = self._stamped(builder, USERS, day)
        downloaded.users = users
        return downloaded

    def _parse_teams(self, records: Iterator[dict], day: str, users: reports.UsersAccumulator) -> Downloaded:
        builder = self._builder()
        memberships: list[Membership] = []
        if self.state is not None:
            # Only the rows the join keeps are held: members in the day's users report (a quarter
            # to a fifth of all memberships, as most members are not active on a given day).
            present = {user_id for user_id, _label, _member in users.kept()}
            rows = _kept_memberships(records, day, memberships, present)
        else:
            rows = records
        missing = reports.add_teams(builder, rows, users, self.entry.teams)
        downloaded = self._stamped(builder, TEAMS, day)
        downloaded.memberships = memberships if self.state is not None else None
        downloaded.notes = tuple(
            f"team {slug!r} is configured but not in the {TEAMS.endpoint} report "
            "(unknown slug, or fewer than five seated members)"
            for slug in missing
        )
        return downloaded

    def _parse_repos(self, records: Iterator[dict], day: str) -> Downloaded:
        builder = self._builder()
        reports.add_repositories(builder, records, self.entry.max_repositories)
        return self._stamped(builder, REPOS, day)

    # The state: days kept, past days filled, windows ----------------------------------------
    @property
    def _state(self) -> StateStore:
        """The state store; the methods below run only for a source that has one."""
        assert self.state is not None
        return self.state

    def _members(self, client: GitHubClient, users: Downloaded) -> reports.UsersAccumulator:
        """The users report's members for the team join. One restored from the state holds
        none (the user-teams report changed since the restart): its users report is read again."""
        if users.users is None:
            links = self._links(client, USERS, users.day) or []
            users.users = self._parse_users(self._records(client, USERS, links), users.day).users
            held = self._downloaded.get(USERS.key)  # `users` may be a copy of it: keep them there too
            if held is not None and (held.day, held.identity) == (users.day, users.identity):
                held.users = users.users
        assert users.users is not None  # _parse_users sets it
        return users.users

    def _keep(self, day: str, users: Downloaded, teams: Downloaded | None, no_teams: bool = False) -> None:
        """Write a day's users and team memberships to the state, with the families of both
        reports, in one transaction, unless it holds them already; `no_teams`: GitHub has no
        user-teams report that day."""
        identities: dict[str, str] = {}
        families: dict[str, DayFamilies] = {}
        if users.users is not None and not self._holds(USERS, day, _identity_text(users.identity)):
            identities[USERS.key] = _identity_text(users.identity)
            families[USERS.key] = self._day_families(users)
        memberships = teams.memberships if teams is not None else [] if no_teams else None
        teams_identity = _identity_text(teams.identity) if teams is not None else NO_REPORT
        if memberships is not None and not self._holds(TEAMS, day, teams_identity):
            identities[TEAMS.key] = teams_identity
            if teams is not None:
                families[TEAMS.key] = self._day_families(teams)
        if not identities:
            return
        per_user = self.entry.per_user != "off"  # logins (or their hashes) only when opted in
        kept = users.users
        self._state.write_day(
            self.key,
            day,
            identities=identities,
            users=(UserDay(user_id, label if per_user else None, member) for user_id, label, member in kept.kept())
            if kept is not None and USERS.key in identities
            else None,
            memberships=memberships if TEAMS.key in identities else None,
            families=families,
        )

    def _holds(self, report: Report, day: str, identity: str) -> bool:
        """Whether the state holds the report's day with this identity, and its families as
        this configuration builds them (a day without a report has none)."""
        if self._state.identity(self.key, report.key, day) != identity:
            return False
        return identity == NO_REPORT or self._state.families_held(self.key, report.key, day) == (
            identity,
            self.fingerprint,
        )

    def _day_families(self, downloaded: Downloaded) -> DayFamilies:
        """What the state keeps of a report's families: all but the per-user ones, which the
        users it keeps rebuild (`_held`)."""
        return DayFamilies(
            _identity_text(downloaded.identity),
            self.fingerprint,
            tuple(family for family in downloaded.families if not CATALOGUE[family.name].per_user),
        )

    def _held(self, report: Report, day: str) -> HeldDay | None:
        """The report's day from `history`, when it holds it as this configuration builds it
        (the per-user families rebuilt from its users) or as a settled day without a report;
        None when GitHub has to be asked."""
        store = self.history
        if store is None:
            return None
        settled = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=SETTLED_AFTER)).isoformat()
        if day <= settled and store.identity(self.key, report.key, day) == NO_REPORT:
            return HeldDay(None)
        held = store.day_families(self.key, report.key, day, self.fingerprint)
        if held is None:
            return None
        families = held.families
        if report == USERS and self.entry.per_user != "off":
            builder = self._builder()
            reports.add_per_user(builder, ((user.login, user.activity) for user in store.users_of(self.key, day)))
            families += builder.build()
        return HeldDay(Downloaded(day, tuple(json.loads(held.identity)), families))

    def holds(self, report: Report, day: str) -> bool:
        """Whether `history` holds the report's day (`fetch_day` asks GitHub nothing for it)."""
        return self._held(report, day) is not None

    def _fill(self, client: GitHubClient, end_day: str, today: dt.date) -> None:
        """Ask GitHub for at most `fill_days` past days of the window ending at `end_day` that
        the state does not hold, newest first; a failure stops until the next refresh."""
        kept = (USERS, TEAMS) if self.entry.reports.teams else (USERS,)
        settled = (today - dt.timedelta(days=SETTLED_AFTER)).isoformat()

        held = [dict(self._state.identities(self.key, report.key)) for report in kept]  # day -> identity

        def missing(day: str) -> bool:
            identities = [days.get(day) for days in held]
            return any(identity is None or (identity == NO_REPORT and day > settled) for identity in identities)

        days = [day for day in _days_ending(end_day, WINDOW_DAYS)[1:] if missing(day)]
        for day in days[: self.fill_days]:
            try:
                self._fill_day(client, day, kept)
            except DayUnavailable:
                continue  # still being produced: asked again at the next refresh
            except RefreshError as err:
                log.warning("%s: filling the state stopped at %s until the next refresh: %s", self.scope, day, err)
                return
        if days:
            log.info(
                "%s: state: asked GitHub for %d past day(s), %d left for the next refreshes",
                self.scope,
                min(len(days), self.fill_days),
                max(0, len(days) - self.fill_days),
            )

    def _fill_day(self, client: GitHubClient, day: str, kept: tuple[Report, ...]) -> None:
        users = self._on_day(client, USERS, day, self._parse_users, remember=False)
        if users is None:
            self._state.write_day(
                self.key,
                day,
                identities={report.key: NO_REPORT for report in kept},
                users=[],
                memberships=[] if TEAMS in kept else None,
            )
            return
        teams = None
        if TEAMS in kept:
            members = users.users
            assert members is not None  # _parse_users sets it

            def join(records: Iterator[dict], day: Any) -> Downloaded:
                return self._parse_teams(records, day, members)

            teams = self._on_day(client, TEAMS, day, join, depends=users.identity, remember=False)
        self._keep(day, users, teams, no_teams=TEAMS in kept and teams is None)

    def _team_windows(self, end_day: str) -> Downloaded:
        """Team weekly/monthly actives ending at `end_day`, for each window the state fills, and
        a note saying how many days of the longest window it holds."""
        kept = (USERS, TEAMS)
        windows = {
            name: [
                (str(window.team_id), window.slug, window.active_users)
                for window in self._state.team_windows(self.key, end_day, days)
            ]
            for name, days in reports.TEAM_WINDOWS.items()
            if self.held(end_day, days, kept)
        }
        builder = self._builder()
        reports.add_team_windows(builder, windows, self.entry.teams)
        wanted = set(_days_ending(end_day, WINDOW_DAYS))
        held = wanted.intersection(*(self._state.days_held(self.key, report.key) for report in kept))
        note = (
            f"state: {len(held)} of the {WINDOW_DAYS} days up to {end_day} of the users and user-teams "
            "reports held (team weekly and monthly actives appear once 7 and 28 are)"
        )
        return Downloaded(end_day, (), builder.build(), notes=(note,))


def _paths(links: list[str]) -> tuple[str, ...]:
    """A report's identity: its links' paths (the query string only signs them)."""
    return tuple(sorted(urlsplit(link).path for link in links))


def _identity_text(identity: tuple[str, ...]) -> str:
    return json.dumps(list(identity))


def _days_ending(end_day: str, days: int) -> list[str]:
    """The `days` days ending at `end_day`, newest first."""
    end = dt.date.fromisoformat(end_day)
    return [(end - dt.timedelta(days=back)).isoformat() for back in range(days)]


def _kept_memberships(
    records: Iterator[dict], day: str, into: list[Membership], present: Container[int]
) -> Iterator[dict]:
    """The records, unchanged; each row of `day` that names a team and one of the `present`
    users also goes `into`."""
    for row in records:
        found = reports.membership(row)
        if found is not None and found[3] in (None, day) and found[2] in present:
            into.append(Membership(*found[:3]))
        yield row
