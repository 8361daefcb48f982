"""The simulated world: organizations, enterprises, their users and each user's daily activity.

Everything here is a pure function of the specs, the seed and the day, so a world answers the
same way in every process and every test run. Users sit on one numbered pool; an organization
owns a range of it and overlaps its predecessor a little, so some people belong to two orgs
(which is what makes enterprise deduplication observable).
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import struct
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

COUNTERS = (
    "user_initiated_interaction_count",
    "code_generation_activity_count",
    "code_acceptance_activity_count",
    "loc_suggested_to_add_sum",
    "loc_suggested_to_delete_sum",
    "loc_added_sum",
    "loc_deleted_sum",
)

IDES = ("vscode", "intellij", "visualstudio", "neovim", "xcode", "eclipse", "zed", "vim")
_IDE_WEIGHTS = (55, 20, 10, 6, 3, 3, 2, 1)
LANGUAGES = (
    "python",
    "typescript",
    "javascript",
    "go",
    "java",
    "csharp",
    "rust",
    "ruby",
    "kotlin",
    "cpp",
    "markdown",
    "unknown",
)
_LANGUAGE_WEIGHTS = (22, 20, 12, 10, 10, 6, 5, 4, 3, 3, 3, 2)
# More than ten, so the aggregated model arrays show GitHub's top 10 plus `others`; no `auto`,
# which GitHub resolves to the actual model since 2026-03-20.
CHAT_MODELS = (
    "claude-sonnet-4.5",
    "gpt-5.1",
    "gpt-5-mini",
    "claude-opus-4.8",
    "gemini-2.5-pro",
    "gpt-5.6-sol",
    "gpt-4.1",
    "claude-haiku-4.5",
    "gpt-5.1-codex",
    "gemini-3-pro",
    "grok-code-fast-1",
    "o4-mini",
)
MODEL_WEIGHTS = (24, 18, 12, 10, 8, 7, 6, 5, 4, 3, 2, 1)
PHASES = ("No Cohort", "Phase 1", "Phase 2", "Phase 3")  # index = phase_number
# When GitHub added a field to the reports (COPILOT-APIS.md §6): older records lack it.
SINCE = {
    "copilot_app": datetime.date(2026, 7, 17),
    "third_party_agents": datetime.date(2026, 8, 7),
    "vscode_agent": datetime.date(2026, 9, 11),
    "cli_customizations": datetime.date(2026, 9, 17),
    "server_side_users": datetime.date(2026, 6, 15),
}
_REPO_WORDS = (
    "api",
    "web",
    "billing",
    "search",
    "mobile",
    "infra",
    "docs",
    "auth",
    "payments",
    "ml",
    "data",
    "gateway",
    "ui",
    "core",
    "tools",
    "cli",
)
_REPO_SUFFIXES = ("", "-service", "-app", "-lib", "-sdk", "-ops")
_NAMES = (
    "mona",
    "hubot",
    "octo",
    "ada",
    "linus",
    "grace",
    "alan",
    "barbara",
    "ken",
    "dennis",
    "margaret",
    "edsger",
    "donald",
    "radia",
    "frances",
    "john",
    "guido",
    "yukihiro",
    "bjarne",
    "anders",
)


def _digest(key: tuple) -> bytes:
    return hashlib.blake2b(repr(key).encode(), digest_size=64).digest()


_UNPACK = struct.Struct("<16I").unpack


@lru_cache(maxsize=4096)  # asked for every record of a report: the same few scopes and teams
def stable_id(*key: object, low: int = 1_000_000, span: int = 90_000_000) -> int:
    """A number that depends only on the key: ids must not change between runs."""
    return low + int.from_bytes(_digest(key)[:8], "big") % span


class Draws:
    """A deterministic stream of uniform numbers for one key.

    Much cheaper than seeding `random.Random` per (user, day), which matters for 100,000-user
    reports: one blake2b digest yields sixteen numbers.
    """

    __slots__ = ("_key", "_block", "_values")

    def __init__(self, *key: object):
        self._key = key
        self._block = 0
        self._values: list[int] = []

    def random(self) -> float:
        if not self._values:
            self._values = list(_UNPACK(_digest((*self._key, self._block))))
            self._block += 1
        return self._values.pop() / 4294967296.0

    def int(self, low: int, high: int) -> int:
        return low + int(self.random() * (high - low + 1))

    def chance(self, p: float) -> bool:
        return self.random() < p

    def pick(self, items: tuple, weights: tuple | None = None):
        if weights is None:
            return items[int(self.random() * len(items))]
        target = self.random() * sum(weights)
        for item, weight in zip(items, weights):
            target -= weight
            if target < 0:
                return item
        return items[-1]


@dataclass(frozen=True)
class OrgSpec:
    name: str
    users: int = 40
    teams: tuple[str, ...] = ()
    seats: int | None = None  # default: the users plus ~20% never-active seat holders
    plan_type: str = "business"
    reports_api: bool = True  # False: only the legacy metrics API, like GitHub Enterprise Server

    def __post_init__(self):
        object.__setattr__(self, "teams", tuple(self.teams))

    @property
    def seat_count(self) -> int:
        return self.seats if self.seats is not None else self.users + self.users // 5


@dataclass(frozen=True)
class EnterpriseSpec:
    name: str
    organizations: tuple[str, ...] = ()
    teams: tuple[str, ...] = ()  # enterprise teams
    # Teams of a business (cost centre) in the enterprise: listed in the enterprise's user-teams
    # report beside the enterprise teams, with their own team_id even when the slug is the same.
    business_teams: tuple[str, ...] = ()

    def __post_init__(self):
        object.__setattr__(self, "organizations", tuple(self.organizations))
        object.__setattr__(self, "teams", tuple(self.teams))
        object.__setattr__(self, "business_teams", tuple(self.business_teams))


@dataclass(frozen=True)
class AppSpec:
    """A GitHub App installed on every organization of the world."""

    app_id: int
    public_key_pem: str | bytes
    token_ttl: float = 3600.0


@dataclass(frozen=True)
class Scope:
    """Whose data a request asks for: an organization or enterprise, optionally one team."""

    kind: str  # "org" | "enterprise"
    name: str
    team: str | None = None
    business: bool = False  # the team is a business team of the enterprise

    @property
    def team_key(self) -> tuple:
        return (self.kind, self.name, self.team) + (("business",) if self.business else ())


@dataclass(frozen=True, slots=True)
class Profile:
    """What a user is like, stable over days."""

    engagement: float  # chance of activity on a weekday; 0 = holds a seat, never uses it
    ides: tuple[str, ...]  # primary first
    languages: tuple[str, ...]
    models: tuple[str, ...]
    chat: bool
    agent: bool
    cli: bool
    reviewer: bool
    phase: int  # index into PHASES: GitHub's phase_number
    cloud_agent_field: str  # both names of this flag occur in real files
    reports_credits: bool  # older clients: no ai_credits_used in the record
    app: bool  # uses the Copilot app
    vscode_agent: bool  # uses the VS Code Agents window
    server_side_only: bool  # seen only by server-side telemetry: active, but no client data


@dataclass(frozen=True, slots=True)
class Activity:
    """One user's activity on one day (or summed over a window)."""

    counters: tuple[int, ...]  # in COUNTERS order
    chat: bool
    agent: bool
    cli: bool
    cloud_agent: bool
    review_active: bool
    review_passive: bool | None
    cli_totals: tuple[int, ...] | None  # sessions, requests, prompts, prompt tokens, output tokens
    credits: float | None
    app: bool = False
    vscode_agent: bool = False
    app_totals: tuple[int, ...] | None = None  # as cli_totals
    vscode_agent_totals: tuple[int, ...] | None = None  # sessions, user messages
    telemetry: bool = True  # False: seen only server-side; counters are all 0, flags all False

    def bumped(self, revision: int) -> Activity:
        """This activity as reported after `revision` revisions of its day: counters grow."""
        if not revision or not self.telemetry:
            return self
        ui, gen, acc, sa, sd, added, deleted = self.counters
        counters = (ui, gen + revision, acc, sa + 3 * revision, sd, added, deleted)
        return dataclasses.replace(self, counters=counters)


@lru_cache(maxsize=1 << 17)
def profile(seed: int, index: int) -> Profile:
    d = Draws(seed, "profile", index)
    kind = d.random()
    engagement = 0.0 if kind < 0.1 else 0.25 if kind < 0.4 else 0.65
    primary = d.pick(IDES, _IDE_WEIGHTS)
    second = d.pick(IDES, _IDE_WEIGHTS) if d.chance(0.2) else primary
    ides = (primary,) if second == primary else (primary, second)
    # dict.fromkeys: repeated picks collapse, in order
    languages = tuple(dict.fromkeys(d.pick(LANGUAGES, _LANGUAGE_WEIGHTS) for _ in range(d.int(1, 3))))
    models = tuple(dict.fromkeys(d.pick(CHAT_MODELS, MODEL_WEIGHTS) for _ in range(d.int(1, 2))))
    return Profile(
        engagement=engagement,
        ides=ides,
        languages=languages,
        models=models,
        chat=d.chance(0.7),
        agent=d.chance(0.4),
        cli=d.chance(0.15),
        reviewer=d.chance(0.3),
        phase=d.int(0, len(PHASES) - 1),
        cloud_agent_field=d.pick(("used_copilot_cloud_agent", "used_copilot_coding_agent")),
        reports_credits=d.chance(0.8),
        # drawn apart, so adding them left every earlier draw as it was
        **_profile_2026(Draws(seed, "profile-2026", index)),
    )


def _profile_2026(d: Draws) -> dict:
    return {"app": d.chance(0.25), "vscode_agent": d.chance(0.3), "server_side_only": d.chance(0.12)}


def _active_draws(seed: int, index: int, day: datetime.date) -> Draws | None:
    """The draws of user `index` for `day` when the first one makes the user active."""
    chance = profile(seed, index).engagement * (0.5 if day.weekday() >= 5 else 1.0)
    d = Draws(seed, "day", index, day.toordinal())
    return d if d.random() < chance else None


def is_active(seed: int, index: int, day: datetime.date) -> bool:
    """Whether user `index` was active on `day`; apart from `activity` because scanning
    100,000 users for the active ones must stay cheap: the first draw of `_active_draws`,
    taken straight from its digest (the last of its sixteen numbers, as `Draws.random` pops)."""
    chance = profile(seed, index).engagement * (0.5 if day.weekday() >= 5 else 1.0)
    if not chance:
        return False  # never active: no draw is below 0
    return int.from_bytes(_digest((seed, "day", index, day.toordinal(), 0))[-4:], "little") / 4294967296.0 < chance


def activity(seed: int, index: int, day: datetime.date) -> Activity | None:
    """What user `index` did on `day`, or None when the user was not active."""
    d = _active_draws(seed, index, day)
    if d is None:
        return None
    p = profile(seed, index)
    if p.server_side_only and day >= SINCE["server_side_users"]:
        return Activity(
            counters=(0,) * len(COUNTERS),
            chat=False,
            agent=False,
            cli=False,
            cloud_agent=False,
            review_active=False,
            review_passive=None,
            cli_totals=None,
            credits=None,
            telemetry=False,
        )
    chat = p.chat and d.chance(0.7)
    agent = p.agent and d.chance(0.5)
    cli = p.cli and d.chance(0.5)
    generated = d.int(3, 120)
    accepted = int(generated * (0.2 + 0.3 * d.random()))
    prompts = (d.int(1, 25) if chat else 0) + (d.int(1, 10) if agent else 0) + (d.int(1, 6) if cli else 0)
    agent_lines = d.int(10, 300) if agent else 0
    suggested_add = generated * d.int(2, 9) + agent_lines
    suggested_delete = d.int(0, generated // 2) + agent_lines // 4
    counters = (
        prompts,
        generated,
        accepted,
        suggested_add,
        suggested_delete,
        min(suggested_add, accepted * d.int(1, 6) + agent_lines * 7 // 10),
        min(suggested_delete, d.int(0, accepted) + agent_lines // 5),
    )
    cli_totals = None
    if cli:
        sessions = d.int(1, 5)
        requests = sessions * d.int(1, 8)
        prompt_tokens = requests * d.int(500, 4000)
        cli_totals = (sessions, requests, d.int(sessions, requests), prompt_tokens, requests * d.int(200, 2000))
    return Activity(
        counters=counters,
        chat=chat,
        agent=agent,
        cli=cli,
        cloud_agent=p.agent and d.chance(0.2),
        review_active=p.reviewer and d.chance(0.4),
        review_passive=None if d.chance(0.1) else d.chance(0.3),
        cli_totals=cli_totals,
        credits=round(prompts * (0.5 + d.random()), 2) if p.reports_credits else None,
        **_activity_2026(p, Draws(seed, "day-2026", index, day.toordinal()), day),
    )


def _activity_2026(p: Profile, d: Draws, day: datetime.date) -> dict:
    """The Copilot app and VS Code Agents window use of an active day, once GitHub reports them."""
    app = p.app and day >= SINCE["copilot_app"] and d.chance(0.6)
    vscode_agent = p.vscode_agent and day >= SINCE["vscode_agent"] and d.chance(0.5)
    app_totals = None
    if app:
        sessions = d.int(1, 4)
        requests = sessions * d.int(2, 10)
        app_totals = (
            sessions,
            requests,
            d.int(sessions, requests),
            requests * d.int(800, 5000),
            requests * d.int(300, 2500),
        )
    return {
        "app": app,
        "vscode_agent": vscode_agent,
        "app_totals": app_totals,
        "vscode_agent_totals": (d.int(1, 3), d.int(1, 20)) if vscode_agent else None,
    }


def _utc_today() -> datetime.date:
    return datetime.datetime.now(datetime.timezone.utc).date()


@dataclass(frozen=True)
class World:
    """Specs of what the simulated GitHub holds. `today` is the day the simulation lives in:
    legacy metrics end the day before, reports are offered up to one year back."""

    seed: int = 42
    today: datetime.date = field(default_factory=_utc_today)
    organizations: tuple[OrgSpec, ...] = ()
    enterprises: tuple[EnterpriseSpec, ...] = ()
    app: AppSpec | None = None
    # Chance that a user's membership of a team is the other way round on a given day: people
    # move between teams. 0 (the default): memberships never change.
    team_churn: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "organizations", tuple(self.organizations))
        object.__setattr__(self, "enterprises", tuple(self.enterprises))
        known = {org.name.lower() for org in self.organizations}
        if len(known) != len(self.organizations):
            raise ValueError("organization names must be unique")
        for ent in self.enterprises:
            missing = [o for o in ent.organizations if o.lower() not in known]
            if missing:
                raise ValueError(f"enterprise {ent.name!r} names unknown organizations {missing}")

    @classmethod
    def default(cls, seed: int = 42, today: datetime.date | None = None) -> World:
        """The demo world: two orgs under one enterprise, a standalone org, one too small for
        the legacy API (fewer than five licences), and one served by the legacy API only."""
        return cls(
            seed=seed,
            today=today or _utc_today(),
            organizations=(
                OrgSpec("acme", users=64, teams=("platform", "web", "data")),
                OrgSpec("globex", users=30, teams=("mobile", "infra"), plan_type="enterprise"),
                OrgSpec("umbrella", users=18, teams=("research",)),
                OrgSpec("tiny", users=3),
                OrgSpec("hooli", users=25, teams=("search",), reports_api=False),
            ),
            enterprises=(
                EnterpriseSpec(
                    "initech", organizations=("acme", "globex"), teams=("core", "security"), business_teams=("core",)
                ),
            ),
        )

    # -- lookups ---------------------------------------------------------------------------

    @cached_property
    def _orgs(self) -> dict[str, OrgSpec]:
        return {org.name.lower(): org for org in self.organizations}

    @cached_property
    def _enterprises(self) -> dict[str, EnterpriseSpec]:
        return {ent.name.lower(): ent for ent in self.enterprises}

    def org(self, name: str) -> OrgSpec | None:
        return self._orgs.get(name.lower())

    def enterprise(self, name: str) -> EnterpriseSpec | None:
        return self._enterprises.get(name.lower())

    def enterprise_orgs(self, name: str) -> tuple[OrgSpec, ...]:
        enterprise = self.enterprise(name)
        assert enterprise is not None, name
        return tuple(org for o in enterprise.organizations if (org := self.org(o)) is not None)

    def enterprise_of(self, org: str) -> EnterpriseSpec | None:
        return next((e for e in self.enterprises if org.lower() in (o.lower() for o in e.organizations)), None)

    def scope(self, kind: str, name: str, team: str | None = None) -> Scope | None:
        """The canonical scope for a request's names, or None when GitHub would answer 404."""
        spec = self.org(name) if kind == "org" else self.enterprise(name)
        if spec is None:
            return None
        if team is None:
            return Scope(kind, spec.name)
        slug = next((t for t in spec.teams if t.lower() == team.lower()), None)
        return Scope(kind, spec.name, slug) if slug else None

    # -- identities ------------------------------------------------------------------------

    def scope_id(self, kind: str, name: str) -> int:
        return stable_id(kind, name, low=1000, span=9_000_000)

    def team_id(self, scope: Scope) -> int:
        return stable_id(*scope.team_key, low=100, span=9_000_000)

    def installation_id(self, org: str) -> int:
        return stable_id("installation", org, low=10_000_000)

    @staticmethod
    def user_id(index: int) -> int:
        return 100_000 + index * 37

    @staticmethod
    def login(index: int) -> str:
        return f"{_NAMES[index % len(_NAMES)]}{index}"

    def scope_ids(self, scope: Scope) -> dict[str, str]:
        """The id fields report records carry: org records name their enterprise too."""
        if scope.kind == "enterprise":
            return {"enterprise_id": str(self.scope_id("enterprise", scope.name))}
        ids = {"organization_id": str(self.scope_id("org", scope.name))}
        ent = self.enterprise_of(scope.name)
        if ent is not None:
            ids["enterprise_id"] = str(self.scope_id("enterprise", ent.name))
        return ids

    # -- membership ------------------------------------------------------------------------

    @cached_property
    def _org_ranges(self) -> dict[str, range]:
        ranges, start, previous = {}, 0, 0
        for org in self.organizations:
            start -= min(previous, org.users) // 4  # share some people with the previous org
            ranges[org.name] = range(start, start + org.users)
            start, previous = start + org.users, org.users
        return ranges

    def member_ranges(self, kind: str, name: str) -> tuple[range, ...]:
        """The pool indices of a scope's users, as sorted disjoint ranges."""
        if kind == "org":
            org = self.org(name)
            assert org is not None, name
            return (self._org_ranges[org.name],)
        merged: list[range] = []
        for r in sorted((self._org_ranges[org.name] for org in self.enterprise_orgs(name)), key=lambda r: r.start):
            if merged and r.start <= merged[-1].stop:
                merged[-1] = range(merged[-1].start, max(merged[-1].stop, r.stop))
            elif len(r):
                merged.append(r)
        return tuple(merged)

    def members(self, scope: Scope) -> list[int] | range:
        """Pool indices of a scope's users (a team's members when the scope names a team)."""
        if scope.team is not None:
            return _team_members(self, scope)
        ranges = self.member_ranges(scope.kind, scope.name)
        if len(ranges) == 1:
            return ranges[0]
        return [i for r in ranges for i in r]

    def in_team(self, team: Scope, index: int) -> bool:
        """Whether a user of the team's organization or enterprise belongs to the team."""
        return Draws(self.seed, "team", *team.team_key, index).random() < 0.35

    def in_team_on(self, team: Scope, index: int, day: datetime.date) -> bool:
        """Whether a user of the team's organization or enterprise is in the team on `day`."""
        member = self.in_team(team, index)
        if not self.team_churn:
            return member
        moves = Draws(self.seed, "team-move", *team.team_key, index, day.toordinal())
        return not member if moves.random() < self.team_churn else member

    def licensed_count(self, scope: Scope) -> int:
        """Members holding a licence: what the legacy API's five-licence threshold looks at."""
        if scope.kind == "org" and scope.team is None:
            org = self.org(scope.name)
            assert org is not None, scope.name
            return org.seat_count
        return len(self.members(scope))

    def activity(self, index: int, day: datetime.date) -> Activity | None:
        return activity(self.seed, index, day)

    def repositories(self, org: str) -> list[tuple[int, str, str]]:
        """(repo_id, name, visibility) of an organization's repositories: 5 to 80 of them."""
        spec = self.org(org)
        assert spec is not None, org
        count = min(80, max(5, spec.users // 3))
        repos = []
        for i in range(count):
            name = _REPO_WORDS[i % len(_REPO_WORDS)] + _REPO_SUFFIXES[i // len(_REPO_WORDS)]
            draws = Draws(self.seed, "repo", org, i)
            visibility = draws.pick(("private", "internal", "public"), (6, 3, 1))
            repos.append((stable_id("repo", org, name), name, visibility))
        return repos


@lru_cache(maxsize=256)
def _team_members(world: World, scope: Scope) -> list[int]:
    return [i for i in world.members(Scope(scope.kind, scope.name)) if world.in_team(scope, i)]
