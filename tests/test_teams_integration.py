"""Team series from the reports API over real HTTP against the simulator: identity, selection,
and a configured team the report does not list."""

from __future__ import annotations

import datetime as dt
import logging

import requests
import pytest

from conftest import exporter_config, read_report

pytestmark = pytest.mark.integration


NEWEST = dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=2)  # the simulator's newest day


def config(simulator, teams):
    return exporter_config(
        simulator.api_url, source="reports", organizations=[{"name": "acme", "teams": teams, "seats": False}]
    )


def team_labels(exporter) -> set[tuple[str, str]]:
    return {
        (dict(labels)["team"], dict(labels)["team_id"])
        for name, labels in exporter.samples()
        if name == "copilot_daily_active_users" and "team" in dict(labels)
    }


def test_teams_all_exports_every_team_of_the_report_by_its_team_id(simulator, make_exporter):
    exporter = make_exporter(config(simulator, "all"))
    assert exporter.refresh()
    rows = read_report(simulator, "/orgs/acme", "user-teams-1-day", NEWEST)
    assert team_labels(exporter) == {(row["slug"], str(row["team_id"])) for row in rows}
    assert len(team_labels(exporter)) >= 2


def test_a_configured_team_missing_from_the_report_is_logged_once_and_shown_on_the_status_page(
    simulator, make_exporter, caplog
):
    exporter = make_exporter(config(simulator, ["platform", "no-such-team"]))
    with caplog.at_level(logging.INFO, logger="copilot_exporter"):
        assert exporter.refresh()
        assert exporter.refresh()
    warnings = [record.getMessage() for record in caplog.records if "'no-such-team'" in record.getMessage()]
    assert len(warnings) == 1, warnings
    assert {slug for slug, _team_id in team_labels(exporter)} == {"platform"}
    page = requests.get(exporter.url + "/", timeout=5).text
    assert "no-such-team" in page and "platform&#x27;" not in page
