"""The 28-day aggregated report and the shapes of report files, over real HTTP against the simulator."""

from __future__ import annotations

import datetime as dt
import gzip
import json

import pytest
import requests

from copilot_exporter.config import parse_config
from copilot_exporter.errors import PayloadError
from copilot_exporter.github.client import Connection
from copilot_exporter.simulator import Fault
from copilot_exporter.sources.reports import ReportsSource, as_wrapper
from copilot_exporter.telemetry import Telemetry
from conftest import TOKEN, read_report
from test_reports_integration import NEWEST, TODAY, midnight, reports_config

pytestmark = pytest.mark.integration


LATEST = "/orgs/acme/copilot/metrics/reports/organization-28-day/latest"


def read_latest(sim, base: str, endpoint: str) -> dict:
    """The one wrapper record of a 28-day report, read independently of the exporter."""
    answer = requests.get(
        f"{sim.api_url}{base}/copilot/metrics/reports/{endpoint}/latest",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    assert answer.status_code == 200
    records = []
    for link in answer.json()["download_links"]:
        body = requests.get(link, timeout=10).content
        records += [
            json.loads(line)
            for line in (gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body).splitlines()
            if line.strip()
        ]
    [wrapper] = records
    return wrapper


@pytest.mark.parametrize(
    "scope,base,endpoint,label",
    [
        ({"org": "acme"}, "/orgs/acme", "organization-28-day", "organization_28_day"),
        ({"enterprise": "initech"}, "/enterprises/initech", "enterprise-28-day", "enterprise_28_day"),
    ],
)
def test_feature_engagement_comes_from_the_28_day_report(simulator, make_exporter, scope, base, endpoint, label):
    exporter = make_exporter(reports_config(simulator))
    assert exporter.refresh()
    wrapper = read_latest(simulator, base, endpoint)
    days = [entry["day"] for entry in wrapper["day_totals"]]
    assert days != sorted(days)  # as GitHub's: in no particular order
    engagement = wrapper["copilot_feature_engagement"]
    assert exporter.value("copilot_engaged_users_28d", **scope) == engagement["active_user_count"] > 0
    for entry in engagement["totals_by_feature"]:
        assert (
            exporter.value("copilot_engaged_users_28d_by_feature", **scope, feature=entry["feature"])
            == entry["engaged_user_count"]
        )
    end = dt.date.fromisoformat(wrapper["report_end_day"])
    assert exporter.value("copilot_report_day_timestamp_seconds", **scope, report=label) == midnight(end)
    # the daily values still come from the 1-day report of the newest day
    [record] = read_report(simulator, base, endpoint.replace("28", "1"), NEWEST)
    assert exporter.value("copilot_daily_active_users", **scope) == record["daily_active_users"]


def test_pr_medians_are_absent_on_days_without_merges(simulator):
    wrapper = read_latest(simulator, "/enterprises/initech", "enterprise-28-day")
    for entry in wrapper["day_totals"]:
        prs = entry["pull_requests"]
        assert ("median_minutes_to_merge" in prs) == (prs["total_merged"] > 0)


def source_and_client(simulator):
    config = parse_config(
        {
            "github": {"api_url": simulator.api_url, "token": TOKEN, "max_retries": 0},
            "source": "reports",
            "lookback_days": 10,  # days after TODAY find its reports
            "organizations": [{"name": "acme", "reports": {"users": False, "teams": False}}],
        },
        {},
    )
    return ReportsSource(config.entries[0], config), Connection(simulator.api_url, lambda: TOKEN, Telemetry()).client()


def names(result) -> set[str]:
    return {family.name for family in result.families}


def test_read_at_most_once_per_utc_day_and_downloaded_only_when_changed(simulator):
    source, client = source_and_client(simulator)
    latest_calls = lambda: simulator.request_count(LATEST)  # noqa: E731
    downloads = lambda: simulator.request_count("/reports/org/acme/organization-28-day/", server="download")  # noqa: E731
    first = source.fetch(client, TODAY)
    assert "copilot_engaged_users_28d" in names(first) and first.days["organization_28_day"]
    assert (latest_calls(), downloads()) == (1, 1)
    again = source.fetch(client, TODAY)  # the same UTC day: not asked again, still served
    assert (latest_calls(), downloads()) == (1, 1)
    assert "copilot_engaged_users_28d" in names(again)
    source.fetch(client, TODAY + dt.timedelta(days=1))  # a new UTC day: asked, files unchanged
    assert (latest_calls(), downloads()) == (2, 1)
    simulator.revise("org", "acme", NEWEST)  # new content, new paths: downloaded
    source.fetch(client, TODAY + dt.timedelta(days=2))
    assert (latest_calls(), downloads()) == (3, 2)


@pytest.mark.parametrize("shape", ["204", "message", "null", "no_links", "404", "503"])
def test_no_28_day_report_is_no_data_not_a_failure(simulator, make_exporter, shape):
    simulator.withhold_report(shape, report="organization-28-day")
    exporter = make_exporter(reports_config(simulator))
    assert exporter.refresh()
    assert exporter.value("copilot_exporter_up", org="acme", source="reports") == 1
    assert exporter.value("copilot_engaged_users_28d", org="acme") is None
    assert exporter.value("copilot_report_day_timestamp_seconds", org="acme", report="organization_28_day") is None
    assert exporter.value("copilot_report_day_timestamp_seconds", org="acme", report="organization") == midnight(NEWEST)
    assert exporter.value("copilot_engaged_users_28d", enterprise="initech") is not None


def test_a_1_day_link_answering_with_a_wrapper_gives_the_asked_days_entry(simulator, make_exporter):
    wrapper = read_latest(simulator, "/orgs/acme", "organization-28-day")
    newest = next(entry for entry in wrapper["day_totals"] if entry["day"] == NEWEST.isoformat())
    assert wrapper["day_totals"][-1] is not newest  # not simply the last one
    simulator.add_fault(
        "/reports/org/acme/organization-1-day/", Fault(status=200, body=json.dumps(wrapper) + "\n"), server="download"
    )
    exporter = make_exporter(reports_config(simulator))
    assert exporter.refresh()
    for metric, field in (
        ("copilot_daily_active_users", "daily_active_users"),
        ("copilot_code_generation_activities", "code_generation_activity_count"),
    ):
        assert exporter.value(metric, org="acme") == newest[field]
    assert exporter.value("copilot_report_day_timestamp_seconds", org="acme", report="organization") == midnight(NEWEST)


def test_a_28_day_link_answering_with_a_flat_record_is_read_as_a_wrapper(simulator):
    [record] = read_report(simulator, "/orgs/acme", "organization-1-day", NEWEST)
    simulator.add_fault(
        "/reports/org/acme/organization-28-day/", Fault(status=200, body=json.dumps(record)), server="download"
    )
    source, client = source_and_client(simulator)
    result = source.fetch(client, TODAY)
    assert result.days["organization_28_day"] == NEWEST.isoformat()
    assert "copilot_engaged_users_28d" not in names(result)  # a daily record has no engagement


def test_as_wrapper_keeps_wrappers_wraps_flat_records_and_refuses_bad_day_totals():
    flat = {"day": "2026-11-20", "organization_id": "7", "daily_active_users": 3}
    assert as_wrapper(flat, "r") == {
        "report_start_day": "2026-11-20",
        "report_end_day": "2026-11-20",
        "organization_id": "7",
        "day_totals": [flat],
    }
    wrapper = {"report_end_day": "2026-11-20", "day_totals": [flat]}
    assert as_wrapper(wrapper, "r") is wrapper
    for bad in ({"day_totals": None}, {"day_totals": [1]}, {"day_totals": {"day": "x"}}):
        with pytest.raises(PayloadError, match="r: day_totals"):
            as_wrapper(bad, "r")
