"""The request budget: each credential spends at most request_budget_share of GitHub's hourly
limit, and the least urgent work gives way first. Real HTTP against the simulator, whose
rate-limit headers say a low limit; requests are counted in the simulator's log."""

from __future__ import annotations

import time

import pytest
import requests

from copilot_exporter.config import AppAuth, Credentials
from copilot_exporter.model import ORG, Scope
from copilot_exporter.refresher import credential_label
from copilot_exporter.simulator import Simulator, World
from conftest import TOKEN, exporter_config

pytestmark = pytest.mark.integration


@pytest.fixture
def sim():
    with Simulator(world=World.default(), token=TOKEN) as simulator:
        yield simulator


def config_for(sim, organizations=("acme", "globex", "umbrella"), **settings):
    return exporter_config(
        sim.api_url,
        source="reports",
        organizations=[{"name": name, "teams": "all", "repositories": True, "seats": True} for name in organizations],
        enterprises=[{"name": "initech", "seats": False}],
        github={"max_rate_limit_wait": "0s"},
        **settings,
    )


def counted(sim) -> int:
    """API requests that count against GitHub's primary limit (a 304 does not)."""
    return sum(1 for r in sim.requests if r.server == "api" and r.status not in (0, 304))


def test_a_refresh_never_spends_more_than_its_share_of_a_low_limit(sim, make_exporter):
    sim.set_rate_limit(40, 3600, limit=40)  # share 0.5: 20 requests an hour
    exporter = make_exporter(config_for(sim, workers=4))
    sim.reset_log()
    assert not exporter.refresh()  # a first refresh of these scopes needs more than 20
    assert counted(sim) == 20
    assert exporter.value("copilot_exporter_github_requests_per_hour", credential="token") == 20
    assert exporter.value("copilot_exporter_github_request_allowance_per_hour", credential="token") == 20
    failed = sum(
        value
        for (name, labels), value in exporter.samples().items()
        if name == "copilot_exporter_errors_total" and ("reason", "rate_limited") in labels
    )
    assert failed >= 1  # the jobs past the share failed as rate_limited, keeping their last good data


def test_the_share_is_a_setting(sim, make_exporter):
    sim.set_rate_limit(40, 3600, limit=40)
    exporter = make_exporter(config_for(sim, organizations=("acme",), request_budget_share=0.25))
    sim.reset_log()
    exporter.refresh()
    assert counted(sim) == 10
    assert exporter.value("copilot_exporter_github_request_allowance_per_hour", credential="token") == 10


def test_with_a_large_limit_nothing_waits_and_every_request_is_counted(sim, make_exporter):
    exporter = make_exporter(config_for(sim))
    sim.reset_log()
    assert exporter.refresh()
    assert exporter.value("copilot_exporter_github_requests_per_hour", credential="token") == counted(sim)
    assert exporter.value("copilot_exporter_github_request_allowance_per_hour", credential="token") == 2500


def test_when_the_budget_runs_low_seats_and_rereads_are_put_off_before_the_probes(sim, make_exporter):
    sim.set_rate_limit(30, 3600, limit=30)  # share 0.5: 15 an hour
    exporter = make_exporter(
        exporter_config(
            sim.api_url,
            source="reports",
            reread_interval="0s",
            organizations=[{"name": "acme", "teams": [], "seats": True}],
        )
    )
    refresher = exporter.refresher
    assert refresher.run_once()  # a first refresh leaves fewer of the 15 than 1 probe + 10
    [data] = [job for job in refresher.jobs if job.kind == "data"]
    [seats] = [job for job in refresher.jobs if job.kind == "seats"]
    now = time.time()
    assert refresher._defer(seats, now)
    assert seats.next_run > now
    sim.reset_log()
    assert refresher._run(data)  # the held day is due again (0s), but the budget keeps it for probes
    asked = {(r.path.rsplit("/", 1)[-1], r.query.get("day")) for r in sim.requests if r.server == "api"}
    yesterday = sim.world.today.toordinal() - 1
    assert asked == {("organization-1-day", sim.world.today.fromordinal(yesterday).isoformat())}
    assert exporter.value("copilot_exporter_deferred_jobs_total", source="seats") == 1
    assert exporter.value("copilot_exporter_deferred_jobs_total", source="reports") >= 1
    page = requests.get(exporter.url + "/", timeout=5).text
    assert "Request budget" in page and "put off as the request budget ran low: reports" in page


def test_with_budget_to_spare_nothing_is_put_off(sim, make_exporter):
    exporter = make_exporter(config_for(sim, organizations=("acme",)))
    refresher = exporter.refresher
    assert refresher.run_once()
    [seats] = [job for job in refresher.jobs if job.kind == "seats"]
    assert not refresher._defer(seats, time.time())
    assert exporter.value("copilot_exporter_deferred_jobs_total", source="seats") is None


@pytest.mark.parametrize(
    "credentials,scope,label",
    [
        (Credentials(token="secret-value"), None, "token"),
        (Credentials(token="secret-value", token_file="/run/secrets/github-token"), None, "token_file:github-token"),
        (Credentials(app=AppAuth("123", "/run/secrets/secret-key.pem", 7)), None, "app:123"),
        (Credentials(app=AppAuth("123", "/run/secrets/secret-key.pem", None)), Scope(ORG, "acme"), "app:123:acme"),
    ],
)
def test_credential_labels_reveal_no_secret(credentials, scope, label):
    assert credential_label(credentials, scope) == label
    assert "secret" not in label
