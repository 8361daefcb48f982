"""Every metric the exporter can expose: name, type and help text.

The names are a contract with dashboards, alert rules and users (see the README's metric table,
which a test keeps equal to this catalogue). A sample whose name is not here cannot be built.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

GAUGE = "gauge"
COUNTER = "counter"


@dataclass(frozen=True)
class MetricInfo:
    type: str
    help: str
    group: str  # the README section the metric is listed under
    labels: tuple[str, ...] = ()  # label keys besides the scope (org/enterprise, team, team_id)
    # Whether series of this family may be summed: past max_series_per_family the excess is
    # folded into a series labelled `others` when true, and dropped when false.
    additive: bool = True
    per_user: bool = False  # opt-in per-user series: bounded by the users report, never folded


CATALOGUE: dict[str, MetricInfo] = {}


def _define(group: str, type_: str, entries: dict[str, str]) -> None:
    for name, help_text in entries.items():
        CATALOGUE[name] = MetricInfo(type_, help_text, group)


# The seven activity counters of the reports API: metric base name -> report field.
ACTIVITY_COUNTERS: dict[str, str] = {
    "copilot_user_initiated_interactions": "user_initiated_interaction_count",
    "copilot_code_generation_activities": "code_generation_activity_count",
    "copilot_code_acceptance_activities": "code_acceptance_activity_count",
    "copilot_lines_suggested_to_add": "loc_suggested_to_add_sum",
    "copilot_lines_suggested_to_delete": "loc_suggested_to_delete_sum",
    "copilot_lines_added": "loc_added_sum",
    "copilot_lines_deleted": "loc_deleted_sum",
}

# Breakdown suffix -> (report array, its label fields).
ACTIVITY_BREAKDOWNS: dict[str, tuple[str, tuple[str, ...]]] = {
    "_by_ide": ("totals_by_ide", ("ide",)),
    "_by_feature": ("totals_by_feature", ("feature",)),
    "_by_language_feature": ("totals_by_language_feature", ("language", "feature")),
    "_by_language_model": ("totals_by_language_model", ("language", "model")),
    "_by_model_feature": ("totals_by_model_feature", ("model", "feature")),
}

# Pull request counts of the reports API: metric suffix -> field of `pull_requests`.
PULL_REQUEST_COUNTS: dict[str, str] = {
    "pull_requests_created": "total_created",
    "pull_requests_reviewed": "total_reviewed",
    "pull_requests_merged": "total_merged",
    "pull_requests_created_by_copilot": "total_created_by_copilot",
    "pull_requests_reviewed_by_copilot": "total_reviewed_by_copilot",
    "pull_requests_merged_created_by_copilot": "total_merged_created_by_copilot",
    "pull_requests_merged_reviewed_by_copilot": "total_merged_reviewed_by_copilot",
    "pull_request_suggestions": "total_suggestions",
    "pull_request_applied_suggestions": "total_applied_suggestions",
    "pull_request_copilot_suggestions": "total_copilot_suggestions",
    "pull_request_copilot_applied_suggestions": "total_copilot_applied_suggestions",
}

# Kinds of CLI customization: `kind` label -> name part of `totals_by_<kind>` and
# `distinct_<kind>_use_count` (reported since 2026-09-17).
CLI_CUSTOMIZATION_KINDS = ("skill", "custom_agent", "mcp", "slash_cmd", "plugin")

# Per-user series (opt-in): activity base name -> its per-user name.
PER_USER_NAMES: dict[str, str] = {
    base: "copilot_per_user_" + base.removeprefix("copilot_") for base in ACTIVITY_COUNTERS
}

# Dates GitHub changed what the reports count (COPILOT-APIS.md §6), quoted by the help texts.
_SURFACES = (
    "includes Copilot CLI since 2026-04-10 and the Copilot app since 2026-07-28 (features `copilot_cli`, `copilot_app`)"
)
_TEAM = "with `team`, summed over the team's members"

# What each activity counter counts, in words (ACTIVITY_COUNTERS order).
_ACTIVITY_MEANINGS: dict[str, str] = {
    "copilot_user_initiated_interactions": (
        "Prompts users explicitly sent to Copilot (chat, agent, CLI and app prompts)"
    ),
    "copilot_code_generation_activities": (
        "Distinct pieces of code or text Copilot generated (completions shown, chat code blocks, agent edits)"
    ),
    "copilot_code_acceptance_activities": "Times users accepted, applied, inserted or copied what Copilot generated",
    "copilot_lines_suggested_to_add": "Lines of code Copilot suggested adding",
    "copilot_lines_suggested_to_delete": "Lines of code Copilot suggested deleting",
    "copilot_lines_added": "Lines of code actually added with Copilot (agent edits included)",
    "copilot_lines_deleted": "Lines of code actually deleted with Copilot (agent edits included)",
}

# How each breakdown splits the activity, in words.
_BREAKDOWN_MEANINGS: dict[str, str] = {
    "_by_ide": "by IDE: IDE activity only, Copilot CLI and the Copilot app are not in this breakdown",
    "_by_feature": f"by feature; {_SURFACES}",
    "_by_language_feature": f"by language and feature (languages as the IDE names them); {_SURFACES}",
    "_by_language_model": (
        f"by language and model, code completion left out (top 10 models plus `others`); {_SURFACES}"
    ),
    "_by_model_feature": f"by model and feature, code completion left out; {_SURFACES}",
}

# What each pull request count counts, in words (PULL_REQUEST_COUNTS order).
_PULL_REQUEST_MEANINGS: dict[str, str] = {
    "pull_requests_created": "Pull requests created",
    "pull_requests_reviewed": "Pull requests reviewed",
    "pull_requests_merged": "Pull requests merged",
    "pull_requests_created_by_copilot": "Pull requests created by the Copilot cloud agent",
    "pull_requests_reviewed_by_copilot": "Pull requests reviewed by Copilot code review",
    "pull_requests_merged_created_by_copilot": "Merged pull requests that the Copilot cloud agent created",
    "pull_requests_merged_reviewed_by_copilot": "Merged pull requests that Copilot code review reviewed",
    "pull_request_suggestions": "Review suggestions made on pull requests, by anyone",
    "pull_request_applied_suggestions": "Review suggestions applied on pull requests, by anyone",
    "pull_request_copilot_suggestions": "Review suggestions made by Copilot code review",
    "pull_request_copilot_applied_suggestions": "Review suggestions by Copilot code review that were applied",
}

# Tools GitHub reports with one object of sessions, requests, prompts and tokens.
_TOOL_NAMES = {"cli": "Copilot CLI", "app": "the Copilot app (reported since 2026-07-17)"}

_define(
    "day",
    GAUGE,
    {
        "copilot_report_day_timestamp_seconds": (
            "UTC midnight of the day whose values are exported, per report (seats: the fetch time)."
        ),
    },
)

_define(
    "shared",
    GAUGE,
    {
        "copilot_daily_active_users": (
            "Users with any Copilot activity on the reported day. Reports API: app-only users count "
            "since 2026-07-28 (CLI activity is inside since 2026-04-10; whether CLI-only users count "
            "is undocumented), enterprise reports add users seen only server-side since 2026-06-15; "
            "with `team`, the team's members active that day."
        ),
    },
)

_define(
    "legacy",
    GAUGE,
    {
        "copilot_daily_engaged_users": "Users engaged with any Copilot feature on the reported day.",
        "copilot_ide_code_completions_engaged_users": "Users who accepted an IDE code suggestion.",
        "copilot_ide_code_completions_language_engaged_users": (
            "Users who accepted an IDE code suggestion, by language."
        ),
        "copilot_ide_code_completions_editor_engaged_users": "Users who accepted an IDE code suggestion, by editor.",
        "copilot_ide_code_completions_model_engaged_users": (
            "Users who accepted an IDE code suggestion, by editor and model."
        ),
        "copilot_ide_code_completions_model_language_engaged_users": (
            "Users who accepted an IDE code suggestion, by editor, model and language."
        ),
        "copilot_ide_code_suggestions": "IDE code suggestions shown.",
        "copilot_ide_code_acceptances": "IDE code suggestions accepted.",
        "copilot_ide_code_lines_suggested": "Lines of code suggested in the IDE.",
        "copilot_ide_code_lines_accepted": "Lines of code accepted in the IDE.",
        "copilot_ide_chat_engaged_users": "Users who prompted Copilot Chat in the IDE.",
        "copilot_ide_chat_editor_engaged_users": "Users who prompted Copilot Chat in the IDE, by editor.",
        "copilot_ide_chat_model_engaged_users": "Users who prompted Copilot Chat in the IDE, by editor and model.",
        "copilot_ide_chats": "Copilot Chat conversations in the IDE.",
        "copilot_ide_chat_insertion_events": "Chat suggestions inserted into code in the IDE.",
        "copilot_ide_chat_copy_events": "Chat suggestions copied to the clipboard in the IDE.",
        "copilot_dotcom_chat_engaged_users": "Users who prompted Copilot Chat on github.com.",
        "copilot_dotcom_chat_model_engaged_users": "Users who prompted Copilot Chat on github.com, by model.",
        "copilot_dotcom_chats": "Copilot Chat conversations on github.com.",
        "copilot_dotcom_pull_requests_engaged_users": "Users who generated a pull request summary on github.com.",
        "copilot_dotcom_pull_requests_repository_engaged_users": (
            "Users who generated a pull request summary, by repository."
        ),
        "copilot_dotcom_pull_requests_model_engaged_users": (
            "Users who generated a pull request summary, by repository and model."
        ),
        "copilot_dotcom_pull_request_summaries": "Pull request summaries generated on github.com.",
        "copilot_custom_model_info": "A custom model in use (value 1), with its training date.",
    },
)

_define(
    "reports_users",
    GAUGE,
    {
        "copilot_weekly_active_users": (
            "Distinct users with any Copilot activity over the trailing 7 days; with `team`, the "
            "team's distinct members in the users reports of those 7 days (once the exporter holds every one)."
        ),
        "copilot_monthly_active_users": (
            "Distinct users with any Copilot activity over the trailing 28 days; with `team`, the "
            "team's distinct members in the users reports of those 28 days (once the exporter holds every one)."
        ),
        "copilot_monthly_active_chat_users": "Distinct users of Copilot Chat over the trailing 28 days.",
        "copilot_monthly_active_agent_users": "Distinct users of Copilot agent mode over the trailing 28 days.",
        "copilot_daily_active_cli_users": "Users of Copilot CLI on the reported day.",
        **{
            f"copilot_{window}_{kind}_users": f"{text} ({window} window)."
            for window in ("daily", "weekly", "monthly")
            for kind, text in (
                ("active_cloud_agent", "Users of the Copilot cloud agent, called coding agent before 2026-04-10"),
                ("active_code_review", "Users who requested a Copilot code review or applied one of its suggestions"),
                ("passive_code_review", "Users who were auto-assigned a Copilot code review without engaging with it"),
                ("active_app", "Users of the Copilot app, reported since 2026-07-17"),
                ("active_vscode_agent", "Users of the VS Code Agents window, reported since 2026-09-11"),
            )
        },
        **{
            f"copilot_{window}_active_cli_users": (
                f"Distinct users of Copilot CLI over the trailing {days} days (only when GitHub reports it)."
            )
            for window, days in (("weekly", 7), ("monthly", 28))
        },
        "copilot_engaged_users_28d": (
            "Users engaged with Copilot on at least 2 of the 28 days of the latest 28-day report."
        ),
        "copilot_engaged_users_28d_by_feature": (
            "Users engaged with Copilot on at least 2 of the 28 days of the latest 28-day report, "
            "by feature (a user counts under every feature they engaged with, so these do not add up)."
        ),
        "copilot_organizations_active_users": (
            "Distinct users active in any of the configured organizations over the window "
            "(a user active in several organizations counts once)."
        ),
    },
)

_define(
    "reports_activity",
    GAUGE,
    {
        **{
            base: f"{meaning} on the reported day; {_SURFACES}; {_TEAM}."
            for base, meaning in _ACTIVITY_MEANINGS.items()
        },
        **{
            base + suffix: f"{meaning} on the reported day, {split}."
            for base, meaning in _ACTIVITY_MEANINGS.items()
            for suffix, split in _BREAKDOWN_MEANINGS.items()
        },
    },
)

_define(
    "reports_pull_requests",
    GAUGE,
    {
        **{
            f"copilot_{suffix}": f"{meaning} on the reported day." for suffix, meaning in _PULL_REQUEST_MEANINGS.items()
        },
        "copilot_pull_request_copilot_suggestions_by_comment_type": (
            "Review suggestions made by Copilot code review on the reported day, by comment type."
        ),
        "copilot_pull_request_copilot_applied_suggestions_by_comment_type": (
            "Review suggestions by Copilot code review applied on the reported day, by comment type."
        ),
        "copilot_pull_request_median_time_to_merge_seconds": (
            "Median time from creation to merge of the pull requests merged on the reported day, by authorship."
        ),
        **{
            f"copilot_{tool}_{suffix}": text.format(tool=name)
            for tool, name in _TOOL_NAMES.items()
            for suffix, text in (
                ("sessions", "Sessions of {tool} on the reported day."),
                ("requests", "Requests {tool} sent to a model on the reported day."),
                ("prompts", "Prompts users typed into {tool} on the reported day."),
                ("prompt_tokens", "Prompt tokens {tool} sent to models on the reported day."),
                ("output_tokens", "Output tokens models returned to {tool} on the reported day."),
            )
        },
        "copilot_vscode_agent_sessions": "Sessions in the VS Code Agents window on the reported day.",
        "copilot_vscode_agent_user_messages": "Messages users sent in the VS Code Agents window on the reported day.",
        "copilot_third_party_agent_interactions": (
            "Jobs started with a third-party agent app (Claude, Codex...) on the reported day, reported "
            "since 2026-08-07; job starts, not part of copilot_user_initiated_interactions."
        ),
        "copilot_third_party_agent_sessions": (
            "Sessions of a third-party agent app (Claude, Codex...) on the reported day."
        ),
        "copilot_cli_customization_interactions": (
            "Copilot CLI interactions on the reported day that used a customization: skill, custom agent, "
            "MCP server (connection attempts), slash command or plugin; top 5 per kind, customer-defined "
            "names grouped as `other`, custom slash commands as `custom`; plugins are also counted as "
            "skills, never add the two."
        ),
        "copilot_cli_customizations_distinct": (
            "Distinct customizations of the kind used with Copilot CLI on the reported day."
        ),
        "copilot_adoption_phase_engaged_users": (
            "Users engaged with Copilot on the reported day, per AI adoption phase."
        ),
        "copilot_adoption_phase_users_28d": (
            "Users in the AI adoption phase over the trailing 28 days (absent: not measured)."
        ),
        "copilot_adoption_phase_pull_requests_merged": (
            "Pull requests merged on the reported day by users in the AI adoption phase."
        ),
        "copilot_adoption_phase_review_time_seconds": (
            "Typical time merged pull requests of users in the AI adoption phase waited for review "
            "(GitHub's median over merged pull requests, which it calls an average)."
        ),
        "copilot_adoption_phase_review_cycles": (
            "Typical number of review cycles of merged pull requests of users in the AI adoption "
            "phase (GitHub's median over merged pull requests, which it calls an average)."
        ),
    },
)

_define(
    "reports_user_records",
    GAUGE,
    {
        "copilot_users_reported": "User records in the day's users report.",
        "copilot_users_used": (
            "Users who used the feature on the reported day (`app`: the Copilot app, `vscode_agent`: "
            "the VS Code Agents window); with `team`, the team's members who did."
        ),
        "copilot_users_by_adoption_phase": "Users per AI adoption phase on the reported day.",
        "copilot_ai_credits_used": (
            "AI credits consumed on the reported day as GitHub's usage metrics see them, summed over "
            f"users: a usage signal, not a billed amount; {_TEAM}."
        ),
        "copilot_users_by_ide_version": "Users per last known IDE version.",
        "copilot_users_by_plugin_version": "Users per last known Copilot plugin version.",
        "copilot_users_by_cli_version": "Users per last known Copilot CLI version.",
        "copilot_users_without_client_telemetry": (
            "User records with no activity, no feature used and no breakdown: users GitHub saw only "
            "through server-side telemetry (GitHub counts them as active)."
        ),
        **{
            name: f"{_ACTIVITY_MEANINGS[base]} by this user on the reported day (opt-in)."
            for base, name in PER_USER_NAMES.items()
        },
    },
)

_define(
    "reports_repositories",
    GAUGE,
    {
        f"copilot_repository_{suffix}": f"{meaning} in the repository on the reported day."
        for suffix, meaning in _PULL_REQUEST_MEANINGS.items()
    },
)

_define(
    "seats",
    GAUGE,
    {
        "copilot_seats": "Copilot seats assigned in total (seat_breakdown.total).",
        "copilot_seats_active_this_cycle": "Seats active in the current billing cycle.",
        "copilot_seats_inactive_this_cycle": "Seats inactive in the current billing cycle.",
        "copilot_seats_added_this_cycle": "Seats added in the current billing cycle.",
        "copilot_seats_pending_invitation": "Seats waiting for the invitation to be accepted.",
        "copilot_seats_pending_cancellation": "Seats to be cancelled at the end of the cycle.",
        "copilot_seats_active_within": "Seats whose last activity lies within the period.",
        "copilot_seats_never_active": "Seats with no recorded activity.",
        "copilot_seats_by_editor": "Seats per editor of their last activity.",
        "copilot_seats_by_plan": "Seats per plan type.",
        "copilot_organization_info": "Copilot billing settings of the organization (value 1).",
    },
)

_define(
    "billing",
    GAUGE,
    {
        "copilot_billing_ai_credits": (
            "AI credits billed this month so far (billing API), by kind (gross, discount, net), "
            'product, SKU and model; model="none" for items that name no model.'
        ),
        "copilot_billing_amount_usd": (
            "US dollars billed this month so far (billing API), by kind (gross, discount, net), "
            'product, SKU and model; model="none" for items that name no model.'
        ),
        "copilot_billing_period_start_timestamp_seconds": "UTC start of the month the billing figures cover.",
        "copilot_billing_included_ai_credits": (
            "Estimate of the AI credits included this month: current seats per plan times the "
            "configured credits per licence (seats added or removed mid-month are not visible)."
        ),
        "copilot_seat_price": "The operator's configured monthly price of one seat of the plan.",
    },
)

_define(
    "exporter",
    GAUGE,
    {
        "copilot_exporter_up": "1 if the last refresh of this scope and source succeeded.",
        "copilot_exporter_last_success_timestamp_seconds": "When this scope and source last refreshed successfully.",
        "copilot_exporter_refresh_duration_seconds": "How long the last refresh of this scope and source took.",
        "copilot_exporter_github_rate_limit_remaining": "GitHub API requests left in the current window.",
        "copilot_exporter_github_rate_limit_reset_timestamp_seconds": "When the GitHub rate-limit window resets.",
        "copilot_exporter_build_info": "Exporter build information (value 1).",
        "copilot_exporter_github_requests_per_hour": (
            "GitHub API requests of this credential in the last hour that count against its primary "
            "rate limit (answers 304 do not)."
        ),
        "copilot_exporter_github_request_allowance_per_hour": (
            "Requests per hour this exporter may spend with this credential: request_budget_share "
            "of GitHub's X-RateLimit-Limit."
        ),
        "copilot_exporter_folded_series": (
            "Series of this family that the last refresh of this scope and source folded into the "
            "label value `others` (or dropped, for a family that cannot be summed) because the family "
            "reached max_series_per_family."
        ),
    },
)

_define(
    "exporter",
    COUNTER,
    {
        "copilot_exporter_errors_total": "Failed refreshes, by scope, source and reason.",
        "copilot_exporter_github_requests_total": "Requests sent to GitHub, by route template and status code.",
        "copilot_exporter_dropped_values_total": (
            "Values GitHub sent that a refresh dropped or repaired instead of failing the whole report "
            "(an array entry of the wrong type, a label that cannot be encoded...), by reason."
        ),
        "copilot_exporter_render_failures_total": (
            "Refreshed data that could not be rendered for /metrics; the previous rendering of this "
            "scope and source is served instead."
        ),
        "copilot_exporter_deferred_jobs_total": (
            "Refreshes (seats, billing) and report re-reads (reports) put off because the request "
            "budget (request_budget_share of GitHub's hourly limit) ran low."
        ),
    },
)

# The process metrics every Prometheus client exposes, rendered by prometheus-client's
# ProcessCollector (Linux); named here so the contract covers them.
_define(
    "exporter",
    GAUGE,
    {
        "process_virtual_memory_bytes": "Virtual memory size in bytes.",
        "process_resident_memory_bytes": "Resident memory size in bytes.",
        "process_start_time_seconds": "Start time of the process since unix epoch in seconds.",
        "process_open_fds": "Number of open file descriptors.",
        "process_max_fds": "Maximum number of open file descriptors.",
    },
)
_define("exporter", COUNTER, {"process_cpu_seconds_total": "Total user and system CPU time spent in seconds."})
PROCESS = frozenset(name for name in CATALOGUE if name.startswith("process_"))

# Label keys of every metric that has any besides the scope labels.
_EDITOR_MODEL_LANGUAGE = ("editor", "model", "language")
_LABELS: dict[str, tuple[str, ...]] = {
    "copilot_report_day_timestamp_seconds": ("report",),
    "copilot_ide_code_completions_language_engaged_users": ("language",),
    "copilot_ide_code_completions_editor_engaged_users": ("editor",),
    "copilot_ide_code_completions_model_engaged_users": ("editor", "model"),
    "copilot_ide_code_completions_model_language_engaged_users": _EDITOR_MODEL_LANGUAGE,
    "copilot_ide_code_suggestions": _EDITOR_MODEL_LANGUAGE,
    "copilot_ide_code_acceptances": _EDITOR_MODEL_LANGUAGE,
    "copilot_ide_code_lines_suggested": _EDITOR_MODEL_LANGUAGE,
    "copilot_ide_code_lines_accepted": _EDITOR_MODEL_LANGUAGE,
    "copilot_ide_chat_editor_engaged_users": ("editor",),
    "copilot_ide_chat_model_engaged_users": ("editor", "model"),
    "copilot_ide_chats": ("editor", "model"),
    "copilot_ide_chat_insertion_events": ("editor", "model"),
    "copilot_ide_chat_copy_events": ("editor", "model"),
    "copilot_dotcom_chat_model_engaged_users": ("model",),
    "copilot_dotcom_chats": ("model",),
    "copilot_dotcom_pull_requests_repository_engaged_users": ("repository",),
    "copilot_dotcom_pull_requests_model_engaged_users": ("repository", "model"),
    "copilot_dotcom_pull_request_summaries": ("repository", "model"),
    "copilot_custom_model_info": ("model", "training_date"),
    **{base + suffix: labels for base in ACTIVITY_COUNTERS for suffix, (_array, labels) in ACTIVITY_BREAKDOWNS.items()},
    "copilot_pull_request_copilot_suggestions_by_comment_type": ("comment_type",),
    "copilot_pull_request_copilot_applied_suggestions_by_comment_type": ("comment_type",),
    "copilot_pull_request_median_time_to_merge_seconds": ("authorship",),
    "copilot_adoption_phase_engaged_users": ("phase",),
    "copilot_users_used": ("feature",),
    "copilot_users_by_adoption_phase": ("phase",),
    "copilot_users_by_ide_version": ("ide", "ide_version"),
    "copilot_users_by_plugin_version": ("plugin", "plugin_version"),
    **{name: ("user",) for name in PER_USER_NAMES.values()},
    **{name: ("repository",) for name in CATALOGUE if name.startswith("copilot_repository_")},
    "copilot_engaged_users_28d_by_feature": ("feature",),
    "copilot_organizations_active_users": ("window",),
    "copilot_third_party_agent_interactions": ("agent_id", "agent_name"),
    "copilot_third_party_agent_sessions": ("agent_id", "agent_name"),
    "copilot_cli_customization_interactions": ("kind", "name"),
    "copilot_cli_customizations_distinct": ("kind",),
    "copilot_adoption_phase_users_28d": ("phase",),
    "copilot_adoption_phase_pull_requests_merged": ("phase",),
    "copilot_adoption_phase_review_time_seconds": ("phase",),
    "copilot_adoption_phase_review_cycles": ("phase",),
    "copilot_users_by_cli_version": ("cli_version",),
    "copilot_seats_active_within": ("period",),
    "copilot_seats_by_editor": ("editor",),
    "copilot_seats_by_plan": ("plan",),
    "copilot_organization_info": (
        "plan_type",
        "seat_management_setting",
        "ide_chat",
        "platform_chat",
        "cli",
        "public_code_suggestions",
    ),
    "copilot_billing_ai_credits": ("kind", "product", "sku", "model"),
    "copilot_billing_amount_usd": ("kind", "product", "sku", "model"),
    "copilot_seat_price": ("plan", "currency"),
    "copilot_exporter_up": ("source",),
    "copilot_exporter_last_success_timestamp_seconds": ("source",),
    "copilot_exporter_refresh_duration_seconds": ("source",),
    "copilot_exporter_errors_total": ("source", "reason"),
    "copilot_exporter_dropped_values_total": ("source", "reason"),
    "copilot_exporter_folded_series": ("source", "family"),
    "copilot_exporter_render_failures_total": ("source",),
    "copilot_exporter_github_requests_total": ("endpoint", "code"),
    "copilot_exporter_build_info": ("version",),
    "copilot_exporter_github_requests_per_hour": ("credential",),
    "copilot_exporter_github_request_allowance_per_hour": ("credential",),
    "copilot_exporter_deferred_jobs_total": ("source",),
}
for _name, _labels in _LABELS.items():
    CATALOGUE[_name] = replace(CATALOGUE[_name], labels=_labels)

# Families whose series must not be summed: distinct user counts (one user counts in several
# series), info metrics (value 1), times (medians, timestamps) and other medians. Per-user families are those
# labelled with the user (the opt-in per_user series), whatever their names.
for _name, _info in CATALOGUE.items():
    if _name.endswith(("_users", "_info", "_seconds", "_review_cycles")) or "_engaged_users" in _name:
        _info = CATALOGUE[_name] = replace(_info, additive=False)
    if "user" in _info.labels:
        CATALOGUE[_name] = replace(_info, per_user=True)

# Families the reports API also exports per team (user-teams-1-day joined with users-1-day).
# Their team series carry, besides the scope, `team` (the slug) and `team_id` (a team's identity:
# an enterprise team and a business team may share a slug). Series of legacy team scopes carry
# `team` only.
TEAM_FAMILIES = frozenset(
    {
        "copilot_daily_active_users",
        "copilot_weekly_active_users",
        "copilot_monthly_active_users",
        *ACTIVITY_COUNTERS,
        "copilot_ai_credits_used",
        "copilot_users_used",
    }
)

# Metrics that carry no scope label: they describe the exporter process, not a scope.
UNSCOPED = frozenset(
    {
        "copilot_organizations_active_users",
        "copilot_exporter_github_requests_total",
        "copilot_exporter_github_rate_limit_remaining",
        "copilot_exporter_github_rate_limit_reset_timestamp_seconds",
        "copilot_exporter_build_info",
        "copilot_exporter_github_requests_per_hour",
        "copilot_exporter_github_request_allowance_per_hour",
        "copilot_exporter_deferred_jobs_total",
        *PROCESS,
    }
)
