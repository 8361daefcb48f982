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
    labels: tuple[str, ...] = ()  # label keys besides the scope (org/enterprise, team)
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

_define("day", GAUGE, {
    "copilot_report_day_timestamp_seconds":
        "UTC midnight of the day whose values are exported, per report (seats: the fetch time).",
})

_define("shared", GAUGE, {
    "copilot_daily_active_users": "Users with any Copilot activity on the reported day.",
})

_define("legacy", GAUGE, {
    "copilot_daily_engaged_users": "Users engaged with any Copilot feature on the reported day.",
    "copilot_ide_code_completions_engaged_users": "Users who accepted an IDE code suggestion.",
    "copilot_ide_code_completions_language_engaged_users":
        "Users who accepted an IDE code suggestion, by language.",
    "copilot_ide_code_completions_editor_engaged_users":
        "Users who accepted an IDE code suggestion, by editor.",
    "copilot_ide_code_completions_model_engaged_users":
        "Users who accepted an IDE code suggestion, by editor and model.",
    "copilot_ide_code_completions_model_language_engaged_users":
        "Users who accepted an IDE code suggestion, by editor, model and language.",
    "copilot_ide_code_suggestions": "IDE code suggestions shown.",
    "copilot_ide_code_acceptances": "IDE code suggestions accepted.",
    "copilot_ide_code_lines_suggested": "Lines of code suggested in the IDE.",
    "copilot_ide_code_lines_accepted": "Lines of code accepted in the IDE.",
    "copilot_ide_chat_engaged_users": "Users who prompted Copilot Chat in the IDE.",
    "copilot_ide_chat_editor_engaged_users": "Users who prompted Copilot Chat in the IDE, by editor.",
    "copilot_ide_chat_model_engaged_users":
        "Users who prompted Copilot Chat in the IDE, by editor and model.",
    "copilot_ide_chats": "Copilot Chat conversations in the IDE.",
    "copilot_ide_chat_insertion_events": "Chat suggestions inserted into code in the IDE.",
    "copilot_ide_chat_copy_events": "Chat suggestions copied to the clipboard in the IDE.",
    "copilot_dotcom_chat_engaged_users": "Users who prompted Copilot Chat on github.com.",
    "copilot_dotcom_chat_model_engaged_users":
        "Users who prompted Copilot Chat on github.com, by model.",
    "copilot_dotcom_chats": "Copilot Chat conversations on github.com.",
    "copilot_dotcom_pull_requests_engaged_users":
        "Users who generated a pull request summary on github.com.",
    "copilot_dotcom_pull_requests_repository_engaged_users":
        "Users who generated a pull request summary, by repository.",
    "copilot_dotcom_pull_requests_model_engaged_users":
        "Users who generated a pull request summary, by repository and model.",
    "copilot_dotcom_pull_request_summaries": "Pull request summaries generated on github.com.",
    "copilot_custom_model_info": "A custom model in use (value 1), with its training date.",
})

_define("reports_users", GAUGE, {
    "copilot_weekly_active_users": "Distinct active users over the trailing 7 days.",
    "copilot_monthly_active_users": "Distinct active users over the trailing 28 days.",
    "copilot_monthly_active_chat_users": "Distinct chat users over the trailing 28 days.",
    "copilot_monthly_active_agent_users": "Distinct agent users over the trailing 28 days.",
    "copilot_daily_active_cli_users": "Users of Copilot CLI on the reported day.",
    **{
        f"copilot_{window}_{kind}_users": f"{text} ({window} window)."
        for window in ("daily", "weekly", "monthly")
        for kind, text in (
            ("active_cloud_agent", "Users of the Copilot cloud agent"),
            ("active_code_review", "Users who requested a Copilot review or applied its suggestion"),
            ("passive_code_review", "Users auto-assigned a Copilot review without engaging"),
        )
    },
})

_define("reports_activity", GAUGE, {
    **{base: f"Day total of {field}." for base, field in ACTIVITY_COUNTERS.items()},
    **{
        base + suffix: f"{field} by {', '.join(labels)}."
        for base, field in ACTIVITY_COUNTERS.items()
        for suffix, (_array, labels) in ACTIVITY_BREAKDOWNS.items()
    },
})

_define("reports_pull_requests", GAUGE, {
    **{f"copilot_{suffix}": f"Pull requests: {field}." for suffix, field in PULL_REQUEST_COUNTS.items()},
    "copilot_pull_request_copilot_suggestions_by_comment_type":
        "Copilot review suggestions, by comment type.",
    "copilot_pull_request_copilot_applied_suggestions_by_comment_type":
        "Copilot review suggestions applied, by comment type.",
    "copilot_pull_request_median_time_to_merge_seconds":
        "Median time from pull request creation to merge, by authorship.",
    "copilot_cli_sessions": "Copilot CLI sessions.",
    "copilot_cli_requests": "Copilot CLI requests.",
    "copilot_cli_prompts": "Copilot CLI prompts.",
    "copilot_cli_prompt_tokens": "Copilot CLI prompt tokens.",
    "copilot_cli_output_tokens": "Copilot CLI output tokens.",
    "copilot_adoption_phase_engaged_users": "Engaged users per AI adoption phase.",
})

_define("reports_user_records", GAUGE, {
    "copilot_users_reported": "User records in the day's users report.",
    "copilot_users_used": "Users who used a feature on the reported day.",
    "copilot_users_by_adoption_phase": "Users per AI adoption phase.",
    "copilot_ai_credits_used": (
        "AI credits used on the reported day, summed over users (a team's: over its members); "
        "consumption as the usage metrics report it, not a billed amount."),
    "copilot_users_by_ide_version": "Users per last known IDE version.",
    "copilot_users_by_plugin_version": "Users per last known Copilot plugin version.",
    **{
        "copilot_user_" + base.removeprefix("copilot_"): f"Per user (opt-in): {field}."
        for base, field in ACTIVITY_COUNTERS.items()
    },
})

_define("reports_repositories", GAUGE, {
    f"copilot_repository_{suffix}": f"Pull requests of the repository: {field}."
    for suffix, field in PULL_REQUEST_COUNTS.items()
})

_define("seats", GAUGE, {
    "copilot_seats": "Copilot seats assigned (seat_breakdown.total).",
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
})

_define("billing", GAUGE, {
    "copilot_billing_ai_credits": (
        "AI credits billed this month so far (billing API), by kind (gross, discount, net), "
        "product, SKU and model; model=\"none\" for items that name no model."),
    "copilot_billing_amount_usd": (
        "US dollars billed this month so far (billing API), by kind (gross, discount, net), "
        "product, SKU and model; model=\"none\" for items that name no model."),
    "copilot_billing_period_start_timestamp_seconds":
        "UTC start of the month the billing figures cover.",
    "copilot_billing_included_ai_credits": (
        "Estimate of the AI credits included this month: current seats per plan times the "
        "configured credits per licence (seats added or removed mid-month are not visible)."),
    "copilot_seat_price": "The operator's configured monthly price of one seat of the plan.",
})

_define("exporter", GAUGE, {
    "copilot_exporter_up": "1 if the last refresh of this scope and source succeeded.",
    "copilot_exporter_last_success_timestamp_seconds": "When this scope and source last refreshed successfully.",
    "copilot_exporter_refresh_duration_seconds": "How long the last refresh of this scope and source took.",
    "copilot_exporter_github_rate_limit_remaining": "GitHub API requests left in the current window.",
    "copilot_exporter_github_rate_limit_reset_timestamp_seconds": "When the GitHub rate-limit window resets.",
    "copilot_exporter_build_info": "Exporter build information (value 1).",
    "copilot_exporter_folded_series": (
        "Series of this family that the last refresh of this scope and source folded into the "
        "label value `others` (or dropped, for a family that cannot be summed) because the family "
        "reached max_series_per_family."),
})

_define("exporter", COUNTER, {
    "copilot_exporter_errors_total": "Failed refreshes, by scope, source and reason.",
    "copilot_exporter_github_requests_total": "Requests sent to GitHub, by route template and status code.",
    "copilot_exporter_dropped_values_total": (
        "Values GitHub sent that a refresh dropped or repaired instead of failing the whole report "
        "(an array entry of the wrong type, a label that cannot be encoded...), by reason."),
    "copilot_exporter_render_failures_total": (
        "Refreshed data that could not be rendered for /metrics; the previous rendering of this "
        "scope and source is served instead."),
})

# The process metrics every Prometheus client exposes, rendered by prometheus-client's
# ProcessCollector (Linux); named here so the contract covers them.
_define("exporter", GAUGE, {
    "process_virtual_memory_bytes": "Virtual memory size in bytes.",
    "process_resident_memory_bytes": "Resident memory size in bytes.",
    "process_start_time_seconds": "Start time of the process since unix epoch in seconds.",
    "process_open_fds": "Number of open file descriptors.",
    "process_max_fds": "Maximum number of open file descriptors.",
})
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
    **{base + suffix: labels for base in ACTIVITY_COUNTERS
       for suffix, (_array, labels) in ACTIVITY_BREAKDOWNS.items()},
    "copilot_pull_request_copilot_suggestions_by_comment_type": ("comment_type",),
    "copilot_pull_request_copilot_applied_suggestions_by_comment_type": ("comment_type",),
    "copilot_pull_request_median_time_to_merge_seconds": ("authorship",),
    "copilot_adoption_phase_engaged_users": ("phase",),
    "copilot_users_used": ("feature",),
    "copilot_users_by_adoption_phase": ("phase",),
    "copilot_users_by_ide_version": ("ide", "ide_version"),
    "copilot_users_by_plugin_version": ("plugin", "plugin_version"),
    **{"copilot_user_" + base.removeprefix("copilot_"): ("user",) for base in ACTIVITY_COUNTERS},
    **{name: ("repository",) for name in CATALOGUE if name.startswith("copilot_repository_")},
    "copilot_seats_active_within": ("period",),
    "copilot_seats_by_editor": ("editor",),
    "copilot_seats_by_plan": ("plan",),
    "copilot_organization_info": ("plan_type", "seat_management_setting", "ide_chat", "platform_chat",
                                  "cli", "public_code_suggestions"),
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
}
for _name, _labels in _LABELS.items():
    CATALOGUE[_name] = replace(CATALOGUE[_name], labels=_labels)

# Families whose series must not be summed: distinct user counts (one user counts in several
# series), info metrics (value 1) and times (medians, timestamps). Per-user families are those
# labelled with the user (the opt-in per_user series), whatever their names.
for _name, _info in CATALOGUE.items():
    if _name.endswith(("_users", "_info", "_seconds")) or "_engaged_users" in _name:
        _info = CATALOGUE[_name] = replace(_info, additive=False)
    if "user" in _info.labels:
        CATALOGUE[_name] = replace(_info, per_user=True)

# Metrics that carry no scope label: they describe the exporter process, not a scope.
UNSCOPED = frozenset({
    "copilot_exporter_github_requests_total", "copilot_exporter_github_rate_limit_remaining",
    "copilot_exporter_github_rate_limit_reset_timestamp_seconds", "copilot_exporter_build_info",
    *PROCESS,
})
