"""The exporter on the Copilot usage metrics reports API, over real HTTP against the simulator."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from copilot_exporter.simulator import NO_REPORT_SHAPES, Fault, Simulator, World
from conftest import TOKEN, exporter_config, read_report

pytestmark = pytest.mark.integration


TODAY = dt.datetime.now(dt.timezone.utc).date()
NEWEST = TODAY - dt.timedelta(days=2)  # the simulator has no report for yesterday yet
ACTIVITY = {
    "copilot_code_generation_activities": "code_generation_activity_count",
    "copilot_lines_added": "loc_added_sum",
}


def reports_config(sim, source="reports", **entry):
    return exporter_config(
        sim.api_url,
        organizations=[{"name": "acme", "teams": [], "repositories": True, "seats": False, **entry}],
        enterprises=[{"name": "initech", "seats": False}],
        source=source,
    )


@pytest.mark.parametrize(
    "kind,name,base,aggregated",
    [
        ("org", "acme", "/orgs/acme", "organization-1-day"),
        ("enterprise", "initech", "/enterprises/initech", "enterprise-1-day"),
    ],
)
def test_aggregated_and_users_reports(simulator, make_exporter, kind, name, base, aggregated):
    exporter = make_exporter(reports_config(simulator))
    assert exporter.refresh()
    scope = {kind: name}
    [record] = read_report(simulator, base, aggregated, NEWEST)
    users = read_report(simulator, base, "users-1-day", NEWEST)
    assert exporter.value("copilot_daily_active_users", **scope) == record["daily_active_users"]
    assert exporter.value("copilot_monthly_active_users", **scope) == record["monthly_active_users"]
    for metric, field in ACTIVITY.items():
        assert exporter.value(metric, **scope) == record[field]
    for entry in record["totals_by_ide"]:
        assert (
            exporter.value("copilot_code_generation_activities_by_ide", **scope, ide=entry["ide"])
            == entry["code_generation_activity_count"]
        )
    assert exporter.value("copilot_pull_requests_created", **scope) == record["pull_requests"]["total_created"]
    assert exporter.value("copilot_users_reported", **scope) == len(users)
    chat_users = sum(1 for user in users if user.get("used_chat") is True)
    assert exporter.value("copilot_users_used", **scope, feature="chat") == chat_users
    midnight = dt.datetime.combine(NEWEST, dt.time(), dt.timezone.utc).timestamp()
    report_label = "organization" if kind == "org" else "enterprise"
    for report in (report_label, "users"):
        assert exporter.value("copilot_report_day_timestamp_seconds", **scope, report=report) == midnight
    assert exporter.value("copilot_exporter_up", **scope, source="reports") == 1


def test_team_series_join_user_teams_with_users(simulator, make_exporter):
    exporter = make_exporter(reports_config(simulator))
    assert exporter.refresh()
    users = {u["user_id"]: u for u in read_report(simulator, "/orgs/acme", "users-1-day", NEWEST)}
    rows = read_report(simulator, "/orgs/acme", "user-teams-1-day", NEWEST)
    teams: dict[tuple[str, str], set[int]] = {}  # (slug, team_id): a team is its team_id
    for row in rows:
        teams.setdefault((row["slug"], str(row["team_id"])), set()).add(row["user_id"])
    assert any(member not in users for members in teams.values() for member in members)  # the join matters
    for (slug, team_id), members in teams.items():
        present = [users[m] for m in members if m in users]
        team = {"org": "acme", "team": slug, "team_id": team_id}
        assert exporter.value("copilot_daily_active_users", **team) == len(present)
        if present:
            assert exporter.value("copilot_lines_added", **team) == sum(u.get("loc_added_sum") or 0 for u in present)


def test_only_listed_teams_are_exported(simulator, make_exporter):
    exporter = make_exporter(reports_config(simulator, teams=["platform"]))
    assert exporter.refresh()
    teams = {
        dict(labels).get("team")
        for name, labels in exporter.samples()
        if name == "copilot_daily_active_users" and ("org", "acme") in labels
    }
    assert teams == {None, "platform"}


def test_repositories_are_capped(simulator, make_exporter):
    exporter = make_exporter(reports_config(simulator, max_repositories=3))
    assert exporter.refresh()
    repositories = {
        dict(labels)["repository"]
        for name, labels in exporter.samples()
        if name == "copilot_repository_pull_requests_created"
    }
    assert len(repositories) == 3 and all("/" in repo for repo in repositories)


def test_reports_spread_over_several_links_and_gzip_parts(make_exporter):
    with Simulator(world=World.default(), token=TOKEN, records_per_link=4) as simulator:
        exporter = make_exporter(reports_config(simulator))
        assert exporter.refresh()
        downloads = [r for r in simulator.requests if r.server == "download" and "/acme/users-1-day" in r.path]
        assert len(downloads) >= 3
        assert any(r.path.endswith(".gz") for r in downloads)  # gzip files
        assert any(not r.path.endswith(".gz") and "gzip" in r.headers.get("Accept-Encoding", "") for r in downloads)
        users = read_report(simulator, "/orgs/acme", "users-1-day", NEWEST)
        assert exporter.value("copilot_users_reported", org="acme") == len(users)
        assert any(
            name == "copilot_lines_added" and ("team", "platform") in labels for name, labels in exporter.samples()
        )


def test_no_credential_ever_reaches_the_download_host(simulator, make_exporter):
    exporter = make_exporter(reports_config(simulator))
    assert exporter.refresh()
    downloads = [r for r in simulator.requests if r.server == "download"]
    assert downloads
    for request in downloads:
        assert "authorization" not in {key.lower() for key in request.headers}
        assert not any(TOKEN in value for value in request.headers.values())
    assert simulator.download_auth_violations == 0


def test_falls_back_to_an_earlier_day(simulator, make_exporter):
    simulator.missing_report_days.add(NEWEST)
    exporter = make_exporter(reports_config(simulator))
    assert exporter.refresh()
    earlier = dt.datetime.combine(NEWEST - dt.timedelta(days=1), dt.time(), dt.timezone.utc).timestamp()
    assert exporter.value("copilot_report_day_timestamp_seconds", org="acme", report="organization") == earlier


def midnight(day: dt.date) -> float:
    return dt.datetime.combine(day, dt.time(), dt.timezone.utc).timestamp()


def answered(simulator, path: str, day: dt.date) -> set[int]:
    return {r.status for r in simulator.requests if r.path == path and r.query.get("day") == day.isoformat()}


@pytest.mark.parametrize("shape", NO_REPORT_SHAPES)
def test_every_no_report_shape_steps_back_a_day(simulator, make_exporter, shape):
    simulator.withhold_report(shape, day=NEWEST)
    exporter = make_exporter(reports_config(simulator))
    assert exporter.refresh()
    status = int(shape) if shape.isdigit() else 200
    assert answered(simulator, "/orgs/acme/copilot/metrics/reports/organization-1-day", NEWEST) == {status}
    earlier = midnight(NEWEST - dt.timedelta(days=1))
    for scope, reports in (
        ({"org": "acme"}, ("organization", "users", "user_teams", "repos")),
        ({"enterprise": "initech"}, ("enterprise", "users")),
    ):
        assert exporter.value("copilot_exporter_up", **scope, source="reports") == 1
        for report in reports:
            assert exporter.value("copilot_report_day_timestamp_seconds", **scope, report=report) == earlier, report
    [record] = read_report(simulator, "/orgs/acme", "organization-1-day", NEWEST - dt.timedelta(days=1))
    assert exporter.value("copilot_daily_active_users", org="acme") == record["daily_active_users"]


def test_a_no_report_answer_steps_back_only_its_own_scope_and_report(simulator, make_exporter):
    simulator.withhold_report("message", day=NEWEST, name="acme", report="users-1-day")
    exporter = make_exporter(reports_config(simulator))
    assert exporter.refresh()
    assert exporter.value("copilot_report_day_timestamp_seconds", org="acme", report="users") == midnight(
        NEWEST - dt.timedelta(days=1)
    )
    for scope, report in (({"org": "acme"}, "organization"), ({"enterprise": "initech"}, "users")):
        assert exporter.value("copilot_report_day_timestamp_seconds", **scope, report=report) == midnight(NEWEST)


def test_every_day_answering_5xx_is_an_outage_and_keeps_the_last_good_data(simulator, make_exporter):
    # reread_interval 0s: the held day is asked again at every refresh, and answers 5xx too
    exporter = make_exporter(dataclasses.replace(reports_config(simulator), reread_interval=0.0))
    assert exporter.refresh()
    good = exporter.value("copilot_daily_active_users", org="acme")
    simulator.withhold_report("503", name="acme")
    assert not exporter.refresh()
    assert exporter.value("copilot_exporter_up", org="acme", source="reports") == 0
    assert exporter.value("copilot_exporter_errors_total", org="acme", source="reports", reason="server_error") == 1
    assert exporter.value("copilot_daily_active_users", org="acme") == good
    assert exporter.value("copilot_exporter_up", enterprise="initech", source="reports") == 1


def test_some_days_answering_5xx_and_the_rest_no_report_is_no_report(simulator, make_exporter):
    simulator.withhold_report("502", day=NEWEST, name="acme")
    simulator.withhold_report("204", name="acme")
    exporter = make_exporter(reports_config(simulator))
    assert exporter.refresh()
    assert exporter.value("copilot_exporter_up", org="acme", source="reports") == 1
    assert exporter.value("copilot_daily_active_users", org="acme") is None


@pytest.mark.parametrize(
    "body",
    [
        {"download_links": "https://example.com/a"},
        {"download_links": [1]},
        {"report_day": "2026-01-01"},
        [],
        "3",
        "<html>",
    ],
)
def test_an_answer_with_malformed_links_is_bad_data(simulator, make_exporter, body):
    simulator.add_fault("/orgs/acme/copilot/metrics/reports/organization-1-day", Fault(status=200, body=body))
    exporter = make_exporter(reports_config(simulator))
    assert not exporter.refresh()
    assert exporter.value("copilot_exporter_errors_total", org="acme", source="reports", reason="bad_payload") == 1


@pytest.mark.parametrize("shape", NO_REPORT_SHAPES)
def test_collect_exits_0_on_every_no_report_shape(simulator, tmp_path, shape):
    from test_cli import run_cli

    simulator.withhold_report(shape, day=NEWEST)
    config = tmp_path / "config.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "github": {
                    "api_url": simulator.api_url,
                    "token": "${SIM_TOKEN}",
                    "retry_backoff": "100ms",
                    "max_retries": 1,
                },
                "source": "reports",
                "organizations": [{"name": "acme", "seats": False}],
            }
        )
    )
    result = run_cli("collect", "--config", str(config), env={"SIM_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(result.stdout)
        for s in family.samples
    }
    day = midnight(NEWEST - dt.timedelta(days=1))
    assert (
        samples[("copilot_report_day_timestamp_seconds", frozenset({("org", "acme"), ("report", "organization")}))]
        == day
    )
    assert answered(simulator, "/orgs/acme/copilot/metrics/reports/organization-1-day", NEWEST) == {
        int(shape) if shape.isdigit() else 200
    }


def test_no_report_in_the_window_is_not_a_failure(simulator, make_exporter, caplog):
    simulator.missing_report_days.update(TODAY - dt.timedelta(days=back) for back in range(1, 10))
    exporter = make_exporter(reports_config(simulator))
    with caplog.at_level(logging.INFO):
        assert exporter.refresh()
    assert exporter.value("copilot_exporter_up", org="acme", source="reports") == 1
    assert exporter.value("copilot_daily_active_users", org="acme") is None
    assert any("no report in the last" in r.getMessage() for r in caplog.records)


def test_unchanged_reports_are_not_downloaded_again_but_revisions_are(simulator, make_exporter):
    # reread_interval 0s: every refresh asks for the held day again (test_steady_state.py: when)
    exporter = make_exporter(dataclasses.replace(reports_config(simulator), reread_interval=0.0))
    assert exporter.refresh()
    before = exporter.value("copilot_code_generation_activities", org="acme")
    simulator.reset_log()
    assert exporter.refresh()
    assert simulator.request_count(server="download") == 0
    assert simulator.request_count("/orgs/acme/copilot/metrics/reports/") > 0  # it did re-check
    simulator.revise("org", "acme", NEWEST)
    assert exporter.refresh()
    assert simulator.request_count(server="download") > 0
    [record] = read_report(simulator, "/orgs/acme", "organization-1-day", NEWEST)
    assert (
        exporter.value("copilot_code_generation_activities", org="acme")
        == record["code_generation_activity_count"]
        != before
    )


def test_an_expired_link_is_asked_for_again_once(simulator, make_exporter):
    exporter = make_exporter(reports_config(simulator))
    simulator.add_fault("/reports/org/acme/organization-1-day", Fault(status=403), times=1, server="download")
    assert exporter.refresh()
    calls = [
        r
        for r in simulator.requests
        if r.path == "/orgs/acme/copilot/metrics/reports/organization-1-day"
        and r.query.get("day") == NEWEST.isoformat()
    ]
    assert len(calls) == 2  # the first links were refused, fresh ones worked
    assert exporter.value("copilot_exporter_up", org="acme", source="reports") == 1


def test_links_that_keep_failing_are_a_bad_payload(simulator, make_exporter):
    # reread_interval 0s: every refresh asks for the held day again (test_steady_state.py: when)
    exporter = make_exporter(dataclasses.replace(reports_config(simulator), reread_interval=0.0))
    assert exporter.refresh()
    good = exporter.value("copilot_daily_active_users", org="acme")
    simulator.revise("org", "acme", NEWEST)  # new content, so it must download
    simulator.link_ttl = -1  # every link is born expired
    assert not exporter.refresh()
    assert exporter.value("copilot_exporter_errors_total", org="acme", source="reports", reason="bad_payload") == 1
    assert exporter.value("copilot_daily_active_users", org="acme") == good


def test_auto_falls_back_to_legacy_per_scope_on_404(simulator, make_exporter, caplog):
    simulator.add_fault("/orgs/acme/copilot/metrics/reports", Fault(status=404))
    exporter = make_exporter(reports_config(simulator, source="auto", teams=["platform"]))
    with caplog.at_level(logging.INFO):
        assert exporter.refresh()
    assert exporter.value("copilot_exporter_up", org="acme", source="legacy") == 1
    assert exporter.value("copilot_exporter_up", org="acme", team="platform", source="legacy") == 1
    assert exporter.value("copilot_exporter_up", org="acme", source="reports") is None
    assert exporter.value("copilot_report_day_timestamp_seconds", org="acme", report="metrics") is not None
    assert exporter.value("copilot_exporter_up", enterprise="initech", source="reports") == 1
    assert any("org=acme: using the legacy" in r.getMessage() for r in caplog.records)
    # when the reports API appears for the scope, it takes over and the legacy series go
    simulator.clear_faults()
    assert exporter.refresh()
    assert exporter.value("copilot_exporter_up", org="acme", source="reports") == 1
    assert exporter.value("copilot_exporter_up", org="acme", source="legacy") is None
    assert exporter.value("copilot_report_day_timestamp_seconds", org="acme", report="metrics") is None


def test_unknown_scope_is_not_found_in_reports_mode(simulator, make_exporter):
    config = exporter_config(simulator.api_url, organizations=[{"name": "nosuchorg", "seats": False}], source="reports")
    exporter = make_exporter(config)
    assert not exporter.refresh()
    assert exporter.value("copilot_exporter_errors_total", org="nosuchorg", source="reports", reason="not_found") == 1


def test_unknown_scope_in_auto_mode_says_neither_api_knows_it(simulator, make_exporter, caplog):
    config = exporter_config(simulator.api_url, organizations=[{"name": "nosuchorg", "seats": False}], source="auto")
    exporter = make_exporter(config)
    with caplog.at_level(logging.WARNING):
        assert not exporter.refresh()
    assert exporter.value("copilot_exporter_errors_total", org="nosuchorg", source="legacy", reason="not_found") == 1
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "neither the reports API nor the legacy API knows this scope" in messages
    assert "shut the legacy" not in messages


def test_a_restart_after_falling_back_to_legacy_serves_no_reports_kept_from_before(simulator, make_exporter, tmp_path):
    """The state kept the reports last served; once the scope has fallen back to legacy they are
    dropped, at once after a restart too, and not restored at the next one."""
    clock = {"today": simulator.world.today}
    config = reports_config(simulator, source="auto")
    state = tmp_path / "state"
    first = make_exporter(config, state, lambda: clock["today"])
    assert first.refresh()
    assert first.value("copilot_report_day_timestamp_seconds", org="acme", report="organization") is not None
    first.close()

    simulator.add_fault("/orgs/acme/copilot/metrics/reports", Fault(status=404))
    clock["today"] += dt.timedelta(days=config.lookback_days + 1)  # the day held is out of the window
    for _restart in range(2):
        exporter = make_exporter(config, state, lambda: clock["today"])
        exporter.refresh()
        assert exporter.value("copilot_exporter_up", org="acme", source="legacy") == 1
        assert exporter.value("copilot_report_day_timestamp_seconds", org="acme", report="organization") is None
        assert exporter.value("copilot_users_reported", org="acme") is None
        exporter.close()
