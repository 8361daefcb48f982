"""`copilot-exporter backfill --remote-write`: history sent to a running receiver.

A real Prometheus (remote-write receiver on, out-of-order window set, scraping itself so history
arrives behind its newest sample) gets a week of the simulator's history and answers for each
day what GitHub served; a second one with a short window refuses the older days. A recording
receiver in the test shows the wire format, the headers and credentials, and what is retried.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import re
import ssl
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import cramjam
import pytest

from conftest import TOKEN, read_report
from test_backfill import DAY, Prometheus, day, legacy_days, midnight, write_config


from copilot_exporter import remote_write
from copilot_exporter.backfill import series_labels
from copilot_exporter.cli import main

pytestmark = pytest.mark.integration


def run(config: str, cwd, *args: str) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "copilot_exporter", "backfill", "--config", config, *args],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=cwd,
        env={**os.environ, "SIM_TOKEN": TOKEN, "PYTHONPATH": os.getcwd()},
    )
    assert TOKEN not in result.stdout + result.stderr
    return result


def days_named(stderr: str) -> set[dt.date]:
    """The days of the too-old message: `... of the days 2026-01-01, 2026-01-03..2026-01-05. To ...`."""
    listed = re.search(r"of the days (.+?)\. To accept", stderr)
    assert listed, stderr
    days: set[dt.date] = set()
    for part in listed.group(1).split(", "):
        first, _, last = part.partition("..")
        start, end = dt.date.fromisoformat(first), dt.date.fromisoformat(last or first)
        days |= {start + dt.timedelta(days=n) for n in range((end - start).days + 1)}
    return days


def day_of(timestamp_ms: int) -> dt.date:
    """The day whose value a sample carries: day D is written from D + 2 days to D + 3 days."""
    return dt.datetime.fromtimestamp(timestamp_ms / 1000 - 2 * DAY, dt.timezone.utc).date()


# A real Prometheus ---------------------------------------------------------------------------
def receiving_prometheus(tmp, window: str) -> Prometheus:
    """Prometheus 2.42 with the remote-write receiver and an out-of-order window, with a current
    sample (it scrapes itself), so that every history sample arrives behind its newest one."""
    prometheus = Prometheus(
        tmp / "data",
        tmp,
        target="self",
        extra={"storage": {"tsdb": {"out_of_order_time_window": window}}},
        flags=["--web.enable-remote-write-receiver"],
    )
    deadline = time.monotonic() + 20
    while prometheus.value('up{job="copilot-exporter"}', time.time()) != 1:
        assert time.monotonic() < deadline, "Prometheus did not scrape itself"
        time.sleep(0.2)
    return prometheus


@pytest.fixture(scope="module")
def week(tmp_path_factory):
    from copilot_exporter.simulator import Simulator, World

    tmp = tmp_path_factory.mktemp("remote")
    with Simulator(world=World.default(), token=TOKEN) as sim:
        prometheus = receiving_prometheus(tmp, "30d")
        try:
            config = write_config(
                tmp,
                sim.api_url,
                organizations=[
                    {"name": "acme", "teams": ["platform"], "seats": False},
                    {"name": "hooli", "seats": False},
                ],
            )  # no reports API: the legacy API
            command = ("--from", day(8).isoformat(), "--remote-write", prometheus.url + "/api/v1/write")
            started = time.time()
            result = run(config, tmp, *command)
            assert result.returncode == 0, result.stderr
            yield SimpleNamespace(
                sim=sim,
                prometheus=prometheus,
                stderr=result.stderr,
                started=started,
                config=config,
                tmp=tmp,
                command=command,
            )
        finally:
            prometheus.close()


@pytest.mark.e2e
def test_each_day_read_back_from_prometheus_is_what_github_served(week):
    sim, prometheus = week.sim, week.prometheus
    dates = [day(n) for n in range(8, 2, -1)]  # acme's live day is day(2): history ends the day before
    for date in dates:
        at = midnight(date) + 2 * DAY + 12 * 3600
        [record] = read_report(sim, "/orgs/acme", "organization-1-day", date)
        assert prometheus.value('copilot_daily_active_users{org="acme",team=""}', at) == record["daily_active_users"]
        assert prometheus.value('copilot_lines_added{org="acme",team=""}', at) == record["loc_added_sum"]
        assert prometheus.value(
            'copilot_report_day_timestamp_seconds{org="acme",report="organization"}', at
        ) == midnight(date)
        users = {u["user_id"] for u in read_report(sim, "/orgs/acme", "users-1-day", date)}
        members = {
            row["user_id"]
            for row in read_report(sim, "/orgs/acme", "user-teams-1-day", date)
            if row["slug"] == "platform"
        }
        assert prometheus.value('copilot_daily_active_users{org="acme",team="platform"}', at) == len(members & users)

    reported = legacy_days(sim, "/orgs/hooli/copilot/metrics")
    live = max(reported)
    written = [d for d in reported if day(8) <= d < live and midnight(d) + 2 * DAY < week.started - 3 * 3600]
    assert len(written) >= 4
    for date in written:
        at = midnight(date) + 2 * DAY
        assert (
            prometheus.value('copilot_daily_active_users{org="hooli",team=""}', at)
            == reported[date]["total_active_users"]
        )
        assert prometheus.value('copilot_report_day_timestamp_seconds{org="hooli",report="metrics"}', at) == midnight(
            date
        )
    sent = re.search(r"sent (\d+) of (\d+) samples", week.stderr)
    assert sent and sent.group(1) == sent.group(2) and int(sent.group(1)) > 0
    assert re.search(r"sent \d+ samples, \d+/\d+ days", week.stderr)  # progress


@pytest.mark.e2e
def test_a_rerun_sends_the_same_samples_again_and_changes_nothing(week):
    query = 'copilot_daily_active_users{org="acme",team=""}'
    start = midnight(day(5)) + 2 * DAY
    before = week.prometheus.series(query, start, start + DAY - 3600, 3600)
    result = run(week.config, week.tmp, *week.command)
    assert result.returncode == 0, result.stderr
    assert week.prometheus.series(query, start, start + DAY - 3600, 3600) == before
    assert len(before) == 24
    assert week.prometheus.value(f"count_over_time({query}[1d])", start + DAY - 1) == 24  # no sample twice


@pytest.mark.e2e
def test_prometheus_refuses_days_older_than_its_window_and_the_error_names_them(simulator, tmp_path):
    prometheus = receiving_prometheus(tmp_path, "4d")
    try:
        config = write_config(
            tmp_path,
            simulator.api_url,
            [{"name": "acme", "seats": False, "reports": {"users": False, "teams": False}}],
            source="reports",
        )
        result = run(config, tmp_path, "--from", day(8).isoformat(), "--remote-write", prometheus.url + "/api/v1/write")
        assert result.returncode == 1, result.stderr
        assert "too old sample" in result.stderr
        assert "storage.tsdb.out_of_order_time_window" in result.stderr and "Mimir" in result.stderr
        # Day D is written from D + 2 days: days 8 to 6 back start more than 4 days ago.
        assert {day(8), day(7), day(6)} <= days_named(result.stderr) <= {day(8), day(7), day(6), day(5)}
        query = 'copilot_daily_active_users{org="acme",team=""}'
        assert prometheus.value(query, midnight(day(8)) + 2 * DAY + 3600) is None
        [record] = read_report(simulator, "/orgs/acme", "organization-1-day", day(3))
        assert prometheus.value(query, midnight(day(3)) + 2 * DAY + 3600) == record["daily_active_users"]
        assert (tmp_path / "copilot-backfill.state").exists()  # kept for a rerun
    finally:
        prometheus.close()


# A recording receiver ------------------------------------------------------------------------
class Receiver:
    """A stdlib HTTP server that records each POST and answers from a script, then 204."""

    def __init__(self, answers=(), tls: tuple[str, str] | None = None):
        self.answers = list(answers)
        self.requests: list[SimpleNamespace] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append(SimpleNamespace(path=self.path, headers=dict(self.headers), body=body))
                status, text, headers = receiver.answers.pop(0) if receiver.answers else (204, "", {})
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(text.encode())))
                self.end_headers()
                self.wfile.write(text.encode())

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        if tls:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        scheme = "https" if tls else "http"
        self.url = f"{scheme}://127.0.0.1:{self.server.server_address[1]}/api/v1/write"
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def decoded(self, index: int) -> list[tuple[frozenset, int, float]]:
        """(labels, timestamp ms, value) of every sample of one request, decoded independently."""
        request = remote_write.WriteRequest.FromString(bytes(cramjam.snappy.decompress_raw(self.requests[index].body)))
        return [
            (tuple((label.name, label.value) for label in series.labels), sample.timestamp, sample.value)
            for series in request.timeseries
            for sample in series.samples
        ]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(answers=(), tls=None):
        made.append(Receiver(answers, tls))
        return made[-1]

    yield make
    for one in made:
        one.close()


SMALL = ("--step", "6h", "--remote-write.batch-size", "100", "--remote-write.retry-backoff", "10ms")


def small_config(simulator, tmp_path) -> str:
    return write_config(
        tmp_path,
        simulator.api_url,
        [{"name": "acme", "seats": False, "reports": {"users": False, "teams": False}}],
        source="reports",
    )


def openmetrics_samples(path) -> set[tuple[tuple, int, float]]:
    """(sorted labels with __name__, timestamp ms, value) of an OpenMetrics file, read with prometheus_client."""
    from prometheus_client.openmetrics.parser import text_string_to_metric_families

    rows = set()
    for family in text_string_to_metric_families(open(path, encoding="utf-8").read()):
        for sample in family.samples:
            labels = tuple(sorted([("__name__", sample.name), *((k, v) for k, v in sample.labels.items() if v)]))
            rows.add((labels, round(float(sample.timestamp) * 1000), sample.value))
    return rows


def test_the_receiver_gets_the_openmetrics_samples_with_the_protocol_headers_and_its_own_credentials(
    simulator, receiver, tmp_path
):
    sink = receiver()
    (tmp_path / "token").write_text("rw-bearer-secret\n")
    result = run(
        small_config(simulator, tmp_path),
        tmp_path,
        "--from",
        day(5).isoformat(),
        *SMALL,
        "--output",
        str(tmp_path / "history.om"),
        "--remote-write",
        sink.url,
        "--remote-write.bearer-token-file",
        str(tmp_path / "token"),
        "--remote-write.header",
        "X-Scope-OrgID=tenant-1",
    )
    assert result.returncode == 0, result.stderr
    assert "rw-bearer-secret" not in result.stderr + result.stdout
    assert len(sink.requests) > 1
    for request in sink.requests:
        assert request.path == "/api/v1/write"
        headers = {name.lower(): value for name, value in request.headers.items()}
        assert headers["content-type"] == "application/x-protobuf"
        assert headers["content-encoding"] == "snappy"
        assert headers["x-prometheus-remote-write-version"] == "0.1.0"
        assert headers["user-agent"].startswith("copilot-exporter/")
        assert headers["authorization"] == "Bearer rw-bearer-secret"
        assert headers["x-scope-orgid"] == "tenant-1"
        assert TOKEN not in str(request.headers) and TOKEN.encode() not in request.body

    received, order = [], {}
    for index in range(len(sink.requests)):
        batch = sink.decoded(index)
        assert 0 < len(batch) <= 100
        for labels, timestamp, value in batch:
            assert list(labels) == sorted(labels) and labels[0][0] == "__name__"
            assert timestamp > order.get(labels, 0), f"{labels}: not in time order"
            order[labels] = timestamp
            received.append((labels, timestamp, value))
    assert len(received) == len(set(received))
    assert set(received) == openmetrics_samples(tmp_path / "history.om")  # the same samples as the file
    assert {day_of(t) for _, t, _ in received} == {day(5), day(4), day(3)}


def test_basic_auth_is_sent_and_never_printed(simulator, receiver, tmp_path):
    sink = receiver()
    (tmp_path / "password").write_text("pw-secret")
    result = run(
        small_config(simulator, tmp_path),
        tmp_path,
        "--from",
        day(4).isoformat(),
        "--to",
        day(4).isoformat(),
        *SMALL,
        "--remote-write",
        sink.url,
        "--remote-write.basic-auth-user",
        "alice",
        "--remote-write.basic-auth-password-file",
        str(tmp_path / "password"),
    )
    assert result.returncode == 0, result.stderr
    assert sink.requests and "pw-secret" not in result.stderr
    expected = "Basic " + base64.b64encode(b"alice:pw-secret").decode()
    assert all(r.headers["Authorization"] == expected for r in sink.requests)


def test_a_batch_answered_5xx_or_429_is_sent_again_until_accepted(simulator, receiver, tmp_path):
    sink = receiver([(503, "overloaded", {}), (429, "slow down", {"Retry-After": "0"}), (502, "", {})])
    result = run(
        small_config(simulator, tmp_path),
        tmp_path,
        "--from",
        day(4).isoformat(),
        "--to",
        day(4).isoformat(),
        *SMALL,
        "--remote-write",
        sink.url,
    )
    assert result.returncode == 0, result.stderr
    first = sink.requests[0].body
    assert [r.body == first for r in sink.requests[:5]] == [True, True, True, True, False]
    samples = sum(len(sink.decoded(i)) for i in range(3, len(sink.requests)))
    assert f"sent {samples} of {samples} samples" in result.stderr
    assert not (tmp_path / "copilot-backfill.state").exists()


def test_an_https_receiver_is_verified_with_the_given_ca_file(simulator, receiver, tmp_path, pki):
    sink = receiver(tls=(str(pki / "server.crt"), str(pki / "server.key")))
    config = small_config(simulator, tmp_path)
    untrusted = run(
        config, tmp_path, "--from", day(4).isoformat(), "--to", day(4).isoformat(), *SMALL, "--remote-write", sink.url
    )
    assert untrusted.returncode == 1
    assert "TLS handshake failed" in untrusted.stderr and not sink.requests
    trusted = run(
        config,
        tmp_path,
        "--from",
        day(4).isoformat(),
        "--to",
        day(4).isoformat(),
        *SMALL,
        "--remote-write",
        sink.url,
        "--remote-write.ca-file",
        str(pki / "ca.crt"),
    )
    assert trusted.returncode == 0, trusted.stderr
    assert sink.requests and sink.decoded(0)


def test_retries_are_bounded(simulator, receiver, tmp_path):
    sink = receiver([(503, "down", {})] * 10)
    result = run(
        small_config(simulator, tmp_path),
        tmp_path,
        "--from",
        day(4).isoformat(),
        "--to",
        day(4).isoformat(),
        *SMALL,
        "--remote-write",
        sink.url,
        "--remote-write.retries",
        "2",
    )
    assert result.returncode == 1
    assert len(sink.requests) == 3
    assert "HTTP 503 after 3 tries: down" in result.stderr


def test_a_400_stops_at_once_with_the_first_series_and_the_receivers_message(simulator, receiver, tmp_path):
    sink = receiver([(400, "invalid label set: " + "x" * 2000, {})])
    config = small_config(simulator, tmp_path)
    result = run(config, tmp_path, "--from", day(5).isoformat(), *SMALL, "--remote-write", sink.url)
    assert result.returncode == 1
    assert len(sink.requests) == 1  # neither retried nor followed by the next batch
    first = remote_write.series_name(sink.decoded(0)[0][0])
    assert f"batch starting with {first}: HTTP 400: invalid label set: xxx" in result.stderr
    assert "x" * (remote_write.MESSAGE_LIMIT + 1) not in result.stderr  # truncated
    assert (tmp_path / "copilot-backfill.state").exists()

    # A rerun sends everything again without asking GitHub for the days again.
    simulator.reset_log()
    again = run(config, tmp_path, "--from", day(5).isoformat(), *SMALL, "--remote-write", sink.url)
    assert again.returncode == 0, again.stderr
    asked = {r.query.get("day") for r in simulator.requests if "/copilot/metrics/reports/" in r.path}
    assert not asked & {day(n).isoformat() for n in (5, 4, 3)}
    assert "resuming: 3 already done" in again.stderr
    assert sink.requests[1].body == sink.requests[0].body


def test_too_old_samples_are_not_retried_and_the_error_names_their_days_and_the_setting(simulator, receiver, tmp_path):
    sink = receiver([(500, "too old sample", {})] * 2)
    result = run(
        small_config(simulator, tmp_path), tmp_path, "--from", day(5).isoformat(), *SMALL, "--remote-write", sink.url
    )
    assert result.returncode == 1
    bodies = [r.body for r in sink.requests]
    assert len(bodies) > 2 and len(set(bodies)) == len(bodies)  # no batch sent twice; later ones still sent
    refused = {day_of(t) for index in (0, 1) for _, t, _ in sink.decoded(index)}
    assert days_named(result.stderr) == refused
    assert "storage.tsdb.out_of_order_time_window" in result.stderr
    assert "out_of_order_time_window (limits)" in result.stderr  # Mimir's


# Small parts ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "status, message, outcome",
    [
        (204, "", remote_write.OK),
        (200, "", remote_write.OK),
        (500, "too old sample", remote_write.TOO_OLD),
        (500, "out of bounds", remote_write.TOO_OLD),
        (400, "out of bounds", remote_write.TOO_OLD),
        (400, "out of order sample", remote_write.TOO_OLD),
        (400, "the sample has been rejected (err-mimir-sample-too-far-in-past)", remote_write.TOO_OLD),
        (500, "connection reset", remote_write.RETRY),
        (503, "", remote_write.RETRY),
        (429, "too old sample", remote_write.RETRY),
        (400, "invalid labels", remote_write.REFUSED),
        (401, "unauthorized", remote_write.REFUSED),
        (413, "too large", remote_write.REFUSED),
    ],
)
def test_answers_are_classified(status, message, outcome):
    assert remote_write.classify(status, message) == outcome


def test_series_text_becomes_sorted_labels_without_empty_values():
    series = 'copilot_x{org="a\\"b",team="",lang="c\\\\d\\ne"}'
    assert series_labels(series, (("job", "j"),)) == (
        ("__name__", "copilot_x"),
        ("job", "j"),
        ("lang", "c\\d\ne"),
        ("org", 'a"b'),
    )
    assert series_labels("copilot_up") == (("__name__", "copilot_up"),)


def test_encode_and_decode_are_inverse():
    series = [((("__name__", "a"), ("b", "c")), [(1000, 1.5), (2000, 2.0)]), ((("__name__", "d"),), [(3000, 0.0)])]
    request = remote_write.decode(remote_write.encode(series))
    assert [
        (tuple((label.name, label.value) for label in s.labels), [(x.timestamp, x.value) for x in s.samples])
        for s in request.timeseries
    ] == series


@pytest.mark.parametrize(
    "args, message",
    [
        (["--remote-write.basic-auth-user", "a"], "need --remote-write URL"),
        (["--remote-write", "ftp://x"], "expected an http:// or https:// URL"),
        (["--remote-write", "http://x", "--remote-write.basic-auth-user", "a"], "go together"),
        (
            [
                "--remote-write",
                "http://x",
                "--remote-write.bearer-token-file",
                "t",
                "--remote-write.basic-auth-user",
                "a",
                "--remote-write.basic-auth-password-file",
                "p",
            ],
            "exclude each other",
        ),
        (
            ["--remote-write", "http://x", "--remote-write.bearer-token-file", "/nonexistent/token"],
            "/nonexistent/token",
        ),
        ([], "give --output FILE, --remote-write URL or both"),
    ],
)
def test_unusable_flags_exit_2_with_a_message(tmp_path, capsys, monkeypatch, args, message):
    monkeypatch.setenv("SIM_TOKEN", TOKEN)
    config = write_config(tmp_path, "http://127.0.0.1:9", [{"name": "acme"}])
    assert main(["backfill", "--config", config, "--from", day(5).isoformat(), *args]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("header", ["Authorization=x", "Content-Encoding=gzip", "bad name=x", "novalue"])
def test_headers_the_protocol_owns_or_malformed_are_refused(tmp_path, capsys, header):
    config = write_config(tmp_path, "http://127.0.0.1:9", [{"name": "acme"}])
    with pytest.raises(SystemExit):
        main(
            [
                "backfill",
                "--config",
                config,
                "--from",
                day(5).isoformat(),
                "--remote-write",
                "http://x",
                "--remote-write.header",
                header,
            ]
        )
    assert "--remote-write.header" in capsys.readouterr().err
