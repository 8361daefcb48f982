"""The exporter's own basics in /metrics: process metrics on every scrape, error counters from start."""

from __future__ import annotations

import gzip
import os

import requests
import pytest
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from copilot_exporter.server import MetricsBody
from copilot_exporter.simulator import Fault
from copilot_exporter.store import Store
from copilot_exporter.telemetry import COMMON_REASONS, Telemetry
from conftest import exporter_config

pytestmark = pytest.mark.integration


PROCESS = {
    "process_virtual_memory_bytes",
    "process_resident_memory_bytes",
    "process_start_time_seconds",
    "process_cpu_seconds_total",
    "process_open_fds",
    "process_max_fds",
}
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def samples(families) -> dict[tuple[str, frozenset], float]:
    return {(s.name, frozenset(s.labels.items())): s.value for family in families for s in family.samples}


def scrape(url: str, openmetrics: bool, compressed: bool) -> dict[tuple[str, frozenset], float]:
    headers = {
        "Accept": OPENMETRICS if openmetrics else "text/plain",
        "Accept-Encoding": "gzip" if compressed else "identity",
    }
    response = requests.get(url + "/metrics", headers=headers, timeout=5, stream=True)
    body = response.raw.read()
    assert (response.headers.get("Content-Encoding") == "gzip") == compressed
    text = (gzip.decompress(body) if compressed else body).decode()
    return samples(parse_openmetrics(text) if openmetrics else parse_text(text))


def test_process_metrics_are_in_every_format(simulator, make_exporter):
    exporter = make_exporter(exporter_config(simulator.api_url, organizations=[{"name": "acme"}]))
    assert exporter.refresh()
    for openmetrics in (False, True):
        for compressed in (False, True):
            found = scrape(exporter.url, openmetrics, compressed)
            names = {name for name, _labels in found}
            assert PROCESS <= names, (openmetrics, compressed)
            assert "copilot_daily_active_users" in names and "copilot_exporter_up" in names
            assert found[("process_open_fds", frozenset())] > 0


def test_process_metrics_are_read_at_each_scrape(simulator, make_exporter):
    exporter = make_exporter(exporter_config(simulator.api_url, organizations=[{"name": "acme"}]))
    before = exporter.value("process_open_fds")
    opened = [os.open(os.devnull, os.O_RDONLY) for _ in range(50)]
    try:
        assert exporter.value("process_open_fds") >= before + 40
    finally:
        for fd in opened:
            os.close(fd)


def test_the_data_chunk_stays_cached_while_process_metrics_change():
    body = MetricsBody(Store(), Telemetry())
    for openmetrics in (False, True):
        for compressed in (False, True):
            first, second = body.get(openmetrics, compressed), body.get(openmetrics, compressed)
            assert all(a is b for a, b in zip(first[:-1], second[:-1]))  # reused, not rendered again
            text = b"".join(second)
            text = (gzip.decompress(text) if compressed else text).decode()
            assert "process_cpu_seconds" in text and text.endswith("# EOF\n") == openmetrics


def test_error_counters_start_at_zero_for_every_scope_and_source(simulator, make_exporter):
    config = exporter_config(
        simulator.api_url,
        source="legacy",
        organizations=[{"name": "acme", "teams": ["web"]}, {"name": "globex", "seats": False}],
        enterprises=[{"name": "initech"}],
    )
    exporter = make_exporter(config)
    found = exporter.samples()  # before any refresh
    expected = [
        ({"org": "acme"}, "legacy"),
        ({"org": "acme", "team": "web"}, "legacy"),
        ({"org": "acme"}, "seats"),
        ({"org": "globex"}, "legacy"),
        ({"enterprise": "initech"}, "legacy"),
        ({"enterprise": "initech"}, "seats"),
    ]
    errors = {key: value for key, value in found.items() if key[0] == "copilot_exporter_errors_total"}
    assert errors == {
        ("copilot_exporter_errors_total", frozenset({**scope, "source": source, "reason": reason}.items())): 0
        for scope, source in expected
        for reason in COMMON_REASONS
    }
    simulator.add_fault("/orgs/acme/copilot/metrics", Fault(status=401))
    exporter.refresh()
    assert exporter.value("copilot_exporter_errors_total", org="acme", source="legacy", reason="unauthorized") == 1
    assert exporter.value("copilot_exporter_errors_total", org="acme", source="legacy", reason="forbidden") == 0


def test_error_counters_of_the_reports_source_start_at_zero(simulator, make_exporter):
    exporter = make_exporter(exporter_config(simulator.api_url, source="auto", organizations=[{"name": "acme"}]))
    for reason in COMMON_REASONS:
        assert exporter.value("copilot_exporter_errors_total", org="acme", source="reports", reason=reason) == 0
