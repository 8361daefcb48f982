"""The HTTP server against hostile clients: idle and slow connections, floods, wrong passwords.

Everything over raw sockets or real HTTP on 127.0.0.1. Time bounds are generous (several times
what the server needs), so a loaded machine cannot make them flake; what they tell apart is a
connection closed after the configured seconds from one never closed.
"""

from __future__ import annotations

import base64
import socket
import ssl
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import bcrypt
import pytest
import requests

from copilot_exporter import webconfig
from copilot_exporter.config import ServerLimits
from copilot_exporter.server import App, serve
from copilot_exporter.store import Store
from copilot_exporter.telemetry import Telemetry
from copilot_exporter.webconfig import WebConfig
from test_webconfig import _tls

pytestmark = pytest.mark.integration


SHORT = ServerLimits(max_connections=50, idle_timeout=1.0, read_header_timeout=1.0)


class Running:
    def __init__(self, limits: ServerLimits, web: WebConfig | None = None):
        self.server = serve(App(Store(), Telemetry()), "127.0.0.1:0", web, limits)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path: str = "/metrics", scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def connect(self) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=10)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        # Let the connection threads end (at most a bcrypt queue's wait): a thread still inside
        # bcrypt when the interpreter exits would abort it.
        deadline = time.monotonic() + 30
        while self.server.connections.count() and time.monotonic() < deadline:
            time.sleep(0.1)


@pytest.fixture
def running():
    servers: list[Running] = []

    def start(limits: ServerLimits, web: WebConfig | None = None) -> Running:
        servers.append(Running(limits, web))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes the connection within `seconds` (reading whatever it sends)."""
    sock.settimeout(seconds)
    end = time.monotonic() + seconds
    try:
        while time.monotonic() < end:
            if not sock.recv(4096):
                return True
    except (socket.timeout, TimeoutError):
        return False
    except (ConnectionResetError, ssl.SSLError, OSError):
        return True
    return False


def open_idle(server: Running, count: int) -> list[socket.socket]:
    with ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda _n: server.connect(), range(count)))


def test_a_silent_connection_is_closed_after_the_header_timeout(running):
    server = running(SHORT)
    with server.connect() as sock:
        assert closed_within(sock, 8)


def test_a_request_trickled_byte_by_byte_is_cut_off_at_the_header_deadline(running):
    server = running(SHORT)
    with server.connect() as sock:
        started = time.monotonic()
        request = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: y\r\n" * 100
        try:
            for byte in request:  # one byte every 0.2 s: never idle, never done
                sock.sendall(bytes([byte]))
                time.sleep(0.2)
                if time.monotonic() - started > 10:
                    break
        except OSError:
            pass  # the server closed it: what this test wants
        assert time.monotonic() - started < 10
        assert closed_within(sock, 5)


def test_many_idle_connections_hold_bounded_threads_and_a_scrape_still_answers(running):
    server = running(ServerLimits(max_connections=50, idle_timeout=60.0, read_header_timeout=60.0))
    before = threading.active_count()
    sockets = open_idle(server, 500)
    try:
        time.sleep(0.5)
        assert threading.active_count() - before <= 50 + 10  # the limit, plus a few winding down
        # Waiting behind the idle connections would take their 60 s: the 10 s timeout fails it.
        response = requests.get(server.url(), timeout=10)
        assert response.status_code == 200 and "copilot_exporter_build_info" in response.text
    finally:
        for sock in sockets:
            sock.close()


def test_with_the_default_limits_500_idle_connections_do_not_delay_a_scrape(running):
    server = running(ServerLimits())
    sockets = open_idle(server, 500)
    try:
        # Waiting for a slot would last until the 10 s header timeout frees one: 8 s fails it.
        assert requests.get(server.url(), timeout=8).status_code == 200
    finally:
        for sock in sockets:
            sock.close()


def test_a_tls_connection_that_never_says_hello_is_closed(running, pki):
    server = running(SHORT, WebConfig(tls=_tls(pki)))
    with server.connect() as sock:
        assert closed_within(sock, 5)  # well before the 10 s handshake timeout


def test_a_tls_connection_idle_after_the_handshake_is_closed(running, pki):
    server = running(SHORT, WebConfig(tls=_tls(pki)))
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    with context.wrap_socket(server.connect(), server_hostname="127.0.0.1") as tls:
        assert closed_within(tls, 8)
    # and a normal HTTPS request still works
    assert requests.get(server.url(scheme="https"), verify=str(pki / "ca.crt"), timeout=5).status_code == 200


def test_a_flood_of_wrong_passwords_does_not_starve_a_regular_scrape(running, monkeypatch):
    """Prometheus scrapes every 50 s (as seen by the credential cache) while a flood of wrong
    passwords keeps bcrypt busy: its credentials, verified once, never wait behind the flood."""
    offset = [0.0]
    monkeypatch.setattr(webconfig, "time", SimpleNamespace(monotonic=lambda: time.monotonic() + offset[0]))
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=12)).decode()  # ~0.25 s a check
    server = running(ServerLimits(), WebConfig(basic_auth_users={"prometheus": hashed}))
    assert requests.get(server.url(), auth=("prometheus", "right"), timeout=30).status_code == 200
    bad = base64.b64encode(b"prometheus:wrong").decode()
    request = (f"GET /metrics HTTP/1.1\r\nHost: x\r\nAuthorization: Basic {bad}\r\n\r\n").encode()
    flood = open_idle(server, 300)
    try:
        for sock in flood:
            sock.sendall(request)
        time.sleep(0.5)  # the flood is queued for bcrypt
        for _scrape in range(2):  # at 50 s and 100 s: past the cache's 60 s after the first check
            offset[0] += webconfig.AUTH_CACHE_SECONDS * 5 / 6
            # Behind the flood it would wait past BCRYPT_QUEUE_WAIT and get 503: 200 is the proof.
            response = requests.get(server.url(), auth=("prometheus", "right"), timeout=30)
            assert response.status_code == 200
    finally:
        for sock in flood:
            sock.close()


def test_a_client_that_never_reads_its_answer_is_cut_off_quietly(running, caplog, capfd):
    store = Store()
    from copilot_exporter.model import Family, Scope

    scope = Scope("org", "acme")
    store.replace(
        scope,
        "reports",
        (
            Family(
                "copilot_lines_added_by_ide",
                tuple((((("org", "acme"), ("ide", f"ide-{n:06d}-" + "x" * 200)), n)) for n in range(40_000)),
            ),
        ),
    )
    server = serve(App(store, Telemetry()), "127.0.0.1:0", None, SHORT)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        with socket.create_connection(("127.0.0.1", server.server_address[1]), timeout=10) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")  # ~10 MB answer, never read
            deadline = time.monotonic() + 15
            while server.connections.count() and time.monotonic() < deadline:
                time.sleep(0.1)
            assert server.connections.count() == 0  # its thread ended: the send timed out
    finally:
        server.shutdown()
        server.server_close()
    assert "Traceback" not in capfd.readouterr().err
