"""Reliability: the exporter driven through the simulator's faults, for each source, and under
many concurrent scrapers.

For every fault that applies to a source (TABLE below), attacks on the limits included (bombs,
oversized lines and answers, a body sent a byte at a time, redirect and paging loops, nested
JSON): the refresh ends within a deadline, /metrics answers 200 all along, the last good data
stays, `up` and `errors_total{reason}` say what happened, the number of requests stays within a
bound derived from the configuration, and the first refresh after the fault clears recovers.
Then: scrapes answered while a refresh is stuck, the memory of an exporter process served a
decompression bomb, SIGTERM during a download, and token files that vanish or turn into FIFOs.

Scrape latency is measured by `benchmarks/`, not asserted here: on a loaded machine any tight
bound flakes. What is asserted is that a scrape is answered while the upstream is still blocked.

The simulator runs in a child process, as GitHub is remote: in this process its CPU work (a 50 MB
report is generated and compressed on the fly) would compete with the exporter's threads for the
interpreter lock.
"""

from __future__ import annotations

import collections
import concurrent.futures
import datetime as dt
import hashlib
import http.client
import math
import json
import multiprocessing
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import dataclass
from typing import Callable
from urllib.parse import urlsplit

import pytest
import requests
from prometheus_client.openmetrics.parser import text_string_to_metric_families as openmetrics_families
from prometheus_client.parser import text_string_to_metric_families

from copilot_exporter.config import parse_config
from copilot_exporter.limits import MAX_REDIRECTS, MiB
from copilot_exporter.simulator import EnterpriseSpec, Fault, OrgSpec, World
from copilot_exporter.simulator import reports
from copilot_exporter.simulator.remote import RemoteSimulator
from copilot_exporter.simulator.world import Scope
from conftest import TOKEN, RunningExporter, exporter_config

pytestmark = pytest.mark.integration


# The configuration every fault case runs with; the bounds below derive from it.
MAX_RETRIES = 1  # retries of one request; a refresh spends at most 2 * MAX_RETRIES
READ_TIMEOUT = 1.0  # seconds
MAX_RATE_LIMIT_WAIT = 1.0  # seconds
RETRY_AFTER = 1  # seconds asked by the secondary rate limit: within MAX_RATE_LIMIT_WAIT
LOOKBACK_DAYS = 3
GITHUB = {
    "max_retries": MAX_RETRIES,
    "read_timeout": f"{READ_TIMEOUT:g}s",
    "connect_timeout": "1s",
    "retry_backoff": "100ms",
    "max_rate_limit_wait": f"{MAX_RATE_LIMIT_WAIT:g}s",
}

# Seconds any /metrics answer may take while a faulty refresh runs: generous, so a loaded machine
# cannot fail it; a scrape waiting on a refresh would take the refresh's whole duration.
SCRAPE_BOUND = 5.0
SCRAPE_EVERY = 0.05  # seconds between scrapes
MIN_SCRAPES = 5  # scrapes made per case, at least, even when the refresh is quick
# Seconds a refresh may take at most. The slowest cases (two read timeouts, or two waits of
# RETRY_AFTER, plus the backoff) take about 2.5 s; an unbounded wait would take forever.
REFRESH_DEADLINE = 15.0

TODAY = dt.datetime.now(dt.timezone.utc).date()
NEWEST = TODAY - dt.timedelta(days=2)  # the simulator has no report for yesterday yet

TARGET = {"org": "acme"}  # the scope every fault hits
CONTROL = {"org": "globex"}  # a scope no fault hits: it stays up (unless the fault is global)


@pytest.fixture(scope="module")
def remote():
    sim = RemoteSimulator(world=World.default(), token=TOKEN)
    yield sim
    sim.close()


@pytest.fixture
def sim(remote):
    """The module's simulator, back to its normal state before each case."""
    remote.clear_faults()
    remote.set("link_ttl", 300.0)
    remote.set_rate_limit(remaining=5000, reset_in=3600)
    remote.reset_log()
    return remote


# -- the fault table ---------------------------------------------------------------------------

SOURCES = ("legacy", "reports", "seats")
API_PREFIX = {  # every request a source makes for the target scope starts with this
    "legacy": "/orgs/acme/copilot/metrics",
    "reports": "/orgs/acme/copilot/metrics/reports/",
    "seats": "/orgs/acme/copilot/billing",  # billing, then the seat list
}
DOWNLOAD_PREFIX = "/reports/org/acme/"  # the target's report files, on the download host
EXPIRED = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b"<Error><Code>AccessDenied</Code><Message>Request has expired</Message></Error>"
)


def config_for(api_url: str, source: str, limits: dict | None = None):
    seats = source == "seats"  # the seats job comes with a legacy data job per scope
    return exporter_config(
        api_url,
        organizations=[
            {"name": "acme", "teams": ["platform"], "repositories": True, "seats": seats},
            {"name": "globex", "seats": seats},
        ],
        source="reports" if source == "reports" else "legacy",
        lookback_days=LOOKBACK_DAYS,
        github=GITHUB,
        # Every refresh asks for the held day again, as the first refresh did: the faults
        # below are met by the refresh after a good one.
        reread_interval="0s",
        **(limits or {}),
    )


@dataclass(frozen=True)
class Injection:
    """How a fault is made, for one source; `undo` runs before the recovery refresh."""

    server: str = "api"  # where the fault is: "api" (API_PREFIX) or "download" (DOWNLOAD_PREFIX)
    fault: Fault | None = None
    times: int | None = None  # None: until cleared
    setup: Callable[[RemoteSimulator], None] | None = None
    undo: Callable[[RemoteSimulator], None] | None = None
    prefix: str | None = None  # a narrower path prefix than the source's
    limits: dict | None = None  # limit keys of the exporter's configuration, for this case

    @property
    def revise(self) -> bool:
        """A download fault bites only on a report that changed: unchanged ones are not fetched
        again. So the report is revised before the faulty refresh (and before the recovery)."""
        return self.server == "download"

    def path(self, source: str) -> str:
        return self.prefix or (DOWNLOAD_PREFIX if self.server == "download" else API_PREFIX[source])

    def apply(self, sim: RemoteSimulator, source: str) -> None:
        if self.setup:
            self.setup(sim)
        if self.fault is not None:
            sim.add_fault(self.path(source), self.fault, self.times, self.server)


SLOW = 3 * READ_TIMEOUT  # seconds: later than the read timeout
SINCE = (TODAY - dt.timedelta(days=LOOKBACK_DAYS)).isoformat()


def api(fault: Fault, times: int | None = None) -> Injection:
    return Injection("api", fault, times)


def download(
    fault: Fault, times: int | None = None, prefix: str | None = None, limits: dict | None = None
) -> Injection:
    return Injection("download", fault, times, prefix=prefix, limits=limits)


def api_or_download(fault: Fault, limits: dict | None = None) -> dict[str, Injection]:
    """On the API for metrics and seats, on the report files for reports."""
    return {
        "legacy": Injection("api", fault, limits=limits),
        "seats": Injection("api", fault, limits=limits),
        "reports": download(fault, limits=limits),
    }


def redirect_loop() -> dict[str, Injection]:
    """Each request of the source is redirected to a path that redirects to itself."""
    return {
        source: api(
            Fault(status=302, body=b"", headers={"Location": prefix + ("loop" if prefix.endswith("/") else "")})
        )
        for source, prefix in API_PREFIX.items()
    }


def link_loop(path: str) -> Injection:
    """Pages of `path` whose Link header leads to a page that leads to itself."""
    return Injection("api", Fault(status=200, headers={"Link": f'<{path}?page=2>; rel="next"'}), prefix=path)


def _late_body(path: str) -> Injection:
    """The normal answer of `path`, its headers on time and its body later than the read
    timeout. Given as the fault's body: the exporter's ETag would otherwise get a 304, which
    has no body to be late."""

    def setup(sim: RemoteSimulator) -> None:
        body = requests.get(sim.api_url + path, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10).content
        sim.add_fault(urlsplit(path).path, Fault(status=200, body=body, body_delay=SLOW))

    return Injection(setup=setup)


_primary_reset_at: list[float] = []


def _primary_spent(sim: RemoteSimulator) -> None:
    # Resets later than MAX_RATE_LIMIT_WAIT allows waiting: the refresh gives up.
    sim.set_rate_limit(remaining=0, reset_in=2 * MAX_RATE_LIMIT_WAIT)
    _primary_reset_at[:] = [time.time() + 2 * MAX_RATE_LIMIT_WAIT]


def _primary_reset(sim: RemoteSimulator) -> None:
    # A spent budget clears by time passing: wait for the reset GitHub announced (rounded up to
    # a whole second), after which the exporter calls again.
    time.sleep(max(0.0, math.ceil(_primary_reset_at[0]) - time.time()) + 0.1)


def _expired_links(sim: RemoteSimulator) -> None:
    sim.set("link_ttl", -1.0)  # every link is born expired


NA = None  # the fault does not apply to the source

# What each fault must give, per source: the `reason` counted, or "ok" (not a failure).
TABLE = {
    # fault                       metrics             reports             seats
    "http_500": ("server_error", "server_error", "server_error"),
    "http_502": ("server_error", "server_error", "server_error"),
    "http_503": ("server_error", "server_error", "server_error"),
    "connection_reset": ("connection_error", "connection_error", "connection_error"),
    "read_timeout": ("timeout", "timeout", "timeout"),
    "slow_response": ("timeout", "timeout", "timeout"),
    "secondary_429_retry_after": ("rate_limited", "rate_limited", "rate_limited"),
    "secondary_403_retry_after": ("rate_limited", "rate_limited", "rate_limited"),
    "primary_rate_limit_spent": ("rate_limited", "rate_limited", "rate_limited"),
    "bad_token_401": ("unauthorized", "unauthorized", "unauthorized"),
    "unknown_org_404": ("not_found", "not_found", "not_found"),
    "policy_disabled_422": ("disabled", "disabled", "billing_problem"),
    "no_report_204": (NA, "ok", NA),
    "not_json": ("bad_payload", "bad_payload", "bad_payload"),
    "truncated": ("connection_error", "bad_payload", "connection_error"),
    "wrong_types": ("bad_payload", "bad_payload", "bad_payload"),
    "expired_link_once": (NA, "ok", NA),
    "expired_links": (NA, "bad_payload", NA),
    "report_50mb": (NA, "ok", NA),
    # Attacks on the limits (limits.py).
    "bomb_gzip_file": (NA, "too_large", NA),
    "bomb_content_encoding": ("too_large", "too_large", "too_large"),
    "past_max_report_bytes": (NA, "too_large", NA),
    "oversized_line": (NA, "too_large", NA),
    "oversized_answer": ("too_large", "too_large", "too_large"),
    "slow_drip": ("timeout", "timeout", "timeout"),
    "redirect_loop": ("too_many_redirects", "too_many_redirects", "too_many_redirects"),
    "download_redirect_loop": (NA, "too_many_redirects", NA),
    "link_loop": ("bad_payload", NA, "bad_payload"),
    "nested_json": ("bad_payload", "bad_payload", "bad_payload"),
    "nested_json_record": (NA, "bad_payload", NA),
}

BOMB = 3_000_000_000  # bytes once decompressed: about 3 MB on the wire
RECORD = b'{"user_login": "' + b"x" * 1000 + b'"}\n'  # a valid record of a users report, small
NESTED = b"[" * 100_000  # deeper than any JSON decoder recurses
DRIP = b"[" + b" " * 100_000 + b"]"  # sent a byte every half second: each well within the read timeout

# How each fault is made: one injection for every source, or one per source.
INJECTIONS: dict[str, Injection | dict[str, Injection]] = {
    "http_500": api(Fault(status=500)),
    "http_502": api(Fault(status=502)),
    "http_503": api(Fault(status=503)),
    "connection_reset": api(Fault(kind="reset")),
    # no byte of the answer before the read timeout
    "read_timeout": api(Fault(status=200, delay=SLOW)),
    # the headers on time, then a body later than the read timeout
    "slow_response": {
        "legacy": _late_body(f"{API_PREFIX['legacy']}?since={SINCE}T00:00:00Z"),
        "seats": _late_body(API_PREFIX["seats"]),
        "reports": download(Fault(status=200, body_delay=SLOW)),
    },
    "secondary_429_retry_after": api(Fault(status=429, headers={"Retry-After": str(RETRY_AFTER)})),
    "secondary_403_retry_after": api(Fault(status=403, headers={"Retry-After": str(RETRY_AFTER)})),
    "primary_rate_limit_spent": Injection(setup=_primary_spent, undo=_primary_reset),
    "bad_token_401": api(Fault(status=401)),
    "unknown_org_404": api(Fault(status=404)),
    "policy_disabled_422": api(Fault(status=422)),
    "no_report_204": api(Fault(status=204, body=b"")),
    "not_json": api(Fault(kind="malformed")),
    # a body cut short: a retried connection error on the API, a broken file for a report
    "truncated": api_or_download(Fault(kind="truncated")),
    # a document (metrics, seats) or a report record with fields of the wrong types
    "wrong_types": api_or_download(Fault(kind="wrong_types")),
    "expired_link_once": download(
        Fault(status=403, body=EXPIRED, headers={"Content-Type": "application/xml"}), times=1
    ),
    "expired_links": Injection("download", setup=_expired_links),
    # a valid users report file of 50 MB (one part of acme's users report), streamed
    "report_50mb": download(Fault(kind="huge", size=50_000_000), times=1, prefix=DOWNLOAD_PREFIX + "users-1-day/"),
    # a gzip file of 3 GB of spaces: blank space is bounded by max_record_bytes
    "bomb_gzip_file": download(Fault(kind="bomb", size=BOMB)),
    # the same with Content-Encoding: gzip, on an API answer (max_response_bytes) or a report
    "bomb_content_encoding": api_or_download(
        Fault(kind="bomb", size=BOMB, headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    ),
    # 3 GB of valid records: the file is larger than max_report_bytes
    "past_max_report_bytes": download(
        Fault(kind="bomb", size=BOMB, fill=RECORD),
        prefix=DOWNLOAD_PREFIX + "users-1-day/",
        limits={"max_report_bytes": "32MiB"},
    ),
    # one line of 8 MiB, more than max_record_bytes
    "oversized_line": download(Fault(kind="filler", size=8 * MiB, fill=b"x"), limits={"max_record_bytes": "4MiB"}),
    # 20 MB of answer, more than the default max_response_bytes (16 MiB)
    "oversized_answer": api(Fault(kind="filler", size=20_000_000)),
    # a body that never stalls for a read timeout and never ends: refresh_timeout ends it
    "slow_drip": api_or_download(Fault(kind="drip", interval=0.5, body=DRIP), limits={"refresh_timeout": "5s"}),
    "redirect_loop": redirect_loop(),
    "download_redirect_loop": download(Fault(status=302, body=b"", headers={"Location": DOWNLOAD_PREFIX + "loop"})),
    "link_loop": {"legacy": link_loop(API_PREFIX["legacy"]), "seats": link_loop("/orgs/acme/copilot/billing/seats")},
    "nested_json": api(Fault(status=200, body=NESTED)),
    "nested_json_record": download(Fault(status=200, body=b'{"a": ' + NESTED + b"\n")),
}

# Requests to the faulty prefix in the faulty refresh, at most; from the configuration and
# from how many requests a source has in flight for one scope: the reports source runs its three
# chains side by side (aggregated; users, then teams; repositories), the others one at a time.
CHAINS = {"legacy": 1, "seats": 1, "reports": 3}
BUDGET = 2 * MAX_RETRIES  # retries one refresh of one scope may spend, its chains together
# a 5xx, reset or timeout: each chain's request, and the retries (MAX_RETRIES per request)
RETRIED = {source: min(chains * (1 + MAX_RETRIES), chains + BUDGET) for source, chains in CHAINS.items()}
# a 5xx on every day: each report chain walks back its days (a day answering 5xx may still be in
# production), then the refresh fails; retries come from the shared budget
OUTAGE = {**RETRIED, "reports": CHAINS["reports"] * LOOKBACK_DAYS + BUDGET}
# a rate limit spends the refresh's retry budget, waiting as told before each retry
RATE_LIMITED = {source: chains + BUDGET for source, chains in CHAINS.items()}
ONCE = {
    "legacy": 1,
    "seats": 1,  # an error that is not retried ends the refresh ...
    "reports": 4 * LOOKBACK_DAYS,
}  # ... once each report walked back its days (404)
DOWNLOADS = CHAINS["reports"]  # a broken report file: one per chain, downloads are not retried
FRESH_LINKS = 2 * CHAINS["reports"]  # an expired link: per chain, the first link, then a fresh one
PER_JOB = "one per chain"  # the primary limit: a refused request per request in flight, then none
# a redirect loop: each chain's request and MAX_REDIRECTS redirects, then it stops
REDIRECT_LOOP = {source: chains * (1 + MAX_REDIRECTS) for source, chains in CHAINS.items()}
LINK_LOOP = 2  # the first page, then the page it leads to, which leads to itself
LOOPS = ("redirect_loop", "download_redirect_loop", "link_loop")  # requests beyond a normal refresh
BOUNDS: dict[str, int | str | dict[str, int] | None] = {
    "http_500": OUTAGE,
    "http_502": OUTAGE,
    "http_503": OUTAGE,
    "connection_reset": RETRIED,
    "read_timeout": RETRIED,
    "slow_response": {**RETRIED, "reports": DOWNLOADS},
    "secondary_429_retry_after": RATE_LIMITED,
    "secondary_403_retry_after": RATE_LIMITED,
    "primary_rate_limit_spent": PER_JOB,
    "bad_token_401": ONCE,
    "unknown_org_404": ONCE,
    "policy_disabled_422": ONCE,
    "not_json": ONCE,
    "truncated": {**RETRIED, "reports": DOWNLOADS},
    "wrong_types": {**ONCE, "reports": DOWNLOADS},
    "expired_links": FRESH_LINKS,
    "no_report_204": None,
    "expired_link_once": None,
    "report_50mb": None,  # not failures
    "bomb_gzip_file": DOWNLOADS,
    "bomb_content_encoding": {**ONCE, "reports": DOWNLOADS},
    "past_max_report_bytes": DOWNLOADS,
    "oversized_line": DOWNLOADS,
    "oversized_answer": ONCE,
    "slow_drip": {**ONCE, "reports": DOWNLOADS},  # a timeout at the deadline leaves no time to retry
    "redirect_loop": REDIRECT_LOOP,
    "download_redirect_loop": REDIRECT_LOOP["reports"],
    "link_loop": LINK_LOOP,
    "nested_json": ONCE,
    "nested_json_record": DOWNLOADS,
}


def _cell(fault: str, source: str) -> tuple[Injection, int | str | None]:
    injection, bound = INJECTIONS[fault], BOUNDS[fault]
    return (
        injection[source] if isinstance(injection, dict) else injection,
        bound[source] if isinstance(bound, dict) else bound,
    )


CELLS = [
    pytest.param(fault, source, expected, id=f"{fault}-{source}")
    for fault, row in TABLE.items()
    for source, expected in zip(SOURCES, row)
    if expected is not NA
]


# -- helpers -----------------------------------------------------------------------------------


def scrape(url: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/metrics", headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def resident() -> int:
    """This process's resident set size in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:
        return 0


@dataclass
class Observed:
    ok: bool | None  # None: the refresh did not end within the deadline
    duration: float
    scrapes: list[tuple[int, float]]  # (status, seconds) of each scrape made meanwhile
    growth: int  # bytes the resident set grew by, at most, while the refresh ran


def refresh_while_scraping(exporter: RunningExporter, deadline: float = REFRESH_DEADLINE) -> Observed:
    """One refresh in a thread; /metrics scraped every SCRAPE_EVERY until it ends (MIN_SCRAPES at least)."""
    result: list[bool] = []
    refresh = threading.Thread(target=lambda: result.append(exporter.refresh()), daemon=True)
    scrapes: list[tuple[int, float]] = []
    before = peak = resident()
    started = time.monotonic()
    refresh.start()
    while refresh.is_alive() or len(scrapes) < MIN_SCRAPES:
        if time.monotonic() - started > deadline:
            break
        begin = time.perf_counter()
        status, _ = scrape(exporter.url)
        scrapes.append((status, time.perf_counter() - begin))
        peak = max(peak, resident())
        time.sleep(SCRAPE_EVERY)
    refresh.join(max(0.0, deadline - (time.monotonic() - started)))
    duration = time.monotonic() - started
    return Observed(result[0] if result else None, duration, scrapes, peak - before)


SEATS_READ_AT = "copilot_report_day_timestamp_seconds", ("report", "seats")


def data_of(samples: dict, scope: dict[str, str]) -> dict:
    """The data samples (not the exporter's own) of a scope, its teams included; but for the
    time seats were read, which moves with every successful refresh."""
    return {
        key: value
        for key, value in samples.items()
        if not key[0].startswith("copilot_exporter_")
        and set(scope.items()) <= key[1]
        and not (key[0] == SEATS_READ_AT[0] and SEATS_READ_AT[1] in key[1])
    }


def errors_of(samples: dict, scope: dict[str, str], source: str) -> dict[str, float]:
    labels = {**scope, "source": source}
    return {
        dict(key[1])["reason"]: value
        for key, value in samples.items()
        if key[0] == "copilot_exporter_errors_total"
        and value > 0  # the common reasons start at 0
        and {k: v for k, v in key[1] if k != "reason"} == labels
    }


def generation_values(samples: dict, scope: dict[str, str]) -> tuple[float, float]:
    """(code generation activities, daily active users) of a scope, for a revision's effect."""
    key = frozenset(scope.items())
    return samples[("copilot_code_generation_activities", key)], samples[("copilot_daily_active_users", key)]


def assert_revised(before: dict, after: dict, revisions: int) -> None:
    """Every revision adds one generation activity per active user with client telemetry (users
    seen only server-side count as active but have no counters to revise)."""
    activities, active = generation_values(before, TARGET)
    now, active_now = generation_values(after, TARGET)
    growth, rest = divmod(now - activities, revisions)
    assert active_now == active and rest == 0 and 0 < growth <= active


# -- every fault, every source -----------------------------------------------------------------


@pytest.mark.parametrize(("fault", "source", "expected"), CELLS)
def test_fault(sim, fault: str, source: str, expected: str):
    injection, bound = _cell(fault, source)
    exporter = RunningExporter(config_for(sim.api_url, source, injection.limits))
    try:
        sim.reset_log()
        assert exporter.refresh()
        full = len(sim.requests)  # a refresh that fetches everything
        good = exporter.samples()
        assert data_of(good, TARGET) and data_of(good, CONTROL)

        revisions = 0
        if injection.revise:
            sim.revise("org", "acme", NEWEST)
            revisions += 1
        injection.apply(sim, source)
        sim.reset_log()
        observed = refresh_while_scraping(exporter)

        # Neither hangs nor crashes, and /metrics answers all along.
        assert observed.ok is not None, f"the refresh did not end within {REFRESH_DEADLINE}s"
        assert observed.ok is (expected == "ok")
        assert len(observed.scrapes) >= MIN_SCRAPES
        assert {status for status, _ in observed.scrapes} == {200}
        slowest = max(seconds for _, seconds in observed.scrapes)
        assert slowest < SCRAPE_BOUND, f"a scrape took {slowest:.1f} s during the refresh"

        # No retry storm, and no loop beyond its bound.
        log = sim.requests
        loop = bound if fault in LOOPS and isinstance(bound, int) else 0
        assert len(log) <= full + 2 * MAX_RETRIES * len(exporter.refresher.jobs) + loop
        if bound == PER_JOB:
            # One refused request per chain at most (a scope's report chains run side by side):
            # then the exporter knows, and waits or gives up.
            assert len(log) <= CHAINS[source] * len(exporter.refresher.jobs)
        elif bound is not None:
            prefix = injection.path(source)
            hits = sum(1 for r in log if r.server == injection.server and r.path.startswith(prefix))
            assert 1 <= hits <= bound, f"{hits} requests to {prefix}, bound {bound}"
        if fault.startswith("secondary_"):
            assert observed.duration >= RETRY_AFTER * 0.95  # waited as told before retrying

        # up, errors_total and the data served.
        after = exporter.samples()
        up = after.get(("copilot_exporter_up", frozenset({**TARGET, "source": source}.items())))
        errors = errors_of(after, TARGET, source)
        if expected == "ok":
            assert up == 1 and errors == {}
        else:
            assert up == 0 and errors == {expected: 1}
            assert data_of(after, TARGET) == data_of(good, TARGET)  # the last good data stays
        if fault == "no_report_204":
            assert data_of(after, TARGET) == {}  # no report in the window: no report series
        if fault == "expired_link_once":  # fresh links were asked for, once, and worked
            asked = collections.Counter(
                r.path
                for r in log
                if r.path.startswith(API_PREFIX["reports"]) and r.query.get("day") == NEWEST.isoformat()
            )
            assert sorted(asked.values()) == [1] * (len(asked) - 1) + [2]  # whichever chain met it
            assert_revised(good, after, revisions)
        if fault == "report_50mb":  # taken whole, and streamed: never held in memory
            assert after[("copilot_users_reported", frozenset(TARGET.items()))] > 10_000
            assert observed.growth < 25_000_000, f"memory grew by {observed.growth / 1e6:.0f} MB"
        if fault.startswith("bomb_") or fault == "past_max_report_bytes":  # inflated a piece at a time
            assert observed.growth < 100_000_000, f"memory grew by {observed.growth / 1e6:.0f} MB"
        if fault != "primary_rate_limit_spent":  # the one global fault: other scopes fail too
            assert after.get(("copilot_exporter_up", frozenset({**CONTROL, "source": source}.items()))) == 1
            assert data_of(after, CONTROL) == data_of(good, CONTROL)

        # The first refresh after the fault clears recovers.
        sim.clear_faults()
        sim.set("link_ttl", 300.0)
        if injection.undo:
            injection.undo(sim)
        if injection.revise:  # a report kept from the faulty refresh is replaced by the normal one
            sim.revise("org", "acme", NEWEST)
            revisions += 1
        assert exporter.refresh()
        recovered = exporter.samples()
        assert recovered[("copilot_exporter_up", frozenset({**TARGET, "source": source}.items()))] == 1
        assert errors_of(recovered, TARGET, source) == ({} if expected == "ok" else {expected: 1})
        if revisions:
            assert data_of(recovered, TARGET).keys() == data_of(good, TARGET).keys()
            assert_revised(good, recovered, revisions)
        else:
            assert data_of(recovered, TARGET) == data_of(good, TARGET)
    finally:
        exporter.close()


# -- many scrapers while refreshes run ---------------------------------------------------------

SCRAPERS = 100
SCRAPE_SECONDS = 30.0
REFRESH_PAUSE = 1.0  # seconds between refreshes: about 25 snapshot generations in the run
WORLD = World(
    organizations=(OrgSpec("alpha", users=30, teams=("red", "blue")), OrgSpec("beta", users=20)),
    enterprises=(EnterpriseSpec("corp", organizations=("alpha", "beta")),),
)
SCOPES = (("org", "alpha"), ("org", "beta"), ("enterprise", "corp"))
TEAMS = (("org", "alpha", "red"), ("org", "alpha", "blue"))


# What the scrapers ask for, in turn: Prometheus asks for OpenMetrics, compressed.
FORMATS = (
    {},
    {"Accept-Encoding": "gzip"},
    {"Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "gzip"},
)


def summarize(body: bytes, headers: dict[str, str]) -> dict:
    """What the torn-read check needs of one exposition, parsed with prometheus_client's parser
    for its format: per scope, a digest of all its data samples (teams included) and the values
    a revision moves. A compressed body must be one whole gzip member.

    Runs in a worker process, so parsing does not slow the scrapes under test.
    """
    if "Accept-Encoding" in headers:
        decompressor = zlib.decompressobj(31)
        body = decompressor.decompress(body)
        assert decompressor.eof and not decompressor.unused_data, "not one whole gzip member"
    parse = openmetrics_families if "Accept" in headers else text_string_to_metric_families
    samples: dict[tuple, list] = collections.defaultdict(list)
    values: dict[tuple, float] = {}
    for family in parse(body.decode("utf-8")):
        for sample in family.samples:
            if sample.name.startswith(("copilot_exporter_", "process_")):
                continue
            labels = sample.labels
            scope = ("org", labels["org"]) if "org" in labels else ("enterprise", labels["enterprise"])
            samples[scope].append((sample.name, tuple(sorted(labels.items())), sample.value))
            if sample.name in (
                "copilot_code_generation_activities",
                "copilot_lines_suggested_to_add",
                "copilot_daily_active_users",
            ) and set(labels) <= {"org", "enterprise", "team", "team_id"}:
                values[(sample.name, *scope, labels.get("team"))] = sample.value
    digests = {scope: hashlib.sha256(repr(sorted(rows)).encode()).hexdigest() for scope, rows in samples.items()}
    return {"digests": digests, "values": values}


def without_process(body: bytes, headers: dict[str, str]) -> bytes:
    """The body without the process metrics, which change at every scrape: bodies equal but for
    them parse alike."""
    if "Accept-Encoding" in headers:
        body = zlib.decompressobj(31).decompress(body)
    return b"\n".join(
        line for line in body.split(b"\n") if not line.startswith((b"process_", b"# HELP process_", b"# TYPE process_"))
    )


def revisable_users(kind: str, name: str, team: str | None) -> int:
    """Users of NEWEST's users report whose counters a revision raises: those with client
    telemetry (users seen only server-side count as active but have no counters)."""
    active = reports.active_users(WORLD, Scope(kind, name), NEWEST)
    members = set(WORLD.members(Scope(kind, name, team))) if team else None
    return sum(
        1 for index in active if (members is None or index in members) and WORLD.activity(index, NEWEST).telemetry
    )


def revisions_seen(summary: dict, base: dict) -> dict[tuple, set[float]]:
    """Per scope, the revision each revision-dependent value implies, given the values of
    revision 0 (`base`): a revision adds one code generation activity and three suggested lines
    per active user with client telemetry, to the scope and to each of its teams."""
    values, seen = summary["values"], collections.defaultdict(set)
    targets = [(kind, name, None) for kind, name in SCOPES] + list(TEAMS)
    for kind, name, team in targets:
        active = revisable_users(kind, name, team)
        for metric, step in (("copilot_code_generation_activities", 1), ("copilot_lines_suggested_to_add", 3)):
            key = (metric, kind, name, team)
            seen[(kind, name)].add((values[key] - base[key]) / (step * active) if key in values else None)
    return seen


def test_100_concurrent_scrapers_see_whole_snapshots_while_refreshes_run():
    sim = RemoteSimulator(world=WORLD, token=TOKEN)
    config = exporter_config(
        sim.api_url,
        source="reports",
        organizations=[{"name": "alpha", "teams": ["red", "blue"], "seats": False}, {"name": "beta", "seats": False}],
        enterprises=[{"name": "corp", "seats": False}],
        reread_interval="0s",  # each refresh asks for the held day again, and sees its revision
    )
    exporter = RunningExporter(config)
    parser = concurrent.futures.ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    stop = threading.Event()
    try:
        assert exporter.refresh()
        status, body = scrape(exporter.url)
        generations = [summarize(body, {})]  # generation k: every scope at revision k
        base = generations[0]["values"]

        lock = threading.Lock()
        parsed: dict[bytes, concurrent.futures.Future] = {}
        counts: collections.Counter = collections.Counter()
        failures: list[str] = []
        latencies: list[float] = []

        def scraper(headers: dict[str, str]) -> None:
            while not stop.is_set():
                begin = time.perf_counter()
                try:
                    status, body = scrape(exporter.url, headers)
                except Exception as err:  # counted, not raised: every failure is reported at the end
                    with lock:
                        failures.append(repr(err))
                    continue
                digest = hashlib.blake2b(
                    repr(headers).encode() + without_process(body, headers), digest_size=16
                ).digest()
                with lock:
                    latencies.append(time.perf_counter() - begin)
                    if status != 200:
                        failures.append(f"status {status}")
                    counts[digest] += 1
                    if digest not in parsed:  # identical bodies parse identically: parse each once
                        parsed[digest] = parser.submit(summarize, body, headers)

        threads = [
            threading.Thread(target=scraper, args=(FORMATS[i % len(FORMATS)],), daemon=True) for i in range(SCRAPERS)
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()

        def enough() -> bool:
            return len(generations) >= 10 and len(latencies) >= 10 * SCRAPERS

        # SCRAPE_SECONDS at least; longer on a slow machine until there is enough to check,
        # within a bound that only a hang reaches.
        while time.monotonic() - started < SCRAPE_SECONDS or (
            not enough() and time.monotonic() - started < 4 * SCRAPE_SECONDS
        ):
            for kind, name in SCOPES:
                sim.revise(kind, name, NEWEST)  # moves every scope's counters
            assert exporter.refresh()
            status, body = scrape(exporter.url)  # between refreshes: the new generation, whole
            assert status == 200
            generations.append(summarize(body, {}))
            time.sleep(REFRESH_PAUSE)
        stop.set()
        for thread in threads:
            thread.join(15)

        assert not failures, f"{len(failures)} failed scrapes, e.g. {failures[:3]}"
        assert len(latencies) >= 10 * SCRAPERS
        assert len(generations) >= 10
        valid = {
            scope: {generation["digests"][scope]: k for k, generation in enumerate(generations)} for scope in SCOPES
        }
        assert all(len(digests) == len(generations) for digests in valid.values())  # each refresh moved each scope
        for digest, future in parsed.items():
            summary = future.result(timeout=120)  # raises when a body does not parse
            assert summary["digests"].keys() == set(SCOPES)
            seen = revisions_seen(summary, base)
            for scope in SCOPES:
                # All the scope's samples are those of one generation...
                generation = valid[scope].get(summary["digests"][scope])
                assert generation is not None, f"{scope}: a scrape mixes generations ({counts[digest]} times)"
                # ... and every revision-dependent value of the scope belongs to that revision.
                assert seen[scope] == {generation}, f"{scope}: values of revisions {seen[scope]}"
    finally:
        stop.set()
        parser.shutdown(cancel_futures=True)
        exporter.close()
        sim.close()


# -- a stuck refresh, a process under attack, signals, token files -------------------------------


def test_scrapes_are_answered_from_memory_while_a_refresh_is_stuck(sim):
    exporter = RunningExporter(config_for(sim.api_url, "legacy", {"refresh_timeout": "20s"}))
    try:
        assert exporter.refresh()
        good = exporter.samples()
        sim.add_fault(API_PREFIX["legacy"], Fault(kind="drip", interval=0.5, body=DRIP))
        refresh = threading.Thread(target=exporter.refresh, daemon=True)
        refresh.start()
        wait_for(lambda: sim.request_count(API_PREFIX["legacy"]) >= 1, 30, "the refresh never reached GitHub")
        status, body = scrape(exporter.url)
        assert refresh.is_alive(), "the upstream was meant to be still blocked"
        assert status == 200
        assert data_of(exposition_samples(body), TARGET) == data_of(good, TARGET)
        refresh.join(60)
        assert not refresh.is_alive()
        assert errors_of(exporter.samples(), TARGET, "legacy") == {"timeout": 1}
    finally:
        exporter.close()


def wait_for(condition: Callable[[], bool], seconds: float, message: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.1)


def exposition_samples(body: bytes) -> dict:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


class ExporterProcess:
    """`copilot-exporter serve` in its own process, against the simulator, for what only a process
    shows: its memory, and how it ends on a signal."""

    MEMORY_CAP = 4 * 1024**3  # address space: an unbounded exporter fails here, not the machine

    def __init__(self, tmp_path, sim, **top_level):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        config = {
            "github": {"api_url": sim.api_url, "token": TOKEN, **GITHUB},
            "source": "reports",
            "lookback_days": LOOKBACK_DAYS,
            "organizations": [{"name": "acme", "seats": False}, {"name": "globex", "seats": False}],
            "server": {"listen_address": f"127.0.0.1:{port}"},
            **top_level,
        }
        (tmp_path / "config.yaml").write_text(json.dumps(config))  # JSON is YAML
        self.log = tmp_path / "exporter.log"
        cap = self.MEMORY_CAP
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "copilot_exporter", "serve", "--config", str(tmp_path / "config.yaml")],
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=os.path.dirname(os.path.dirname(__file__)),
                preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (cap, cap)),
            )
        wait_for(self.serving, 30, f"the exporter did not start: {self.log.read_text()[-2000:]}")

    def serving(self) -> bool:
        try:
            return scrape(self.url)[0] == 200
        except OSError:
            return False

    def samples(self) -> dict:
        return exposition_samples(scrape(self.url)[1])

    def peak_resident(self) -> int:
        """The process's peak resident set size (VmHWM), in bytes."""
        with open(f"/proc/{self.process.pid}/status") as status:
            fields = dict(line.split(":", 1) for line in status)
        return int(fields["VmHWM"].split()[0]) * 1024

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@pytest.mark.parametrize("encoded", [False, True], ids=["gzip-file", "content-encoding"])
def test_a_decompression_bomb_leaves_the_exporter_process_under_400_mb(sim, tmp_path, encoded):
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/x-ndjson"} if encoded else {}
    sim.add_fault(DOWNLOAD_PREFIX + "users-1-day/", Fault(kind="bomb", size=BOMB, headers=headers), server="download")
    exporter = ExporterProcess(tmp_path, sim)
    try:

        def failed() -> bool:
            assert exporter.process.poll() is None, exporter.log.read_text()[-2000:]
            assert exporter.peak_resident() < 400 * MiB, f"peak resident set {exporter.peak_resident() / MiB:.0f} MiB"
            return bool(errors_of(exporter.samples(), TARGET, "reports"))

        wait_for(failed, 120, "the refresh under attack did not end")
        samples = exporter.samples()
        assert errors_of(samples, TARGET, "reports") == {"too_large": 1}
        assert exporter.peak_resident() < 400 * MiB
        control_up = ("copilot_exporter_up", frozenset({**CONTROL, "source": "reports"}.items()))
        wait_for(lambda: exporter.samples().get(control_up) == 1, 60, "the other organization was not served")
    finally:
        exporter.close()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_ends_the_process_within_5_s_while_a_download_drips(sim, tmp_path, signum):
    sim.add_fault(DOWNLOAD_PREFIX, Fault(kind="drip", interval=0.5, body=DRIP), server="download")
    exporter = ExporterProcess(tmp_path, sim)
    try:
        wait_for(lambda: sim.request_count(DOWNLOAD_PREFIX, server="download") >= 1, 60, "no download began")
        time.sleep(1.0)  # a few bytes in: the worker is blocked in the body
        assert exporter.process.poll() is None
        exporter.process.send_signal(signum)
        try:
            code = exporter.process.wait(5)
        except subprocess.TimeoutExpired:
            pytest.fail(f"still running 5 s after {signal.Signals(signum).name}")
        assert code == 0, exporter.log.read_text()[-2000:]
    finally:
        exporter.close()


def token_file_config(api_url: str, token_file: str):
    return parse_config(
        {
            "github": {"api_url": api_url, "token_file": token_file, **GITHUB},
            "source": "legacy",
            "lookback_days": LOOKBACK_DAYS,
            "organizations": [{"name": "acme", "seats": False}, {"name": "globex", "seats": False}],
        }
    )


@pytest.mark.parametrize("change", ["deleted", "fifo"])
def test_a_token_file_deleted_or_made_a_fifo_at_runtime_is_a_credentials_error(sim, tmp_path, change):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    exporter = RunningExporter(token_file_config(sim.api_url, str(token_file)))
    try:
        assert exporter.refresh()
        good = exporter.samples()
        token_file.unlink()
        if change == "fifo":
            os.mkfifo(token_file)  # nobody ever writes to it: reading it would block for good
        result: list[bool] = []
        refresh = threading.Thread(target=lambda: result.append(exporter.refresh()), daemon=True)
        refresh.start()
        refresh.join(30)
        assert result == [False], "the refresh blocked on the token file"
        after = exporter.samples()
        for scope in (TARGET, CONTROL):
            assert errors_of(after, scope, "legacy") == {"credentials": 1}
            assert data_of(after, scope) == data_of(good, scope)  # the last good data stays
    finally:
        exporter.close()
