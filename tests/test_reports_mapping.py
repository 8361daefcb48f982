"""Reports API records -> metric samples (copilot_exporter.metrics.reports)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from conftest import family_values

from copilot_exporter.errors import PayloadError
from copilot_exporter.metrics.catalogue import ACTIVITY_COUNTERS, PULL_REQUEST_COUNTS
from copilot_exporter.metrics.reports import (
    UsersAccumulator,
    add_aggregated,
    add_repositories,
    add_teams,
)
from copilot_exporter.model import FamilyBuilder

EXAMPLES = Path(__file__).resolve().parent / "data" / "examples"  # GitHub's official examples

SCOPE = (("org", "acme"),)
BASES = tuple(ACTIVITY_COUNTERS)  # the seven activity base names, in field order


def read_ndjson(name: str) -> list[dict]:
    lines = (EXAMPLES / name).read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def key(name: str, **labels: str) -> tuple[str, frozenset]:
    return (name, frozenset(SCOPE + tuple(labels.items())))


def activity(values: tuple, suffix: str = "", **labels: str) -> dict:
    """Expected samples of the seven base names (+ suffix); a None value means absent."""
    return {key(base + suffix, **labels): value for base, value in zip(BASES, values) if value is not None}


def aggregated(record: dict) -> dict:
    builder = FamilyBuilder(SCOPE)
    add_aggregated(builder, record)
    return family_values(builder.build())


def users_values(records: list[dict], **options) -> dict:
    users = UsersAccumulator(**options)
    for record in records:
        users.add(record)
    builder = FamilyBuilder(SCOPE)
    users.add_to(builder)
    return family_values(builder.build())


# --- aggregated daily record ------------------------------------------------------------------


def test_aggregated_example_day_maps_to_exact_values():
    record = read_ndjson("report-enterprise-28-day.ndjson")[0]["day_totals"][0]
    builder = FamilyBuilder(SCOPE)

    assert add_aggregated(builder, record) == "2025-10-01"

    counters = (0, 2, 2, 35, 0, 30, 0)
    expected = {
        key("copilot_daily_active_users"): 2,
        key("copilot_weekly_active_users"): 2,
        key("copilot_monthly_active_users"): 2,
        key("copilot_monthly_active_chat_users"): 0,
        key("copilot_monthly_active_agent_users"): 0,
        key("copilot_daily_active_cli_users"): 2,
        **activity(counters),
        **activity(counters, "_by_ide", ide="vscode"),
        **activity(counters, "_by_feature", feature="code_completion"),
        # language/feature entries carry no user_initiated_interaction_count
        **activity((None, 2, 2, 35, 0, 30, 0), "_by_language_feature", language="unknown", feature="code_completion"),
        key("copilot_pull_requests_created"): 2,
        key("copilot_pull_requests_reviewed"): 1,
        key("copilot_pull_requests_merged"): 2,
        key("copilot_pull_requests_created_by_copilot"): 1,
        key("copilot_pull_requests_reviewed_by_copilot"): 1,
        key("copilot_pull_requests_merged_created_by_copilot"): 1,
        key("copilot_pull_requests_merged_reviewed_by_copilot"): 1,
        key("copilot_pull_request_suggestions"): 1,
        key("copilot_pull_request_applied_suggestions"): 1,
        key("copilot_pull_request_copilot_suggestions"): 1,
        key("copilot_pull_request_copilot_applied_suggestions"): 1,
        key("copilot_pull_request_median_time_to_merge_seconds", authorship="all"): 150,
        key("copilot_pull_request_median_time_to_merge_seconds", authorship="copilot_authored"): 150,
        key("copilot_pull_request_median_time_to_merge_seconds", authorship="copilot_reviewed"): 150,
        key("copilot_cli_sessions"): 3,
        key("copilot_cli_requests"): 3,
        key("copilot_cli_prompts"): 3,
        key("copilot_cli_prompt_tokens"): 5300,
        key("copilot_cli_output_tokens"): 7000,
    }
    values = family_values(builder.build())
    assert values == expected
    names = {name for name, _labels in values}
    assert "copilot_daily_active_cloud_agent_users" not in names
    assert "copilot_daily_active_code_review_users" not in names
    assert "copilot_adoption_phase_engaged_users" not in names
    assert "copilot_lines_added_by_language_model" not in names  # empty array


def test_aggregated_example_without_medians_or_cli_leaves_them_absent():
    record = read_ndjson("report-enterprise-28-day.ndjson")[1]["day_totals"][0]
    values = aggregated(record)
    assert values[key("copilot_lines_added")] == 38
    assert values[key("copilot_pull_requests_merged")] == 0
    names = {name for name, _labels in values}
    assert not names & {
        "copilot_pull_request_median_time_to_merge_seconds",
        "copilot_daily_active_cli_users",
        "copilot_cli_sessions",
        "copilot_cli_prompt_tokens",
    }


def test_aggregated_user_windows_cloud_agent_and_code_review():
    record = {"day": "2026-01-05"}
    for number, window in enumerate(("daily", "weekly", "monthly"), start=1):
        record[f"{window}_active_copilot_cloud_agent_users"] = number
        record[f"{window}_active_copilot_code_review_users"] = 10 * number
        record[f"{window}_passive_copilot_code_review_users"] = 100 * number
    record["weekly_active_copilot_cloud_agent_users"] = None
    values = aggregated(record)
    assert values == {
        key("copilot_daily_active_cloud_agent_users"): 1,
        key("copilot_monthly_active_cloud_agent_users"): 3,
        key("copilot_daily_active_code_review_users"): 10,
        key("copilot_weekly_active_code_review_users"): 20,
        key("copilot_monthly_active_code_review_users"): 30,
        key("copilot_daily_passive_code_review_users"): 100,
        key("copilot_weekly_passive_code_review_users"): 200,
        key("copilot_monthly_passive_code_review_users"): 300,
    }


def test_aggregated_tolerates_missing_null_unknown_and_empty():
    record = {
        "day": "2026-01-05",
        "etl_id": "green",
        "day_partition": "2026-01-05",
        "entity_id_partition": 7,
        "brand_new_field": {"nested": [1, 2]},
        "daily_active_users": 0,  # a reported zero stays a zero
        "weekly_active_users": None,
        "loc_added_sum": 5,
        "loc_deleted_sum": None,
        "totals_by_ide": [
            {"ide": "vscode", "loc_added_sum": 5, "future_counter": 1},  # other counters absent
            {"loc_added_sum": 99},  # no label: skipped
            {"ide": "", "loc_added_sum": 98},  # empty label: skipped
            {"ide": "zed", "loc_added_sum": None},
        ],
        "totals_by_feature": [],
        "totals_by_language_model": None,
        "totals_by_model_feature": [{"model": "gpt-x"}],  # second label missing
        "totals_by_cli": None,
        "pull_requests": {
            "total_created": 4,
            "median_minutes_to_merge": None,
            "median_minutes_to_merge_copilot_authored": 1.5,
        },
    }
    assert aggregated(record) == {
        key("copilot_daily_active_users"): 0,
        key("copilot_lines_added"): 5,
        key("copilot_lines_added_by_ide", ide="vscode"): 5,
        key("copilot_pull_requests_created"): 4,
        key("copilot_pull_request_median_time_to_merge_seconds", authorship="copilot_authored"): 90,
    }


def test_aggregated_comment_types_adoption_phases_and_cli_without_token_usage():
    record = {
        "day": "2026-01-05",
        "pull_requests": {
            "copilot_suggestions_by_comment_type": [
                {"comment_type": "security", "total_copilot_suggestions": 7, "total_copilot_applied_suggestions": 2},
                {"comment_type": "style", "total_copilot_suggestions": 3},
                {"total_copilot_suggestions": 50},
            ]
        },
        "totals_by_ai_adoption_phase": [
            {
                "phase": "exploring",
                "phase_number": 1,
                "total_engaged_users": 12,
                "avg_user_initiated_interaction_count": 3.5,
            },
            {"phase": "scaling", "phase_number": 3, "total_engaged_users": 0},
            {"phase": "unmeasured", "phase_number": 4},
        ],
        "totals_by_cli": {"session_count": 1, "request_count": 0},
    }
    assert aggregated(record) == {
        key("copilot_pull_request_copilot_suggestions_by_comment_type", comment_type="security"): 7,
        key("copilot_pull_request_copilot_applied_suggestions_by_comment_type", comment_type="security"): 2,
        key("copilot_pull_request_copilot_suggestions_by_comment_type", comment_type="style"): 3,
        key("copilot_adoption_phase_engaged_users", phase="exploring"): 12,
        key("copilot_adoption_phase_engaged_users", phase="scaling"): 0,
        key("copilot_cli_sessions"): 1,
        key("copilot_cli_requests"): 0,
    }


def test_aggregated_repeated_breakdown_labels_are_summed():
    record = {
        "day": "2026-01-05",
        "totals_by_language_model": [
            {"language": "go", "model": "auto", "code_generation_activity_count": 2},
            {"language": "go", "model": "auto", "code_generation_activity_count": 3},
        ],
    }
    assert aggregated(record) == {
        key("copilot_code_generation_activities_by_language_model", language="go", model="auto"): 5,
    }


@pytest.mark.parametrize(
    "record, field",
    [
        (["not", "an", "object"], "record"),
        ({"day": "2026-01-05", "loc_added_sum": "abc"}, "loc_added_sum"),
        ({"day": "2026-01-05", "daily_active_users": True}, "daily_active_users"),
        ({"day": "2026-01-05", "totals_by_ide": {"ide": "vscode"}}, "totals_by_ide"),
        ({"day": "2026-01-05", "totals_by_ide": [3]}, "totals_by_ide[0]"),
        ({"day": "2026-01-05", "totals_by_ide": [{"ide": 5}]}, "totals_by_ide[0].ide"),
        (
            {"day": "2026-01-05", "totals_by_feature": [{"feature": "x", "loc_added_sum": "1"}]},
            "totals_by_feature[0].loc_added_sum",
        ),
        ({"day": "2026-01-05", "pull_requests": []}, "pull_requests"),
        (
            {"day": "2026-01-05", "pull_requests": {"median_minutes_to_merge": "2"}},
            "pull_requests.median_minutes_to_merge",
        ),
        ({"day": "2026-01-05", "totals_by_cli": {"token_usage": 5}}, "totals_by_cli.token_usage"),
        ({"day": "2026-01-05", "totals_by_ai_adoption_phase": "all"}, "totals_by_ai_adoption_phase"),
        ({"day": 20260105}, "day"),
        ({"day": "05/01/2026"}, "day"),
        ({"daily_active_users": 3}, "day"),
    ],
)
def test_aggregated_wrong_types_raise_payload_error_naming_the_field(record, field):
    with pytest.raises(PayloadError, match=rf"^organization/enterprise-1-day: {re.escape(field)}: ") as raised:
        add_aggregated(FamilyBuilder(SCOPE), record)
    assert raised.value.reason == "bad_payload"


def test_aggregated_error_message_shows_the_value():
    with pytest.raises(PayloadError) as raised:
        add_aggregated(FamilyBuilder(), {"day": "2026-01-05", "loc_added_sum": "abc"})
    assert str(raised.value) == ("organization/enterprise-1-day: loc_added_sum: expected a number, got 'abc'")


def test_aggregated_has_no_team_level():
    with pytest.raises(ValueError):
        add_aggregated(FamilyBuilder(SCOPE), {"day": "2026-01-05"}, team="frontend")


# --- users report -----------------------------------------------------------------------------

FEATURES = ("agent", "chat", "cli", "cloud_agent", "code_review_active", "code_review_passive", "app", "vscode_agent")
USED_ZERO = {key("copilot_users_used", feature=feature): 0 for feature in FEATURES}


def test_users_example_maps_to_exact_values():
    records = read_ndjson("report-users-1-day.ndjson")
    users = UsersAccumulator(join_id="enterprise_id")
    for record in records:
        users.add(record)
    builder = FamilyBuilder(SCOPE)
    users.add_to(builder)

    assert users.day() == "2025-10-01"
    # the example's plugin and plugin_version are empty strings: no plugin series;
    # it has no ai_credits_used and no ai_adoption_phase: both absent
    assert family_values(builder.build()) == {
        key("copilot_users_reported"): 1,
        key("copilot_users_without_client_telemetry"): 0,
        **USED_ZERO,
        key("copilot_users_used", feature="cli"): 1,
        key("copilot_users_by_ide_version", ide="vscode", ide_version="1.85.0"): 1,
        key("copilot_users_by_cli_version", cli_version="1.0.8"): 1,
    }
    # the seven counters, no AI credits, and `cli` (third feature) as the only used bit
    assert users.member(1, "2025-10-01", "1") == (0, 1, 1, 10, 0, 8, 0, None, 0b100)
    assert users.member(1, "2025-10-02", "1") is None  # another day
    assert users.member(1, "2025-10-01", "2") is None  # another enterprise
    assert users.member(1001, "2025-10-01", "1") is None


def test_users_example_per_user_login():
    values = users_values(read_ndjson("report-users-1-day.ndjson"), per_user="login")
    assert {k: v for k, v in values.items() if k[0].startswith("copilot_per_user_")} == {
        key("copilot_per_user_user_initiated_interactions", user="login1"): 0,
        key("copilot_per_user_code_generation_activities", user="login1"): 1,
        key("copilot_per_user_code_acceptance_activities", user="login1"): 1,
        key("copilot_per_user_lines_suggested_to_add", user="login1"): 10,
        key("copilot_per_user_lines_suggested_to_delete", user="login1"): 0,
        key("copilot_per_user_lines_added", user="login1"): 8,
        key("copilot_per_user_lines_deleted", user="login1"): 0,
    }


def test_users_example_per_user_hashed_hides_the_login():
    records = read_ndjson("report-users-1-day.ndjson")
    values = users_values(records, per_user="hashed", salt="pepper")
    assert values[key("copilot_per_user_lines_added", user="831de7e70bc257bc")] == 8
    assert not any(value == "login1" for _name, labels in values for _label, value in labels)
    other = users_values(records, per_user="hashed", salt="salt-2")
    assert key("copilot_per_user_lines_added", user="e5da8f00039f5e30") in other


def test_users_per_user_off_by_default():
    values = users_values(read_ndjson("report-users-1-day.ndjson"))
    assert not any(name.startswith("copilot_per_user_") for name, _labels in values)


@pytest.mark.parametrize(
    "options",
    [
        {"per_user": "hashed"},
        {"per_user": "hashed", "salt": ""},
        {"per_user": "yes"},
    ],
)
def test_users_invalid_per_user_options(options):
    with pytest.raises(ValueError):
        UsersAccumulator(**options)


def user(user_id: int, login: str, **fields) -> dict:
    return {"user_id": user_id, "user_login": login, "day": "2026-01-05", **fields}


def test_users_used_flags_count_only_true():
    records = [
        user(
            1,
            "a",
            used_agent=True,
            used_chat=True,
            used_cli=False,
            used_copilot_coding_agent=True,
            used_copilot_code_review_active=True,
        ),
        user(
            2,
            "b",
            used_agent=False,
            used_chat=None,
            used_copilot_cloud_agent=True,
            used_copilot_code_review_passive=True,
            used_copilot_code_review_active=None,
        ),
        # both names of the cloud agent flag true: still one user
        user(3, "c", used_copilot_cloud_agent=True, used_copilot_coding_agent=True),
        user(4, "d", used_copilot_cloud_agent=False, used_copilot_coding_agent=None),
        user(5, "e"),
    ]
    values = users_values(records)
    assert values[key("copilot_users_reported")] == 5
    assert {k: v for k, v in values.items() if k[0] == "copilot_users_used"} == {
        **USED_ZERO,
        key("copilot_users_used", feature="agent"): 1,
        key("copilot_users_used", feature="chat"): 1,
        key("copilot_users_used", feature="cloud_agent"): 3,
        key("copilot_users_used", feature="code_review_active"): 1,
        key("copilot_users_used", feature="code_review_passive"): 1,
    }


def test_users_adoption_phase_and_ai_credits():
    records = [
        user(1, "a", ai_adoption_phase={"phase": "exploring", "phase_number": 1, "version": 1}, ai_credits_used=2.5),
        user(2, "b", ai_adoption_phase={"phase": "exploring"}, ai_credits_used=0),
        user(3, "c", ai_adoption_phase={"phase": "scaling"}, ai_credits_used=None),
        user(4, "d", ai_adoption_phase=None),
        user(5, "e", ai_adoption_phase={"phase_number": 2}),
    ]
    values = users_values(records)
    assert values[key("copilot_users_by_adoption_phase", phase="exploring")] == 2
    assert values[key("copilot_users_by_adoption_phase", phase="scaling")] == 1
    assert values[key("copilot_ai_credits_used")] == 2.5
    assert len([k for k in values if k[0] == "copilot_users_by_adoption_phase"]) == 2


def test_users_ai_credits_absent_when_no_record_has_them():
    values = users_values([user(1, "a"), user(2, "b", ai_credits_used=None)])
    assert "copilot_ai_credits_used" not in {name for name, _labels in values}


def ide_entry(ide, ide_version=None, plugin=None, plugin_version=None, **counters) -> dict:
    return {
        "ide": ide,
        "last_known_ide_version": {"ide_version": ide_version, "sampled_at": "2026-01-05T10:00:00Z"},
        "last_known_plugin_version": {"plugin": plugin, "plugin_version": plugin_version},
        **counters,
    }


def test_users_ide_and_plugin_versions_count_each_user_once_per_pair():
    records = [
        user(
            1,
            "a",
            totals_by_ide=[
                ide_entry("vscode", "1.99.0", "copilot-chat", "0.30.0"),
                ide_entry("vscode", "1.99.0", "copilot-chat", "0.30.0"),  # same pair twice
                ide_entry("intellij", "2025.3", "copilot-intellij", "1.5.0"),
            ],
        ),
        user(
            2,
            "b",
            totals_by_ide=[
                ide_entry("vscode", "1.99.0", "copilot-chat", "0.31.0"),
                ide_entry("neovim", "", "", ""),  # empty values: skipped
                ide_entry("vim", None, None, "1.0"),  # null values: skipped
                {"ide": "xcode", "last_known_ide_version": None, "last_known_plugin_version": None},
                {"last_known_ide_version": {"ide_version": "9"}},  # no ide: skipped
            ],
        ),
        user(3, "c", totals_by_ide=[]),
        user(4, "d"),
    ]
    values = users_values(records)
    assert {k: v for k, v in values.items() if k[0].endswith("_version")} == {
        key("copilot_users_by_ide_version", ide="vscode", ide_version="1.99.0"): 2,
        key("copilot_users_by_ide_version", ide="intellij", ide_version="2025.3"): 1,
        key("copilot_users_by_plugin_version", plugin="copilot-chat", plugin_version="0.30.0"): 1,
        key("copilot_users_by_plugin_version", plugin="copilot-chat", plugin_version="0.31.0"): 1,
        key("copilot_users_by_plugin_version", plugin="copilot-intellij", plugin_version="1.5.0"): 1,
    }


def test_users_activity_keeps_missing_counters_absent():
    users = UsersAccumulator(per_user="login")
    assert users.day() is None
    users.add(user(7, "g", loc_added_sum=3, loc_deleted_sum=None, etl_id="x", whatever=[1]))
    users.add({"user_login": "no-id", "loc_added_sum": 100})  # aggregates only
    assert users.member(7, "2026-01-05", None) == (None, None, None, None, None, 3, None, None, 0)
    builder = FamilyBuilder(SCOPE)
    users.add_to(builder)
    values = family_values(builder.build())
    assert {k: v for k, v in values.items() if k[0].startswith("copilot_per_user_")} == {
        key("copilot_per_user_lines_added", user="g"): 3,
    }
    assert values[key("copilot_users_reported")] == 2


def test_users_empty_report():
    values = users_values([])
    assert values == {key("copilot_users_reported"): 0, key("copilot_users_without_client_telemetry"): 0, **USED_ZERO}


@pytest.mark.parametrize(
    "record, field",
    [
        ("a string", "record"),
        (user(1, "a", loc_added_sum="abc"), "loc_added_sum"),
        (user(1, "a", code_generation_activity_count=False), "code_generation_activity_count"),
        (user(1, "a", used_cli="yes"), "used_cli"),
        (user(1, "a", used_agent=1), "used_agent"),
        (user(1, "a", ai_credits_used="3"), "ai_credits_used"),
        (user(1, "a", ai_adoption_phase="exploring"), "ai_adoption_phase"),
        (user(1, "a", ai_adoption_phase={"phase": 2}), "ai_adoption_phase.phase"),
        (user(1, "a", totals_by_ide="vscode"), "totals_by_ide"),
        (
            user(1, "a", totals_by_ide=[{"ide": "vscode", "last_known_ide_version": "1.9"}]),
            "totals_by_ide[0].last_known_ide_version",
        ),
        ({"user_id": "1001", "user_login": "a"}, "user_id"),
        ({"user_id": 1.5}, "user_id"),
        ({"user_id": 1, "user_login": 42}, "user_login"),
    ],
)
def test_users_wrong_types_raise_payload_error_naming_the_field(record, field):
    with pytest.raises(PayloadError, match=rf"^users-1-day: {re.escape(field)}: "):
        UsersAccumulator().add(record)


# --- teams ------------------------------------------------------------------------------------


def teams_values(team_rows, users, **options) -> dict:
    builder = FamilyBuilder(SCOPE)
    add_teams(builder, team_rows, users, **options)
    return family_values(builder.build())


def team_key(name: str, slug: str, team_id: str, **labels: str) -> tuple[str, frozenset]:
    return key(name, team=slug, team_id=team_id, **labels)


def team_used(slug: str, team_id: str, **counts: int) -> dict:
    """copilot_users_used of a team: every feature, 0 unless given."""
    return {
        team_key("copilot_users_used", slug, team_id, feature=feature): counts.get(feature, 0) for feature in FEATURES
    }


def test_teams_example_members_absent_from_users_example():
    users = UsersAccumulator()
    for record in read_ndjson("report-users-1-day.ndjson"):
        users.add(record)
    # the teams example lists users 1001 and 1002; the users example holds only user 1
    values = teams_values(read_ndjson("report-user-teams-1-day.ndjson"), users)
    assert values == {
        team_key("copilot_daily_active_users", "frontend", "42"): 0,
        **team_used("frontend", "42"),
        team_key("copilot_daily_active_users", "backend", "43"): 0,
        **team_used("backend", "43"),
    }


DAY = "2026-01-05"
ORG_ID = {"organization_id": "999"}


def joined_users() -> UsersAccumulator:
    users = UsersAccumulator()
    users.add(
        user(
            1001,
            "alice",
            **ORG_ID,
            user_initiated_interaction_count=4,
            loc_added_sum=10,
            loc_deleted_sum=None,
            used_chat=True,
            ai_credits_used=2.5,
        )
    )
    users.add(
        user(
            1002,
            "bob",
            **ORG_ID,
            user_initiated_interaction_count=1,
            loc_added_sum=5,
            loc_deleted_sum=2,
            used_cli=True,
            used_copilot_app=True,
            ai_credits_used=1,
        )
    )
    users.add(user(1003, "carol", **ORG_ID, loc_added_sum=1, used_chat=True))
    users.add(user(1004, "erin", organization_id="998", loc_added_sum=7))
    return users


def row(user_id: int, team_id: int, slug: str, **fields) -> dict:
    return {
        "user_id": user_id,
        "user_login": f"u{user_id}",
        "day": DAY,
        **ORG_ID,
        "team_id": team_id,
        "slug": slug,
        **fields,
    }


TEAM_ROWS = [
    row(1001, 42, "frontend"),
    row(1001, 43, "backend"),
    row(1002, 42, "frontend"),
    row(1002, 42, "frontend"),  # the same membership twice: counted once
    row(1009, 42, "frontend"),  # dave is not in the users report: not counted
    row(1009, 44, "idle"),
    row(1003, 42, "frontend", day="2026-01-04"),  # carol's row of another day: not joined
    row(1004, 42, "frontend"),  # erin is in the users report of another organization: not joined
]


def test_teams_join_on_user_day_and_scope_id_and_sum_the_members():
    values = teams_values(TEAM_ROWS, joined_users())
    assert values == {
        team_key("copilot_daily_active_users", "frontend", "42"): 2,
        **activity((5, None, None, None, None, 15, 2), team="frontend", team_id="42"),
        team_key("copilot_ai_credits_used", "frontend", "42"): 3.5,
        **team_used("frontend", "42", chat=1, cli=1, app=1),
        team_key("copilot_daily_active_users", "backend", "43"): 1,
        **activity((4, None, None, None, None, 10, None), team="backend", team_id="43"),
        team_key("copilot_ai_credits_used", "backend", "43"): 2.5,
        **team_used("backend", "43", chat=1),
        team_key("copilot_daily_active_users", "idle", "44"): 0,
        **team_used("idle", "44"),
    }
    assert not any("_by_" in name for name, _labels in values)


def test_teams_sharing_a_slug_never_merge():
    rows = [row(1001, 50, "platform"), row(1002, 51, "platform")]  # an enterprise and a business team
    values = teams_values(rows, joined_users())
    assert values[team_key("copilot_daily_active_users", "platform", "50")] == 1
    assert values[team_key("copilot_daily_active_users", "platform", "51")] == 1
    assert values[team_key("copilot_lines_added", "platform", "50")] == 10
    assert values[team_key("copilot_lines_added", "platform", "51")] == 5


def test_teams_labels_follow_the_scope_labels():
    builder = FamilyBuilder(SCOPE)
    add_teams(builder, TEAM_ROWS, joined_users())
    for family in builder.build():
        for labels, _value in family.samples:
            assert [name for name, _ in labels][:3] == ["org", "team", "team_id"]


def test_teams_only_selected_slugs_and_the_missing_ones_are_returned():
    builder = FamilyBuilder(SCOPE)
    missing = add_teams(builder, TEAM_ROWS, joined_users(), only_teams=["backend", "missing", "idle"])
    values = family_values(builder.build())
    assert {dict(labels)["team"] for _name, labels in values} == {"backend", "idle"}
    assert missing == ("missing",)
    assert add_teams(FamilyBuilder(SCOPE), TEAM_ROWS, joined_users()) == ()


def test_teams_rows_without_slug_or_team_id_are_dropped_and_noted():
    builder = FamilyBuilder(SCOPE)
    rows = [
        row(1001, 42, "frontend"),
        {**row(1002, 42, "frontend"), "slug": None},
        {**row(1002, 42, "frontend"), "team_id": None},
    ]
    add_teams(builder, rows, joined_users())
    assert family_values(builder.build())[team_key("copilot_daily_active_users", "frontend", "42")] == 1
    assert [(problem.reason, problem.count) for problem in builder.problems.frozen()] == [("bad_value", 2)]


def test_users_accumulator_keeps_no_members_when_neither_teams_nor_per_user_need_them():
    users = UsersAccumulator(keep_members=False)
    users.add(user(1001, "alice", **ORG_ID, loc_added_sum=10))
    assert users.member(1001, DAY, "999") is None
    assert (
        teams_values([row(1001, 42, "frontend")], users)[team_key("copilot_daily_active_users", "frontend", "42")] == 0
    )


@pytest.mark.parametrize(
    "row, field",
    [
        (7, "record"),
        ({"user_id": "1001", "slug": "frontend"}, "user_id"),
        ({"user_id": 1001, "slug": ["frontend"]}, "slug"),
    ],
)
def test_teams_wrong_types(row, field):
    with pytest.raises(PayloadError, match=rf"^user-teams-1-day: {re.escape(field)}: "):
        add_teams(FamilyBuilder(SCOPE), [row], joined_users())


# --- repositories -----------------------------------------------------------------------------


def repo(owner, name, created=0, reviewed=0, merged=0, **more) -> dict:
    return {
        "day": "2026-01-05",
        "repo_id": 1,
        "repo_owner_name": owner,
        "repo_name": name,
        "repo_visibility": "private",
        "pull_requests": {"total_created": created, "total_reviewed": reviewed, "total_merged": merged, **more},
    }


def repositories_values(records, max_repositories) -> dict:
    builder = FamilyBuilder(SCOPE)
    add_repositories(builder, iter(records), max_repositories)
    return family_values(builder.build())


def test_repositories_map_every_pull_request_count():
    counts = dict(zip(PULL_REQUEST_COUNTS.values(), range(1, 12)))
    record = {
        "day": "2026-01-05",
        "repo_owner_name": "acme",
        "repo_name": "api",
        "pull_requests": counts,
        "etl_id": "x",
    }
    values = repositories_values([record], 5)
    assert values == {
        key("copilot_repository_" + suffix, repository="acme/api"): number
        for suffix, number in zip(PULL_REQUEST_COUNTS, range(1, 12))
    }


def test_repositories_keep_the_most_active_ties_by_name():
    records = [
        repo("acme", "quiet", created=1),
        repo("acme", "busy", created=5, reviewed=5, merged=5),
        repo("acme", "b-tie", created=3),
        repo("acme", "a-tie", reviewed=2, merged=1),
        repo("acme", "c-tie", merged=3),
        repo("other", "acme/already-full", created=None, reviewed=2),  # name used as is
    ]
    values = repositories_values(records, 3)
    assert {dict(labels)["repository"] for _name, labels in values} == {
        "acme/busy",
        "acme/a-tie",
        "acme/b-tie",
    }
    assert values[key("copilot_repository_pull_requests_created", repository="acme/busy")] == 5
    assert values == repositories_values(list(reversed(records)), 3)


def test_repositories_tolerate_missing_parts():
    records = [
        {"repo_owner_name": "acme", "repo_name": "no-prs"},
        {"repo_name": "acme/owner-in-name", "pull_requests": {"total_merged": 1, "total_created": None}},
        {"repo_owner_name": "acme", "pull_requests": {"total_created": 9}},  # no name: skipped
    ]
    assert repositories_values(records, 10) == {
        key("copilot_repository_pull_requests_merged", repository="acme/owner-in-name"): 1,
    }
    assert repositories_values(records, 0) == {}


@pytest.mark.parametrize(
    "record, field",
    [
        (None, "record"),
        ({"repo_owner_name": "acme", "repo_name": 5}, "repo_name"),
        ({"repo_name": "acme/api", "pull_requests": 3}, "pull_requests"),
        ({"repo_name": "acme/api", "pull_requests": {"total_created": "3"}}, "pull_requests.total_created"),
    ],
)
def test_repositories_wrong_types(record, field):
    with pytest.raises(PayloadError, match=rf"^repos-1-day: {re.escape(field)}: "):
        add_repositories(FamilyBuilder(SCOPE), [record], 10)
