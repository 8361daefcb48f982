"""Records of the Copilot usage metrics reports API -> metric samples.

Pure functions over already-decoded JSON records: no I/O. A users report can hold 100,000
records and arrives as a stream, so accumulators keep per user at most a tuple of numbers.

Tolerance rules shared by every function here: unknown fields are ignored, a field that is
absent or null yields no sample (never a zero), and a value of the wrong type raises
PayloadError naming the report and the field.
"""

from __future__ import annotations

import hashlib
import heapq
import hmac
from collections import Counter
from collections.abc import Callable, Collection, Iterable

from copilot_exporter.errors import PayloadError
from copilot_exporter.metrics.fields import Fields
from copilot_exporter.metrics.catalogue import (
    ACTIVITY_BREAKDOWNS,
    ACTIVITY_COUNTERS,
    PULL_REQUEST_COUNTS,
)
from copilot_exporter.model import FamilyBuilder, day_timestamp

AGGREGATED_REPORT = "organization/enterprise-1-day"
USERS_REPORT = "users-1-day"
TEAMS_REPORT = "user-teams-1-day"
REPOS_REPORT = "repos-1-day"
REPORT_28_DAY = "organization/enterprise-28-day"

# ---------------------------------------------------------------------------------------------
# The seven activity counters, kept as tuples in ACTIVITY_COUNTERS order.

Activity = tuple[float | None, ...]

_PER_USER_NAMES = tuple(
    "copilot_user_" + base.removeprefix("copilot_") for base in ACTIVITY_COUNTERS
)


def _activity(fields: Fields) -> Activity:
    return tuple(fields.number(field) for field in ACTIVITY_COUNTERS.values())


def _sum_activity(rows: Iterable[Activity]) -> Activity:
    """Field-wise sum; a field no row carries stays None (absent)."""
    totals: list[float | None] = [None] * len(ACTIVITY_COUNTERS)
    for row in rows:
        for index, value in enumerate(row):
            if value is not None:
                totals[index] = (totals[index] or 0) + value
    return tuple(totals)


def _add_activity(
    builder: FamilyBuilder, names: Iterable[str], values: Activity, **labels: str
) -> None:
    for name, value in zip(names, values):
        builder.add(name, value, **labels)


def _read_day(fields: Fields, key: str = "day") -> str | None:
    day = fields.get(key, "string")
    if day is not None:
        try:
            day_timestamp(day)
        except ValueError:
            raise fields.error(key, "a YYYY-MM-DD date", day) from None
    return day


def _refused(builder: FamilyBuilder) -> Callable[[PayloadError], None]:
    """Notes an array entry dropped for a wrong type or a missing name (Fields.each)."""
    return lambda err: builder.problems.note("bad_value", str(err))


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
    "copilot_pull_request_copilot_applied_suggestions_by_comment_type":
        "total_copilot_applied_suggestions",
}

# Metric -> field of `totals_by_cli`, and of its `token_usage`.
_CLI_COUNTS: dict[str, str] = {
    "copilot_cli_sessions": "session_count",
    "copilot_cli_requests": "request_count",
    "copilot_cli_prompts": "prompt_count",
}
_CLI_TOKENS: dict[str, str] = {
    "copilot_cli_prompt_tokens": "prompt_tokens_sum",
    "copilot_cli_output_tokens": "output_tokens_sum",
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
    _add_cli(builder, fields.child("totals_by_cli"))
    for entry in fields.children("totals_by_ai_adoption_phase"):
        phase = entry.label("phase")
        if phase is not None:
            builder.add("copilot_adoption_phase_engaged_users", entry.number("total_engaged_users"),
                        phase=phase)
    return day


def _add_breakdowns(builder: FamilyBuilder, fields: Fields) -> None:
    for suffix, (array, label_fields) in ACTIVITY_BREAKDOWNS.items():
        names = [base + suffix for base in ACTIVITY_COUNTERS]
        for entry in fields.children(array):
            labels = {name: entry.label(name) for name in label_fields}
            if None not in labels.values():
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
            builder.add("copilot_pull_request_median_time_to_merge_seconds", minutes * 60,
                        authorship=authorship)


def _add_cli(builder: FamilyBuilder, cli: Fields | None) -> None:
    if cli is None:
        return
    for name, field in _CLI_COUNTS.items():
        builder.add(name, cli.number(field))
    tokens = cli.child("token_usage")
    if tokens is not None:
        for name, field in _CLI_TOKENS.items():
            builder.add(name, tokens.number(field))


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
        for feature, users in engagement.each("totals_by_feature", _feature_engagement,
                                               _refused(builder)):
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
}

PER_USER_MODES = ("off", "login", "hashed")


def hash_login(login: str, salt: str) -> str:
    """Pseudonymous `user` label: HMAC-SHA256 of the login keyed by the salt, first 16 hex digits.

    HMAC-SHA256 rather than keyed BLAKE2b because it accepts a salt of any length (BLAKE2b keys
    stop at 64 bytes); 64 bits keep labels short while collisions stay negligible for 100,000
    users. Without the salt, nobody can map a label back to a login by hashing known logins.
    """
    return hmac.new(salt.encode(), login.encode(), hashlib.sha256).hexdigest()[:16]


class UsersAccumulator:
    """Streams the records of one users-1-day report into aggregate (and opt-in per-user) series.

    Records without `user_id` count in the aggregates only: they cannot be joined with teams.
    """

    def __init__(self, per_user: str = "off", salt: str | None = None):
        if per_user not in PER_USER_MODES:
            raise ValueError(f"per_user must be one of {', '.join(PER_USER_MODES)}: {per_user!r}")
        if per_user == "hashed" and not salt:
            raise ValueError("per_user 'hashed' needs a non-empty salt")
        self._per_user = per_user
        self._salt = salt or ""
        self._day: str | None = None
        self._reported = 0
        self._used: Counter[str] = Counter({feature: 0 for feature in _USED_FLAGS})
        self._phases: Counter[str] = Counter()
        self._credits: float | None = None
        self._ide_versions: Counter[tuple[str, str]] = Counter()
        self._plugin_versions: Counter[tuple[str, str]] = Counter()
        self._activity: dict[int, Activity] = {}
        self._user_labels: dict[int, str] = {}  # filled only when per_user is on

    def add(self, record: dict) -> None:
        fields = Fields(record, USERS_REPORT)
        day = _read_day(fields)
        self._day = self._day or day
        self._reported += 1
        for feature, flags in _USED_FLAGS.items():
            # a list, not a generator: every flag gets type-checked, even after a true one
            if any([fields.flag(flag) is True for flag in flags]):
                self._used[feature] += 1
        phase = fields.child("ai_adoption_phase")
        phase_name = phase.label("phase") if phase is not None else None
        if phase_name is not None:
            self._phases[phase_name] += 1
        credits = fields.number("ai_credits_used")
        if credits is not None:
            self._credits = (self._credits or 0) + credits
        self._add_versions(fields)
        self._add_user(fields)

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

    def _add_user(self, fields: Fields) -> None:
        user_id = fields.get("user_id", "integer")
        login = fields.get("user_login", "string")
        if user_id is None:
            return
        activity = _activity(fields)
        previous = self._activity.get(user_id)
        # A user listed twice (the API should not do this) is summed, as FamilyBuilder does.
        if previous is not None:
            activity = _sum_activity((previous, activity))
        self._activity[user_id] = activity
        if self._per_user != "off" and login:
            hashed = self._per_user == "hashed"
            self._user_labels[user_id] = hash_login(login, self._salt) if hashed else login

    def day(self) -> str | None:
        """The report's day (from its first record carrying one), None before any record."""
        return self._day

    def activity_of(self, user_id: int) -> Activity | None:
        """The seven counters (ACTIVITY_COUNTERS order) of a user in the report, else None."""
        return self._activity.get(user_id)

    def add_to(self, builder: FamilyBuilder) -> None:
        builder.add("copilot_users_reported", self._reported)
        for feature, count in self._used.items():
            builder.add("copilot_users_used", count, feature=feature)
        for phase, count in self._phases.items():
            builder.add("copilot_users_by_adoption_phase", count, phase=phase)
        builder.add("copilot_ai_credits_used", self._credits)
        for (ide, version), count in self._ide_versions.items():
            builder.add("copilot_users_by_ide_version", count, ide=ide, ide_version=version)
        for (plugin, version), count in self._plugin_versions.items():
            builder.add("copilot_users_by_plugin_version", count,
                        plugin=plugin, plugin_version=version)
        for user_id, user in self._user_labels.items():
            _add_activity(builder, _PER_USER_NAMES, self._activity[user_id], user=user)


# ---------------------------------------------------------------------------------------------
# Teams (user-teams-1-day joined with users-1-day on user_id)

def add_teams(
    builder: FamilyBuilder,
    team_rows: Iterable[dict],
    users: UsersAccumulator,
    only_teams: Collection[str] = (),
) -> None:
    """Per team slug: members present in the users report, and the sums of their activity.

    Only activity totals: breakdowns per team would multiply cardinality by the team count.
    A team listed in the report whose members are all absent from the users report still gets
    `copilot_daily_active_users` 0; its activity sums are absent (no member carries a value).
    """
    wanted = frozenset(only_teams)
    present: dict[str, set[int]] = {}
    for row in team_rows:
        fields = Fields(row, TEAMS_REPORT)
        slug = fields.label("slug")
        user_id = fields.get("user_id", "integer")
        if slug is None or (wanted and slug not in wanted):
            continue
        members = present.setdefault(slug, set())
        if user_id is not None and users.activity_of(user_id) is not None:
            members.add(user_id)
    for slug, members in present.items():
        builder.add("copilot_daily_active_users", len(members), team=slug)
        totals = _sum_activity(users.activity_of(user_id) for user_id in members)
        _add_activity(builder, ACTIVITY_COUNTERS, totals, team=slug)


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


def add_repositories(
    builder: FamilyBuilder, records: Iterable[dict], max_repositories: int
) -> None:
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
