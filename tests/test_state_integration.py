"""The state store in the running exporter, over real HTTP against the simulator: rolling team
windows and distinct users across organizations over a month of simulated days, equal to
brute-force counts from the simulator's world; restarts, a corrupt database, a second process."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from copilot_exporter.simulator import Fault, Simulator, World
from copilot_exporter.simulator.world import OrgSpec, Scope
from copilot_exporter.state import StateStore
from conftest import TOKEN, exporter_config

pytestmark = pytest.mark.integration

TODAY = dt.datetime.now(dt.timezone.utc).date()
ORGS = ("acme", "globex")
WINDOWS = {"copilot_weekly_active_users": 7, "copilot_monthly_active_users": 28}
ORG_WINDOWS = {"daily": 1, "weekly": 7, "monthly": 28}


def churning_world() -> World:
    """Two organizations sharing some people, whose members move between teams every day."""
    return World(
        seed=13,
        today=TODAY,
        team_churn=0.15,
        organizations=(
            OrgSpec("acme", users=60, teams=("platform", "web", "data")),
            OrgSpec("globex", users=40, teams=("mobile", "infra")),
        ),
    )


@pytest.fixture
def sim():
    with Simulator(world=churning_world(), token=TOKEN) as simulator:
        yield simulator


def config(sim, **top_level):
    return exporter_config(
        sim.api_url, source="reports", organizations=[{"name": name, "seats": False} for name in ORGS], **top_level
    )


def days_ending(end: dt.date, days: int) -> list[dt.date]:
    return [end - dt.timedelta(days=back) for back in range(days)]


def active(world: World, org: str, day: dt.date) -> set[int]:
    """The user ids of an organization's users report of `day`, from the world itself."""
    return {
        world.user_id(index) for index in world.members(Scope("org", org)) if world.activity(index, day) is not None
    }


def brute_force_teams(world: World, org: str, end: dt.date, days: int) -> dict[tuple[str, str], int]:
    """(slug, team_id) -> distinct members active on a day they were in the team, over the window."""
    counts = {}
    for slug in world.org(org).teams:
        team = Scope("org", org, slug)
        members = {
            world.user_id(index)
            for day in days_ending(end, days)
            for index in world.members(Scope("org", org))
            if world.in_team_on(team, index, day) and world.activity(index, day) is not None
        }
        counts[(slug, str(world.team_id(team)))] = len(members)
    return counts


def team_values(samples, name: str, org: str) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["team"], dict(labels)["team_id"]): value
        for (metric, labels), value in samples.items()
        if metric == name and dict(labels).get("org") == org and "team" in dict(labels)
    }


def org_values(samples) -> dict[str, float]:
    return {
        dict(labels)["window"]: value
        for (metric, labels), value in samples.items()
        if metric == "copilot_organizations_active_users"
    }


def test_team_windows_and_distinct_users_across_organizations_over_a_month(sim, make_exporter, tmp_path):
    world = sim.world
    assert all(len(world.members(Scope("org", org, slug))) >= 5 for org in ORGS for slug in world.org(org).teams)
    clock = {"today": TODAY - dt.timedelta(days=36)}
    exporter = make_exporter(config(sim, fill_days_per_refresh=7), tmp_path / "state", lambda: clock["today"])

    # First start: 27 past days to fill, 7 per refresh. Weekly windows fill with the first refresh.
    assert exporter.refresh()
    samples = exporter.samples()
    assert team_values(samples, "copilot_weekly_active_users", "acme")
    assert not team_values(samples, "copilot_monthly_active_users", "acme")
    assert set(org_values(samples)) == {"daily", "weekly"}
    page = requests.get(exporter.url + "/", timeout=5).text
    assert "state: 8 of the 28 days" in page
    for _ in range(3):
        assert exporter.refresh()
    assert "state: 28 of the 28 days" in requests.get(exporter.url + "/", timeout=5).text

    for step in range(30):  # a month of days, each one refreshed once
        clock["today"] = TODAY - dt.timedelta(days=36 - step)
        if step:
            assert exporter.refresh()
        end = clock["today"] - dt.timedelta(days=1)  # the newest day of the simulated GitHub
        samples = exporter.samples()
        for org in ORGS:
            for name, days in WINDOWS.items():
                assert team_values(samples, name, org) == brute_force_teams(world, org, end, days), (org, name, end)
        expected = {
            window: len(set().union(*(active(world, org, day) for org in ORGS for day in days_ending(end, days))))
            for window, days in ORG_WINDOWS.items()
        }
        assert org_values(samples) == expected, end
    # The windows count people, not person-days: a sum of daily counts would be larger.
    assert expected["monthly"] < sum(len(active(world, org, day)) for org in ORGS for day in days_ending(end, 28))


def test_a_new_day_downloads_only_that_day(sim, make_exporter, tmp_path):
    clock = {"today": TODAY - dt.timedelta(days=10)}
    exporter = make_exporter(config(sim, fill_days_per_refresh=28), tmp_path / "state", lambda: clock["today"])
    assert exporter.refresh()
    first = {entry.path for entry in sim.requests if entry.server == "download"}
    sim.reset_log()
    assert exporter.refresh()
    assert sim.request_count(server="download") == 0
    clock["today"] += dt.timedelta(days=1)
    assert exporter.refresh()
    new_day = {entry.path for entry in sim.requests if entry.server == "download"}
    assert new_day and not new_day & first  # the new day's files only, no file held downloaded again


def expected_org_values(world: World, end: dt.date) -> dict[str, int]:
    return {
        window: len(set().union(*(active(world, org, day) for org in ORGS for day in days_ending(end, days))))
        for window, days in ORG_WINDOWS.items()
    }


def test_distinct_users_across_organizations_are_counted_again_only_when_a_users_day_changed(
    sim, make_exporter, tmp_path, monkeypatch
):
    counted: list[tuple[str, int]] = []
    count = StateStore.distinct_users

    def counting(self, scopes, end_day, days):
        counted.append((end_day, days))
        return count(self, scopes, end_day, days)

    monkeypatch.setattr(StateStore, "distinct_users", counting)
    clock = {"today": TODAY - dt.timedelta(days=10)}
    exporter = make_exporter(config(sim, fill_days_per_refresh=28), tmp_path / "state", lambda: clock["today"])
    assert exporter.refresh()
    end = clock["today"] - dt.timedelta(days=1)
    assert org_values(exporter.samples()) == expected_org_values(sim.world, end)
    assert counted

    counted.clear()  # nothing new: both organizations refresh, the counts stand as they are
    assert exporter.refresh()
    assert counted == []
    assert org_values(exporter.samples()) == expected_org_values(sim.world, end)

    clock["today"] += dt.timedelta(days=1)  # a new day: counted again, over the new windows
    assert exporter.refresh()
    end += dt.timedelta(days=1)
    assert {day for day, _days in counted} == {end.isoformat()}
    assert org_values(exporter.samples()) == expected_org_values(sim.world, end)


# Real exporter processes ---------------------------------------------------------------------


class ExporterProcess:
    """`copilot-exporter serve` in its own process on a free port, with a given state_dir."""

    def __init__(self, tmp_path, sim, state_dir, name="exporter", **top_level):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        data = {
            "github": {"api_url": sim.api_url, "token": TOKEN, "read_timeout": "30s", "max_retries": 0},
            "source": "reports",
            "refresh_interval": "1h",
            "fill_days_per_refresh": 28,
            "organizations": [{"name": name, "seats": False} for name in ORGS],
            "server": {"listen_address": f"127.0.0.1:{port}"},
            **top_level,
        }
        path = tmp_path / f"{name}.yaml"
        path.write_text(json.dumps(data))  # JSON is YAML
        self.log = tmp_path / f"{name}.log"
        env = {k: v for k, v in os.environ.items() if k != "COPILOT_EXPORTER_STATE_DIR"}
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "copilot_exporter",
                    "serve",
                    "--config",
                    str(path),
                    "--state.dir",
                    str(state_dir),
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )

    def serving(self) -> bool:
        assert self.process.poll() is None, self.log.read_text()[-2000:]
        try:
            return requests.get(self.url + "/healthz", timeout=2).status_code == 200
        except OSError:
            return False

    def samples(self) -> dict:
        text = requests.get(self.url + "/metrics", timeout=5).text
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    def refreshed(self) -> bool:
        """Whether every organization's reports refresh has ended once (success or failure)."""
        samples = self.samples()
        return all(
            ("copilot_exporter_refresh_duration_seconds", frozenset({"org": org, "source": "reports"}.items()))
            in samples
            for org in ORGS
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(10)


def wait_for(check, seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    pytest.fail(message)


@pytest.fixture
def processes():
    started = []
    yield started
    for process in started:
        if process.process.poll() is None:
            process.process.kill()
            process.process.wait(10)


def test_a_restart_serves_before_its_first_refresh_and_downloads_nothing_again(sim, tmp_path, processes):
    state = tmp_path / "state"
    first = ExporterProcess(tmp_path, sim, state, "first")
    processes.append(first)
    wait_for(first.serving, 30, "the first exporter did not start")
    wait_for(first.refreshed, 60, "the first exporter did not refresh")
    before = first.samples()
    monthly = team_values(before, "copilot_monthly_active_users", "acme")
    assert monthly and org_values(before)["monthly"] > 0
    first.stop()

    sim.reset_log()
    sim.add_fault("/orgs/", Fault(status=200, delay=4))  # every API answer late: the first refresh is slow
    second = ExporterProcess(tmp_path, sim, state, "second")
    processes.append(second)
    wait_for(second.serving, 30, "the second exporter did not start")
    served = second.samples()
    assert not second.refreshed()  # still in its first refresh ...
    assert team_values(served, "copilot_monthly_active_users", "acme") == monthly  # ... and serving already
    assert org_values(served) == org_values(before)
    assert (
        served[("copilot_users_reported", frozenset({"org": "acme"}.items()))]
        == before[("copilot_users_reported", frozenset({"org": "acme"}.items()))]
    )
    wait_for(second.refreshed, 120, "the second exporter did not refresh")
    assert second.samples()[("copilot_exporter_up", frozenset({"org": "acme", "source": "reports"}.items()))] == 1
    assert sim.request_count(server="api") > 0  # it did ask GitHub ...
    assert sim.request_count(server="download") == 0  # ... and downloaded nothing it held
    assert team_values(second.samples(), "copilot_monthly_active_users", "acme") == monthly
    second.stop()


def test_a_corrupt_database_is_survived_by_a_real_process(sim, tmp_path, processes):
    state = tmp_path / "state"
    state.mkdir()
    (state / "state.sqlite3").write_bytes(b"\x00garbage, not SQLite" * 500)
    exporter = ExporterProcess(tmp_path, sim, state)
    processes.append(exporter)
    wait_for(exporter.serving, 30, "the exporter did not start on a corrupt database")
    wait_for(exporter.refreshed, 60, "the exporter did not refresh")
    samples = exporter.samples()
    assert samples[("copilot_exporter_up", frozenset({"org": "acme", "source": "reports"}.items()))] == 1
    assert team_values(samples, "copilot_monthly_active_users", "acme")
    assert "moved aside" in exporter.log.read_text()
    assert [path.name for path in state.iterdir() if ".corrupt-" in path.name]


def test_a_second_process_on_the_same_state_dir_exits_2_with_one_line(sim, tmp_path, processes):
    state = tmp_path / "state"
    first = ExporterProcess(tmp_path, sim, state, "first")
    processes.append(first)
    wait_for(first.serving, 30, "the first exporter did not start")
    second = ExporterProcess(tmp_path, sim, state, "second")
    processes.append(second)
    assert second.process.wait(30) == 2
    lines = second.log.read_text().strip().splitlines()
    assert len(lines) == 1 and "in use by another copilot-exporter process" in lines[0], lines
    assert first.process.poll() is None and first.serving()  # the first one goes on


def test_a_restart_after_only_the_user_teams_report_changed_reads_that_day_again(sim, tmp_path, processes):
    """The users report held is unchanged but the day's user-teams report (and its totals) have
    new files: the restarted exporter downloads those and, for the join, that day's users report
    (its members are not restored), nothing else; the team series stay equal to the brute-force
    counts."""
    state = tmp_path / "state"
    first = ExporterProcess(tmp_path, sim, state, "first")
    processes.append(first)
    wait_for(first.serving, 30, "the first exporter did not start")
    wait_for(first.refreshed, 60, "the first exporter did not refresh")
    before = first.samples()
    first.stop()
    users_day = before[("copilot_report_day_timestamp_seconds", frozenset({"org": "acme", "report": "users"}.items()))]
    newest = dt.datetime.fromtimestamp(users_day, dt.timezone.utc).date()

    sim.revise("org", "acme", newest, report="user-teams-1-day")
    sim.revise("org", "acme", newest, report="organization-1-day")  # what makes the others be asked again
    sim.reset_log()
    # Re-reads due at every refresh, refreshes every 5 s: the rotation comes to the held day
    # within a few refreshes (a restart asks nothing before it is due).
    second = ExporterProcess(tmp_path, sim, state, "second", refresh_interval="5s", reread_interval="0s")
    processes.append(second)
    wait_for(second.serving, 30, "the second exporter did not start")

    def downloaded() -> list[str]:
        return [entry.path for entry in sim.requests if entry.server == "download"]

    def files(report: str) -> set[str]:
        return {path.rsplit("/", 1)[0] for path in downloaded() if f"/{report}/" in path}  # without the part

    wait_for(lambda: len({path.split("/")[4] for path in downloaded()}) >= 3, 60, "the changed day was not read")
    # Once more: the users report read for the join is kept, not downloaded for each change.
    sim.revise("org", "acme", newest, report="user-teams-1-day")
    sim.revise("org", "acme", newest, report="organization-1-day")
    wait_for(lambda: len(files("user-teams-1-day")) == 2, 60, "the second change was not read")
    time.sleep(11)  # two more refreshes: nothing more is downloaded
    after = second.samples()
    second.stop()
    downloads = downloaded()
    assert len(files("users-1-day")) == 1 and len(files("organization-1-day")) == 2
    assert {tuple(path.split("/")[2:6]) for path in downloads} == {
        ("org", "acme", report, newest.isoformat())
        for report in ("organization-1-day", "user-teams-1-day", "users-1-day")
    }, downloads
    assert len(downloads) == len(set(downloads))  # each file once
    assert after[("copilot_exporter_up", frozenset({"org": "acme", "source": "reports"}.items()))] == 1
    for name, days in WINDOWS.items():
        assert team_values(after, name, "acme") == {
            key: float(count) for key, count in brute_force_teams(sim.world, "acme", newest, days).items()
        }
    daily = {key: value for key, value in team_values(after, "copilot_daily_active_users", "acme").items()}
    assert daily == team_values(before, "copilot_daily_active_users", "acme")  # the same rows, joined again
