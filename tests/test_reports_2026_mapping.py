"""GitHub's 2026 report fields -> metric samples (copilot_exporter.metrics.reports).

Records are written here in the shapes of COPILOT-APIS.md §6; expected values are exact.
"""

from __future__ import annotations

import pytest
from conftest import family_values

from copilot_exporter.errors import PayloadError
from copilot_exporter.metrics.reports import UsersAccumulator, add_28_day, add_aggregated
from copilot_exporter.model import FamilyBuilder

SCOPE = (("enterprise", "initech"),)


def key(name: str, /, **labels: str) -> tuple[str, frozenset]:
    return (name, frozenset(SCOPE + tuple(labels.items())))


def problem_counts(builder: FamilyBuilder) -> dict[str, int]:
    return {problem.reason: problem.count for problem in builder.problems.frozen()}


# --- 28-day report: feature engagement -------------------------------------------------------


def twenty_eight_day(engagement: object) -> dict:
    return {
        "report_start_day": "2026-10-01",
        "report_end_day": "2026-10-28",
        "enterprise_id": "7",
        "day_totals": [{"day": "2026-10-28", "daily_active_users": 9}],
        "copilot_feature_engagement": engagement,
    }


def test_28_day_engagement_maps_total_and_features_and_returns_the_end_day():
    builder = FamilyBuilder(SCOPE)
    record = twenty_eight_day(
        {
            "active_user_count": 41,
            "totals_by_feature": [
                {"feature": "code_completion", "engaged_user_count": 30},
                {"feature": "copilot_cli", "engaged_user_count": 12},
            ],
        }
    )

    assert add_28_day(builder, record) == "2026-10-28"
    assert family_values(builder.build()) == {
        key("copilot_engaged_users_28d"): 41,
        key("copilot_engaged_users_28d_by_feature", feature="code_completion"): 30,
        key("copilot_engaged_users_28d_by_feature", feature="copilot_cli"): 12,
    }
    assert problem_counts(builder) == {}


def test_28_day_bad_feature_entries_are_dropped_and_noted_the_rest_kept():
    builder = FamilyBuilder(SCOPE)
    record = twenty_eight_day(
        {
            "active_user_count": 5,
            "totals_by_feature": [
                {"feature": "chat_inline", "engaged_user_count": "many"},
                {"engaged_user_count": 3},
                "agent_edit",
                {"feature": "agent_edit", "engaged_user_count": 4},
            ],
        }
    )

    assert add_28_day(builder, record) == "2026-10-28"
    assert family_values(builder.build()) == {
        key("copilot_engaged_users_28d"): 5,
        key("copilot_engaged_users_28d_by_feature", feature="agent_edit"): 4,
    }
    assert problem_counts(builder) == {"bad_value": 3}


def test_28_day_without_engagement_exports_nothing_and_a_bad_end_day_is_refused():
    builder = FamilyBuilder(SCOPE)
    record = twenty_eight_day(None)
    assert add_28_day(builder, record) == "2026-10-28"
    assert builder.build() == ()  # day_totals belong to add_aggregated

    with pytest.raises(PayloadError, match="report_end_day"):
        add_28_day(FamilyBuilder(SCOPE), {**record, "report_end_day": "28/10/2026"})


# --- aggregated record: the 2026 fields ---------------------------------------------------------


def aggregated_2026(**more) -> dict:
    """A 1-day record (or `day_totals` entry) with every field GitHub added in 2026."""
    return {
        "day": "2026-10-20",
        "enterprise_id": "7",
        "daily_active_users": 30,
        "daily_active_copilot_app_users": 6,
        "weekly_active_copilot_app_users": 9,
        "monthly_active_copilot_app_users": 11,
        "weekly_active_cli_users": 8,
        "monthly_active_cli_users": None,
        "daily_active_vscode_agent_users": 3,
        "weekly_active_vscode_agent_users": 4,
        "monthly_active_vscode_agent_users": 5,
        "totals_by_copilot_app": {
            "session_count": 12,
            "request_count": 40,
            "prompt_count": 21,
            "token_usage": {"prompt_tokens_sum": 9000, "output_tokens_sum": 4000, "avg_tokens_per_request": 325.0},
        },
        "totals_by_vscode_agent": {"session_count": 7, "total_user_messages": 19},
        "totals_by_3rd_party_agent": [
            {"agent_id": 101, "agent_name": "Claude", "user_initiated_interaction_count": 14, "session_count": 5},
            {"agent_id": "codex", "agent_name": "Codex", "user_initiated_interaction_count": 2},
        ],
        # the name field is spelled differently per array: each entry's one string field
        "totals_by_skill": [{"skill_name": "pdf", "interaction_count": 6}, {"name": "other", "interaction_count": 2}],
        "totals_by_custom_agent": [{"custom_agent": "reviewer", "interaction_count": 3}],
        "totals_by_mcp": [{"mcp_server": "github", "interaction_count": 11}],
        "totals_by_slash_cmd": [
            {"slash_cmd": "/plan", "interaction_count": 4},
            {"slash_cmd": "custom", "interaction_count": 1},
        ],
        "totals_by_plugin": [],
        "distinct_skill_use_count": 5,
        "distinct_custom_agent_use_count": 1,
        "distinct_mcp_use_count": 2,
        "distinct_slash_cmd_use_count": 3,
        "distinct_plugin_use_count": 0,
        "totals_by_ai_adoption_phase": [
            {
                "phase": "code_first",
                "phase_number": 1,
                "total_engaged_users": 20,
                "users_in_phase_28d": 24,
                "total_pull_requests_merged": 9,
                "avg_pull_requests_minutes_to_review": 90.5,
                "avg_pull_requests_review_cycles": 1.5,
            },
            {
                "phase": "multi_agent",
                "phase_number": 3,
                "total_engaged_users": 2,
                "users_in_phase_28d": 0,
                "total_pull_requests_merged": 0,
                "avg_pull_requests_minutes_to_review": None,
            },
        ],
        **more,
    }


def mapped(record: dict) -> tuple[dict, dict[str, int]]:
    builder = FamilyBuilder(SCOPE)
    assert add_aggregated(builder, record) == record["day"]
    return family_values(builder.build()), problem_counts(builder)


def test_aggregated_2026_fields_map_to_exact_values():
    values, problems = mapped(aggregated_2026())
    customization = "copilot_cli_customization_interactions"
    assert {k: v for k, v in values.items() if k[0] != "copilot_daily_active_users"} == {
        key("copilot_daily_active_app_users"): 6,
        key("copilot_weekly_active_app_users"): 9,
        key("copilot_monthly_active_app_users"): 11,
        key("copilot_weekly_active_cli_users"): 8,  # monthly is null: absent
        key("copilot_daily_active_vscode_agent_users"): 3,
        key("copilot_weekly_active_vscode_agent_users"): 4,
        key("copilot_monthly_active_vscode_agent_users"): 5,
        key("copilot_app_sessions"): 12,
        key("copilot_app_requests"): 40,
        key("copilot_app_prompts"): 21,
        key("copilot_app_prompt_tokens"): 9000,
        key("copilot_app_output_tokens"): 4000,
        key("copilot_vscode_agent_sessions"): 7,
        key("copilot_vscode_agent_user_messages"): 19,
        key("copilot_third_party_agent_interactions", agent_id="101", agent_name="Claude"): 14,
        key("copilot_third_party_agent_sessions", agent_id="101", agent_name="Claude"): 5,
        key("copilot_third_party_agent_interactions", agent_id="codex", agent_name="Codex"): 2,
        key(customization, kind="skill", name="pdf"): 6,
        key(customization, kind="skill", name="other"): 2,
        key(customization, kind="custom_agent", name="reviewer"): 3,
        key(customization, kind="mcp", name="github"): 11,
        key(customization, kind="slash_cmd", name="/plan"): 4,
        key(customization, kind="slash_cmd", name="custom"): 1,
        key("copilot_cli_customizations_distinct", kind="skill"): 5,
        key("copilot_cli_customizations_distinct", kind="custom_agent"): 1,
        key("copilot_cli_customizations_distinct", kind="mcp"): 2,
        key("copilot_cli_customizations_distinct", kind="slash_cmd"): 3,
        key("copilot_cli_customizations_distinct", kind="plugin"): 0,
        key("copilot_adoption_phase_engaged_users", phase="code_first"): 20,
        key("copilot_adoption_phase_users_28d", phase="code_first"): 24,
        key("copilot_adoption_phase_pull_requests_merged", phase="code_first"): 9,
        key("copilot_adoption_phase_review_time_seconds", phase="code_first"): 90.5 * 60,
        key("copilot_adoption_phase_review_cycles", phase="code_first"): 1.5,
        key("copilot_adoption_phase_engaged_users", phase="multi_agent"): 2,
        key("copilot_adoption_phase_users_28d", phase="multi_agent"): 0,  # measured, none
        key("copilot_adoption_phase_pull_requests_merged", phase="multi_agent"): 0,
    }
    assert problems == {}


def test_aggregated_without_2026_fields_exports_none_of_them():
    values, _ = mapped(
        {"day": "2026-03-01", "daily_active_users": 4, "totals_by_copilot_app": None, "totals_by_vscode_agent": None}
    )
    assert values == {key("copilot_daily_active_users"): 4}


def test_bad_entries_of_the_new_arrays_are_dropped_and_noted_and_the_rest_exported():
    record = aggregated_2026(
        totals_by_3rd_party_agent=[
            {"agent_id": 101, "agent_name": "Claude", "user_initiated_interaction_count": 14},
            {"agent_id": 102, "user_initiated_interaction_count": 3},  # no name
            {"agent_name": "Ghost", "user_initiated_interaction_count": 3},  # no id
            {"agent_id": True, "agent_name": "Odd", "user_initiated_interaction_count": 3},
            {"agent_id": 103, "agent_name": "Gemini", "session_count": "two"},
            "codex",
        ],
        totals_by_mcp=[
            {"mcp_server": "github", "interaction_count": 11},
            {"interaction_count": 4},  # no string field
            {"mcp_server": "jira", "host": "example.com", "interaction_count": 2},  # two
            {"mcp_server": "", "interaction_count": 2},  # an empty name
            {"mcp_server": "slack", "interaction_count": "many"},
            None,
        ],
    )
    values, problems = mapped(record)
    agents = {k: v for k, v in values.items() if k[0].startswith("copilot_third_party_agent_")}
    assert agents == {key("copilot_third_party_agent_interactions", agent_id="101", agent_name="Claude"): 14}
    mcp = {
        k: v for k, v in values.items() if k[0] == "copilot_cli_customization_interactions" and ("kind", "mcp") in k[1]
    }
    assert mcp == {key("copilot_cli_customization_interactions", kind="mcp", name="github"): 11}
    assert problems == {"bad_value": 10}
    # the rest of the report is all there
    assert values[key("copilot_daily_active_users")] == 30
    assert values[key("copilot_app_sessions")] == 12
    assert values[key("copilot_cli_customization_interactions", kind="skill", name="pdf")] == 6


def test_a_new_array_that_is_not_a_list_still_refuses_the_report():
    with pytest.raises(PayloadError, match="totals_by_mcp: expected a list"):
        add_aggregated(FamilyBuilder(SCOPE), aggregated_2026(totals_by_mcp={"github": 3}))


def test_problem_examples_name_the_report_and_the_entry():
    builder = FamilyBuilder(SCOPE)
    add_aggregated(builder, aggregated_2026(totals_by_skill=[{"interaction_count": 4}]))
    (problem,) = builder.problems.frozen()
    assert problem.example.startswith("organization/enterprise-1-day: totals_by_skill[0]: ")


# --- users report: the 2026 fields -------------------------------------------------------------


def user(user_id: int, **fields) -> dict:
    return {"user_id": user_id, "user_login": f"u{user_id}", "day": "2026-10-20", "enterprise_id": "7", **fields}


def users_values(records: list[dict]) -> dict:
    users = UsersAccumulator(join_id="enterprise_id")
    for record in records:
        users.add(record)
    builder = FamilyBuilder(SCOPE)
    users.add_to(builder)
    return family_values(builder.build())


def test_users_app_vscode_agent_cli_versions_and_users_without_client_telemetry():
    cli = {"session_count": 1, "last_known_cli_version": {"cli_version": "1.2.0", "sampled_at": "x"}}
    values = users_values(
        [
            user(1, used_copilot_app=True, used_vscode_agent=True, totals_by_cli=cli),
            user(
                2,
                used_copilot_app=True,
                used_vscode_agent=False,
                totals_by_cli={**cli, "last_known_cli_version": {"cli_version": "1.3.0"}},
            ),
            user(3, totals_by_cli={"last_known_cli_version": {"cli_version": "1.2.0"}}),
            user(4, totals_by_cli={"last_known_cli_version": None}),
            # seen only server-side: no counter above 0, no flag true, no breakdown entry
            user(5),
            user(6, used_chat=False, code_generation_activity_count=0, totals_by_ide=[], totals_by_cli=None),
            # client telemetry of some kind: not counted
            user(7, loc_added_sum=1),
            user(8, used_chat=True),
            user(9, totals_by_feature=[{"feature": "chat_inline"}]),
        ]
    )
    assert values[key("copilot_users_used", feature="app")] == 2
    assert values[key("copilot_users_used", feature="vscode_agent")] == 1
    assert {k: v for k, v in values.items() if k[0] == "copilot_users_by_cli_version"} == {
        key("copilot_users_by_cli_version", cli_version="1.2.0"): 2,
        key("copilot_users_by_cli_version", cli_version="1.3.0"): 1,
    }
    assert values[key("copilot_users_without_client_telemetry")] == 2
    assert values[key("copilot_users_reported")] == 9


def test_per_user_series_use_the_per_user_prefix():
    users = UsersAccumulator(per_user="login", join_id="enterprise_id", keep_members=False)
    users.add(user(1, loc_added_sum=8, user_initiated_interaction_count=2))
    builder = FamilyBuilder(SCOPE)
    users.add_to(builder)
    per_user = {k: v for k, v in family_values(builder.build()).items() if ("user", "u1") in k[1]}
    assert per_user == {
        key("copilot_per_user_lines_added", user="u1"): 8,
        key("copilot_per_user_user_initiated_interactions", user="u1"): 2,
    }


def test_a_refresh_with_dropped_entries_serves_the_rest_and_counts_them():
    """Mapping -> Result -> refresher: the report's series are stored, the dropped entries counted
    in copilot_exporter_dropped_values_total."""
    from conftest import exporter_config
    from copilot_exporter.model import Scope
    from copilot_exporter.refresher import Refresher
    from copilot_exporter.sources import Result
    from copilot_exporter.store import Store
    from copilot_exporter.telemetry import Telemetry

    scope = Scope("enterprise", "initech")
    builder = FamilyBuilder(scope.labels())
    add_aggregated(
        builder, aggregated_2026(totals_by_mcp=[{"interaction_count": 4}, 7, {"mcp": "github", "interaction_count": 1}])
    )
    store, telemetry = Store(), Telemetry()
    refresher = Refresher(exporter_config("http://127.0.0.1:9", enterprises=[{"name": "initech"}]), store, telemetry)

    client = refresher._connection(refresher.config.entries[0]).client()  # never used: no request is made
    assert refresher._refresh(
        scope, "reports", client, lambda _client: Result.built(builder, {"enterprise": "2026-10-20"})
    )
    served = family_values(store.families())
    assert served[key("copilot_daily_active_users")] == 30
    assert served[key("copilot_cli_customization_interactions", kind="mcp", name="github")] == 1
    dropped = family_values(telemetry.families())
    assert (
        dropped[
            (
                "copilot_exporter_dropped_values_total",
                frozenset(SCOPE + (("source", "reports"), ("reason", "bad_value"))),
            )
        ]
        == 2
    )
