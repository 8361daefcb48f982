"""The exporter on the legacy Copilot Metrics API, over real HTTP against the simulator."""

from __future__ import annotations

import datetime as dt
import gzip
import logging
import time

import pytest
import requests

from copilot_exporter.simulator import Fault, Simulator, World
from conftest import TOKEN, exporter_config

pytestmark = pytest.mark.integration


ACME_TEAM = "platform"


def legacy_config(sim, **overrides):
    return exporter_config(
        sim.api_url,
        organizations=[{"name": "acme", "teams": [ACME_TEAM], "seats": False}, {"name": "tiny", "seats": False}],
        enterprises=[{"name": "initech", "teams": ["core"], "seats": False}],
        **overrides,
    )


def newest_day(sim, path: str) -> dict:
    """What the simulator serves for a scope, read directly: the independent expectation."""
    since = (dt.datetime.now(dt.timezone.utc).date() - dt.timedelta(days=3)).isoformat()
    url, days = sim.api_url + path + f"?since={since}T00:00:00Z&per_page=100", []
    while url:
        response = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        days += response.json()
        url = response.links.get("next", {}).get("url")
    return max(days, key=lambda day: day["date"])


def day_seconds(day: str) -> float:
    return dt.datetime.fromisoformat(day).replace(tzinfo=dt.timezone.utc).timestamp()


def test_org_team_and_enterprise_scopes_export_the_newest_day(simulator, make_exporter):
    exporter = make_exporter(legacy_config(simulator))
    assert exporter.refresh()
    for labels, path in (
        ({"org": "acme"}, "/orgs/acme/copilot/metrics"),
        ({"org": "acme", "team": ACME_TEAM}, f"/orgs/acme/team/{ACME_TEAM}/copilot/metrics"),
        ({"enterprise": "initech"}, "/enterprises/initech/copilot/metrics"),
    ):
        day = newest_day(simulator, path)
        assert exporter.value("copilot_daily_active_users", **labels) == day["total_active_users"]
        assert exporter.value("copilot_daily_engaged_users", **labels) == day["total_engaged_users"]
        assert exporter.value("copilot_report_day_timestamp_seconds", **labels, report="metrics") == day_seconds(
            day["date"]
        )
        suggestions = sum(
            language["total_code_suggestions"]
            for editor in day["copilot_ide_code_completions"]["editors"]
            for model in editor["models"]
            for language in model["languages"]
        )
        exported = sum(
            value
            for (name, labelset), value in exporter.samples().items()
            if name == "copilot_ide_code_suggestions"
            and set(labels.items()) <= labelset
            and ("team" in labels or not any(k == "team" for k, _ in labelset))
        )
        assert exported == suggestions
        assert exporter.value("copilot_exporter_up", **labels, source="legacy") == 1


def test_scope_with_fewer_than_five_licences_has_no_series_but_is_up(simulator, make_exporter, caplog):
    exporter = make_exporter(legacy_config(simulator))
    with caplog.at_level(logging.INFO):
        assert exporter.refresh()
    samples = exporter.samples()
    assert not [key for key in samples if ("org", "tiny") in key[1] and not key[0].startswith("copilot_exporter_")]
    assert exporter.value("copilot_exporter_up", org="tiny", source="legacy") == 1
    assert any(
        "org=tiny source=legacy" in record.getMessage() and "five or more" in record.getMessage()
        for record in caplog.records
    )


def test_small_pages_are_followed_to_the_end():
    with Simulator(world=World.default(), token=TOKEN, max_per_page=1) as sim:
        config = exporter_config(sim.api_url, organizations=[{"name": "acme", "seats": False}])
        from conftest import RunningExporter

        exporter = RunningExporter(config)
        try:
            assert exporter.refresh()
            pages = sim.request_count("/orgs/acme/copilot/metrics")
            day = newest_day(sim, "/orgs/acme/copilot/metrics")
            assert pages >= 2  # one day per page, several days in the window
            assert exporter.value("copilot_daily_active_users", org="acme") == day["total_active_users"]
        finally:
            exporter.close()


def test_unchanged_answers_are_reused_with_etags(simulator, make_exporter):
    exporter = make_exporter(legacy_config(simulator))
    assert exporter.refresh()
    before = exporter.samples()
    simulator.reset_log()
    assert exporter.refresh()
    acme = [r for r in simulator.requests if r.path == "/orgs/acme/copilot/metrics"]
    assert acme and all(r.status == 304 and r.headers.get("If-None-Match") for r in acme)
    after = exporter.samples()

    def data(samples):
        return {k: v for k, v in samples.items() if not k[0].startswith(("copilot_exporter_", "process_"))}

    assert data(after) == data(before)


FAULTS = {
    "forbidden": Fault(status=403),
    "not_found": Fault(status=404),
    "disabled": Fault(status=422),
    "server_error": Fault(status=500),
    "timeout": Fault(delay=3.0),
    "bad_payload": Fault(kind="malformed"),
}


@pytest.mark.parametrize("reason", FAULTS)
def test_a_failure_keeps_the_last_good_data_and_recovers(simulator, make_exporter, reason, caplog):
    exporter = make_exporter(legacy_config(simulator))
    assert exporter.refresh()
    good = exporter.value("copilot_daily_active_users", org="acme")
    simulator.add_fault("/orgs/acme/copilot/metrics", FAULTS[reason])
    with caplog.at_level(logging.INFO):
        assert not exporter.refresh()
    assert exporter.value("copilot_exporter_up", org="acme", source="legacy") == 0
    assert exporter.value("copilot_exporter_errors_total", org="acme", source="legacy", reason=reason) == 1
    assert exporter.value("copilot_daily_active_users", org="acme") == good
    # the other scopes are untouched
    assert exporter.value("copilot_exporter_up", enterprise="initech", source="legacy") == 1
    if reason == "not_found":
        assert any("2026-04-02" in r.getMessage() and "source: reports" in r.getMessage() for r in caplog.records)
    if reason == "disabled":
        assert any("Copilot Metrics API access" in r.getMessage() for r in caplog.records)
    simulator.clear_faults()
    assert exporter.refresh()
    assert exporter.value("copilot_exporter_up", org="acme", source="legacy") == 1
    assert exporter.value("copilot_daily_active_users", org="acme") == good


def test_server_errors_are_retried_a_bounded_number_of_times(simulator, make_exporter):
    exporter = make_exporter(legacy_config(simulator))  # max_retries 1
    simulator.add_fault("/orgs/acme/copilot/metrics", Fault(status=502))
    assert not exporter.refresh()
    assert simulator.request_count("/orgs/acme/copilot/metrics") == 2


def test_spent_primary_rate_limit_waits_for_the_reset_instead_of_calling(simulator, make_exporter):
    exporter = make_exporter(exporter_config(simulator.api_url, organizations=[{"name": "acme", "seats": False}]))
    assert exporter.refresh()  # learns the budget
    simulator.reset_log()
    simulator.set_rate_limit(remaining=0, reset_in=2.0)
    started = time.monotonic()
    assert exporter.refresh()
    # It learnt the budget was spent from the refused request, then waited for the reset
    assert time.monotonic() - started >= 1.5
    codes = [r.status for r in simulator.requests]
    assert codes.count(403) <= 1 and len(codes) <= 2
    assert exporter.value("copilot_exporter_github_rate_limit_remaining") > 0


def test_secondary_rate_limit_waits_as_told(simulator, make_exporter):
    exporter = make_exporter(exporter_config(simulator.api_url, organizations=[{"name": "acme", "seats": False}]))
    simulator.add_fault("/orgs/acme/copilot/metrics", Fault(status=429, headers={"Retry-After": "1"}), times=1)
    started = time.monotonic()
    assert exporter.refresh()
    assert time.monotonic() - started >= 1.0
    assert simulator.request_count("/orgs/acme/copilot/metrics") == 2


def test_rate_limit_longer_than_allowed_gives_up_without_calling(simulator, make_exporter):
    config = exporter_config(
        simulator.api_url, organizations=[{"name": "acme", "seats": False}], github={"max_rate_limit_wait": "1s"}
    )
    exporter = make_exporter(config)
    simulator.add_fault("/orgs/acme/copilot/metrics", Fault(status=403, headers={"Retry-After": "60"}))
    assert not exporter.refresh()
    assert simulator.request_count("/orgs/acme/copilot/metrics") == 1
    assert exporter.value("copilot_exporter_errors_total", org="acme", source="legacy", reason="rate_limited") == 1


def test_the_token_never_appears_in_logs_metrics_or_other_hosts(simulator, make_exporter, caplog):
    exporter = make_exporter(legacy_config(simulator))
    with caplog.at_level(logging.DEBUG):
        exporter.refresh()
        for fault in (Fault(status=401), Fault(status=500), Fault(kind="malformed"), Fault(kind="reset")):
            simulator.add_fault("/orgs/acme", fault)
            exporter.refresh()
            simulator.clear_faults()
    text = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    assert "failed" in text and TOKEN not in text
    assert TOKEN not in exporter.scrape_text()
    assert TOKEN not in requests.get(exporter.url + "/", timeout=5).text


def test_http_endpoints_formats_and_compression(simulator, make_exporter):
    exporter = make_exporter(legacy_config(simulator))
    exporter.refresh()
    plain = requests.get(exporter.url + "/metrics", timeout=5)
    assert plain.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    openmetrics = requests.get(
        exporter.url + "/metrics", timeout=5, headers={"Accept": "application/openmetrics-text; version=1.0.0"}
    )
    assert openmetrics.headers["Content-Type"].startswith("application/openmetrics-text")
    assert openmetrics.text.endswith("# EOF\n") and "# TYPE copilot_exporter_errors counter" not in plain.text
    raw = requests.get(exporter.url + "/metrics", timeout=5, headers={"Accept-Encoding": "gzip"}, stream=True)
    assert raw.headers["Content-Encoding"] == "gzip"
    unchanging = lambda text: [line for line in text.splitlines() if not line.startswith("process_")]  # noqa: E731
    assert unchanging(gzip.decompress(raw.raw.read()).decode()) == unchanging(plain.text)
    assert requests.get(exporter.url + "/healthz", timeout=5).status_code == 200
    landing = requests.get(exporter.url + "/", timeout=5).text
    assert "org=acme" in landing and "/metrics" in landing
    assert requests.get(exporter.url + "/nope", timeout=5).status_code == 404
