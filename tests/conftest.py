"""Shared test helpers."""

from __future__ import annotations

import pytest


def pytest_addoption(parser):
    parser.addoption(
        "--update-golden",
        action="store_true",
        help="rewrite tests/golden/demo.prom from the demo's exposition instead of comparing with it",
    )


def family_values(families) -> dict[tuple[str, frozenset], float]:
    """{(metric name, frozenset of label pairs): value} for a sequence of model.Family."""
    return {(family.name, frozenset(labels)): value for family in families for labels, value in family.samples}


@pytest.fixture
def values_of():
    return family_values


# Test tiers (markers registered in pyproject.toml). A test marked neither `integration` nor `e2e`
# is in the fast tier (`scripts/test -m "not integration and not e2e"`); this guard keeps that
# honest: such a test fails when it asks for the simulator or an exporter, or when its thread
# starts a process or opens a socket. Python's audit events see these however they are made.

import sys  # noqa: E402

_SLOW_FIXTURES = {"simulator", "make_exporter"}
_SLOW_EVENTS = {
    "subprocess.Popen",
    "os.system",
    "os.posix_spawn",
    "os.exec",
    "os.fork",
    "socket.bind",
    "socket.connect",
}
_fast_test: dict = {}  # while a fast-tier test runs: its thread and the events it caused


def _audit(event: str, args: tuple) -> None:
    if _fast_test and event in _SLOW_EVENTS and threading.current_thread() is _fast_test["thread"]:
        _fast_test["events"].append(event)


def is_fast(item: pytest.Item) -> bool:
    return item.get_closest_marker("integration") is None and item.get_closest_marker("e2e") is None


@pytest.fixture(autouse=True)
def _fast_tier_guard(request):
    if not is_fast(request.node):
        yield
        return
    slow = _SLOW_FIXTURES.intersection(request.fixturenames)
    if slow:
        pytest.fail(f"uses {', '.join(sorted(slow))}: mark the test (or its module) integration", pytrace=False)
    _fast_test.update(thread=threading.current_thread(), events=[])
    try:
        yield
    finally:
        events = _fast_test.pop("events")
        _fast_test.clear()
    if events:
        pytest.fail(
            f"{', '.join(sorted(set(events)))} in a test marked neither integration nor e2e: mark it (or its module)",
            pytrace=False,
        )


sys.addaudithook(_audit)


# Integration harness: the simulator on loopback and an exporter served over real HTTP. -------

import threading  # noqa: E402

import requests  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

TOKEN = "test-token-4f9c2a"


class RunningExporter:
    """An exporter (store, telemetry, refresher, HTTP server on a free port) for one config."""

    def __init__(self, config, state_dir=None, today=None):
        from copilot_exporter.refresher import Refresher
        from copilot_exporter.server import App, serve
        from copilot_exporter.state import StateStore
        from copilot_exporter.store import Store
        from copilot_exporter.telemetry import Telemetry

        self.config = config
        self.store, self.telemetry = Store(), Telemetry()
        self.state = StateStore(state_dir) if state_dir is not None else None
        self.refresher = Refresher(config, self.store, self.telemetry, state=self.state, today=today)
        self.server = serve(App(self.store, self.telemetry), "127.0.0.1:0")
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def refresh(self) -> bool:
        return self.refresher.run_once()

    def scrape_text(self, **headers) -> str:
        response = requests.get(self.url + "/metrics", headers=headers, timeout=5)
        assert response.status_code == 200
        return response.text

    def samples(self) -> dict[tuple[str, frozenset], float]:
        """{(sample name, frozenset(labels)): value} of one scrape."""
        return {
            (sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(self.scrape_text())
            for sample in family.samples
        }

    def value(self, name: str, **labels) -> float | None:
        return self.samples().get((name, frozenset(labels.items())))

    def close(self) -> None:
        self.refresher.stop()
        self.server.shutdown()
        self.server.server_close()
        if self.state is not None:
            self.state.close()


def read_report(sim, base: str, endpoint: str, day) -> list[dict]:
    """A report of the simulator read independently of the exporter: links first, then each file
    with no token; the expectation integration tests compare the exporter with."""
    import gzip
    import json

    answer = requests.get(
        f"{sim.api_url}{base}/copilot/metrics/reports/{endpoint}",
        params={"day": day.isoformat()},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=5,
    )
    assert answer.status_code == 200, answer.status_code
    records = []
    for link in answer.json()["download_links"]:
        body = requests.get(link, timeout=10).content
        if body[:2] == b"\x1f\x8b":
            body = gzip.decompress(body)
        records += [json.loads(line) for line in body.splitlines() if line.strip()]
    return records


def exporter_config(api_url: str, organizations=(), enterprises=(), **overrides):
    """A validated config for the simulator: fast timeouts and retries so faults test quickly."""
    from copilot_exporter.config import parse_config

    data = {
        "github": {
            "api_url": api_url,
            "token": TOKEN,
            "connect_timeout": "2s",
            "read_timeout": "2s",
            "max_retries": 1,
            "retry_backoff": "100ms",
            "max_rate_limit_wait": "10s",
        },
        "source": "legacy",
        "refresh_interval": "1h",
        "organizations": list(organizations),
        "enterprises": list(enterprises),
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return parse_config(data)


@pytest.fixture
def simulator():
    from copilot_exporter.simulator import Simulator, World

    with Simulator(world=World.default(), token=TOKEN) as sim:
        yield sim


@pytest.fixture
def make_exporter():
    running = []

    def make(config, state_dir=None, today=None) -> RunningExporter:
        exporter = RunningExporter(config, state_dir, today)
        running.append(exporter)
        return exporter

    yield make
    for exporter in running:
        exporter.close()


@pytest.fixture(autouse=True)
def _own_state_dir(tmp_path_factory, monkeypatch):
    """Every exporter process a test starts (serve, collect, demo) gets a fresh state directory
    through the environment, never the working directory's: state must not leak between tests."""
    monkeypatch.setenv("COPILOT_EXPORTER_STATE_DIR", str(tmp_path_factory.mktemp("state")))


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """A directory with a throwaway CA, server and client certificates, and bad files (tests/pki.py)."""
    from pki import make_pki

    return make_pki(tmp_path_factory.mktemp("pki"))
