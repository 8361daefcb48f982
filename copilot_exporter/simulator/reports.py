"""Files of the Copilot usage metrics reports API: which records each one holds.

A report file is named by (scope, report, days covered with their revisions) and generated on
demand, part by part, so a 100,000-user report is never held in memory. The aggregated record
of a day is the fold of that day's users report: its seven counters are the sums over the user
records and `daily_active_users` is their number. Breakdowns split those sums by weights, so
they add up to the totals, except that CLI and Copilot app activity stay out of `totals_by_ide`,
as on GitHub; model arrays leave code completion out; language and model arrays list the top 10
and `others`. Fields GitHub added in 2026 appear from the day it added them (`world.SINCE`), and
some users are seen only server-side: their records carry ids and nothing else.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import operator
from array import array
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from copilot_exporter.simulator.world import (
    CHAT_MODELS,
    COUNTERS,
    MODEL_WEIGHTS,
    PHASES,
    SINCE,
    Activity,
    Draws,
    Scope,
    World,
    is_active,
    profile,
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

_CHAT_FEATURES = (
    ("chat_inline", 2),
    ("chat_panel_ask_mode", 4),
    ("chat_panel_edit_mode", 1),
    ("chat_panel_custom_mode", 0.3),
    ("chat_panel_unknown_mode", 0.2),
    ("others", 0.2),
)
_AGENT_FEATURES = (("chat_panel_agent_mode", 3), ("chat_panel_plan_mode", 0.5), ("agent_edit", 2))
_OUTSIDE_IDE = ("copilot_cli", "copilot_app")  # in every breakdown but totals_by_ide
_TOP = 10  # GitHub lists the top 10 languages and models of a day, the rest as `others`
_COMMENT_TYPES = (("bug_risk", 4), ("security", 2), ("performance", 2), ("readability", 3), ("maintainability", 2))
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
    # lists, not generators, inside tuple(): the same numbers, built faster (called per record)
    rest = [tuple([int(v * w / total) for v in values]) for w in weights[1:]]
    first = tuple([v - sum(taken) for v, taken in zip(values, zip(*rest))])
    return [first, *rest]


def _counters(values: Sequence[int], names: Sequence[str] = COUNTERS) -> dict[str, int]:
    return dict(zip(names, values))


def _entry(head: dict, values: Sequence[int], names: Sequence[str] = COUNTERS) -> dict:
    """An entry of a `totals_by_*` array: its names (`head`), then its counters."""
    head.update(zip(names, values))
    return head


_COUNTS = COUNTERS[1:]  # every counter but prompts


def _by_feature(
    counters: Sequence[int], features: Sequence[tuple[str, float]], completion_share: float
) -> list[tuple[str, tuple[int, ...]]]:
    """Completions take a share of everything but prompts; the prompting features share the rest."""
    if not features:
        return [("code_completion", tuple(counters))]
    completion = (0, *(int(v * completion_share) for v in counters[1:]))
    remainder = [v - c for v, c in zip(counters, completion)]
    parts = split(remainder, [w for _, w in features])
    return [("code_completion", completion), *zip((f for f, _ in features), parts)]


def _breakdowns(
    counters: Sequence[int],
    features: Sequence[tuple[str, float]],
    completion_share: float,
    ides: Sequence[tuple[str, float]],
    languages: Sequence[tuple[str, float]],
    models: Sequence[tuple[str, float]],
    chat_languages: int,
) -> dict:
    """The five `totals_by_*` arrays of a record. Completions are split over all `languages`,
    the other features over the first `chat_languages` only (keeps records near real sizes)."""
    by_feature = _by_feature(counters, features, completion_share)
    ide_total = _minus(counters, [c for f, c in by_feature if f in _OUTSIDE_IDE])
    prompted = _minus(counters, [c for f, c in by_feature if f == "code_completion"])
    language_feature = []
    for feature, values in by_feature:
        langs = languages if feature == "code_completion" else languages[:chat_languages]
        for (language, _), part in zip(langs, split(values[1:], [w for _, w in langs])):
            language_feature.append(_entry({"language": language, "feature": feature}, part, _COUNTS))
    pairs = [(lang, model, lw * mw) for lang, lw in languages[:chat_languages] for model, mw in models]
    return {
        "totals_by_ide": [
            _entry({"ide": ide}, part) for (ide, _), part in zip(ides, split(ide_total, [w for _, w in ides]))
        ],
        "totals_by_feature": [_entry({"feature": f}, c) for f, c in by_feature],
        "totals_by_language_feature": language_feature,
        "totals_by_language_model": []
        if not any(prompted)
        else [
            _entry({"language": lang, "model": model}, part)
            for (lang, model, _), part in zip(pairs, split(prompted, [w for *_, w in pairs]))
        ],
        "totals_by_model_feature": [
            _entry({"model": model, "feature": feature}, part)
            for feature, values in by_feature
            if feature != "code_completion"
            for (model, _), part in zip(models, split(values, [w for _, w in models]))
        ],
    }


def _minus(values: Sequence[int], parts: Sequence[Sequence[int]]) -> list[int]:
    return [v - sum(column) for v, column in zip(values, zip(*parts))] if parts else list(values)


def top(weighted: Iterable[tuple[str, float]], n: int = _TOP) -> list[tuple[str, float]]:
    """The `n` heaviest names, then the rest together as `others`, as GitHub lists them."""
    ranked = sorted(weighted, key=lambda item: -item[1])
    rest = sum(weight for _, weight in ranked[n:])
    return ranked[:n] + ([("others", rest)] if rest else [])


def _housekeeping(world: World, scope: Scope, day: datetime.date) -> dict:
    return {
        "etl_id": ("green", "blue")[day.toordinal() % 2],
        "day_partition": day.isoformat(),
        "entity_id_partition": world.scope_id(scope.kind, scope.name),
    }


# -- users --------------------------------------------------------------------------------


def _user_features(a: Activity) -> list[tuple[str, float]]:
    features: list[tuple[str, float]] = [("chat_panel_ask_mode", 3)] if a.chat else []
    if a.agent:
        features += [("chat_panel_agent_mode", 3), ("agent_edit", 2)]
    if a.cli:
        features.append(("copilot_cli", 2))
    if a.app:
        features.append(("copilot_app", 2))
    return features


def _sampled(day: datetime.date, d: Draws) -> str:
    return f"{day.isoformat()}T{d.int(0, 23):02d}:{d.int(0, 59):02d}:{d.int(0, 59):02d}.000Z"


def _ide_entries(world: World, index: int, entries: list[dict], day: datetime.date) -> None:
    """Adds the last known IDE and plugin versions to a user's `totals_by_ide` entries."""
    d = Draws(world.seed, "versions", index, day.toordinal() // 14)  # clients update now and then
    for entry in entries:
        versions, plugin, plugin_versions = _IDE_VERSIONS[entry["ide"]]
        entry["last_known_ide_version"] = {"ide_version": d.pick(versions), "sampled_at": _sampled(day, d)}
        entry["last_known_plugin_version"] = (
            None
            if d.chance(0.1)
            else {"plugin": plugin, "plugin_version": d.pick(plugin_versions), "sampled_at": _sampled(day, d)}
        )


def user_record(
    world: World, scope: Scope, index: int, a: Activity, period: dict[str, str], day: datetime.date
) -> dict:
    """One user's record; `period` is {"day": ...} or the 28-day report's start and end."""
    ids = {"user_id": world.user_id(index), "user_login": world.login(index), **period, **world.scope_ids(scope)}
    if not a.telemetry:
        return ids  # seen only server-side: no counters, no flags, no arrays
    p = profile(world.seed, index)
    ide_weights = [(p.ides[0], 4), *((ide, 1) for ide in p.ides[1:])]
    models = [(m, w) for m, w in zip(p.models, (3, 1))]
    languages = list(zip(p.languages, (3, 2, 1)))
    breakdowns = _breakdowns(
        a.counters, _user_features(a), 0.7 if (a.chat or a.agent) else 1.0, ide_weights, languages, models, 1
    )
    _ide_entries(world, index, breakdowns["totals_by_ide"], day)
    record = {
        **ids,
        **_counters(a.counters),
        "used_agent": a.agent,
        "used_chat": a.chat,
        "used_cli": a.cli,
        p.cloud_agent_field: a.cloud_agent,
        "used_copilot_code_review_active": a.review_active,
        "used_copilot_code_review_passive": a.review_passive,
        "ai_adoption_phase": {"phase": PHASES[p.phase], "phase_number": p.phase, "version": "2025-10"},
        **breakdowns,
        "totals_by_cli": None
        if a.cli_totals is None
        else {
            **_client_totals(a.cli_totals),
            "last_known_cli_version": {
                "cli_version": "0.0.35",
                "sampled_at": _sampled(day, Draws(world.seed, "cli", index, day.toordinal())),
            },
        },
    }
    if day >= SINCE["copilot_app"]:
        record["used_copilot_app"] = a.app
        record["totals_by_copilot_app"] = a.app_totals and _client_totals(a.app_totals)
    if day >= SINCE["vscode_agent"]:
        record["used_vscode_agent"] = a.vscode_agent
        record["totals_by_vscode_agent"] = a.vscode_agent_totals and _vscode_agent(a.vscode_agent_totals)
    if a.credits is not None:
        record["ai_credits_used"] = a.credits
    record.update(_housekeeping(world, scope, day))
    return record


def _vscode_agent(totals: Sequence[int]) -> dict:
    return dict(zip(("session_count", "total_user_messages"), totals))


def _client_totals(totals: Sequence[int]) -> dict:
    """`totals_by_cli` or `totals_by_copilot_app`: sessions, requests, prompts, token usage."""
    sessions, requests, prompts, prompt_tokens, output_tokens = totals
    average = round((prompt_tokens + output_tokens) / max(1, requests), 1)
    return {
        "session_count": sessions,
        "request_count": requests,
        "prompt_count": prompts,
        "token_usage": {
            "prompt_tokens_sum": prompt_tokens,
            "output_tokens_sum": output_tokens,
            "avg_tokens_per_request": average,
        },
    }


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
    apps = [a.app_totals for a in activities if a.app_totals is not None]
    agents = [a.vscode_agent_totals for a in activities if a.vscode_agent_totals is not None]
    return Activity(
        counters=tuple(map(sum, zip(*(a.counters for a in activities)))),
        chat=any(a.chat for a in activities),
        agent=any(a.agent for a in activities),
        cli=bool(clis),
        cloud_agent=any(a.cloud_agent for a in activities),
        review_active=any(a.review_active for a in activities),
        review_passive=any(passive) if passive else None,
        cli_totals=tuple(map(sum, zip(*clis))) if clis else None,
        credits=round(sum(credits), 2) if credits else None,
        app=bool(apps),
        vscode_agent=bool(agents),
        app_totals=tuple(map(sum, zip(*apps))) if apps else None,
        vscode_agent_totals=tuple(map(sum, zip(*agents))) if agents else None,
        telemetry=any(a.telemetry for a in activities),
    )


# -- aggregated record --------------------------------------------------------------------


@dataclass
class _Population:
    """Day-independent head counts: the pools trailing (weekly/monthly) counts draw from."""

    enrolled: int = 0
    chat: int = 0
    agent: int = 0
    reviewer: int = 0
    cli: int = 0
    app: int = 0
    vscode_agent: int = 0
    phases: Counter = field(default_factory=Counter)


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
            pop.cli += p.cli
            pop.app += p.app
            pop.vscode_agent += p.vscode_agent
            pop.phases[p.phase] += 1
    return pop


_FOLD_FLAGS = ("chat", "agent", "cli", "cloud_agent", "review_active", "review_passive", "app", "vscode_agent")


@dataclass
class _Fold:
    users: int
    counters: list[int]
    flags: Counter
    cli: list[int]
    app: list[int]
    vscode_agent: list[int]
    phases: dict[int, list[int]]  # phase -> [users, *counters]
    ides: Counter
    languages: Counter


def _add(total: list[int], values: Sequence[int] | None) -> None:
    if values:
        total[:] = [x + y for x, y in zip(total, values)]


@lru_cache(maxsize=512)
def _fold(world: World, scope: Scope, day: datetime.date, revision: int) -> _Fold:
    fold = _Fold(0, [0] * len(COUNTERS), Counter(), [0] * 5, [0] * 5, [0] * 2, {}, Counter(), Counter())
    flags = [0] * len(_FOLD_FLAGS)  # summed as a list, a Counter at the end: cheaper per user
    for index in active_users(world, scope, day):
        active = world.activity(index, day)
        assert active is not None  # active_users lists active users only
        a = active.bumped(revision)
        fold.users += 1
        if not a.telemetry:
            continue  # counted as active, and nothing else
        p = profile(world.seed, index)
        _add(fold.counters, a.counters)
        flags = list(
            map(
                operator.add,
                flags,
                (a.chat, a.agent, a.cli, a.cloud_agent, a.review_active, bool(a.review_passive), a.app, a.vscode_agent),
            )
        )
        _add(fold.cli, a.cli_totals)
        _add(fold.app, a.app_totals)
        _add(fold.vscode_agent, a.vscode_agent_totals)
        _add(fold.phases.setdefault(p.phase, [0] * (1 + len(COUNTERS))), (1, *a.counters))
        fold.ides[p.ides[0]] += 1
        fold.languages.update(p.languages)
    fold.flags = Counter(dict(zip(_FOLD_FLAGS, flags)))
    return fold


def _trailing(daily: int, pool: int, share: float) -> int:
    """A trailing distinct count between the day's count and the pool (an approximation:
    exact counts would need the users of every day of the window)."""
    return daily + round(max(0, pool - daily) * share)


_PERIODS = (("daily", 0.0), ("weekly", 0.3), ("monthly", 0.6))


def aggregate_record(world: World, scope: Scope, day: datetime.date, revision: int) -> dict:
    fold = _fold(world, scope, day, revision)
    pop = _population(world, scope)
    flags = fold.flags
    age = (world.today - day).days
    features = [*_CHAT_FEATURES] if flags["chat"] else []
    features += _AGENT_FEATURES if flags["agent"] else ()
    features += [("copilot_cli", 1)] if flags["cli"] else []
    features += [("copilot_app", 1)] if flags["app"] else []
    actives = {
        "daily": fold.users,
        "weekly": _trailing(fold.users, pop.enrolled, 0.5),
        "monthly": _trailing(fold.users, pop.enrolled, 0.8),
    }
    monthly = actives["monthly"]
    record = {
        "day": day.isoformat(),
        **world.scope_ids(scope),
        **{f"{period}_active_users": count for period, count in actives.items()},
        "monthly_active_chat_users": min(monthly, _trailing(flags["chat"], pop.chat, 0.8)),
        "monthly_active_agent_users": min(monthly, _trailing(flags["agent"], pop.agent, 0.8)),
    }
    for period, share in _PERIODS:
        cap = actives[period]
        cloud = min(cap, _trailing(flags["cloud_agent"], pop.agent, share))
        record[f"{period}_active_copilot_cloud_agent_users"] = cloud if age <= _CLOUD_AGENT_HISTORY else None
        record[f"{period}_active_copilot_code_review_users"] = min(
            cap, _trailing(flags["review_active"], pop.reviewer, share)
        )
        record[f"{period}_passive_copilot_code_review_users"] = min(
            cap, _trailing(flags["review_passive"], pop.enrolled, share / 2)
        )
    if flags["cli"]:
        record.update(_actives("cli_users", flags["cli"], pop.cli, actives))
    if day >= SINCE["copilot_app"]:
        record.update(_actives("copilot_app_users", flags["app"], pop.app, actives))
    if day >= SINCE["vscode_agent"]:
        record.update(_actives("vscode_agent_users", flags["vscode_agent"], pop.vscode_agent, actives))
    record.update(_counters(fold.counters))
    record.update(
        _breakdowns(
            fold.counters,
            features,
            0.6,
            fold.ides.most_common(),
            top(fold.languages.most_common()),
            top(zip(CHAT_MODELS, MODEL_WEIGHTS)),
            2,
        )
    )
    record["totals_by_cli"] = _client_totals(fold.cli) if flags["cli"] else None
    if day >= SINCE["copilot_app"]:
        record["totals_by_copilot_app"] = _client_totals(fold.app) if flags["app"] else None
    if day >= SINCE["vscode_agent"]:
        record["totals_by_vscode_agent"] = _vscode_agent(fold.vscode_agent) if flags["vscode_agent"] else None
    d = Draws(world.seed, "aggregate-2026", scope.kind, scope.name, day.toordinal())
    if day >= SINCE["third_party_agents"] and (agents := _third_party_agents(d, fold.users)):
        record["totals_by_3rd_party_agent"] = agents
    if day >= SINCE["cli_customizations"]:
        record.update(cli_customizations(d, flags["cli"]))
    pull_requests = _day_pull_requests(world, scope, day)
    if age <= _PHASE_HISTORY:
        record["totals_by_ai_adoption_phase"] = _phases(fold, pop, pull_requests, day, d)
    record["pull_requests"] = pull_requests
    record.update(_housekeeping(world, scope, day))
    return record


def _actives(name: str, daily: int, pool: int, actives: dict[str, int]) -> dict[str, int]:
    """`{daily,weekly,monthly}_active_<name>` for a group of users, within the scope's actives."""
    return {
        f"{period}_active_{name}": min(actives[period], _trailing(daily, pool, share)) for period, share in _PERIODS
    }


def _phases(fold: _Fold, pop: _Population, pull_requests: dict, day: datetime.date, d: Draws) -> list[dict]:
    """`totals_by_ai_adoption_phase`: engaged users and average activity per phase, and (later
    fields) merged pull requests split by users, review medians, users in the phase over 28 days."""
    phases = sorted(fold.phases.items())
    merged = split((pull_requests["total_merged"],), [users for _, (users, *_) in phases] or [1])
    entries = []
    for (phase, (users, *sums)), (prs,) in zip(phases, merged):
        entry = {
            "phase": PHASES[phase],
            "phase_number": phase,
            "total_engaged_users": users,
            **{f"avg_{name}": round(value / users, 2) for name, value in zip(COUNTERS, sums)},
        }
        if day >= datetime.date(2026, 6, 26):
            entry["total_pull_requests_merged"] = prs
        if day >= datetime.date(2026, 7, 7) and prs:  # medians over merged PRs: none, no value
            entry["avg_pull_requests_minutes_to_review"] = round(10 + 600 * d.random(), 1)
            entry["avg_pull_requests_review_cycles"] = round(1 + 3 * d.random(), 2)
        if day >= SINCE["cli_customizations"]:
            entry["users_in_phase_28d"] = max(users, pop.phases[phase])
        entries.append(entry)
    return entries


_THIRD_PARTY_AGENTS = (("claude", "Claude"), ("codex", "Codex"), ("jules", "Jules"))


def _third_party_agents(d: Draws, users: int) -> list[dict]:
    """Agent apps some users started jobs in; their job starts are outside the top-level counts."""
    entries = []
    for agent_id, name in _THIRD_PARTY_AGENTS:
        if users and d.chance(0.6):
            sessions = d.int(1, max(1, users // 3))
            entries.append(
                {
                    "agent_id": agent_id,
                    "agent_name": name,
                    "user_initiated_interaction_count": sessions * d.int(1, 4),
                    "session_count": sessions,
                }
            )
    return entries


# CLI customizations: kind -> (the name field of its entries, names in use). Customer-defined
# names are grouped as `other` (slash commands as `custom`); plugins are a subset of skills.
CUSTOMIZATIONS = {
    "skill": ("skill_name", ("pdf", "docx", "frontend-design", "webapp-testing", "xlsx", "other", "brand-guidelines")),
    "custom_agent": ("custom_agent", ("reviewer", "planner", "other", "docs-writer", "migrator", "security-audit")),
    "mcp": ("mcp_server", ("github", "playwright", "context7", "other", "azure", "sentry")),
    "slash_cmd": ("slash_command", ("/explain", "/fix", "/tests", "custom", "/review", "/model")),
    "plugin": ("plugin", ("frontend-design", "webapp-testing", "pdf")),
}


def cli_customizations(d: Draws, cli_users: int) -> dict:
    """`totals_by_{kind}` (top 5 by interactions) and `distinct_{kind}_use_count` of a day."""
    fields: dict = {}
    skills: dict[str, int] = {}
    for kind, (name_field, names) in CUSTOMIZATIONS.items():
        if kind == "plugin":  # a plugin's use is a use of its skill: never more
            used = {name: max(1, skills[name] * d.int(2, 9) // 10) for name in names if name in skills}
        else:
            used = {name: d.int(1, 12 * cli_users) for name in names if cli_users and d.chance(0.7)}
        if kind == "skill":
            skills = used
        ranked = sorted(used.items(), key=lambda item: (-item[1], item[0]))[:5]
        fields[f"totals_by_{kind}"] = [{name_field: name, "interaction_count": count} for name, count in ranked]
        fields[f"distinct_{kind}_use_count"] = len(used) + (d.int(1, 4) if "other" in used else 0)
    return fields


# -- 28-day aggregated report ------------------------------------------------------------

_MEDIANS = (
    "median_minutes_to_merge",
    "median_minutes_to_merge_copilot_authored",
    "median_minutes_to_merge_copilot_reviewed",
)


def window_record(world: World, scope: Scope, days: Sequence[tuple[datetime.date, int]]) -> dict:
    """The 28-day report's one wrapper record. As in GitHub's files, its `day_totals` come in no
    particular order and lack the PR medians on days without merges; from 2026-09-17 it carries
    the window's feature engagement."""
    end = days[-1][0]
    totals = []
    for day, revision in days:
        record = aggregate_record(world, scope, day, revision)
        if not record["pull_requests"]["total_merged"]:
            for name in _MEDIANS:
                record["pull_requests"].pop(name, None)
        totals.append(record)
    order = Draws(world.seed, "window-order", scope.kind, scope.name, end.toordinal())
    totals.sort(key=lambda _record: order.random())
    wrapper: dict[str, Any] = {
        "report_start_day": (end - datetime.timedelta(days=WINDOW_DAYS - 1)).isoformat(),
        "report_end_day": end.isoformat(),
        **world.scope_ids(scope),
        "day_totals": totals,
    }
    if end >= SINCE["cli_customizations"]:
        wrapper["copilot_feature_engagement"] = feature_engagement(world, scope, tuple(day for day, _ in days))
    wrapper.update(_housekeeping(world, scope, end))
    return wrapper


@lru_cache(maxsize=16)
def feature_engagement(world: World, scope: Scope, days: tuple[datetime.date, ...]) -> dict:
    """Users active on two or more days of the window, in total and per feature they use."""
    active_days: Counter = Counter()
    for day in days:
        active_days.update(active_users(world, scope, day))
    engaged = [index for index, count in active_days.items() if count >= 2]
    features: Counter = Counter()
    for index in engaged:
        p = profile(world.seed, index)
        if not p.server_side_only:
            features.update(
                feature
                for feature, uses in (
                    ("code_completion", True),
                    ("chat_panel_ask_mode", p.chat),
                    ("chat_panel_agent_mode", p.agent),
                    ("copilot_cli", p.cli),
                    ("copilot_app", p.app),
                )
                if uses
            )
    return {
        "active_user_count": len(engaged),
        "totals_by_feature": [
            {"feature": feature, "engaged_user_count": count} for feature, count in features.most_common()
        ],
    }


# -- pull requests and repositories -------------------------------------------------------

_PR_COUNTS = (
    "total_created",
    "total_reviewed",
    "total_merged",
    "total_suggestions",
    "total_applied_suggestions",
    "total_created_by_copilot",
    "total_reviewed_by_copilot",
    "total_merged_created_by_copilot",
    "total_merged_reviewed_by_copilot",
    "total_copilot_suggestions",
    "total_copilot_applied_suggestions",
)


def _pr_counts(d: Draws) -> dict[str, int]:
    created = d.int(0, 12)
    merged, reviewed = d.int(0, created), d.int(0, created)
    by_copilot, reviewed_by_copilot = d.int(0, created // 3), d.int(0, reviewed)
    suggestions = d.int(0, 30)
    applied = d.int(0, suggestions)
    copilot_suggestions = d.int(0, suggestions)
    return dict(
        zip(
            _PR_COUNTS,
            (
                created,
                reviewed,
                merged,
                suggestions,
                applied,
                by_copilot,
                reviewed_by_copilot,
                min(by_copilot, merged),
                min(reviewed_by_copilot, merged),
                copilot_suggestions,
                min(applied, d.int(0, copilot_suggestions)),
            ),
        )
    )


def _medians(d: Draws, merged: int, null_chance: float) -> dict[str, float | None]:
    if not merged or d.chance(null_chance):
        return dict.fromkeys(_MEDIANS)
    return {name: round(5 + 900 * d.random(), 1) for name in _MEDIANS}


@lru_cache(maxsize=256)
def repo_records(world: World, scope: Scope, day: datetime.date) -> tuple[dict, ...]:
    """Repositories with pull request activity on `day`."""
    orgs = [scope.name] if scope.kind == "org" else [org.name for org in world.enterprise_orgs(scope.name)]
    records = []
    for org in orgs:
        for repo_id, name, visibility in world.repositories(org):
            d = Draws(world.seed, "repo-day", repo_id, day.toordinal())
            if not d.chance(0.7):
                continue
            counts = _pr_counts(d)
            records.append(
                {
                    "day": day.isoformat(),
                    **world.scope_ids(Scope("org", org)),
                    "repo_id": repo_id,
                    "repo_owner_name": org,
                    "repo_name": name,
                    "repo_visibility": visibility,
                    "pull_requests": {**counts, **_medians(d, counts["total_merged"], 0.0)},
                }
            )
    return tuple(records)


def _day_pull_requests(world: World, scope: Scope, day: datetime.date) -> dict:
    totals = {name: sum(r["pull_requests"][name] for r in repo_records(world, scope, day)) for name in _PR_COUNTS}
    d = Draws(world.seed, "pull-requests", scope.kind, scope.name, day.toordinal())
    suggested = (totals["total_copilot_suggestions"], totals["total_copilot_applied_suggestions"])
    by_type = split(suggested, [w for _, w in _COMMENT_TYPES])
    return {
        **totals,
        **_medians(d, totals["total_merged"], 0.2),
        "copilot_suggestions_by_comment_type": [
            {
                "comment_type": kind,
                "total_copilot_suggestions": suggestions,
                "total_copilot_applied_suggestions": applied,
            }
            for (kind, _), (suggestions, applied) in zip(_COMMENT_TYPES, by_type)
        ],
    }


# -- teams --------------------------------------------------------------------------------


def _teams(world: World, scope: Scope) -> list[tuple[Scope, list[int] | range]]:
    """Teams with five or more members: smaller ones are left out of the report."""
    spec = world.org(scope.name) if scope.kind == "org" else world.enterprise(scope.name)
    assert spec is not None, scope
    teams = [Scope(scope.kind, scope.name, slug) for slug in spec.teams]
    teams += [Scope(scope.kind, scope.name, slug, business=True) for slug in getattr(spec, "business_teams", ())]
    return [(team, members) for team in teams if len(members := world.members(team)) >= 5]


def team_members_on(world: World, team: Scope, members: list[int] | range, day: datetime.date) -> list[int] | range:
    """A team's members on `day`: its members, unless people move between teams (`team_churn`)."""
    if not world.team_churn:
        return members
    return [index for index in world.members(Scope(team.kind, team.name)) if world.in_team_on(team, index, day)]


def team_rows(
    world: World, scope: Scope, day: datetime.date, start: int = 0, stop: int | None = None
) -> Iterator[dict]:
    """One row per (member, team), whether or not the member was active that day: rows
    `start` to `stop` of them (a part of the file), reached without building the rows before."""
    ids = world.scope_ids(scope)
    scope_id = {"organization_id": ids["organization_id"]} if scope.kind == "org" else ids
    offset = 0  # rows of the teams before this one
    for team, members in _teams(world, scope):
        if stop is not None and offset >= stop:
            return
        on_day = team_members_on(world, team, members, day)
        first, offset = max(0, start - offset), offset + len(on_day)
        if first >= len(on_day):
            continue
        team_id = world.team_id(team)
        last = None if stop is None else stop - (offset - len(on_day))
        for index in on_day[first:last]:
            yield {
                "user_id": world.user_id(index),
                "user_login": world.login(index),
                "day": day.isoformat(),
                **scope_id,
                "team_id": team_id,
                "slug": team.team,
            }


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
            return sum(len(team_members_on(w, team, members, day)) for team, members in _teams(w, s))
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
                active = w.activity(index, day)
                assert active is not None  # active_users lists active users only
                activity = active.bumped(revision)
                yield user_record(w, s, index, activity, {"day": day.isoformat()}, day)
        elif self.report == "user-teams-1-day":
            yield from team_rows(w, s, day, start, stop)
        elif self.report == "repos-1-day":
            yield from repo_records(w, s, day)[start:stop]
        elif self.report == "users-28-day":
            for index in self._window_users()[start:stop]:
                acts = [a.bumped(rev) for d, rev in self.days if (a := w.activity(index, d))]
                yield user_record(w, s, index, combine(acts), self._window, day)
        elif self.report.endswith("-28-day"):
            if start == 0 < stop:
                yield window_record(w, s, self.days)
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
