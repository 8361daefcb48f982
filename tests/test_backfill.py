"""`copilot-exporter backfill`, end to end: the command run as a real process against the simulator,
its file imported by promtool, the blocks served by a real Prometheus and read back over its API."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import requests
import yaml

from conftest import TOKEN, read_report

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


NOW = dt.datetime.now(dt.timezone.utc)
TODAY = NOW.date()
DAY = 86400
PROGRESS = re.compile(r"backfill: (\d+)/(\d+) days")


def day(back: int) -> dt.date:
    return TODAY - dt.timedelta(days=back)


def midnight(date: dt.date) -> int:
    return int(dt.datetime.combine(date, dt.time(), dt.timezone.utc).timestamp())


def binary(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is required on PATH (Debian package prometheus); scripts/test installs it"
    return path


# The command -------------------------------------------------------------------------------
def write_config(tmp_path, api_url: str, organizations, enterprises=(), source="auto") -> str:
    config = {
        "github": {"api_url": api_url, "token": "${SIM_TOKEN}", "retry_backoff": "100ms", "max_retries": 1},
        "source": source,
        "organizations": list(organizations),
        "enterprises": list(enterprises),
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def command(config: str, output, *args: str) -> list[str]:
    return [sys.executable, "-m", "copilot_exporter", "backfill", "--config", config, "--output", str(output), *args]


def backfill(config: str, output, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command(config, output, *args),
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "SIM_TOKEN": TOKEN},
    )
    assert TOKEN not in result.stdout + result.stderr
    return result


def create_blocks(openmetrics, blocks) -> None:
    check = subprocess.run(
        [
            binary("promtool"),
            "tsdb",
            "create-blocks-from",
            "openmetrics",
            "--max-block-duration=486h",
            str(openmetrics),
            str(blocks),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert check.returncode == 0, check.stdout + check.stderr


def samples(path) -> list[tuple[str, float, int]]:
    """(series, value, timestamp) of every sample line of an OpenMetrics file."""
    rows = []
    for line in open(path, encoding="utf-8"):
        if not line.startswith("#"):
            series, value, timestamp = line.rsplit(" ", 2)
            rows.append((series, float(value), int(timestamp)))
    return rows


# Prometheus --------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Prometheus:
    """A real Prometheus on loopback over a storage directory, optionally scraping one target
    (`target="self"`: itself), with optional extra settings (`extra`) and flags."""

    def __init__(self, storage, workdir, target: str | None = None, extra: dict | None = None, flags=()):
        self.url = f"http://127.0.0.1:{free_port()}"
        target = self.url[7:] if target == "self" else target
        scrape = (
            [
                {
                    "job_name": "copilot-exporter",
                    "scrape_interval": "1s",
                    "scrape_timeout": "1s",
                    "static_configs": [{"targets": [target]}],
                }
            ]
            if target
            else []
        )
        config = workdir / "prometheus.yml"
        config.write_text(
            yaml.safe_dump({"global": {"scrape_interval": "1s"}, "scrape_configs": scrape, **(extra or {})})
        )
        self.log = open(workdir / "prometheus.log", "w")
        self.process = subprocess.Popen(
            [
                binary("prometheus"),
                f"--config.file={config}",
                f"--storage.tsdb.path={storage}",
                "--storage.tsdb.retention.time=3650d",
                f"--web.listen-address={self.url[7:]}",
                *flags,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                if requests.get(self.url + "/-/ready", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert self.process.poll() is None, open(workdir / "prometheus.log").read()
            assert time.monotonic() < deadline, "prometheus did not become ready"
            time.sleep(0.2)

    def _get(self, path: str, **params) -> list:
        answer = requests.get(self.url + path, params=params, timeout=10).json()
        assert answer["status"] == "success", answer
        return answer["data"]["result"]

    def value(self, expr: str, at: float) -> float | None:
        result = self._get("/api/v1/query", query=expr, time=at)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def series(self, expr: str, start: float, end: float, step: int) -> list[tuple[float, float]]:
        result = self._get("/api/v1/query_range", query=expr, start=start, end=end, step=step)
        assert len(result) <= 1, result
        return [(float(t), float(v)) for t, v in result[0]["values"]] if result else []

    def close(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


# What the simulated GitHub serves, read independently of the exporter -----------------------
def legacy_days(sim, path: str) -> dict[dt.date, dict]:
    since = day(28).isoformat()
    url, days = f"{sim.api_url}{path}?since={since}T00:00:00Z&per_page=100", []
    while url:
        answer = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        days += answer.json()
        url = answer.links.get("next", {}).get("url")
    return {dt.date.fromisoformat(record["date"]): record for record in days}


def aligned(earliest: float, end: float, step: int) -> float:
    """The first start at or after `earliest` from which a range query with `step` ends at `end`."""
    return end - ((end - earliest) // step) * step


def listed_missing(stderr: str, scope: str) -> set[dt.date]:
    """The days the final listing gives for a scope: `  org=x (reports API): a, b..c`."""
    line = next((line for line in stderr.splitlines() if line.startswith(f"  {scope} (")), None)
    if line is None:
        return set()
    days: set[dt.date] = set()
    for part in line.split(": ", 1)[1].split(", "):
        first, _, last = part.partition("..")
        start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last or first)
        days |= {start + dt.timedelta(days=n) for n in range((end - start).days + 1)}
    return days


# One backfill of 30 days for a reports org, an enterprise and a legacy-only org ------------
@pytest.fixture(scope="module")
def history(tmp_path_factory):
    from copilot_exporter.simulator import Simulator, World

    tmp = tmp_path_factory.mktemp("history")
    with Simulator(world=World.default(), token=TOKEN) as sim:
        sim.missing_report_days.add(day(12))
        config = write_config(
            tmp,
            sim.api_url,
            enterprises=[{"name": "initech", "seats": False}],
            organizations=[
                {"name": "acme", "teams": ["platform"], "seats": False},
                {"name": "hooli", "teams": ["search"]},  # no reports API: auto falls back to the legacy API
            ],
        )
        output = tmp / "history.om"
        started = time.time()
        result = backfill(config, output, "--from", day(32).isoformat())
        finished = time.time()
        assert result.returncode == 0, result.stderr
        create_blocks(output, tmp / "blocks")
        prometheus = Prometheus(tmp / "blocks", tmp)
        try:
            yield SimpleNamespace(
                sim=sim, stderr=result.stderr, output=output, prometheus=prometheus, started=started, finished=finished
            )
        finally:
            prometheus.close()


def test_values_read_back_from_prometheus_are_what_github_served_for_each_day(history):
    sim, prometheus = history.sim, history.prometheus
    for date in (day(3), day(20), day(32)):
        at = midnight(date) + 2 * DAY + 12 * 3600
        for labels, base, aggregated in (
            ('org="acme"', "/orgs/acme", "organization-1-day"),
            ('enterprise="initech"', "/enterprises/initech", "enterprise-1-day"),
        ):
            [record] = read_report(sim, base, aggregated, date)
            users = read_report(sim, base, "users-1-day", date)
            scope = f'{labels},team=""'
            assert prometheus.value(f"copilot_daily_active_users{{{scope}}}", at) == record["daily_active_users"]
            assert prometheus.value(f"copilot_lines_added{{{scope}}}", at) == record["loc_added_sum"]
            assert prometheus.value(f"copilot_users_reported{{{scope}}}", at) == len(users)
            report = aggregated.removesuffix("-1-day")
            day_seconds = f'copilot_report_day_timestamp_seconds{{{labels},report="{report}"}}'
            assert prometheus.value(day_seconds, at) == midnight(date)
        users = {u["user_id"]: u for u in read_report(sim, "/orgs/acme", "users-1-day", date)}
        members = {
            row["user_id"]
            for row in read_report(sim, "/orgs/acme", "user-teams-1-day", date)
            if row["slug"] == "platform"
        }
        assert prometheus.value('copilot_daily_active_users{org="acme",team="platform"}', at) == len(
            [m for m in members if m in users]
        )

    # Legacy: the API keeps 28 days; check its newest backfilled day and an older one.
    reported = legacy_days(sim, "/orgs/hooli/copilot/metrics")
    team = legacy_days(sim, "/orgs/hooli/team/search/copilot/metrics")
    live = max(reported)
    written = [d for d in reported if d < live and midnight(d) + 2 * DAY < history.started - 3 * 3600]
    for date in (max(written), min(written)):
        at = midnight(date) + 2 * DAY  # the first sample of the day
        assert (
            prometheus.value('copilot_daily_active_users{org="hooli",team=""}', at)
            == reported[date]["total_active_users"]
        )
        assert prometheus.value(
            'copilot_report_day_timestamp_seconds{org="hooli",team="",report="metrics"}', at
        ) == midnight(date)
        if date in team:
            assert (
                prometheus.value('copilot_daily_engaged_users{org="hooli",team="search"}', at)
                == team[date]["total_engaged_users"]
            )


def test_a_day_is_shown_from_two_days_after_it_for_one_day(history):
    sim, prometheus = history.sim, history.prometheus
    date, following = day(20), day(19)
    [record] = read_report(sim, "/orgs/acme", "organization-1-day", date)
    [after] = read_report(sim, "/orgs/acme", "organization-1-day", following)
    [before] = read_report(sim, "/orgs/acme", "organization-1-day", day(21))
    start = midnight(date) + 2 * DAY
    query = 'copilot_daily_active_users{org="acme",team=""}'
    assert prometheus.value(query, start - 3600) == before["daily_active_users"]  # the day before's last sample
    assert prometheus.value(query, start) == record["daily_active_users"]
    assert prometheus.value(query, start + DAY - 3600) == record["daily_active_users"]  # the last hourly sample
    assert prometheus.value(query, start + DAY) == after["daily_active_users"]
    # One sample per hour: the day's 24 samples and no more.
    count = prometheus.value(f"count_over_time({query}[1d])", start + DAY - 1)
    assert count == 24


def test_days_without_a_report_are_listed_and_have_no_samples(history):
    stderr, prometheus = history.stderr, history.prometheus
    assert "days without a report" in stderr
    assert listed_missing(stderr, "org=acme") == {day(12)}
    assert listed_missing(stderr, "enterprise=initech") == {day(12)}
    for path, scope in (
        ("/orgs/hooli/copilot/metrics", "org=hooli"),
        ("/orgs/hooli/team/search/copilot/metrics", "org=hooli,team=search"),
    ):
        reported = legacy_days(history.sim, path)
        window = {
            d
            for d in map(day, range(1, 29))  # the backfilled legacy days
            if d < max(reported) and midnight(d) + 2 * DAY < history.started - 3 * 3600
        }
        assert listed_missing(stderr, scope) == window - set(reported)
    gap = midnight(day(12)) + 2 * DAY
    assert prometheus.series('copilot_daily_active_users{org="acme",team=""}', gap, gap + DAY - 1, 600) == []
    assert "seats have no history" in stderr and "org=hooli" in stderr.split("seats have no history")[1].splitlines()[0]
    assert "the legacy API keeps the last 28 days" in stderr


def test_the_file_is_openmetrics_with_each_family_once_and_series_in_time_order(history):
    families, finished, previous, last, newest = [], set(), None, 0, 0
    with open(history.output, encoding="utf-8") as file:
        for line in file:
            if line.startswith("# TYPE "):
                families.append(line.split()[2])
                continue
            if line.startswith("#"):
                continue
            series, _, timestamp = line.rsplit(" ", 2)
            if series != previous:
                assert series not in finished, f"{series} comes back after another series"
                finished.add(previous)
                previous, last = series, 0
            assert int(timestamp) > last, f"{series}: samples out of time order"
            last = int(timestamp)
            newest = max(newest, last)
    assert line == "# EOF\n"
    assert len(families) == len(set(families)) and families == sorted(families)
    assert newest < history.finished - 3 * 3600


def test_no_sample_is_written_in_the_last_three_hours(simulator, tmp_path):
    simulator.missing_report_days.clear()  # yesterday's report is there too
    config = write_config(
        tmp_path, simulator.api_url, [{"name": "acme", "seats": False, "reports": {"users": False, "teams": False}}]
    )
    output = tmp_path / "recent.om"
    started = time.time()
    result = backfill(config, output, "--from", day(4).isoformat(), "--to", day(1).isoformat())
    finished = time.time()
    assert result.returncode == 0, result.stderr
    assert "3 hours" in result.stderr
    timestamps = [t for _, _, t in samples(output)]
    assert max(timestamps) < finished - 3 * 3600  # clamped before Prometheus's head block...
    assert max(timestamps) >= started - 3 * 3600 - 3600  # ...but written right up to it
    days = {v for series, v, _ in samples(output) if series.startswith("copilot_report_day_timestamp_seconds")}
    assert midnight(day(1)) not in days  # its values would be shown tomorrow: not written at all
    assert midnight(day(4)) in days


def test_an_interrupted_backfill_resumes_without_asking_again_for_finished_days(simulator, tmp_path):
    from copilot_exporter.simulator import Fault

    config = write_config(
        tmp_path, simulator.api_url, [{"name": "acme", "seats": False, "reports": {"teams": False}}], source="reports"
    )
    output = tmp_path / "resume.om"
    simulator.add_fault("/orgs/acme/copilot/metrics/reports/", Fault(status=200, delay=0.05))  # normal, but slow
    process = subprocess.Popen(
        command(config, output, "--from", day(32).isoformat()),
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "SIM_TOKEN": TOKEN},
    )
    try:
        for line in process.stderr:
            progress = PROGRESS.search(line)
            if progress and int(progress.group(1)) >= 2:
                break
        process.kill()
    finally:
        process.wait(timeout=10)
        process.stderr.close()
    assert not output.exists()
    finished = set()
    for line in open(f"{output}.state"):
        try:
            finished.add(json.loads(line)["unit"].rsplit(" ", 1)[1])
        except ValueError:
            pass  # a line cut short by the kill
    assert 2 <= len(finished) < 30

    simulator.clear_faults()
    simulator.reset_log()
    result = backfill(config, output, "--from", day(32).isoformat())
    assert result.returncode == 0, result.stderr
    assert f"resuming: {len(finished)} already done" in result.stderr
    asked = {r.query.get("day") for r in simulator.requests if "/copilot/metrics/reports/" in r.path}
    assert not finished & asked  # no finished day is asked for again
    expected = {(day(32) + dt.timedelta(days=n)).isoformat() for n in range(30)}
    assert expected - finished <= asked
    assert not os.path.exists(f"{output}.state") and not os.path.exists(f"{output}.parts")

    # Same content as one uninterrupted run (up to the 3-hour cut, which moves with the clock).
    again = backfill(config, tmp_path / "whole.om", "--from", day(32).isoformat())
    assert again.returncode == 0, again.stderr
    limit = time.time() - 4 * 3600
    resumed = [row for row in samples(output) if row[2] < limit]
    assert resumed and resumed == [row for row in samples(tmp_path / "whole.om") if row[2] < limit]


def test_history_and_live_scrapes_join_into_one_series_without_gap_or_repeat(simulator, make_exporter, tmp_path):
    from conftest import exporter_config

    organizations = [
        {"name": "acme", "seats": False, "reports": {"users": False, "teams": False}},
        {"name": "hooli", "seats": False},
    ]
    exporter = make_exporter(exporter_config(simulator.api_url, organizations, source="auto"))
    instance = exporter.url.removeprefix("http://")
    # History carries the labels Prometheus gives the scraped series: one series, not two.
    config = write_config(tmp_path, simulator.api_url, organizations)
    result = backfill(
        config,
        tmp_path / "seam.om",
        "--from",
        day(6).isoformat(),
        "--label",
        "job=copilot-exporter",
        "--label",
        f"instance={instance}",
    )
    assert result.returncode == 0, result.stderr
    create_blocks(tmp_path / "seam.om", tmp_path / "blocks")

    assert exporter.refresh()
    prometheus = Prometheus(tmp_path / "blocks", tmp_path, target=instance)
    try:
        live_day = day(2)  # the simulator has no report for yesterday yet
        deadline = time.monotonic() + 20
        while prometheus.value(
            'copilot_report_day_timestamp_seconds{org="acme",report="organization"}', time.time()
        ) != midnight(live_day):
            assert time.monotonic() < deadline, "no live scrape"
            time.sleep(0.3)
        first_scrape = time.time() - 1.5
        time.sleep(2)
        end = time.time()

        # Dashboard-style: the daily gauge read as last_over_time(...[1d]), over a range ending now.
        step = 300
        start = aligned(midnight(day(4)) + 2 * DAY, end, step)
        shown = 'last_over_time(copilot_report_day_timestamp_seconds{org="acme",report="organization"}[1d])'
        days = prometheus.series(shown, start, end, step)
        active = prometheus.series(
            'last_over_time(copilot_daily_active_users{org="acme",team=""}[1d])', start, end, step
        )
        points = round((end - start) / step) + 1
        assert len(days) == len(active) == points  # no gap
        sequence = [v for _, v in days]
        assert sequence == sorted(sequence)  # never back to an earlier day: no day twice
        assert [midnight(d) for d in (day(4), day(3), live_day)] == sorted(set(sequence))  # no day skipped
        assert all(v == midnight(live_day) for t, v in days if t >= first_scrape + 2)  # live from the first scrape
        assert all(v < midnight(live_day) for t, v in days if t < first_scrape - 1)  # history before it
        expected = {
            midnight(d): read_report(simulator, "/orgs/acme", "organization-1-day", d)[0]["daily_active_users"]
            for d in (day(4), day(3), live_day)
        }
        assert [v for _, v in active] == [expected[v] for v in sequence]

        # The legacy-only org: history ends with the reported day before the one served live.
        reported = legacy_days(simulator, "/orgs/hooli/copilot/metrics")
        live = max(reported)
        previous = max(d for d in reported if d < live)
        if midnight(previous) + 2 * DAY >= end - 3 * 3600:
            return  # shortly after midnight UTC: that day is not written yet (its first sample would be recent)
        start = aligned(midnight(previous) + 2 * DAY, end, step)
        shown = 'last_over_time(copilot_report_day_timestamp_seconds{org="hooli",report="metrics"}[1d])'
        days = prometheus.series(shown, start, end, step)
        sequence = [v for _, v in days]
        assert sequence == sorted(sequence) and sequence[-1] == midnight(live)
        assert set(sequence) == {midnight(previous), midnight(live)}
        if (live - previous).days == 1:
            assert len(sequence) == round((end - start) / step) + 1  # no gap
    finally:
        prometheus.close()


def test_the_28_day_report_stands_in_for_the_1_day_aggregated_reports_of_its_window(simulator, tmp_path):
    from copilot_exporter.simulator import Fault

    config = write_config(
        tmp_path,
        simulator.api_url,
        [{"name": "acme", "seats": False, "reports": {"users": False, "teams": False}}],
        source="reports",
    )
    window = requests.get(
        f"{simulator.api_url}/orgs/acme/copilot/metrics/reports/organization-28-day/latest",
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    ).json()
    written = {day(n).isoformat() for n in range(3, 41)}  # --from day(40); the live day is day(2)
    covered = {d for d in written if window["report_start_day"] <= d <= window["report_end_day"]}
    assert len(covered) >= 20 and written - covered

    def asked(endpoint: str) -> list[str | None]:
        return [r.query.get("day") for r in simulator.requests if r.path.endswith(endpoint)]

    simulator.reset_log()
    result = backfill(config, tmp_path / "window.om", "--from", day(40).isoformat())
    assert result.returncode == 0, result.stderr
    assert len(asked("organization-28-day/latest")) == 1
    assert not covered & set(asked("organization-1-day"))  # not one 1-day request for a day it holds
    assert written - covered <= set(asked("organization-1-day"))  # older days: day by day
    assert f"the aggregated values of {len(covered)} days come from the 28-day report" in result.stderr

    # The same samples as a run that cannot read it and reads every day's 1-day report.
    simulator.add_fault("/orgs/acme/copilot/metrics/reports/organization-28-day", Fault(status=500))
    simulator.reset_log()
    daily = backfill(config, tmp_path / "daily.om", "--from", day(40).isoformat())
    assert daily.returncode == 0, daily.stderr
    assert "come from the 28-day report" not in daily.stderr
    assert covered <= set(asked("organization-1-day"))
    limit = time.time() - 4 * 3600  # the 3-hour cut moves with the clock
    from_window = [row for row in samples(tmp_path / "window.om") if row[2] < limit]
    assert from_window and from_window == [row for row in samples(tmp_path / "daily.om") if row[2] < limit]


def test_a_broken_28_day_report_is_said_and_the_days_are_read_one_by_one(simulator, tmp_path):
    from copilot_exporter.simulator import Fault

    config = write_config(
        tmp_path,
        simulator.api_url,
        [{"name": "acme", "seats": False, "reports": {"users": False, "teams": False}}],
        source="reports",
    )
    simulator.add_fault("/orgs/acme/copilot/metrics/reports/organization-28-day", Fault(kind="malformed"))
    simulator.reset_log()
    result = backfill(config, tmp_path / "broken.om", "--from", day(6).isoformat())
    assert result.returncode == 0, result.stderr
    assert "the 28-day report could not be read" in result.stderr
    asked = {r.query.get("day") for r in simulator.requests if r.path.endswith("organization-1-day")}
    assert {day(n).isoformat() for n in range(3, 7)} <= asked
