"""No value GitHub sends can break a scrape: unencodable labels, impossible numbers, cardinality.

Unit tests show each guard in its one place (FamilyBuilder, Fields, the exposition, the store,
the rate-limit bookkeeping); integration tests send the hostile values through the simulator
and read /metrics over real HTTP with the prometheus_client parser and `promtool check metrics`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import logging
import shutil
import subprocess

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from copilot_exporter.errors import PayloadError
from copilot_exporter.exposition import render_families
from copilot_exporter.metrics.fields import Fields
from copilot_exporter.model import Family, FamilyBuilder, Scope
from copilot_exporter.simulator import Fault
from copilot_exporter.store import Store
from conftest import exporter_config, read_report

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


ACME = Scope("org", "acme")
TODAY = dt.datetime.now(dt.timezone.utc).date()
NEWEST = TODAY - dt.timedelta(days=2)  # the simulator has no report for yesterday yet
AGGREGATED = "/reports/org/acme/organization-1-day"  # where the simulator serves acme's file


def promtool_check(text: str) -> None:
    path = shutil.which("promtool")
    assert path, "promtool is required (Debian package prometheus)"
    check = subprocess.run([path, "check", "metrics"], input=text, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def reports_config(sim, **overrides):
    return exporter_config(
        sim.api_url,
        organizations=[{"name": "acme", "teams": [], "seats": False}],
        enterprises=[{"name": "initech", "seats": False}],
        source="reports",
        **overrides,
    )


def serve_aggregated(sim, record: dict) -> None:
    """acme's aggregated report file, from now on, is this one record (JSON escapes kept)."""
    sim.add_fault(
        AGGREGATED,
        Fault(status=200, body=json.dumps(record).encode() + b"\n", headers={"Content-Type": "application/x-ndjson"}),
        server="download",
    )


# --- 1. label values ---------------------------------------------------------------------------


def test_a_lone_surrogate_in_a_label_is_replaced_and_noted():
    builder = FamilyBuilder(ACME.labels())
    builder.add("copilot_lines_added_by_ide", 3, ide="vs\ud800code")
    builder.add("copilot_lines_added_by_ide", 4, ide="vs\ud800code")
    [family] = builder.build()
    assert family.samples == (((("org", "acme"), ("ide", "vs\ufffdcode")), 7),)
    [problem] = builder.problems.frozen()
    assert (problem.reason, problem.count) == ("label_replaced", 2)
    assert "copilot_lines_added_by_ide" in problem.example and "ide" in problem.example


def test_a_snapshot_that_cannot_render_is_refused_and_the_last_good_one_kept():
    store = Store()
    good = (Family("copilot_lines_added_by_ide", (((("org", "acme"), ("ide", "vscode")), 1),)),)
    assert store.replace(ACME, "reports", good)
    bad = (Family("copilot_lines_added_by_ide", (((("org", "acme"), ("ide", "\udfff")), 2),)),)
    assert not store.replace(ACME, "reports", bad)
    _version, text = store.render(openmetrics=False)
    assert 'copilot_lines_added_by_ide{org="acme",ide="vscode"} 1' in text
    failures = store.render_failures()
    assert failures.samples == (((("org", "acme"), ("source", "reports")), 1),)


def test_a_surrogate_in_a_report_label_leaves_every_scope_scrapable(simulator, make_exporter):
    [record] = read_report(simulator, "/orgs/acme", "organization-1-day", NEWEST)
    record["totals_by_ide"][0]["ide"] = "vs\ud800code"
    serve_aggregated(simulator, record)
    exporter = make_exporter(reports_config(simulator))
    assert exporter.refresh()
    for openmetrics in (False, True):
        accept = "application/openmetrics-text" if openmetrics else "text/plain"
        response = requests.get(exporter.url + "/metrics", headers={"Accept": accept}, timeout=5)
        assert response.status_code == 200
    samples = parse(exporter.scrape_text())
    ides = {
        dict(labels)["ide"]
        for name, labels in samples
        if name == "copilot_lines_added_by_ide" and ("org", "acme") in labels
    }
    assert "vs\ufffdcode" in ides
    assert any(name == "copilot_daily_active_users" and ("enterprise", "initech") in labels for name, labels in samples)
    assert (
        samples[
            (
                "copilot_exporter_dropped_values_total",
                frozenset({("org", "acme"), ("source", "reports"), ("reason", "label_replaced")}),
            )
        ]
        == 7
    )
    # (one per activity counter: the entry's seven *_by_ide series all carry the label)
    promtool_check(exporter.scrape_text())


# --- 2. numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value,expected",
    [
        (float("nan"), "a finite number that is not negative, got nan"),
        (float("inf"), "a finite number that is not negative, got inf"),
        (float("-inf"), "a finite number that is not negative, got -inf"),
        (-1, "a finite number that is not negative, got -1"),
        (-0.5, "a finite number that is not negative, got -0.5"),
        (10**400, "a number within float range, got an integer of 1329 bits"),
    ],
)
def test_numbers_no_count_can_be_are_refused(value, expected):
    with pytest.raises(PayloadError) as info:
        Fields({"pull_requests": {"total_created": value}}, "repos-1-day").child("pull_requests").number(
            "total_created"
        )
    assert str(info.value) == f"repos-1-day: pull_requests.total_created: expected {expected}"


@pytest.mark.parametrize("value", [0, 0.0, 12, 2.5, 2**53 + 1, 10**300, 1.7e308])
def test_numbers_a_count_can_be_are_accepted(value):
    assert Fields({"n": value}, "report").number("n") == value


def test_integers_are_exact_up_to_2_to_the_53_and_floats_beyond():
    family = Family(
        "copilot_lines_added",
        (
            ((("org", "a"),), 2**53),
            ((("org", "b"),), 2**53 + 1),
            ((("org", "c"),), 10**300),
        ),
    )
    text = render_families([family], openmetrics=False)
    assert 'copilot_lines_added{org="a"} 9007199254740992\n' in text
    assert 'copilot_lines_added{org="b"} 9007199254740992.0\n' in text  # the float it becomes
    assert "9007199254740993" not in text  # never its digits verbatim
    assert 'copilot_lines_added{org="c"} 1e+300\n' in text
    promtool_check(text)


@pytest.mark.parametrize(
    "field,value",
    [
        ("loc_added_sum", 10**400),
        ("loc_added_sum", -5),
        ("code_generation_activity_count", float("nan")),
        ("code_generation_activity_count", float("inf")),
    ],
)
def test_an_impossible_number_in_a_report_keeps_the_last_good_data(simulator, make_exporter, field, value):
    # reread_interval 0s: the next refresh asks for the held day again, and meets the revision
    exporter = make_exporter(dataclasses.replace(reports_config(simulator), reread_interval=0.0))
    assert exporter.refresh()
    good = exporter.value("copilot_lines_added", org="acme")
    [record] = read_report(simulator, "/orgs/acme", "organization-1-day", NEWEST)
    record[field] = value
    serve_aggregated(simulator, record)  # json.dumps writes NaN and Infinity, as a broken server might
    simulator.revise("org", "acme", NEWEST)
    assert not exporter.refresh()
    assert exporter.value("copilot_exporter_errors_total", org="acme", source="reports", reason="bad_payload") == 1
    assert exporter.value("copilot_lines_added", org="acme") == good
    text = exporter.scrape_text()
    assert "9" * 50 not in text
    promtool_check(text)


def test_an_absurd_rate_limit_header_is_ignored(simulator, make_exporter):
    simulator.add_fault(
        "/", Fault(status=200, headers={"X-RateLimit-Remaining": "9" * 400, "X-RateLimit-Reset": "1" + "0" * 400})
    )
    exporter = make_exporter(exporter_config(simulator.api_url, organizations=[{"name": "acme", "seats": False}]))
    assert exporter.refresh()
    text = exporter.scrape_text()
    assert not any(name == "copilot_exporter_github_rate_limit_remaining" for name, _labels in parse(text))
    assert "9" * 50 not in text
    promtool_check(text)


@pytest.mark.parametrize(
    "remaining,reset",
    [
        ("-1", "1700000000"),
        ("99999999999", "1700000000"),
        ("10", "inf"),
        ("10", "nan"),
        ("10", "-5"),
    ],
)
def test_note_rate_limit_keeps_only_plausible_values(remaining, reset):
    from copilot_exporter.github.client import Connection
    from copilot_exporter.telemetry import Telemetry

    telemetry = Telemetry()
    connection = Connection("https://api.github.com", lambda: "t", telemetry)
    connection.note_rate_limit({"X-RateLimit-Remaining": "4999", "X-RateLimit-Reset": "1700000000"})
    connection.note_rate_limit({"X-RateLimit-Remaining": remaining, "X-RateLimit-Reset": reset})
    families = {f.name: f.samples for f in telemetry.families()}
    assert families["copilot_exporter_github_rate_limit_remaining"] == (((), 4999),)
    assert families["copilot_exporter_github_rate_limit_reset_timestamp_seconds"] == (((), 1700000000.0),)


# --- 3. cardinality --------------------------------------------------------------------------


def test_series_past_the_cap_are_folded_into_others_with_their_sum():
    builder = FamilyBuilder(ACME.labels(), max_series=3)
    for n in range(10):
        builder.add("copilot_lines_added_by_language_model", n, language=f"l{n}", model="m")
    builder.add("copilot_lines_added_by_language_model", 100, language="l0", model="m")  # known: its own
    builder.add("copilot_lines_added_by_language_model", 100, language="l9", model="m")  # folded again
    [family] = builder.build()
    samples = {dict(labels)["language"]: value for labels, value in family.samples}
    assert samples == {"l0": 100, "l1": 1, "l2": 2, "others": sum(range(3, 10)) + 100}
    assert dict(family.samples[-1][0])["model"] == "others"
    assert builder.folded == {"copilot_lines_added_by_language_model": 7}  # distinct series, not adds


def test_families_that_cannot_be_summed_drop_the_excess():
    builder = FamilyBuilder(ACME.labels(), max_series=2)
    for n in range(5):
        builder.add("copilot_ide_code_completions_language_engaged_users", 10, language=f"l{n}")
        builder.set("copilot_custom_model_info", 1, model=f"m{n}", training_date="2026-01-01")
    families = {f.name: f.samples for f in builder.build()}
    for name in ("copilot_ide_code_completions_language_engaged_users", "copilot_custom_model_info"):
        assert len(families[name]) == 2
        assert all(OTHERS not in dict(labels).values() for labels, _value in families[name])
        assert builder.folded[name] == 3


OTHERS = "others"


def test_per_user_families_are_not_capped():
    from copilot_exporter.metrics.catalogue import CATALOGUE

    [name] = [n for n, info in CATALOGUE.items() if info.per_user and n.endswith("lines_added")]
    builder = FamilyBuilder(ACME.labels(), max_series=2)
    for n in range(5):
        builder.add(name, 1, user=f"u{n}")
    assert len(builder.build()[0].samples) == 5
    assert not builder.folded


def test_a_report_with_20000_pairs_is_capped(simulator, make_exporter, caplog):
    [record] = read_report(simulator, "/orgs/acme", "organization-1-day", NEWEST)
    record["totals_by_language_model"] = [
        {"language": f"lang{n}", "model": f"model{n % 7}", "code_generation_activity_count": 1, "loc_added_sum": 2}
        for n in range(20_000)
    ]
    serve_aggregated(simulator, record)
    exporter = make_exporter(reports_config(simulator, max_series_per_family=50))
    caplog.set_level(logging.WARNING, logger="copilot_exporter")
    assert exporter.refresh()
    assert exporter.refresh()  # the warning is given once
    samples = parse(exporter.scrape_text())
    name = "copilot_lines_added_by_language_model"
    series = {
        labels: value for (sample, labels), value in samples.items() if sample == name and ("org", "acme") in labels
    }
    assert len(series) == 51  # 50 plus others
    others = series[frozenset({("org", "acme"), ("language", "others"), ("model", "others")})]
    assert others == 2 * (20_000 - 50)
    assert sum(series.values()) == 2 * 20_000
    folded = frozenset({("org", "acme"), ("source", "reports"), ("family", name)})
    assert samples[("copilot_exporter_folded_series", folded)] == 20_000 - 50
    warnings = [r for r in caplog.records if "max_series_per_family" in r.getMessage() and name in r.getMessage()]
    assert len(warnings) == 1 and "org=acme" in warnings[0].getMessage()
    assert len(exporter.scrape_text()) < 1_000_000


def test_a_real_prometheus_scrapes_every_hostile_value_with_the_target_up(simulator, make_exporter, tmp_path):
    from test_prometheus_e2e import Prometheus

    [record] = read_report(simulator, "/orgs/acme", "organization-1-day", NEWEST)
    record["totals_by_ide"][0]["ide"] = "vs\ud800code"
    record["loc_added_sum"] = 2**60 + 1  # past 2**53: served as the float it becomes
    record["totals_by_language_model"] = [
        {"language": f"lang{n}", "model": "m", "loc_added_sum": 1} for n in range(300)
    ]
    serve_aggregated(simulator, record)
    simulator.add_fault(
        "/orgs", Fault(status=200, headers={"X-RateLimit-Remaining": "9" * 400, "X-RateLimit-Reset": "9" * 400})
    )
    exporter = make_exporter(reports_config(simulator, max_series_per_family=100))
    assert exporter.refresh()
    prometheus = Prometheus(tmp_path, exporter.url.removeprefix("http://"))
    try:
        prometheus.wait_until('up{job="copilot-exporter"} == 1')
        ides = {row["metric"]["ide"] for row in prometheus.wait_until('copilot_lines_added_by_ide{org="acme"}')}
        assert "vs\ufffdcode" in ides, ides
        [row] = prometheus.wait_until('copilot_lines_added{org="acme",team=""}')
        assert float(row["value"][1]) == float(2**60 + 1)
        [row] = prometheus.wait_until('copilot_lines_added_by_language_model{org="acme",team="",language="others"}')
        assert float(row["value"][1]) == 200
        assert prometheus.wait_until('copilot_daily_active_users{enterprise="initech"}')
        # only the plausible budgets of the other answers (/enterprises/...) are kept
        [row] = prometheus.wait_until("copilot_exporter_github_rate_limit_remaining")
        assert 0 <= float(row["value"][1]) <= 5000
    finally:
        prometheus.stop()
