"""`copilot-exporter backfill` beside a running exporter: the days its state store holds are taken
from there (read-only, without the lock), not downloaded again, and written exactly as downloaded."""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
import sys

import pytest
import yaml

from conftest import TOKEN, exporter_config

pytestmark = pytest.mark.integration

TODAY = dt.datetime.now(dt.timezone.utc).date()
ORG = {"name": "acme", "seats": False, "per_user": "hashed"}
SALT = "backfill-state-salt"
# The simulator has no report for yesterday: the exporter serves day(2) and fills the 27 days
# before it, so it holds day(2)..day(29). Backfill reads day(33)..day(4): four days it does not hold.
FIRST, LAST = 33, 4
HELD = range(LAST, 30)
REUSED = re.compile(r"; (\d+) report-days taken from the state store")


def day(back: int) -> str:
    return (TODAY - dt.timedelta(days=back)).isoformat()


def run_backfill(sim, tmp_path, name: str, state_dir, org=None, first=FIRST, last=LAST):
    """The command as a real process; (its result, the samples it wrote)."""
    config = {
        "github": {"api_url": sim.api_url, "token": "${SIM_TOKEN}", "retry_backoff": "100ms", "max_retries": 1},
        "source": "reports",
        "user_hash_salt": SALT,
        "organizations": [org or ORG],
    }
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    output = tmp_path / f"{name}.om"
    result = subprocess.run(
        [sys.executable, "-m", "copilot_exporter", "backfill", "--config", str(path), "--output", str(output)]
        + ["--state.dir", str(state_dir), "--from", day(first), "--to", day(last)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "SIM_TOKEN": TOKEN},
    )
    assert result.returncode == 0, result.stderr
    return result, sorted(line for line in output.read_text().splitlines() if not line.startswith("#"))


def downloaded_days(sim, report: str) -> list[str]:
    """The days of `report` (e.g. users-1-day) fetched from the download host, one per file part."""
    return sorted(
        request.path.split("/")[5]
        for request in sim.requests
        if request.server == "download" and request.path.split("/")[4] == report
    )


def asked_days(sim, report: str) -> set[str]:
    return {
        request.query.get("day", "")
        for request in sim.requests
        if request.server == "api" and request.path.endswith("/" + report)
    }


@pytest.fixture
def running(simulator, make_exporter, tmp_path):
    """An exporter with its state filled for 28 days (users and teams), still running: its state
    directory."""
    state_dir = tmp_path / "state"
    config = exporter_config(
        simulator.api_url, source="reports", organizations=[ORG], fill_days_per_refresh=28, user_hash_salt=SALT
    )
    exporter = make_exporter(config, state_dir=state_dir)
    assert exporter.refresh()
    scope = str(config.entries[0].scope)
    held = set(exporter.state.days_held(scope, "users")) & set(exporter.state.days_held(scope, "user_teams"))
    assert {day(back) for back in range(2, 30)} <= held
    return state_dir


def test_backfill_beside_a_running_exporter_downloads_only_the_days_its_state_lacks(simulator, running, tmp_path):
    simulator.reset_log()
    reused, written = run_backfill(simulator, tmp_path, "reused", running)
    lacking = [day(back) for back in range(FIRST, 29, -1)]
    for report in ("users-1-day", "user-teams-1-day"):
        assert asked_days(simulator, report) - {day(1), day(2)} == set(lacking)  # 1, 2: finding the live day
        assert sorted(set(downloaded_days(simulator, report))) == sorted(lacking)
    assert int(REUSED.search(reused.stderr).group(1)) == 2 * len(HELD)  # users and user-teams of each day
    reused_downloads = simulator.request_count(server="download")

    simulator.reset_log()
    _result, fresh = run_backfill(simulator, tmp_path, "fresh", tmp_path / "empty-state")
    assert written == fresh  # sample for sample, per-user and team series included
    assert any(line.startswith("copilot_per_user_") for line in written)
    assert any('team="platform"' in line for line in written)
    assert set(downloaded_days(simulator, "users-1-day")) == {day(back) for back in range(LAST, FIRST + 1)}
    assert simulator.request_count(server="download") > reused_downloads
    assert not (tmp_path / "empty-state").exists()  # a missing store is only read, never created


@pytest.mark.parametrize(
    "changed",
    [{"teams": ["platform"]}, {"per_user": True}, {"per_user": False}],
    ids=["teams-filter", "per-user-login", "per-user-off"],
)
def test_days_kept_under_other_mapping_settings_are_downloaded(simulator, running, tmp_path, changed):
    simulator.reset_log()
    result, _written = run_backfill(simulator, tmp_path, "changed", running, org={**ORG, **changed}, first=6)
    for report in ("users-1-day", "user-teams-1-day"):
        assert set(downloaded_days(simulator, report)) == {day(back) for back in range(LAST, 7)}
    assert int(REUSED.search(result.stderr).group(1)) == 0


def test_a_corrupt_state_database_is_warned_about_and_left_as_it_is(simulator, tmp_path):
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    database = state_dir / "state.sqlite3"
    database.write_bytes(b"not a database\n" * 100)
    simulator.reset_log()
    result, written = run_backfill(simulator, tmp_path, "corrupt", state_dir, first=6)
    assert "state.sqlite3 cannot be read" in result.stderr
    assert set(downloaded_days(simulator, "users-1-day")) == {day(back) for back in range(LAST, 7)}
    assert written
    assert database.read_bytes() == b"not a database\n" * 100
    assert sorted(os.listdir(state_dir)) == ["state.sqlite3"]
