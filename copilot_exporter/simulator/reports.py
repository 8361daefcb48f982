"""Files of the Copilot usage metrics reports API: which records each one holds.

A report file is named by (scope, report, days covered with their revisions) and generated on
demand, part by part, so a 100,000-user report is never held in memory. The aggregated record
of a day is the fold of that day's users report: its seven counters are the sums over the user
records and `daily_active_users` is their number. Breakdowns split those sums by weights, so
they add up to the totals, except that CLI activity stays out of `totals_by_ide`, as on GitHub.
"""

from __future__ import annotations

import datetime
import hashlib
import json
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import islice

from copilot_exporter.simulator.world import (
    CHAT_MODELS, COUNTERS, PHASES, Activity, Draws, Scope, World, is_active, profile,
)

DAILY_REPORTS = {
    "org": ("organization-1-day", "users-1-day", "user-teams-1-day", "repos-1-day"),
    "enterprise": ("enterprise-1-day", "users-1-day", "user-teams-1-day", "repos-1-day"),
}
WINDOW_REPORTS = {
    "org": ("organization-28-day", "users-28-day"),
    "enterprise": ("enterprise-28-day", "users-28-day"),
}
WINDOW_DAYS = 28

_CHAT_FEATURES = (("chat_inline", 2), ("chat_panel_ask_mode", 4), ("chat_panel_edit_mode", 1),
                  ("chat_panel_custom_mode", 0.3), ("chat_panel_unknown_mode", 0.2),
                  ("others", 0.2))
_AGENT_FEATURES = (("chat_panel_agent_mode", 3), ("chat_panel_plan_mode", 0.5), ("agent_edit", 2))
_NOT_CHAT = ("code_completion", "copilot_cli")
_COMMENT_TYPES = (("bug_risk", 4), ("security", 2), ("performance", 2), ("readability", 3),
                  ("maintainability", 2))
_IDE_VERSIONS = {
    "vscode": (("1.105.1", "1.106.2", "1.107.0"), "copilot-chat", ("0.32.4", "0.33.1")),
    "intellij": (("2025.2.4", "2025.3"), "copilot-intellij", ("1.5.59", "1.5.61")),
    "visualstudio": (("17.14.19", "18.0.1"), "copilot-vs", ("18.0.458",)),
    "neovim": (("0.11.4", "0.10.4"), "copilot.vim", ("1.52.0",)),
    "xcode": (("26.1",), "copilot-xcode", ("0.44.0",)),
    "eclipse": (("4.37",), "copilot-eclipse", ("0.12.0",)),
    "zed": (("0.211.4",), "", ("",)),
    "vim": (("9.1",), "copilot.vim", ("1.52.0",)),
}
_CLOUD_AGENT_HISTORY = 45  # days: older aggregated records have null cloud agent counts
_PHASE_HISTORY = 90  # days: older aggregated records lack totals_by_ai_adoption_phase


def split(values: Sequence[int], weights: Sequence[float]) -> list[tuple[int, ...]]:
    """Each value cut into integer parts proportional to `weights`, summing exactly to it."""
    if len(weights) == 1:
        return [tuple(values)]
    total = sum(weights)
    rest = [tuple(int(v * w / total) for v in values) for w in weights[1:]]
    first = tuple(v - sum(taken) for v, taken in zip(values, zip(*rest)))
    return [first, *rest]


def _counters(values: Sequence[int], names: Sequence[str] = COUNTERS) -> dict[str, int]:
    return dict(zip(names, values))


def _by_feature(counters: Sequence[int], features: Sequence[tuple[str, float]],
                completion_share: float) -> list[tuple[str, tuple[int, ...]]]:
    """Completions take a share of everything but prompts; the prompting features share the rest."""
    if not features:
        return [("code_completion", tuple(counters))]
    completion = (0, *(int(v * completion_share) for v in counters[1:]))
    remainder = [v - c for v, c in zip(counters, completion)]
    parts = split(remainder, [w for _, w in features])
    return [("code_completion", completion), *zip((f for f, _ in features), parts)]


def _breakdowns(counters: Sequence[int], features: Sequence[tuple[str, float]],
                completion_share: float, ides: Sequence[tuple[str, float]],
                languages: Sequence[tuple[str, float]], models: Sequence[tuple[str, float]],
                chat_languages: int) -> dict:
    """The five `totals_by_*` arrays of a record. Completions are split over all `languages`,
    the other features over the first `chat_languages` only (keeps records near real sizes)."""
    by_feature = _by_feature(counters, features, completion_share)
    cli = next((c for f, c in by_feature if f == "copilot_cli"), (0,) * len(COUNTERS))
    ide_total = [v - c for v, c in zip(counters, cli)]
    chat_parts = [c for f, c in by_feature if f not in _NOT_CHAT]
    chat = [sum(column) for column in zip(*chat_parts)] or [0] * len(COUNTERS)
    language_feature = []
    for feature, values in by_feature:
        if feature != "copilot_cli":
            langs = languages if feature == "code_completion" else languages[:chat_languages]
            for (language, _), part in zip(langs, split(values[1:], [w for _, w in langs])):
                language_feature.append({"language": language, "feature": feature,
                                         **_counters(part, COUNTERS[1:])})
    pairs = [(lang, model, lw * mw)
             for lang, lw in languages[:chat_languages] for model, mw in models]
    return {
        "totals_by_ide": [{"ide": ide, **_counters(part)}
                          for (ide, _), part in zip(ides, split(ide_total, [w for _, w in ides]))],
        "totals_by_feature": [{"feature": f, **_counters(c)} for f, c in by_feature],
        "totals_by_language_feature": language_feature,
        "totals_by_language_model": [] if not any(chat) else [
            {"language": lang, "model": model, **_counters(part)}
            for (lang, model, _), part in zip(pairs, split(chat, [w for *_, w in pairs]))],
        "totals_by_model_feature": [
            {"model": model, "feature": feature, **_counters(part)}
            for feature, values in by_feature if feature not in _NOT_CHAT
            for (model, _), part in zip(models, split(values, [w for _, w in models]))],
    }


def _housekeeping(world: World, scope: Scope, day: datetime.date) -> dict:
    return {"etl_id": ("green", "blue")[day.toordinal() % 2], "day_partition": day.isoformat(),
            "entity_id_partition": world.scope_id(scope.kind, scope.name)}


# -- users --------------------------------------------------------------------------------

def _user_features(a: Activity) -> list[tuple[str, float]]:
    features = [("chat_panel_ask_mode", 3)] if a.chat else []
    if a.agent:
        features += [("chat_panel_agent_mode", 3), ("agent_edit", 2)]
    if a.cli:
        features.append(("copilot_cli", 2))
    return features


def _sampled(day: datetime.date, d: Draws) -> str:
    return f"{day.isoformat()}T{d.int(0, 23):02d}:{d.int(0, 59):02d}:{d.int(0, 59):02d}.000Z"


def _ide_entries(world: World, index: int, entries: list[dict], day: datetime.date) -> None:
    """Adds the last known IDE and plugin versions to a user's `totals_by_ide` entries."""
    d = Draws(world.seed, "versions", index, day.toordinal() // 14)  # clients update now and then
    for entry in entries:
        versions, plugin, plugin_versions = _IDE_VERSIONS[entry["ide"]]
        entry["last_known_ide_version"] = {"ide_version": d.pick(versions),
                                           "sampled_at": _sampled(day, d)}
        entry["last_known_plugin_version"] = None if d.chance(0.1) else {
            "plugin": plugin, "plugin_version": d.pick(plugin_versions),
            "sampled_at": _sampled(day, d)}


def user_record(world: World, scope: Scope, index: int, a: Activity,
                period: dict[str, str], day: datetime.date) -> dict:
    """One user's record; `period` is {"day": ...} or the 28-day report's start and end."""
    p = profile(world.seed, index)
    ide_weights = [(p.ides[0], 4), *((ide, 1) for ide in p.ides[1:])]
    models = [(m, w) for m, w in zip(p.models, (3, 1))]
    languages = list(zip(p.languages, (3, 2, 1)))
    breakdowns = _breakdowns(a.counters, _user_features(a), 0.7 if (a.chat or a.agent) else 1.0,
                             ide_weights, languages, models, 1)
    _ide_entries(world, index, breakdowns["totals_by_ide"], day)
    record = {
        "user_id": world.user_id(index), "user_login": world.login(index), **period,
        **world.scope_ids(scope), **_counters(a.counters),
        "used_agent": a.agent, "used_chat": a.chat, "used_cli": a.cli,
        p.cloud_agent_field: a.cloud_agent,
        "used_copilot_code_review_active": a.review_active,
        "used_copilot_code_review_passive": a.review_passive,
        "ai_adoption_phase": {"phase": PHASES[p.phase - 1], "phase_number": p.phase,
                              "version": "2025-10"},
        **breakdowns,
        "totals_by_cli": None if a.cli_totals is None else {
            **_cli(a.cli_totals),
            "last_known_cli_version": {
                "cli_version": "0.0.35",
                "sampled_at": _sampled(day, Draws(world.seed, "cli", index, day.toordinal()))}},
    }
    if a.credits is not None:
        record["ai_credits_used"] = a.credits
    record.update(_housekeeping(world, scope, day))
    return record


def _cli(totals: Sequence[int]) -> dict:
    sessions, requests, prompts, prompt_tokens, output_tokens = totals
    average = round((prompt_tokens + output_tokens) / max(1, requests), 1)
    return {"session_count": sessions, "request_count": requests, "prompt_count": prompts,
            "token_usage": {"prompt_tokens_sum": prompt_tokens, "output_tokens_sum": output_tokens,
                            "avg_tokens_per_request": average}}


# Caches here are sized for a 100,000-user scope: a day's active users take ~250 kB as an array.
@lru_cache(maxsize=64)
def active_users(world: World, scope: Scope, day: datetime.date) -> array:
    """Pool indices of the scope's users active on `day`, ascending."""
    seed = world.seed
    return array("i", (i for i in world.members(scope) if is_active(seed, i, day)))


def combine(activities: Sequence[Activity]) -> Activity:
    """Activity summed over several days, for the 28-day users report."""
    clis = [a.cli_totals for a in activities if a.cli_totals is not None]
    credits = [a.credits for a in activities if a.credits is not None]
    passive = [a.review_passive for a in activities if a.review_passive is not None]
    return Activity(
        counters=tuple(map(sum, zip(*(a.counters for a in activities)))),
        chat=any(a.chat for a in activities), agent=any(a.agent for a in activities),
        cli=bool(clis), cloud_agent=any(a.cloud_agent for a in activities),
        review_active=any(a.review_active for a in activities),
        review_passive=any(passive) if passive else None,
        cli_totals=tuple(map(sum, zip(*clis))) if clis else None,
        credits=round(sum(credits), 2) if credits else None,
    )


# -- aggregated record --------------------------------------------------------------------

@dataclass
class _Population:
    """Day-independent head counts: the pools trailing (weekly/monthly) counts draw from."""

    enrolled: int = 0
    chat: int = 0
    agent: int = 0
    reviewer: int = 0


@lru_cache(maxsize=64)
def _population(world: World, scope: Scope) -> _Population:
    pop = _Population()
    for index in world.members(scope):
        p = profile(world.seed, index)
        if p.engagement:
            pop.enrolled += 1
            pop.chat += p.chat
            pop.agent += p.agent
            pop.reviewer += p.reviewer
    return pop


@dataclass
class _Fold:
    users: int
    counters: list[int]
    flags: Counter
    cli: list[int]
    phases: dict[int, list[int]]  # phase -> [users, *counters]
    ides: Counter
    languages: Counter


@lru_cache(maxsize=512)
def _fold(world: World, scope: Scope, day: datetime.date, revision: int) -> _Fold:
    fold = _Fold(0, [0] * len(COUNTERS), Counter(), [0] * 5, {}, Counter(), Counter())
    for index in active_users(world, scope, day):
        a = world.activity(index, day).bumped(revision)
        p = profile(world.seed, index)
        fold.users += 1
        fold.counters = [x + y for x, y in zip(fold.counters, a.counters)]
        fold.flags.update(chat=a.chat, agent=a.agent, cli=a.cli, cloud_agent=a.cloud_agent,
                          review_active=a.review_active, review_passive=bool(a.review_passive))
        if a.cli_totals:
            fold.cli = [x + y for x, y in zip(fold.cli, a.cli_totals)]
        phase = fold.phases.setdefault(p.phase, [0] * (1 + len(COUNTERS)))
        phase[:] = [x + y for x, y in zip(phase, (1, *a.counters))]
        fold.ides[p.ides[0]] += 1
        fold.languages.update(p.languages)
    return fold


def _trailing(daily: int, pool: int, share: float) -> int:
    """A trailing distinct count between the day's count and the pool (an approximation:
    exact counts would need the users of every day of the window)."""
    return daily + round(max(0, pool - daily) * share)


def aggregate_record(world: World, scope: Scope, day: datetime.date, revision: int) -> dict:
    fold = _fold(world, scope, day, revision)
    pop = _population(world, scope)
    flags = fold.flags
    age = (world.today - day).days
    features = [*_CHAT_FEATURES] if flags["chat"] else []
    features += _AGENT_FEATURES if flags["agent"] else ()
    features += [("copilot_cli", 1)] if flags["cli"] else []
    actives = {"daily": fold.users, "weekly": _trailing(fold.users, pop.enrolled, 0.5),
               "monthly": _trailing(fold.users, pop.enrolled, 0.8)}
    monthly = actives["monthly"]
    record = {
        "day": day.isoformat(), **world.scope_ids(scope),
        **{f"{period}_active_users": count for period, count in actives.items()},
        "monthly_active_chat_users": min(monthly, _trailing(flags["chat"], pop.chat, 0.8)),
        "monthly_active_agent_users": min(monthly, _trailing(flags["agent"], pop.agent, 0.8)),
    }
    for period, share in (("daily", 0.0), ("weekly", 0.3), ("monthly", 0.6)):
        cap = actives[period]
        cloud = min(cap, _trailing(flags["cloud_agent"], pop.agent, share))
        record[f"{period}_active_copilot_cloud_agent_users"] = (
            cloud if age <= _CLOUD_AGENT_HISTORY else None)
        record[f"{period}_active_copilot_code_review_users"] = min(
            cap, _trailing(flags["review_active"], pop.reviewer, share))
        record[f"{period}_passive_copilot_code_review_users"] = min(
            cap, _trailing(flags["review_passive"], pop.enrolled, share / 2))
    if flags["cli"]:
        record["daily_active_cli_users"] = int(flags["cli"])
    record.update(_counters(fold.counters))
    record.update(_breakdowns(
        fold.counters, features, 0.6, fold.ides.most_common(), fold.languages.most_common(6),
        list(zip(CHAT_MODELS, (30, 25, 15, 10, 15, 5))), 2))
    record["totals_by_cli"] = _cli(fold.cli) if flags["cli"] else None
    if age <= _PHASE_HISTORY:
        record["totals_by_ai_adoption_phase"] = [
            {"phase": PHASES[phase - 1], "phase_number": phase, "total_engaged_users": users,
             **{f"avg_{name}": round(value / users, 2) for name, value in zip(COUNTERS, sums)}}
            for phase, (users, *sums) in sorted(fold.phases.items())]
    record["pull_requests"] = _day_pull_requests(world, scope, day)
    record.update(_housekeeping(world, scope, day))
    return record


# -- pull requests and repositories -------------------------------------------------------

_PR_COUNTS = ("total_created", "total_reviewed", "total_merged", "total_suggestions",
              "total_applied_suggestions", "total_created_by_copilot", "total_reviewed_by_copilot",
              "total_merged_created_by_copilot", "total_merged_reviewed_by_copilot",
              "total_copilot_suggestions", "total_copilot_applied_suggestions")


def _pr_counts(d: Draws) -> dict[str, int]:
    created = d.int(0, 12)
    merged, reviewed = d.int(0, created), d.int(0, created)
    by_copilot, reviewed_by_copilot = d.int(0, created // 3), d.int(0, reviewed)
    suggestions = d.int(0, 30)
    applied = d.int(0, suggestions)
    copilot_suggestions = d.int(0, suggestions)
    return dict(zip(_PR_COUNTS, (
        created, reviewed, merged, suggestions, applied, by_copilot, reviewed_by_copilot,
        min(by_copilot, merged), min(reviewed_by_copilot, merged),
        copilot_suggestions, min(applied, d.int(0, copilot_suggestions)))))


def _medians(d: Draws, merged: int, null_chance: float) -> dict[str, float | None]:
    names = ("median_minutes_to_merge", "median_minutes_to_merge_copilot_authored",
             "median_minutes_to_merge_copilot_reviewed")
    if not merged or d.chance(null_chance):
        return dict.fromkeys(names)
    return {name: round(5 + 900 * d.random(), 1) for name in names}


@lru_cache(maxsize=256)
def repo_records(world: World, scope: Scope, day: datetime.date) -> tuple[dict, ...]:
    """Repositories with pull request activity on `day`."""
    orgs = ([scope.name] if scope.kind == "org"
            else [org.name for org in world.enterprise_orgs(scope.name)])
    records = []
    for org in orgs:
        for repo_id, name, visibility in world.repositories(org):
            d = Draws(world.seed, "repo-day", repo_id, day.toordinal())
            if not d.chance(0.7):
                continue
            counts = _pr_counts(d)
            records.append({
                "day": day.isoformat(), **world.scope_ids(Scope("org", org)),
                "repo_id": repo_id, "repo_owner_name": org, "repo_name": name,
                "repo_visibility": visibility,
                "pull_requests": {**counts, **_medians(d, counts["total_merged"], 0.0)},
            })
    return tuple(records)


def _day_pull_requests(world: World, scope: Scope, day: datetime.date) -> dict:
    totals = {name: sum(r["pull_requests"][name] for r in repo_records(world, scope, day))
              for name in _PR_COUNTS}
    d = Draws(world.seed, "pull-requests", scope.kind, scope.name, day.toordinal())
    suggested = (totals["total_copilot_suggestions"], totals["total_copilot_applied_suggestions"])
    by_type = split(suggested, [w for _, w in _COMMENT_TYPES])
    return {**totals, **_medians(d, totals["total_merged"], 0.2),
            "copilot_suggestions_by_comment_type": [
                {"comment_type": kind, "total_copilot_suggestions": suggestions,
                 "total_copilot_applied_suggestions": applied}
                for (kind, _), (suggestions, applied) in zip(_COMMENT_TYPES, by_type)]}


# -- teams --------------------------------------------------------------------------------

def _teams(world: World, scope: Scope) -> list[tuple[Scope, list[int] | range]]:
    """Teams with five or more members: smaller ones are left out of the report."""
    spec = world.org(scope.name) if scope.kind == "org" else world.enterprise(scope.name)
    teams = [Scope(scope.kind, scope.name, slug) for slug in spec.teams]
    return [(team, members) for team in teams if len(members := world.members(team)) >= 5]


def team_rows(world: World, scope: Scope, day: datetime.date) -> Iterator[dict]:
    """One row per (member, team), whether or not the member was active that day."""
    ids = world.scope_ids(scope)
    scope_id = {"organization_id": ids["organization_id"]} if scope.kind == "org" else ids
    for team, members in _teams(world, scope):
        team_id = world.team_id(team)
        for index in members:
            yield {"user_id": world.user_id(index), "user_login": world.login(index),
                   "day": day.isoformat(), **scope_id, "team_id": team_id, "slug": team.team}


# -- report files -------------------------------------------------------------------------

@dataclass(frozen=True)
class ReportFile:
    """The content of one report: what a download link's path names."""

    world: World
    scope: Scope
    report: str  # a DAILY_REPORTS or WINDOW_REPORTS name
    days: tuple[tuple[datetime.date, int], ...]  # (day, revision) covered, oldest first

    @property
    def day(self) -> datetime.date:
        return self.days[-1][0]

    @property
    def content_id(self) -> str:
        """Changes exactly when the content does: a revised day gets a new download path."""
        key = repr((self.world.seed, self.scope.kind, self.scope.name, self.report, self.days))
        return hashlib.sha256(key.encode()).hexdigest()[:20]

    @property
    def _window(self) -> dict[str, str]:
        start = self.day - datetime.timedelta(days=WINDOW_DAYS - 1)
        return {"report_start_day": start.isoformat(), "report_end_day": self.day.isoformat()}

    def count(self) -> int:
        w, s, day = self.world, self.scope, self.day
        if self.report == "users-1-day":
            return len(active_users(w, s, day))
        if self.report == "user-teams-1-day":
            return sum(len(members) for _, members in _teams(w, s))
        if self.report == "repos-1-day":
            return len(repo_records(w, s, day))
        if self.report == "users-28-day":
            return len(self._window_users())
        return 1

    def records(self, start: int, stop: int) -> Iterator[dict]:
        w, s, day = self.world, self.scope, self.day
        if self.report == "users-1-day":
            revision = self.days[-1][1]
            for index in active_users(w, s, day)[start:stop]:
                activity = w.activity(index, day).bumped(revision)
                yield user_record(w, s, index, activity, {"day": day.isoformat()}, day)
        elif self.report == "user-teams-1-day":
            yield from islice(team_rows(w, s, day), start, stop)
        elif self.report == "repos-1-day":
            yield from repo_records(w, s, day)[start:stop]
        elif self.report == "users-28-day":
            for index in self._window_users()[start:stop]:
                acts = [a.bumped(rev) for d, rev in self.days if (a := w.activity(index, d))]
                yield user_record(w, s, index, combine(acts), self._window, day)
        elif self.report.endswith("-28-day"):
            if start == 0 < stop:
                yield {**self._window, **w.scope_ids(s),
                       "day_totals": [aggregate_record(w, s, d, rev) for d, rev in self.days],
                       **_housekeeping(w, s, day)}
        elif start == 0 < stop:
            yield aggregate_record(w, s, day, self.days[-1][1])

    def _window_users(self) -> array:
        return _window_users(self.world, self.scope, tuple(d for d, _ in self.days))


@lru_cache(maxsize=8)
def _window_users(world: World, scope: Scope, days: tuple[datetime.date, ...]) -> array:
    return array("i", sorted(set().union(*(active_users(world, scope, d) for d in days))))


_encode = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode


def ndjson_chunks(records: Iterable[dict], chunk_size: int = 1 << 16) -> Iterator[bytes]:
    """NDJSON lines batched into chunks of about `chunk_size` bytes."""
    lines, size = [], 0
    for record in records:
        line = (_encode(record) + "\n").encode()
        lines.append(line)
        size += len(line)
        if size >= chunk_size:
            yield b"".join(lines)
            lines, size = [], 0
    if lines:
        yield b"".join(lines)
