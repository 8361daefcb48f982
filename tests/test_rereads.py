"""Re-reads of the last three days, over real HTTP against the simulator: which days are asked
again and how often, a revised past day read again into the state store (an unchanged one costs
one request and downloads nothing), re-read times kept across a restart, and re-reads put off
while the request budget is low. Every count comes from the simulator's request log; time is an
argument (`today`, `now`), so hours and days pass without waiting."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt

import pytest

from copilot_exporter.github.client import Connection
from copilot_exporter.simulator import Simulator, World
from copilot_exporter.sources import seats
from copilot_exporter.sources.reports import ReportsSource
from copilot_exporter.state import StateStore
from copilot_exporter.telemetry import Telemetry
from conftest import TOKEN, exporter_config

pytestmark = pytest.mark.integration

HOUR = 3600.0
START = 1_900_000_000.0  # a Unix time; only differences matter
REPORTS = "/orgs/acme/copilot/metrics/reports/"
AGGREGATED = "organization-1-day"


@pytest.fixture
def sim():
    with Simulator(world=World.default(), token=TOKEN) as simulator:
        yield simulator


@pytest.fixture
def state(tmp_path):
    store = StateStore(tmp_path / "state")
    yield store
    store.close()


def source_for(sim, state=None, **reports):
    config = exporter_config(
        sim.api_url,
        source="reports",
        reread_interval="6h",
        fill_days_per_refresh=28,
        organizations=[
            {
                "name": "acme",
                "teams": "all",
                "repositories": True,
                "seats": True,
                **({"reports": reports} if reports else {}),
            }
        ],
    )
    return ReportsSource(config.entries[0], config, state)


class Clock:
    """The simulated hour and UTC day; `next_day` moves the simulated GitHub on a day too."""

    def __init__(self, sim):
        self.sim = sim
        self.hour = 0
        self.connection = Connection(sim.api_url, lambda: TOKEN, Telemetry())

    @property
    def today(self) -> dt.date:
        return self.sim.world.today

    def day(self, back: int) -> str:
        return (self.today - dt.timedelta(days=back)).isoformat()

    def next_day(self) -> None:
        today = self.today + dt.timedelta(days=1)
        self.sim.world = dataclasses.replace(self.sim.world, today=today)
        self.sim.missing_report_days = {today - dt.timedelta(days=1)}  # the new yesterday is not out yet

    def refresh(self, source, rereads=True, with_seats=False):
        """One refresh an hour after the last; the API requests it made (report, day), not
        counting 304s, and the number of downloads."""
        self.sim.reset_log()
        result = source.fetch(self.connection.client(), self.today, now=START + self.hour * HOUR, rereads=rereads)
        if with_seats:
            seats.fetch(self.connection.client(), source.scope)
        self.hour += 1
        asked = collections.Counter(
            (r.path.removeprefix(REPORTS), r.query.get("day"))
            for r in self.sim.requests
            if r.server == "api" and r.status != 304
        )
        return result, asked, self.sim.request_count(server="download")


def rereads_of(asked, held: str) -> list[str]:
    """The aggregated report's days asked that are not newer than the held one: re-reads."""
    return sorted(
        day for (report, day), count in asked.items() for _ in range(count) if report == AGGREGATED and day <= held
    )


def test_rereads_rotate_over_the_last_three_days_within_forty_requests_a_day(sim, state):
    clock = Clock(sim)
    source = source_for(sim, state)
    clock.refresh(source, with_seats=True)  # the first refresh, which fills the state too
    for day in range(2):
        clock.next_day()
        held = clock.day(2)
        requests_ = reread_days = downloads_after_new_day = 0
        reread: list[str] = []
        for hour in range(24):
            result, asked, downloads = clock.refresh(source, with_seats=hour % 6 == 0)
            requests_ += sum(asked.values())
            if hour:
                reread += rereads_of(asked, held)
                downloads_after_new_day += downloads
        assert result.days["organization"] == result.days["users"] == held
        # One request per due slot: every 6 hours after the new day was found, one of its last three days.
        reread_days = collections.Counter(reread)
        assert sum(reread_days.values()) == 3
        assert set(reread_days) <= {held, clock.day(3), clock.day(4)}
        assert reread_days[held] >= 1 and (clock.day(3) in reread_days or clock.day(4) in reread_days)
        assert downloads_after_new_day == 0  # nothing changed: nothing downloaded again
        assert requests_ <= 40, f"simulated day {day + 1}: {requests_} requests"
    # Over the two days, each of the three days before the held one was asked again.
    assert {day for (report, day) in source._asked_at if report == "organization"} == {
        clock.day(2),
        clock.day(3),
        clock.day(4),
    }


def test_past_days_are_asked_in_turn_d_then_the_older_then_d_then_the_other(sim, state):
    clock = Clock(sim)
    source = source_for(sim, state)
    clock.refresh(source)
    clock.next_day()
    clock.refresh(source)  # finds the new day: not a re-read
    held = clock.day(2)
    order = []
    for _hour in range(24):
        _, asked, _ = clock.refresh(source)
        order += rereads_of(asked, held)
    # Every 6 hours after: the day before it asked longest ago, the held day, the other one, the held day.
    assert order == [clock.day(4), held, clock.day(3), held]


def test_a_revised_past_day_is_read_again_into_the_state(sim, state):
    clock = Clock(sim)
    source = source_for(sim, state)
    clock.refresh(source)
    clock.next_day()
    clock.refresh(source)  # the new day, found
    revised = clock.day(4)  # the first past day asked again (asked longest ago)
    before_users = state.users_of(source.key, revised)
    before_identity = state.identity(source.key, "users", revised)
    assert before_users and before_identity
    sim.revise("org", "acme", dt.date.fromisoformat(revised))
    for _hour in range(5):
        _, asked, downloads = clock.refresh(source)
        assert downloads == 0 and (AGGREGATED, revised) not in asked  # not due yet
    result, asked, downloads = clock.refresh(source)  # 6 hours after the new day was found
    assert asked[(AGGREGATED, revised)] == 1
    assert asked[("users-1-day", revised)] == 1 and asked[("user-teams-1-day", revised)] == 1
    assert downloads > 0
    after_users = state.users_of(source.key, revised)
    assert state.identity(source.key, "users", revised) != before_identity
    assert {user.user_id for user in after_users} == {user.user_id for user in before_users}
    assert [user.activity for user in after_users] != [user.activity for user in before_users]  # counters grew
    assert result.days["team_windows"] == clock.day(2)  # the team windows, computed from the state again
    # The next re-read of that day finds it unchanged: one request, nothing downloaded.
    for _hour in range(13):
        _, asked, downloads = clock.refresh(source)
        assert downloads == 0
        assert ("users-1-day", revised) not in asked


def test_an_unchanged_past_day_costs_one_request_and_downloads_nothing(sim, state):
    clock = Clock(sim)
    source = source_for(sim, state)
    clock.refresh(source)
    clock.next_day()
    clock.refresh(source)  # finds the new day; the day held before is now the day before it
    for _hour in range(17):
        _, _, downloads = clock.refresh(source)
        assert downloads == 0
    _, asked, downloads = clock.refresh(source)  # 18 hours after: the day before the held one
    assert asked == {(AGGREGATED, clock.day(1)): 1, (AGGREGATED, clock.day(3)): 1}
    assert downloads == 0


def test_without_a_state_store_only_the_held_day_is_asked_again(sim):
    clock = Clock(sim)
    source = source_for(sim)
    clock.refresh(source)
    clock.next_day()
    clock.refresh(source)  # finds the new day: not a re-read
    held = clock.day(2)
    order = []
    for _hour in range(24):
        _, asked, _ = clock.refresh(source)
        order += rereads_of(asked, held)
    assert order == [held, held, held, held]


def test_without_the_aggregated_report_the_users_report_rotates_and_the_others_ask_their_held_day(sim, state):
    clock = Clock(sim)
    source = source_for(sim, state, aggregated=False, users=True, teams=True)
    clock.refresh(source)
    clock.next_day()
    clock.refresh(source)  # finds the new day: not a re-read
    held = clock.day(2)
    asked_again: collections.Counter = collections.Counter()
    for _hour in range(24):
        _, asked, downloads = clock.refresh(source)
        asked_again.update((report, day) for (report, day), count in asked.items() if day and day <= held)
    assert not any(report == AGGREGATED for report, _day in asked_again)
    users_days = {day for report, day in asked_again if report == "users-1-day"}
    assert held in users_days and users_days & {clock.day(3), clock.day(4)}
    assert {day for report, day in asked_again if report == "repos-1-day"} == {held}  # kept nowhere else
    assert sum(count for (report, _day), count in asked_again.items() if report == "users-1-day") == 4


def test_a_restart_with_the_same_state_does_not_ask_held_days_again_before_they_are_due(sim, tmp_path):
    clock = Clock(sim)
    first_state = StateStore(tmp_path / "state")
    clock.refresh(source_for(sim, first_state))
    clock.next_day()
    first = source_for(sim, first_state)  # a source built on the state (as after a restart)
    clock.refresh(first)  # finds the new day
    first_state.close()
    state = StateStore(tmp_path / "state")  # the restart
    try:
        source = source_for(sim, state)
        for _hour in range(5):
            _, asked, downloads = clock.refresh(source)
            assert asked == {(AGGREGATED, clock.day(1)): 1}, "a held day was asked again before it was due"
            assert downloads == 0
        _, asked, downloads = clock.refresh(source)  # 6 hours after the day was found
        assert {(report, day): n for (report, day), n in asked.items() if report == AGGREGATED} == {
            (AGGREGATED, clock.day(1)): 1,
            (AGGREGATED, clock.day(4)): 1,
        }
        assert downloads == 0
    finally:
        state.close()


def test_rereads_are_put_off_while_the_budget_is_low_and_made_once_it_is_not(sim, state):
    clock = Clock(sim)
    source = source_for(sim, state)
    clock.refresh(source)
    clock.next_day()
    clock.refresh(source)
    clock.hour += 5
    _, asked, _ = clock.refresh(source, rereads=False)  # due, but the budget is low
    assert asked == {(AGGREGATED, clock.day(1)): 1}
    deferred = source.deferred_rereads
    assert deferred >= 1
    _, asked, _ = clock.refresh(source, rereads=False)
    assert asked == {(AGGREGATED, clock.day(1)): 1} and source.deferred_rereads > deferred
    _, asked, _ = clock.refresh(source)
    assert asked[(AGGREGATED, clock.day(1))] == 1 and asked[(AGGREGATED, clock.day(4))] == 1
