"""Records of the Copilot usage metrics reports API -> metric samples.

Pure functions over already-decoded JSON records: no I/O. A users report can hold 300,000
records and arrives as a stream, so accumulators keep per user at most a tuple of numbers.

Tolerance rules shared by every function here: unknown fields are ignored, a field that is
absent or null yields no sample (never a zero), and a value of the wrong type raises
PayloadError naming the report and the field. The arrays GitHub added in 2026 (third-party
agents, CLI customizations, 28-day feature engagement) are read entry by entry: an entry with a
wrong type or without its name is dropped and noted as a `bad_value` problem, the rest is kept.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from functools import lru_cache

from copilot_exporter.errors import PayloadError
from copilot_exporter.metrics.fields import Fields
from copilot_exporter.metrics.catalogue import (
    ACTIVITY_BREAKDOWNS,
    ACTIVITY_COUNTERS,
    CLI_CUSTOMIZATION_KINDS,
    PER_USER_NAMES,
    PULL_REQUEST_COUNTS,
)
from copilot_exporter.model import ENTERPRISE, ORG, FamilyBuilder, day_timestamp

AGGREGATED_REPORT = "organization/enterprise-1-day"
USERS_REPORT = "users-1-day"
TEAMS_REPORT = "user-teams-1-day"
REPOS_REPORT = "repos-1-day"
REPORT_28_DAY = "organization/enterprise-28-day"

# ---------------------------------------------------------------------------------------------
# The seven activity counters, kept as tuples in ACTIVITY_COUNTERS order.

Activity = tuple[float | None, ...]


def _activity(fields: Fields) -> Activity:
    return tuple(fields.number(field) for field in ACTIVITY_COUNTERS.values())


def _sum_fields(first: tuple[float | None, ...], second: tuple[float | None, ...]) -> tuple[float | None, ...]:
    """Field-wise sum of two equally long tuples; a field neither carries stays None (absent)."""
    return tuple(a if b is None else b if a is None else a + b for a, b in zip(first, second))


def _add_activity(builder: FamilyBuilder, names: Iterable[str], values: Activity, **labels: str) -> None:
    for name, value in zip(names, values):
        builder.add(name, value, **labels)


def _read_day(fields: Fields, key: str = "day") -> str | None:
    day = fields.get(key, "string")
    if day is not None:
        try:
            _day_checked(day)
        except ValueError:
            raise fields.error(key, "a YYYY-MM-DD date", day) from None
    return day


# Every record of a users report names the same day: parsed once, not once per record.
_day_checked = lru_cache(maxsize=64)(day_timestamp)


def _refused(builder: FamilyBuilder) -> Callable[[PayloadError], None]:
    """Notes an array entry dropped for a wrong type or a missing name (Fields.each)."""
    return lambda err: builder.problems.note("bad_value", str(err))


def _identifier(entry: Fields, key: str) -> str:
    """An id label value: GitHub's ids are integers in some arrays and strings in others."""
    value = entry.ident(key)
    if value is None:
        raise entry.error(key, "an id", None)
    return value


def _name(entry: Fields, key: str) -> str:
    """A label value an entry cannot be exported without."""
    value = entry.label(key)
    if value is None:
        raise entry.error(key, "a name", entry.get(key, "string"))
    return value


# ---------------------------------------------------------------------------------------------
# Aggregated daily record (organization-1-day / enterprise-1-day)

_WINDOWS = ("daily", "weekly", "monthly")

# Plain user gauges: metric -> field.
_USER_GAUGES: dict[str, str] = {
    "copilot_daily_active_users": "daily_active_users",
    "copilot_weekly_active_users": "weekly_active_users",
    "copilot_monthly_active_users": "monthly_active_users",
    "copilot_monthly_active_chat_users": "monthly_active_chat_users",
    "copilot_monthly_active_agent_users": "monthly_active_agent_users",
    "copilot_daily_active_cli_users": "daily_active_cli_users",
    **{
        f"copilot_{window}_active_cloud_agent_users": f"{window}_active_copilot_cloud_agent_users"
        for window in _WINDOWS
    },
    **{
        f"copilot_{window}_{kind}_code_review_users": f"{window}_{kind}_copilot_code_review_users"
        for window in _WINDOWS
        for kind in ("active", "passive")
    },
    **{f"copilot_{window}_active_app_users": f"{window}_active_copilot_app_users" for window in _WINDOWS},
    # GitHub documents only the daily CLI count; the other windows appear in some records.
    **{f"copilot_{window}_active_cli_users": f"{window}_active_cli_users" for window in ("weekly", "monthly")},
    **{f"copilot_{window}_active_vscode_agent_users": f"{window}_active_vscode_agent_users" for window in _WINDOWS},
}

# `authorship` label -> field of `pull_requests` holding the median in minutes.
_MEDIANS_TO_MERGE: dict[str, str] = {
    "all": "median_minutes_to_merge",
    "copilot_authored": "median_minutes_to_merge_copilot_authored",
    "copilot_reviewed": "median_minutes_to_merge_copilot_reviewed",
}

# Metric -> field of `pull_requests.copilot_suggestions_by_comment_type[]`.
_BY_COMMENT_TYPE: dict[str, str] = {
    "copilot_pull_request_copilot_suggestions_by_comment_type": "total_copilot_suggestions",
    "copilot_pull_request_copilot_applied_suggestions_by_comment_type": "total_copilot_applied_suggestions",
}

# Tools reported as one object of the same shape: metric prefix -> object field.
_TOOLS: dict[str, str] = {
    "copilot_cli_": "totals_by_cli",
    "copilot_app_": "totals_by_copilot_app",
}
# Metric suffix -> field of a tool object, and of its `token_usage`.
_TOOL_COUNTS: dict[str, str] = {
    "sessions": "session_count",
    "requests": "request_count",
    "prompts": "prompt_count",
}
_TOOL_TOKENS: dict[str, str] = {
    "prompt_tokens": "prompt_tokens_sum",
    "output_tokens": "output_tokens_sum",
}

# Metric -> field of `totals_by_vscode_agent`.
_VSCODE_AGENT: dict[str, str] = {
    "copilot_vscode_agent_sessions": "session_count",
    "copilot_vscode_agent_user_messages": "total_user_messages",
}

# Metric -> field of a `totals_by_3rd_party_agent[]` entry.
_THIRD_PARTY_AGENT: dict[str, str] = {
    "copilot_third_party_agent_interactions": "user_initiated_interaction_count",
    "copilot_third_party_agent_sessions": "session_count",
}

# Metric -> field of a `totals_by_ai_adoption_phase[]` entry, and the factor to its unit.
_ADOPTION_PHASE: dict[str, tuple[str, int]] = {
    "copilot_adoption_phase_engaged_users": ("total_engaged_users", 1),
    "copilot_adoption_phase_users_28d": ("users_in_phase_28d", 1),
    "copilot_adoption_phase_pull_requests_merged": ("total_pull_requests_merged", 1),
    "copilot_adoption_phase_review_time_seconds": ("avg_pull_requests_minutes_to_review", 60),
    "copilot_adoption_phase_review_cycles": ("avg_pull_requests_review_cycles", 1),
}


def add_aggregated(builder: FamilyBuilder, record: dict, team: None = None) -> str:
    """Add one organization-1-day or enterprise-1-day record; return its `day`.

    The reports API has no team-level aggregated record (team values come from add_teams),
    so `team` must stay None.
    """
    if team is not None:
        raise ValueError("aggregated reports have no team level; use add_teams")
    fields = Fields(record, AGGREGATED_REPORT)
    day = _read_day(fields)
    if day is None:
        raise PayloadError(f"{AGGREGATED_REPORT}: day: missing")
    for name, field in _USER_GAUGES.items():
        builder.add(name, fields.number(field))
    _add_activity(builder, ACTIVITY_COUNTERS, _activity(fields))
    _add_breakdowns(builder, fields)
    _add_pull_requests(builder, fields.child("pull_requests"))
    for prefix, field in _TOOLS.items():
        _add_tool(builder, prefix, fields.child(field))
    _add_vscode_agent(builder, fields.child("totals_by_vscode_agent"))
    _add_third_party_agents(builder, fields)
    _add_cli_customizations(builder, fields)
    _add_adoption_phases(builder, fields)
    return day


def _add_breakdowns(builder: FamilyBuilder, fields: Fields) -> None:
    for suffix, (array, label_fields) in ACTIVITY_BREAKDOWNS.items():
        names = [base + suffix for base in ACTIVITY_COUNTERS]
        for entry in fields.children(array):
            labels = {name: label for name in label_fields if (label := entry.label(name)) is not None}
            if len(labels) == len(label_fields):
                _add_activity(builder, names, _activity(entry), **labels)


def _add_pull_requests(builder: FamilyBuilder, prs: Fields | None) -> None:
    if prs is None:
        return
    for suffix, field in PULL_REQUEST_COUNTS.items():
        builder.add("copilot_" + suffix, prs.number(field))
    for entry in prs.children("copilot_suggestions_by_comment_type"):
        comment_type = entry.label("comment_type")
        if comment_type is None:
            continue
        for name, field in _BY_COMMENT_TYPE.items():
            builder.add(name, entry.number(field), comment_type=comment_type)
    for authorship, field in _MEDIANS_TO_MERGE.items():
        minutes = prs.number(field)
        if minutes is not None:
            builder.add("copilot_pull_request_median_time_to_merge_seconds", minutes * 60, authorship=authorship)


def _add_tool(builder: FamilyBuilder, prefix: str, tool: Fields | None) -> None:
    if tool is None:
        return
    for suffix, field in _TOOL_COUNTS.items():
        builder.add(prefix + suffix, tool.number(field))
    tokens = tool.child("token_usage")
    if tokens is not None:
        for suffix, field in _TOOL_TOKENS.items():
            builder.add(prefix + suffix, tokens.number(field))


def _add_vscode_agent(builder: FamilyBuilder, agent: Fields | None) -> None:
    if agent is not None:
        for name, field in _VSCODE_AGENT.items():
            builder.add(name, agent.number(field))


def _add_third_party_agents(builder: FamilyBuilder, fields: Fields) -> None:
    """`copilot_third_party_agent_interactions{agent_id="12",agent_name="Claude"} 4`"""
    for labels, values in fields.each("totals_by_3rd_party_agent", _third_party_agent, _refused(builder)):
        for name, value in zip(_THIRD_PARTY_AGENT, values):
            builder.add(name, value, **labels)


def _third_party_agent(entry: Fields) -> tuple[dict[str, str], tuple[float | None, ...]]:
    values = tuple(entry.number(field) for field in _THIRD_PARTY_AGENT.values())
    return {"agent_id": _identifier(entry, "agent_id"), "agent_name": _name(entry, "agent_name")}, values


def _add_cli_customizations(builder: FamilyBuilder, fields: Fields) -> None:
    """`copilot_cli_customization_interactions{kind="mcp",name="github"} 7`: each entry's name
    is its one string field, as GitHub names that field differently per array."""
    for kind in CLI_CUSTOMIZATION_KINDS:
        builder.add("copilot_cli_customizations_distinct", fields.number(f"distinct_{kind}_use_count"), kind=kind)
        for name, count in fields.each(f"totals_by_{kind}", _customization, _refused(builder)):
            builder.add("copilot_cli_customization_interactions", count, kind=kind, name=name)


def _customization(entry: Fields) -> tuple[str, float] | None:
    name = entry.sole_string()
    count = entry.number("interaction_count")
    return None if count is None else (name, count)


def _add_adoption_phases(builder: FamilyBuilder, fields: Fields) -> None:
    for entry in fields.children("totals_by_ai_adoption_phase"):
        phase = entry.label("phase")
        if phase is None:
            continue
        for name, (field, factor) in _ADOPTION_PHASE.items():
            value = entry.number(field)
            builder.add(name, None if value is None else value * factor, phase=phase)


# ---------------------------------------------------------------------------------------------
# 28-day report (organization-28-day / enterprise-28-day): only what no 1-day report holds


def add_28_day(builder: FamilyBuilder, record: dict) -> str | None:
    """Add the engagement of one 28-day wrapper record; return its `report_end_day`.

    Its `day_totals` are 1-day records (add_aggregated maps them): not read here.
    """
    fields = Fields(record, REPORT_28_DAY)
    end_day = _read_day(fields, "report_end_day")
    engagement = fields.child("copilot_feature_engagement")
    if engagement is not None:
        builder.add("copilot_engaged_users_28d", engagement.number("active_user_count"))
        for feature, users in engagement.each("totals_by_feature", _feature_engagement, _refused(builder)):
            builder.add("copilot_engaged_users_28d_by_feature", users, feature=feature)
    return end_day


def _feature_engagement(entry: Fields) -> tuple[str, float] | None:
    users = entry.number("engaged_user_count")
    return None if users is None else (_name(entry, "feature"), users)


# ---------------------------------------------------------------------------------------------
# Users report (users-1-day)

# `feature` label of copilot_users_used -> the flags meaning it (either one true counts).
_USED_FLAGS: dict[str, tuple[str, ...]] = {
    "agent": ("used_agent",),
    "chat": ("used_chat",),
    "cli": ("used_cli",),
    "cloud_agent": ("used_copilot_cloud_agent", "used_copilot_coding_agent"),
    "code_review_active": ("used_copilot_code_review_active",),
    "code_review_passive": ("used_copilot_code_review_passive",),
    "app": ("used_copilot_app",),
    "vscode_agent": ("used_vscode_agent",),
}

PER_USER_MODES = ("off", "login", "hashed")

# The id a users record and a user-teams row are joined on, besides `user_id` and `day`.
JOIN_IDS = {ORG: "organization_id", ENTERPRISE: "enterprise_id"}

# What the team join keeps of one user: the seven counters (ACTIVITY_COUNTERS order), AI
# credits, then the features used as bits in _USED_FLAGS order. A users report can hold
# 300,000 records, so nothing else is kept per user.
Member = tuple[float | None, ...]
_CREDITS = len(ACTIVITY_COUNTERS)
_USED_BITS = _CREDITS + 1
_FEATURES = tuple(_USED_FLAGS)


def hash_login(login: str, salt: str) -> str:
    """Pseudonymous `user` label: HMAC-SHA256 of the login keyed by the salt, first 16 hex digits.

    HMAC-SHA256 rather than keyed BLAKE2b because it accepts a salt of any length (BLAKE2b keys
    stop at 64 bytes); 64 bits keep labels short while collisions stay negligible for 100,000
    users. Without the salt, nobody can map a label back to a login by hashing known logins.
    """
    return hmac.new(salt.encode(), login.encode(), hashlib.sha256).hexdigest()[:16]


def _used_bits(features: Iterable[str]) -> int:
    return sum(1 << _FEATURES.index(feature) for feature in features)


def _merge(first: Member, second: Member) -> Member:
    """Two records of one user (the API should not send this): summed, features combined."""
    return _sum_fields(first[:_USED_BITS], second[:_USED_BITS]) + (
        int(first[_USED_BITS] or 0) | int(second[_USED_BITS] or 0),
    )


class UsersAccumulator:
    """Streams the records of one users-1-day report into aggregate (and opt-in per-user) series.

    Per user it keeps a Member, and only when teams or per-user series need it (`keep_members`).
    Records without `user_id` count in the aggregates only: they cannot be joined with teams.
    `join_id` is the scope id field (JOIN_IDS) that, with `user_id` and `day`, joins teams.
    """

    def __init__(
        self, per_user: str = "off", salt: str | None = None, join_id: str = JOIN_IDS[ORG], keep_members: bool = True
    ):
        if per_user not in PER_USER_MODES:
            raise ValueError(f"per_user must be one of {', '.join(PER_USER_MODES)}: {per_user!r}")
        if per_user == "hashed" and not salt:
            raise ValueError("per_user 'hashed' needs a non-empty salt")
        self.join_id = join_id
        self._per_user = per_user
        self._salt = salt or ""
        self._keep = keep_members or per_user != "off"
        self._day: str | None = None
        self._reported = 0
        self._without_telemetry = 0
        self._used: Counter[str] = Counter({feature: 0 for feature in _USED_FLAGS})
        self._phases: Counter[str] = Counter()
        self._credits: float | None = None
        self._ide_versions: Counter[tuple[str, str]] = Counter()
        self._plugin_versions: Counter[tuple[str, str]] = Counter()
        self._cli_versions: Counter[str] = Counter()
        # (day, join id) -> user_id -> Member; one outer key in a well-formed report
        self._members: dict[tuple[str | None, str | None], dict[int, Member]] = {}
        self._user_labels: dict[int, str] = {}  # filled only when per_user is on

    def add(self, record: dict) -> None:
        fields = Fields(record, USERS_REPORT)
        day = _read_day(fields)
        self._day = self._day or day
        self._reported += 1
        used = self._used_features(fields)
        self._used.update(used)
        phase = fields.child("ai_adoption_phase")
        phase_name = phase.label("phase") if phase is not None else None
        if phase_name is not None:
            self._phases[phase_name] += 1
        credits = fields.number("ai_credits_used")
        if credits is not None:
            self._credits = (self._credits or 0) + credits
        self._add_versions(fields)
        activity = _activity(fields)
        if not used and not any(value for value in activity) and not fields.filled("totals_by_"):
            self._without_telemetry += 1
        self._add_member(fields, day, activity + (credits, _used_bits(used)))

    @staticmethod
    def _used_features(fields: Fields) -> list[str]:
        # a list per feature, not a generator: every flag gets type-checked, even after a true one
        return [feature for feature, flags in _USED_FLAGS.items() if any([fields.flag(flag) is True for flag in flags])]

    def _add_versions(self, fields: Fields) -> None:
        # Sets: a user whose entries repeat an (IDE, version) pair counts once for it.
        ide_versions: set[tuple[str, str]] = set()
        plugin_versions: set[tuple[str, str]] = set()
        for entry in fields.children("totals_by_ide"):
            ide = entry.label("ide")
            ide_version = entry.child("last_known_ide_version")
            version = ide_version.label("ide_version") if ide_version is not None else None
            if ide is not None and version is not None:
                ide_versions.add((ide, version))
            plugin = entry.child("last_known_plugin_version")
            if plugin is not None:
                name, version = plugin.label("plugin"), plugin.label("plugin_version")
                if name is not None and version is not None:
                    plugin_versions.add((name, version))
        self._ide_versions.update(ide_versions)
        self._plugin_versions.update(plugin_versions)
        cli = fields.child("totals_by_cli")
        cli_version = cli.child("last_known_cli_version") if cli is not None else None
        version = cli_version.label("cli_version") if cli_version is not None else None
        if version is not None:
            self._cli_versions[version] += 1

    def _add_member(self, fields: Fields, day: str | None, member: Member) -> None:
        user_id = fields.get("user_id", "integer")
        login = fields.get("user_login", "string")
        join_id = fields.ident(self.join_id)
        if user_id is None or not self._keep:
            return
        members = self._members.setdefault((day, join_id), {})
        previous = members.get(user_id)
        members[user_id] = member if previous is None else _merge(previous, member)
        if self._per_user != "off" and login:
            hashed = self._per_user == "hashed"
            self._user_labels[user_id] = hash_login(login, self._salt) if hashed else login

    def day(self) -> str | None:
        """The report's day (from its first record carrying one), None before any record."""
        return self._day

    def kept(self) -> Iterator[tuple[int, str | None, Member]]:
        """Each user kept (see `keep_members`) once: `user_id`, per-user label (None when
        per_user is off) and Member."""
        seen: set[int] = set()
        for members in self._members.values():
            for user_id, member in members.items():
                if user_id not in seen:
                    seen.add(user_id)
                    yield user_id, self._user_labels.get(user_id), member

    def member(self, user_id: int | None, day: str | None, join_id: str | None) -> Member | None:
        """What the report holds for a user on a day in a scope (see Member), else None."""
        return self._members.get((day, join_id), {}).get(user_id) if user_id is not None else None

    def add_to(self, builder: FamilyBuilder) -> None:
        builder.add("copilot_users_reported", self._reported)
        builder.add("copilot_users_without_client_telemetry", self._without_telemetry)
        for feature, count in self._used.items():
            builder.add("copilot_users_used", count, feature=feature)
        for phase, count in self._phases.items():
            builder.add("copilot_users_by_adoption_phase", count, phase=phase)
        builder.add("copilot_ai_credits_used", self._credits)
        for (ide, version), count in self._ide_versions.items():
            builder.add("copilot_users_by_ide_version", count, ide=ide, ide_version=version)
        for (plugin, version), count in self._plugin_versions.items():
            builder.add("copilot_users_by_plugin_version", count, plugin=plugin, plugin_version=version)
        for version, count in self._cli_versions.items():
            builder.add("copilot_users_by_cli_version", count, cli_version=version)
        self._add_per_user(builder)

    def _add_per_user(self, builder: FamilyBuilder) -> None:
        add_per_user(builder, ((label, member) for _user_id, label, member in self.kept()))


def add_per_user(builder: FamilyBuilder, users: Iterable[tuple[str | None, Member]]) -> None:
    """`copilot_per_user_lines_added{user="alice"} 8` (opt-in): one user's series per (label,
    Member), none for a label None. From a users report, or from the users the state keeps."""
    for user, member in users:
        if user is not None:
            _add_activity(builder, PER_USER_NAMES.values(), member[:_CREDITS], user=user)


# ---------------------------------------------------------------------------------------------
# Teams (user-teams-1-day joined with users-1-day, as GitHub documents it)


class _Team:
    """The members of one team found in the users report, and the sums of their Members."""

    def __init__(self, slug: str):
        self.slug = slug
        self.members: set[int] = set()
        self.totals: Member = (None,) * _USED_BITS
        self.used: Counter[str] = Counter({feature: 0 for feature in _USED_FLAGS})

    def add(self, user_id: int, member: Member) -> None:
        if user_id in self.members:  # the same membership listed twice counts once
            return
        self.members.add(user_id)
        self.totals = _sum_fields(self.totals, member[:_USED_BITS])
        bits = int(member[_USED_BITS] or 0)
        self.used.update(feature for index, feature in enumerate(_FEATURES) if bits >> index & 1)

    def add_to(self, builder: FamilyBuilder, team_id: str) -> None:
        labels = {"team": self.slug, "team_id": team_id}
        builder.add("copilot_daily_active_users", len(self.members), **labels)
        _add_activity(builder, ACTIVITY_COUNTERS, self.totals[:_CREDITS], **labels)
        builder.add("copilot_ai_credits_used", self.totals[_CREDITS], **labels)
        for feature, count in self.used.items():
            builder.add("copilot_users_used", count, **labels, feature=feature)


def add_teams(
    builder: FamilyBuilder,
    team_rows: Iterable[dict],
    users: UsersAccumulator,
    only_teams: Collection[str] = (),
) -> tuple[str, ...]:
    """Per team (its `team_id`), the members the users report holds for the row's `user_id`, `day`
    and scope id, and the sums of their activity; return the slugs of `only_teams` (every team
    when empty) that the report does not list.

    `copilot_daily_active_users{org="acme",team="web",team_id="42"} 7`. Two teams sharing a slug
    (an enterprise team and a business team) stay two series sets. Only totals: breakdowns per
    team would multiply cardinality by the team count. A listed team none of whose members is in
    the users report gets 0 active users and no activity sums.
    """
    wanted = frozenset(only_teams)
    listed: set[str] = set()
    teams: dict[str, _Team] = {}
    for row in team_rows:
        fields = Fields(row, TEAMS_REPORT)
        slug, team_id = fields.label("slug"), fields.ident("team_id")
        user_id = fields.get("user_id", "integer")
        if slug is None or team_id is None:
            builder.problems.note("bad_value", f"{TEAMS_REPORT}: a row without slug or team_id")
            continue
        listed.add(slug)
        if wanted and slug not in wanted:
            continue
        team = teams.setdefault(team_id, _Team(slug))
        member = users.member(user_id, _read_day(fields), fields.ident(users.join_id))
        if member is not None:
            team.add(user_id, member)
    for team_id, team in teams.items():
        team.add_to(builder, team_id)
    return tuple(sorted(wanted - listed))


def membership(row: dict) -> tuple[str, str, int, str | None] | None:
    """(team_id, slug, user_id, day) of a user-teams row; None for a row add_teams cannot join."""
    if type(row) is dict:  # a report holds 100,000s of rows: the usual shape first, without Fields
        slug, team_id, user_id, day = row.get("slug"), row.get("team_id"), row.get("user_id"), row.get("day")
        if (
            type(slug) is str
            and slug
            and type(team_id) in (int, str)
            and team_id != ""
            and type(user_id) is int
            and (day is None or type(day) is str)
        ):
            return str(team_id), slug, user_id, day
    fields = Fields(row, TEAMS_REPORT)
    slug, team_id = fields.label("slug"), fields.ident("team_id")
    user_id = fields.get("user_id", "integer")
    if slug is None or team_id is None or user_id is None:
        return None
    return team_id, slug, user_id, fields.get("day", "string")


# Metric of a team's distinct members over a window -> the window's length in days.
TEAM_WINDOWS: dict[str, int] = {
    "copilot_weekly_active_users": 7,
    "copilot_monthly_active_users": 28,
}


def add_team_windows(
    builder: FamilyBuilder,
    windows: Mapping[str, Iterable[tuple[str, str, int]]],
    only_teams: Collection[str] = (),
) -> None:
    """Per team and filled window (a TEAM_WINDOWS metric -> (team_id, slug, distinct members)),
    `copilot_weekly_active_users{org="acme",team="web",team_id="42"} 9`; only the slugs of
    `only_teams` when it is not empty."""
    wanted = frozenset(only_teams)
    for name, teams in windows.items():
        for team_id, slug, members in teams:
            if not wanted or slug in wanted:
                builder.add(name, members, team=slug, team_id=team_id)


# Window label -> days, of copilot_organizations_active_users.
ORGANIZATION_WINDOWS: dict[str, int] = {"daily": 1, "weekly": 7, "monthly": 28}


def add_organizations_active_users(builder: FamilyBuilder, counts: Mapping[str, int]) -> None:
    """Distinct users across the configured organizations, per filled window:
    `copilot_organizations_active_users{window="weekly"} 130`."""
    for window, count in counts.items():
        builder.add("copilot_organizations_active_users", count, window=window)


# ---------------------------------------------------------------------------------------------
# Repositories (repos-1-day)

_ACTIVITY_FIELDS = ("total_created", "total_reviewed", "total_merged")


def _repository(record: dict) -> tuple[str, float, tuple[float | None, ...]] | None:
    """(owner/name, activity, pull request counts) of a record; None when it names no repository."""
    fields = Fields(record, REPOS_REPORT)
    owner, name = fields.label("repo_owner_name"), fields.label("repo_name")
    if name is None:
        return None
    repository = name if "/" in name or owner is None else f"{owner}/{name}"
    prs = fields.child("pull_requests") or Fields({}, REPOS_REPORT)
    counts = tuple(prs.number(field) for field in PULL_REQUEST_COUNTS.values())
    activity = sum(prs.number(field) or 0 for field in _ACTIVITY_FIELDS)
    return repository, activity, counts


def add_repositories(builder: FamilyBuilder, records: Iterable[dict], max_repositories: int) -> None:
    """Pull request counts of the `max_repositories` most active repositories.

    Activity = created + reviewed + merged; ties go to the alphabetically first name.
    heapq.nsmallest keeps a heap of `max_repositories` compact tuples, never the records.
    """
    parsed = (_repository(record) for record in records)
    top = heapq.nsmallest(
        max(max_repositories, 0),
        (repo for repo in parsed if repo is not None),
        key=lambda repo: (-repo[1], repo[0]),
    )
    for repository, _activity_sum, counts in top:
        for suffix, value in zip(PULL_REQUEST_COUNTS, counts):
            builder.add("copilot_repository_" + suffix, value, repository=repository)
