"""The reports source in steady state asks only what can be new, over real HTTP against the
simulator; every count comes from the simulator's request log. Time is an argument (`today`,
`now`), so an hour or a day passes without waiting."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt

import pytest

from copilot_exporter.github.client import Connection
from copilot_exporter.simulator import Simulator, World
from copilot_exporter.sources.reports import ReportsSource
from copilot_exporter.telemetry import Telemetry
from conftest import TOKEN, exporter_config

pytestmark = pytest.mark.integration

HOUR = 3600.0
START = 1_900_000_000.0  # a Unix time; only differences matter
REPORTS = "/orgs/acme/copilot/metrics/reports/"
ONE_DAY = ("organization", "users", "user_teams", "repos")  # keys of Result.days


@pytest.fixture
def sim():
    with Simulator(world=World.default(), token=TOKEN) as simulator:
        yield simulator


def source_for(sim, **settings):
    config = exporter_config(
        sim.api_url,
        source="reports",
        organizations=[{"name": "acme", "teams": "all", "repositories": True, "seats": False}],
        **settings,
    )
    return ReportsSource(config.entries[0], config)


def refresh(sim, source, now, today=None):
    """One refresh; the API requests it made by endpoint (with the day asked), and its downloads."""
    sim.reset_log()
    client = Connection(sim.api_url, lambda: TOKEN, Telemetry()).client()
    result = source.fetch(client, today or sim.world.today, now=now)
    asked = collections.Counter(
        (r.path.removeprefix(REPORTS), r.query.get("day")) for r in sim.requests if r.server == "api"
    )
    return result, asked, sim.request_count(server="download")


def day(sim, back):
    return (sim.world.today - dt.timedelta(days=back)).isoformat()


def test_first_refresh_walks_back_then_steady_state_asks_one_day_of_one_report(sim):
    source = source_for(sim)
    first, asked, downloads = refresh(sim, source, START)
    assert first.days["organization"] == first.days["users"] == first.days["repos"] == day(sim, 2)
    assert asked[("organization-1-day", day(sim, 1))] == 1 and asked[("organization-1-day", day(sim, 2))] == 1
    assert downloads > 0
    for hour in range(1, 6):
        result, asked, downloads = refresh(sim, source, START + hour * HOUR)
        assert asked == {("organization-1-day", day(sim, 1)): 1}  # yesterday, of the aggregated report only
        assert downloads == 0
        assert result.days == first.days and result.families == first.families


def test_a_newly_published_day_is_exported_at_the_next_refresh(sim):
    source = source_for(sim)
    refresh(sim, source, START)
    sim.missing_report_days.clear()  # yesterday's reports are out
    result, asked, downloads = refresh(sim, source, START + HOUR)
    assert {result.days[report] for report in ONE_DAY} == {day(sim, 1)}
    assert set(asked) == {
        (report, day(sim, 1)) for report in ("organization-1-day", "users-1-day", "user-teams-1-day", "repos-1-day")
    }
    assert sum(asked.values()) == 4 and downloads > 0
    # Yesterday held: nothing can be new before the next UTC day.
    result, asked, downloads = refresh(sim, source, START + 2 * HOUR)
    assert sum(asked.values()) == downloads == 0
    assert {result.days[report] for report in ONE_DAY} == {day(sim, 1)}


def test_the_next_day_is_asked_for_once_a_new_utc_day_begins(sim):
    source = source_for(sim)
    refresh(sim, source, START)
    sim.world = dataclasses.replace(sim.world, today=sim.world.today + dt.timedelta(days=1))
    sim.missing_report_days = {sim.world.today - dt.timedelta(days=1)}
    result, asked, _ = refresh(sim, source, START + HOUR)
    assert ("organization-1-day", day(sim, 1)) in asked  # the new yesterday: not there yet
    assert ("organization-1-day", day(sim, 2)) in asked  # the day after the held one: found
    assert {result.days[report] for report in ONE_DAY} == {day(sim, 2)}


def test_held_days_are_asked_again_after_the_reread_interval_and_a_revision_is_downloaded(sim):
    source = source_for(sim, reread_interval="6h")
    first, _, _ = refresh(sim, source, START)
    _, asked, _ = refresh(sim, source, START + 5 * HOUR)
    assert sum(asked.values()) == 1  # not due yet
    result, asked, downloads = refresh(sim, source, START + 6 * HOUR)
    held = day(sim, 2)
    # The aggregated report's held day, unchanged: the others count as unchanged too.
    assert asked == {("organization-1-day", day(sim, 1)): 1, ("organization-1-day", held): 1}
    assert downloads == 0 and result.families == first.families  # unchanged: not downloaded again
    sim.revise("org", "acme", sim.world.today - dt.timedelta(days=2))
    _, _, downloads = refresh(sim, source, START + 7 * HOUR)
    assert downloads == 0  # the revision is seen at the next re-read, not before
    result, asked, downloads = refresh(sim, source, START + 12 * HOUR)
    assert {
        (report, held) for report in ("organization-1-day", "users-1-day", "user-teams-1-day", "repos-1-day")
    } <= set(asked)  # it changed: every report asked
    assert downloads > 0 and result.families != first.families


def test_without_the_aggregated_report_each_held_day_is_asked_again_itself(sim):
    config = exporter_config(
        sim.api_url,
        source="reports",
        reread_interval="6h",
        organizations=[
            {
                "name": "acme",
                "teams": "all",
                "repositories": True,
                "seats": False,
                "reports": {"aggregated": False, "users": True, "teams": True},
            }
        ],
    )
    source = ReportsSource(config.entries[0], config)
    refresh(sim, source, START)
    _, asked, downloads = refresh(sim, source, START + 6 * HOUR)
    assert {(report, day(sim, 2)) for report in ("users-1-day", "user-teams-1-day", "repos-1-day")} <= set(asked)
    assert downloads == 0


def test_with_the_aggregated_report_off_each_report_asks_its_next_day(sim):
    config = exporter_config(
        sim.api_url,
        source="reports",
        organizations=[
            {
                "name": "acme",
                "teams": "all",
                "repositories": True,
                "seats": False,
                "reports": {"aggregated": False, "users": True, "teams": True},
            }
        ],
    )
    source = ReportsSource(config.entries[0], config)
    refresh(sim, source, START)
    _, asked, downloads = refresh(sim, source, START + HOUR)
    assert asked == {("users-1-day", day(sim, 1)): 1, ("repos-1-day", day(sim, 1)): 1}
    assert downloads == 0


def test_a_next_day_answering_5xx_is_not_out_yet_and_the_held_day_stays_served(sim):
    source = source_for(sim)
    first, _, _ = refresh(sim, source, START)
    sim.withhold_report("503", day=sim.world.today - dt.timedelta(days=1), name="acme")
    result, asked, _ = refresh(sim, source, START + HOUR)
    assert result.days == first.days and result.families == first.families
    assert asked[("organization-1-day", day(sim, 1))] >= 1


def test_the_reread_interval_is_read_from_the_config(sim):
    assert source_for(sim).reread_interval == 6 * HOUR
    assert source_for(sim, reread_interval="30m").reread_interval == 1800
