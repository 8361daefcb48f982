"""GitHub's 2026 report fields -> metric samples (copilot_exporter.metrics.reports).

Records are written here in the shapes of COPILOT-APIS.md §6; expected values are exact.
"""

from __future__ import annotations

import pytest
from conftest import family_values

from copilot_exporter.errors import PayloadError
from copilot_exporter.metrics.reports import add_28_day
from copilot_exporter.model import FamilyBuilder

SCOPE = (("enterprise", "initech"),)


def key(name: str, **labels: str) -> tuple[str, frozenset]:
    return (name, frozenset(SCOPE + tuple(labels.items())))


def problem_counts(builder: FamilyBuilder) -> dict[str, int]:
    return {problem.reason: problem.count for problem in builder.problems.frozen()}


# --- 28-day report: feature engagement -------------------------------------------------------

def twenty_eight_day(engagement: object) -> dict:
    return {"report_start_day": "2026-10-01", "report_end_day": "2026-10-28", "enterprise_id": "7",
            "day_totals": [{"day": "2026-10-28", "daily_active_users": 9}],
            "copilot_feature_engagement": engagement}


def test_28_day_engagement_maps_total_and_features_and_returns_the_end_day():
    builder = FamilyBuilder(SCOPE)
    record = twenty_eight_day({"active_user_count": 41, "totals_by_feature": [
        {"feature": "code_completion", "engaged_user_count": 30},
        {"feature": "copilot_cli", "engaged_user_count": 12},
    ]})

    assert add_28_day(builder, record) == "2026-10-28"
    assert family_values(builder.build()) == {
        key("copilot_engaged_users_28d"): 41,
        key("copilot_engaged_users_28d_by_feature", feature="code_completion"): 30,
        key("copilot_engaged_users_28d_by_feature", feature="copilot_cli"): 12,
    }
    assert problem_counts(builder) == {}


def test_28_day_bad_feature_entries_are_dropped_and_noted_the_rest_kept():
    builder = FamilyBuilder(SCOPE)
    record = twenty_eight_day({"active_user_count": 5, "totals_by_feature": [
        {"feature": "chat_inline", "engaged_user_count": "many"},
        {"engaged_user_count": 3},
        "agent_edit",
        {"feature": "agent_edit", "engaged_user_count": 4},
    ]})

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
