"""End to end: a real Prometheus scrapes the exporter, which reads the simulator, and evaluates the
bundled rules; every query of every dashboard panel and variable must answer with data."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from copilot_exporter.simulator import Simulator, World
from conftest import TOKEN, RunningExporter, exporter_config
from dashboards_util import (
    ALERTS,
    DASHBOARD_DIR,
    RULES,
    annotation_windows,
    dashboard_paths,
    dashboard_queries,
    load_dashboard,
    metric_names,
    recorded_names,
    trend_annotation,
    variable_queries,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Prometheus:
    """A Prometheus server on loopback, scraping one target every second."""

    def __init__(self, workdir: Path, target: str):
        binary = shutil.which("prometheus")
        assert binary, "prometheus is required (Debian package prometheus); scripts/test installs it"
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(RULES), str(ALERTS)],
            "scrape_configs": [{"job_name": "copilot-exporter", "static_configs": [{"targets": [target]}]}],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.url = f"http://127.0.0.1:{free_port()}"
        self.process = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'data'}",
                f"--web.listen-address={self.url.removeprefix('http://')}",
            ],
            stdout=subprocess.DEVNULL,
            stderr=open(workdir / "prometheus.log", "w"),
        )

    def query(self, expr: str) -> dict:
        response = requests.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10)
        return response.json()

    def wait_until(self, expr: str, timeout: float = 30) -> list:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                result = self.query(expr)
                if result.get("status") == "success" and result["data"]["result"]:
                    return result["data"]["result"]
            except requests.ConnectionError:
                pass
            time.sleep(0.5)
        raise AssertionError(f"no result for {expr} within {timeout}s")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=20)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """Simulator -> exporter -> Prometheus. The exporter has a legacy-only org, report orgs with
    teams, an enterprise, seats, billing with seat prices, and an org GitHub does not know (so errors
    are counted)."""
    world = World.default()
    with Simulator(world=world, token=TOKEN) as simulator:
        config = exporter_config(
            simulator.api_url,
            source="auto",
            refresh_interval="1h",
            seat_prices={
                "business": {"amount": 19, "currency": "USD"},
                "enterprise": {"amount": 36, "currency": "EUR"},
            },
            organizations=[
                {"name": org.name, "teams": list(org.teams), "repositories": True, "billing": True}
                for org in world.organizations
            ]
            + [{"name": "ghost-org", "seats": False}],
            enterprises=[{"name": ent.name, "teams": list(ent.teams), "billing": True} for ent in world.enterprises],
        )
        exporter = RunningExporter(config)
        assert not exporter.refresh()  # ghost-org fails; every other scope succeeds
        assert (
            exporter.value("copilot_exporter_errors_total", org="ghost-org", source="legacy", reason="not_found") == 1
        )
        prometheus = Prometheus(tmp_path_factory.mktemp("prometheus"), exporter.url.removeprefix("http://"))
        try:
            prometheus.wait_until('up{job="copilot-exporter"} == 1')
            prometheus.wait_until("count_over_time(copilot_exporter_build_info[1m]) >= 3")
            yield exporter, prometheus
        finally:
            prometheus.stop()
            exporter.close()


def test_the_stack_covers_both_apis_seats_and_billing(stack):
    exporter, prometheus = stack
    sources = {row["metric"]["source"] for row in prometheus.wait_until("copilot_exporter_up == 1")}
    assert sources == {"legacy", "reports", "seats", "billing"}
    down = prometheus.wait_until("copilot_exporter_up == 0")
    assert [row["metric"]["org"] for row in down] == ["ghost-org"]
    assert prometheus.wait_until('copilot_daily_active_users{org="hooli"}')  # legacy API
    assert prometheus.wait_until('copilot_daily_active_users{org="acme",team!=""}')  # reports teams


def all_queries() -> list[tuple[str, str, str]]:
    return [
        (path.name, title, expr)
        for path in dashboard_paths()
        for title, expr in dashboard_queries(path) + variable_queries(path)
    ]


def test_there_are_six_dashboards_with_queries():
    assert len(dashboard_paths()) >= 6 and len(all_queries()) > 50


def test_every_dashboard_query_answers_with_data(stack):
    _exporter, prometheus = stack
    failures = []
    deadline = time.monotonic() + 30  # recording rules need a few evaluations after the first scrapes
    for dashboard, title, expr in all_queries():
        while True:
            answer = prometheus.query(expr)
            if answer.get("status") != "success":
                failures.append(f"{dashboard} / {title}: {expr}: {answer.get('error')}")
                break
            if answer["data"]["result"]:
                break
            if time.monotonic() > deadline:
                failures.append(f"{dashboard} / {title}: {expr}: empty result")
                break
            time.sleep(0.5)
    assert not failures, "\n".join(failures)


def test_team_variable_lists_the_teams_of_the_selected_organizations_and_enterprises(stack):
    _exporter, prometheus = stack
    teams_dashboard = DASHBOARD_DIR / "copilot-teams.json"

    def offered(**values) -> set[str]:
        (query,) = [expr for name, expr in variable_queries(teams_dashboard, values) if name == "team"]
        answer = prometheus.query(query)
        assert answer["status"] == "success", answer
        return {row["metric"]["team"] for row in answer["data"]["result"]}

    def teams_of(selector: str) -> set[str]:
        rows = prometheus.wait_until(f'count by (team) (copilot_daily_active_users{{{selector},team!=""}})')
        return {row["metric"]["team"] for row in rows}

    acme, globex, initech = teams_of('org="acme"'), teams_of('org="globex"'), teams_of('enterprise="initech"')
    assert acme and globex and initech and not acme & globex
    assert offered(org="acme", enterprise="initech") == acme | initech
    assert offered(org="globex", enterprise="no-such-enterprise") == globex
    assert offered(org="(acme|globex)", enterprise="no-such-enterprise") == acme | globex
    assert offered(job="no-such-job") == set()
    assert offered() >= acme | globex | initech


def test_trend_annotations_mark_each_change_as_one_region(stack):
    """Grafana turns consecutive points of one series into one region: each change answers one
    series, with points from the first to the last hour of its window and nowhere else."""
    _exporter, prometheus = stack
    expr = trend_annotation(load_dashboard(DASHBOARD_DIR / "copilot-adoption.json"))["target"]["expr"]
    windows = annotation_windows(expr)
    assert windows
    for day, start, end in windows:
        answer = requests.get(
            f"{prometheus.url}/api/v1/query_range",
            timeout=10,
            params={"query": expr, "start": start - 6 * 3600, "end": end + 6 * 3600, "step": "3600"},
        ).json()
        assert answer["status"] == "success", answer
        (series,) = answer["data"]["result"]
        assert series["metric"]["day"] == day and series["metric"]["change"]
        times = [int(t) for t, _value in series["values"]]
        assert times == list(range(start, end, 3600)), day


def test_every_metric_a_dashboard_reads_is_exposed_or_recorded(stack):
    exporter, _prometheus = stack
    exposed = {name.removesuffix("_total") for name, _labels in exporter.samples()}
    exposed |= {name for name, _labels in exporter.samples()}
    exposed |= {"up", "scrape_duration_seconds", "scrape_samples_scraped"}
    known = exposed | recorded_names()
    unknown = {
        (dashboard, name)
        for dashboard, _title, expr in all_queries()
        for name in metric_names(expr)
        if name not in known
    }
    assert not unknown, sorted(unknown)


def test_rules_evaluate_without_errors(stack):
    _exporter, prometheus = stack

    def rule_groups() -> list:
        return requests.get(f"{prometheus.url}/api/v1/rules", timeout=10).json()["data"]["groups"]

    def evaluated(groups: list) -> bool:  # a rule not evaluated yet has health "unknown": it proves nothing
        return bool(groups) and all(rule.get("health") != "unknown" for group in groups for rule in group["rules"])

    deadline = time.monotonic() + 60
    while not evaluated(groups := rule_groups()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert evaluated(groups), "every rule is evaluated within a minute at a 1 s evaluation interval"
    broken = [
        (rule["name"], rule.get("lastError"))
        for group in groups
        for rule in group["rules"]
        if rule.get("health") == "err"
    ]
    assert not broken, broken


def test_cost_rules_keep_currencies_apart_and_follow_the_exporter(stack):
    exporter, prometheus = stack
    rows = prometheus.wait_until('copilot:licence_spend:sum{enterprise="initech"}')
    spend = {row["metric"]["currency"]: float(row["value"][1]) for row in rows}
    seats = {
        plan: exporter.value("copilot_seats_by_plan", enterprise="initech", plan=plan)
        for plan in ("business", "enterprise")
    }
    assert spend == {"USD": seats["business"] * 19, "EUR": seats["enterprise"] * 36}  # never one sum
    [net] = prometheus.wait_until('copilot:billing_net_usd:sum{org="umbrella"}')
    exported = sum(
        value
        for (name, labels), value in exporter.samples().items()
        if name == "copilot_billing_amount_usd" and ("org", "umbrella") in labels and ("kind", "net") in labels
    )
    assert exported > 0 and float(net["value"][1]) == pytest.approx(exported)
