"""The background schedule: first refresh at start-up, then every interval; a slow scope delays no other."""

from __future__ import annotations

import time

import pytest

from copilot_exporter.simulator import Fault
from conftest import exporter_config

pytestmark = pytest.mark.integration


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False


def test_refreshes_start_at_once(simulator, make_exporter):
    # an hour's interval: a scheduler that waited one before the first refresh never gets there
    config = exporter_config(simulator.api_url, organizations=[{"name": "acme", "seats": False}], refresh_interval="1h")
    exporter = make_exporter(config)
    exporter.refresher.start()
    assert wait_for(lambda: exporter.value("copilot_exporter_up", org="acme", source="legacy") == 1)


def test_refreshes_repeat(simulator, make_exporter):
    config = exporter_config(simulator.api_url, organizations=[{"name": "acme", "seats": False}], refresh_interval="1s")
    exporter = make_exporter(config)
    exporter.refresher.start()
    assert wait_for(lambda: simulator.request_count("/orgs/acme/copilot/metrics") >= 3, timeout=10)


def test_a_hanging_scope_does_not_delay_the_others(simulator, make_exporter):
    config = exporter_config(
        simulator.api_url,
        organizations=[{"name": "acme", "seats": False}, {"name": "globex", "seats": False}],
        refresh_interval="1s",
        workers=2,
    )
    simulator.add_fault("/orgs/acme/copilot/metrics", Fault(delay=2.5))  # past the 2 s read timeout
    exporter = make_exporter(config)
    exporter.refresher.start()
    assert wait_for(lambda: simulator.request_count("/orgs/globex/copilot/metrics") >= 3, timeout=8)
    assert simulator.request_count("/orgs/acme/copilot/metrics") <= 2
    assert wait_for(
        lambda: exporter.value("copilot_exporter_errors_total", org="acme", source="legacy", reason="timeout") == 1,
        timeout=8,
    )
    assert exporter.value("copilot_exporter_up", org="globex", source="legacy") == 1
    simulator.clear_faults()
    assert wait_for(lambda: exporter.value("copilot_exporter_up", org="acme", source="legacy") == 1, timeout=10)
