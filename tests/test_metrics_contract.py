"""The metric names and labels are a contract: README table, catalogue and real expositions agree."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from copilot_exporter.metrics.catalogue import ACTIVITY_COUNTERS, CATALOGUE, PROCESS, TEAM_FAMILIES, UNSCOPED
from copilot_exporter.simulator import Fault
from conftest import exporter_config

ROOT = Path(__file__).resolve().parents[1]
SCOPE_LABELS = {"org", "enterprise"}
TEAM_LABELS = {"team", "team_id"}  # scope-like: a team of the scope (team_id on reports team series)


def load_table_script():
    spec = importlib.util.spec_from_file_location("metrics_table", ROOT / "scripts/metrics_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_metric_table_matches_the_catalogue():
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- metrics-table:start -->") + len("<!-- metrics-table:start -->")
    end = readme.index("<!-- metrics-table:end -->")
    assert readme[start:end].strip() == load_table_script().markdown().strip(), (
        "README metric table is stale: python scripts/metrics_table.py"
    )


def full_exposition(simulator, make_exporter, state_dir) -> str:
    """Every source at once: legacy (one org through auto's fallback), reports with per-user and
    repositories, seats, billing."""
    simulator.add_fault("/orgs/globex/copilot/metrics/reports", Fault(status=404))
    config = exporter_config(
        simulator.api_url,
        source="auto",
        user_hash_salt="pepper",
        seat_prices={"business": {"amount": 19, "currency": "USD"}},
        organizations=[
            {"name": "acme", "teams": ["platform"], "repositories": True, "per_user": True, "billing": True},
            {"name": "globex", "teams": ["mobile"]},
            {"name": "umbrella", "per_user": "hashed"},
        ],
        enterprises=[{"name": "initech", "teams": ["core"]}],
        fill_days_per_refresh=28,  # team windows need every day of 28 held: filled in one refresh
    )
    exporter = make_exporter(config, state_dir)
    assert exporter.refresh()
    return exporter.scrape_text()


@pytest.mark.integration
def test_every_exposed_series_follows_the_catalogue(simulator, make_exporter, tmp_path):
    seen, seen_team_ids = set(), set()
    for family in text_string_to_metric_families(full_exposition(simulator, make_exporter, tmp_path)):
        for sample in family.samples:
            assert sample.name in CATALOGUE, f"{sample.name} is not in the catalogue"
            info = CATALOGUE[sample.name]
            keys = set(sample.labels)
            scope = keys & SCOPE_LABELS
            if sample.name in UNSCOPED:
                assert not scope and not keys & TEAM_LABELS, sample
            else:
                assert len(scope) == 1, f"{sample.name} must carry exactly one of org/enterprise: {sample.labels}"
            if "team_id" in keys:
                assert "team" in keys and sample.name in TEAM_FAMILIES, sample
                seen_team_ids.add(sample.name)
            assert keys - SCOPE_LABELS - TEAM_LABELS == set(info.labels), f"{sample.name}: {sample.labels}"
            assert all(value != "" for value in sample.labels.values()), sample
            seen.add(sample.name)
    # the run exercised every group of the catalogue, so the check above means something
    assert {CATALOGUE[name].group for name in seen} == {info.group for info in CATALOGUE.values()}
    assert "copilot_per_user_lines_added" in seen and "copilot_repository_pull_requests_created" in seen
    assert seen_team_ids == TEAM_FAMILIES  # every team family was seen with its team_id


def test_no_ratio_or_percentage_and_only_counters_end_in_total():
    for name, info in CATALOGUE.items():
        assert name.startswith("copilot_") or name in PROCESS, name
        assert not any(word in name.split("_") for word in ("ratio", "percent", "percentage")), name
        assert name.endswith("_total") == (info.type == "counter"), name


def test_per_user_series_have_their_own_prefix_and_the_retired_names_are_gone():
    for base in ACTIVITY_COUNTERS:
        assert "copilot_user_" + base.removeprefix("copilot_") not in CATALOGUE
        assert CATALOGUE["copilot_per_user_" + base.removeprefix("copilot_")].labels == ("user",)
    # a relabelling rule dropping copilot_per_user_.+ touches no aggregate family
    assert all(info.labels == ("user",) for name, info in CATALOGUE.items() if name.startswith("copilot_per_user_"))


def test_help_texts_say_in_words_what_is_counted():
    """No HELP text is a bare API field name ("loc_added_sum by ide."): each has some prose, and a
    reports family names no snake_case word outside backticks but other metrics."""
    for name, info in CATALOGUE.items():
        prose = [word for word in re.findall(r"[A-Za-z][\w.-]*", info.help) if "_" not in word]
        assert len(prose) >= 4, f"{name}: {info.help!r}"
        if info.group.startswith("reports") or info.group == "shared":
            outside_backticks = re.sub(r"`[^`]*`", "", info.help)
            fields = [
                word for word in re.findall(r"\b[a-z0-9]+(?:_[a-z0-9]+)+\b", outside_backticks) if word not in CATALOGUE
            ]
            assert not fields, f"{name}: {info.help!r} names fields {fields}"


def test_help_texts_date_the_changes_of_meaning():
    help_of = {name: info.help for name, info in CATALOGUE.items()}
    for base in ACTIVITY_COUNTERS:  # totals and feature/model/language breakdowns include CLI and app
        for name in (base, base + "_by_feature", base + "_by_language_model"):
            assert "2026-04-10" in help_of[name] and "2026-07-28" in help_of[name], name
        assert "not in this breakdown" in help_of[base + "_by_ide"]
    assert "2026-07-28" in help_of["copilot_daily_active_users"]
    assert "not part of copilot_user_initiated_interactions" in help_of["copilot_third_party_agent_interactions"]
    assert "not a billed amount" in help_of["copilot_ai_credits_used"]
