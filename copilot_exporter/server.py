"""The HTTP side: /metrics from memory, /healthz, and a landing page with each scope's status.

Scrapes never call GitHub: they join the store's rendered data with the small self-metrics,
and reuse the finished body (gzip included) until either changes.
"""

from __future__ import annotations

import errno
import html
import logging
import socket
import socketserver
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from copilot_exporter import __version__, exposition, webconfig
from copilot_exporter.config import ServerLimits
from copilot_exporter.store import Store
from copilot_exporter.telemetry import Telemetry

log = logging.getLogger(__name__)

StartResponse = Callable[..., object]


class MetricsBody:
    """Renders /metrics bodies and keeps the last one per format until the data changes.

    A body is three chunks: the data (every snapshot, large, changing when a scope is refreshed),
    the self-metrics (small, changing with every GitHub request) and the process metrics (tiny,
    changing always). The data chunk is encoded, and compressed, once per data change, the
    self-metrics once per change of theirs, so a scrape only renders and compresses the process
    metrics. Compressed, each chunk continues the gzip stream from a copy of the compressor's
    state after the one before: the body stays one ordinary gzip member.
    """

    def __init__(self, store: Store, telemetry: Telemetry):
        self._store = store
        self._telemetry = telemetry
        self._lock = threading.Lock()
        # (openmetrics, compressed) -> (versions, chunks up to the process metrics, compressor state)
        self._cache: dict[tuple[bool, bool], tuple[tuple[int, int], list[bytes], Any]] = {}
        # openmetrics -> (data version, encoded data, gzip of it so far, its compressor's state)
        self._data: dict[bool, tuple[int, bytes, bytes | None, Any]] = {}

    def get(self, openmetrics: bool, compressed: bool) -> list[bytes]:
        """The body's chunks, to be sent in order."""
        key = (openmetrics, compressed)
        telemetry_version = self._telemetry.version
        data_version, data = self._store.render(openmetrics)
        versions = (data_version, telemetry_version)
        with self._lock:
            cached = self._cache.get(key)
        if cached is None or cached[0] != versions:
            cached = (versions, *self._head(openmetrics, compressed, data_version, data))
            with self._lock:
                self._cache[key] = cached
        _versions, chunks, compressor = cached
        # The process metrics (CPU, memory, file descriptors) change between any two scrapes.
        last = (self._telemetry.process(openmetrics) + ("# EOF\n" if openmetrics else "")).encode("utf-8")
        if compressed:
            finish = compressor.copy()
            return [*chunks, finish.compress(last) + finish.flush()]
        return [*chunks, last]

    def _head(self, openmetrics: bool, compressed: bool, data_version: int, data: str) -> tuple[list[bytes], Any]:
        """The data and self-metrics chunks, and the compressor's state after them (compressed only)."""
        encoded, prefix, compressor = self._data_chunk(openmetrics, compressed, data_version, data)
        own = [*self._telemetry.families(), self._store.render_failures()]
        tail = exposition.render_families(own, openmetrics).encode("utf-8")
        if not compressed:
            return [encoded, tail], None
        compressor = compressor.copy()
        return [prefix, compressor.compress(tail) + compressor.flush(zlib.Z_SYNC_FLUSH)], compressor

    def _data_chunk(
        self, openmetrics: bool, compressed: bool, version: int, data: str
    ) -> tuple[bytes, bytes | None, Any]:
        with self._lock:
            known = self._data.get(openmetrics)
        if known is None or known[0] != version:
            known = (version, data.encode("utf-8"), None, None)
        if compressed and known[2] is None:
            compressor = zlib.compressobj(5, zlib.DEFLATED, 31)  # 31: a gzip header and trailer
            prefix = compressor.compress(known[1]) + compressor.flush(zlib.Z_SYNC_FLUSH)
            known = (version, known[1], prefix, compressor)
        with self._lock:
            current = self._data.get(openmetrics)
            if current is None or current[0] <= version:
                self._data[openmetrics] = known
        return known[1], known[2], known[3]


class App:
    """The WSGI application."""

    def __init__(self, store: Store, telemetry: Telemetry):
        self.telemetry = telemetry
        self.metrics = MetricsBody(store, telemetry)
        self.started = time.time()

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        response = self._route(environ, start_response)
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else response

    def _route(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "/")
        if environ.get("REQUEST_METHOD") not in ("GET", "HEAD"):
            return _reply(start_response, "405 Method Not Allowed", b"method not allowed\n", "text/plain")
        if path == "/metrics":
            return self._metrics(environ, start_response)
        if path == "/healthz":
            return _reply(start_response, "200 OK", b"ok\n", "text/plain")
        if path == "/":
            return _reply(start_response, "200 OK", self._landing().encode(), "text/html; charset=utf-8")
        return _reply(start_response, "404 Not Found", b"not found\n", "text/plain")

    def _metrics(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        openmetrics = "application/openmetrics-text" in environ.get("HTTP_ACCEPT", "")
        compressed = "gzip" in environ.get("HTTP_ACCEPT_ENCODING", "")
        body = self.metrics.get(openmetrics, compressed)
        headers = [("Vary", "Accept, Accept-Encoding")]
        if compressed:
            headers.append(("Content-Encoding", "gzip"))
        content_type = exposition.OPENMETRICS if openmetrics else exposition.TEXT
        return _reply(start_response, "200 OK", body, content_type, headers)

    def _landing(self) -> str:
        rows = []
        for scope, source, status in self.telemetry.statuses():
            days = ", ".join(f"{report}: {day}" for report, day in sorted((status.days or {}).items()))
            state = {True: "up", False: "failing", None: "pending"}[status.up]
            rows.append(
                "<tr>"
                + "".join(
                    f"<td>{html.escape(str(cell))}</td>"
                    for cell in (
                        scope,
                        source,
                        status.api or "",
                        state,
                        _when(status.last_refresh),
                        _when(status.last_success),
                        days or "none yet",
                        status.last_error or "",
                        "; ".join(status.notes),
                    )
                )
                + "</tr>"
            )
        table = "".join(rows) or '<tr><td colspan="9">no refresh yet</td></tr>'
        budgets, deferred = self.telemetry.budgets()
        budget = "".join(
            f"<li>{html.escape(credential)}: {spent} requests in the last hour"
            + (f" of {allowance} allowed (request_budget_share)" if allowance is not None else "")
            + "</li>"
            for credential, (spent, allowance) in sorted(budgets.items())
        )
        if deferred:
            budget += (
                "<li>put off as the request budget ran low: "
                + ", ".join(f"{html.escape(source)} {count}" for source, count in sorted(deferred.items()))
                + "</li>"
            )
        budget = f"<h2>Request budget</h2><ul>{budget}</ul>" if budget else ""
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>Copilot exporter</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;text-align:left;"
            "border-bottom:1px solid #ddd}</style></head><body>"
            f"<h1>Copilot exporter</h1><p>Version {__version__}, up since {_when(self.started)}. "
            "<a href='/metrics'>Metrics</a> &middot; <a href='/healthz'>Health</a></p>"
            "<table><tr><th>scope</th><th>source</th><th>API</th><th>state</th><th>last refresh</th>"
            "<th>last success</th><th>day exported</th><th>last error</th><th>notes</th></tr>"
            f"{table}</table>{budget}</body></html>\n"
        )


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp)) if timestamp else "never"


def _reply(
    start_response: StartResponse,
    status: str,
    body: bytes | list[bytes],
    content_type: str,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    chunks = [body] if isinstance(body, bytes) else body
    start_response(
        status, [("Content-Type", content_type), ("Content-Length", str(sum(map(len, chunks))))] + (headers or [])
    )
    return chunks


class Connections:
    """The open connections of a server: how many, and how long each may take to send its request.

    A connection is *waiting* from accept until its request headers are read (TLS handshake
    included), then *busy* while the request is answered. A waiting connection past its
    deadline is shut down, however slowly it trickles bytes; at the limit, a new connection
    makes the longest-waiting one give way (scrapers send their request at once, so the
    connections that give way are those that never do), and it is refused only when every
    connection is busy. Shutting a socket down wakes its thread, which then ends.
    """

    def __init__(self, limits: ServerLimits):
        self.limits = limits
        self._lock = threading.Lock()
        self._open: dict[int, list] = {}  # id of the accepted socket -> [socket, deadline or None]
        self._aliases: dict[int, int] = {}  # id of a wrapping (TLS) socket -> id of the accepted one
        self._next_reap = 0.0

    def opened(self, request: socket.socket) -> bool:
        """Register an accepted connection; False when it must be refused (every one busy)."""
        now = time.monotonic()
        with self._lock:
            if len(self._open) >= self.limits.max_connections:
                waiting = [(entry[1], key) for key, entry in self._open.items() if entry[1] is not None]
                if not waiting:
                    return False
                _deadline, oldest = min(waiting)
                _shut(self._open[oldest][0])  # its thread ends and calls closed()
                self._open[oldest][1] = None
            self._open[id(request)] = [request, now + self.limits.read_header_timeout]
        return True

    def replaced(self, request: socket.socket, connection: socket.socket) -> None:
        """The accepted socket now lives on as `connection` (wrapped for TLS)."""
        with self._lock:
            entry = self._open.get(id(request))
            if entry is not None:
                entry[0] = connection
                self._aliases[id(connection)] = id(request)

    def busy(self, sock: socket.socket) -> None:
        """The connection's request headers are read: no deadline while it is answered."""
        with self._lock:
            entry = self._open.get(self._aliases.get(id(sock), id(sock)))
            if entry is not None:
                entry[1] = None

    def closed(self, request: socket.socket) -> None:
        with self._lock:
            entry = self._open.pop(id(request), None)
            if entry is not None:
                self._aliases.pop(id(entry[0]), None)

    def reap(self) -> None:
        """Shut down the connections past their deadline (at most a few times a second)."""
        now = time.monotonic()
        if now < self._next_reap:
            return
        self._next_reap = now + 0.25
        with self._lock:
            for entry in self._open.values():
                if entry[1] is not None and entry[1] < now:
                    _shut(entry[0])  # its thread ends and calls closed()
                    entry[1] = None

    def count(self) -> int:
        with self._lock:
            return len(self._open)


def _shut(sock: socket.socket) -> None:
    # The plain socket's shutdown, also for an SSLSocket: it wakes a thread blocked reading the
    # connection without touching TLS state that thread is using.
    try:
        socket.socket.shutdown(sock, socket.SHUT_RDWR)
    except OSError:  # already closed or reset
        pass


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    """One thread per connection, at most `limits.max_connections` of them (see Connections).

    Each connection's socket times out after `limits.idle_timeout` without a byte read or
    written, so a client that stops reading an answer cannot hold its thread either.
    """

    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops connections when many scrapers connect at once:
    # their retried SYNs then take seconds.
    request_queue_size = 128
    limits: ServerLimits = ServerLimits()

    def server_activate(self) -> None:
        self.connections = Connections(self.limits)
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.connections.opened(request):
            self.shutdown_request(request)
            return
        request.settimeout(self.limits.idle_timeout)
        try:
            super().process_request(request, client_address)
        except Exception:  # e.g. no thread could be started: the connection is dropped, not the server
            self.connections.closed(request)
            self.shutdown_request(request)
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.connections.closed(request)

    def service_actions(self) -> None:
        super().service_actions()
        self.connections.reap()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up, timing out or being shut down is routine, not a traceback on stderr.
        log.debug("connection from %s ended with an error", client_address[0], exc_info=True)


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _ErrorLog:
    """Where wsgiref writes a failed request's traceback: the log, as one record. A client that
    times out or goes away while answered is routine (debug); anything else is an error."""

    _CLIENT_GONE = (
        "TimeoutError",
        "socket.timeout",
        "ConnectionResetError",
        "BrokenPipeError",
        "ConnectionAbortedError",
        "ssl.",
    )

    def __init__(self) -> None:
        self._parts: list[str] = []

    def write(self, text: str) -> None:
        self._parts.append(text)

    def flush(self) -> None:
        text, self._parts = "".join(self._parts).rstrip(), []
        if text:
            gone = text.rsplit("\n", 1)[-1].startswith(self._CLIENT_GONE)
            log.log(logging.DEBUG if gone else logging.ERROR, "error answering a request: %s", text)


class _QuietHandler(WSGIRequestHandler):
    def get_stderr(self) -> _ErrorLog:  # type: ignore[override]
        return _ErrorLog()

    def parse_request(self) -> bool:
        parsed = super().parse_request()
        if parsed:
            self.server.connections.busy(self.request)  # type: ignore[attr-defined]
        return parsed

    def log_message(self, format: str, *args: object) -> None:  # access logs would drown the useful ones
        pass


class ListenError(Exception):
    """The server cannot listen on the address; the message names it and the cause, in one line."""


def parse_listen_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def serve(
    app: Callable, listen_address: str, web: webconfig.WebConfig | None = None, limits: ServerLimits = ServerLimits()
) -> WSGIServer:
    """Bind and return the server (call serve_forever on it); port 0 picks a free port.

    With a web config, requests need its basic auth users and connections its TLS settings.
    Raises ListenError when the address cannot be listened on.
    """
    host, port = parse_listen_address(listen_address)
    base = _ThreadingServer6 if ":" in host else _ThreadingServer
    server_class = type(base.__name__, (base,), {"limits": limits})
    if web is not None:
        app = webconfig.protect(app, web)
        context = webconfig.ssl_context(web)
        if context is not None:
            server_class = webconfig.with_tls(server_class, context)
    try:
        return make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
    except (OSError, OverflowError) as err:
        raise ListenError(f"cannot listen on {listen_address}: {_bind_cause(err, host)}") from None


def _bind_cause(err: OSError | OverflowError, host: str) -> str:
    if isinstance(err, OverflowError):
        return "the port must be between 0 and 65535"
    if isinstance(err, socket.gaierror):
        return f"cannot resolve {host} ({err.strerror})"
    return {
        errno.EADDRINUSE: "the address is already in use (another process listens there: stop it, "
        "or choose another port)",
        errno.EADDRNOTAVAIL: f"this machine has no address {host} (use one of its addresses, "
        "or none to listen on every interface)",
        errno.EACCES: "permission denied (ports below 1024 need privileges)",
    }.get(err.errno or 0, err.strerror or type(err).__name__)
