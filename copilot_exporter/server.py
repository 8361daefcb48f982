"""The HTTP side: /metrics from memory, /healthz, and a landing page with each scope's status.

Scrapes never call GitHub: they join the store's rendered data with the small self-metrics,
and reuse the finished body (gzip included) until either changes.
"""

from __future__ import annotations

import html
import socket
import socketserver
import threading
import time
import zlib
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from copilot_exporter import __version__, exposition, webconfig
from copilot_exporter.store import Store
from copilot_exporter.telemetry import Telemetry

StartResponse = Callable[..., object]


class MetricsBody:
    """Renders /metrics bodies and keeps the last one per format until the data changes.

    A body is two chunks: the data (every snapshot, large, changing when a scope is refreshed)
    and the self-metrics (small, changing with every GitHub request). The data chunk is encoded,
    and compressed, once per data change, so a scrape while a refresh runs only renders and
    compresses the small chunk. Compressed, the second chunk continues the gzip stream from a
    copy of the compressor's state after the data: the body stays one ordinary gzip member.
    """

    def __init__(self, store: Store, telemetry: Telemetry):
        self._store = store
        self._telemetry = telemetry
        self._lock = threading.Lock()
        self._cache: dict[tuple[bool, bool], tuple[tuple[int, int], list[bytes]]] = {}
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
        if cached and cached[0] == versions:
            return cached[1]
        encoded, prefix, compressor = self._data_chunk(openmetrics, compressed, data_version, data)
        tail = exposition.render_families(self._telemetry.families(), openmetrics) + ("# EOF\n" if openmetrics else "")
        if compressed:
            finish = compressor.copy()
            body = [prefix, finish.compress(tail.encode("utf-8")) + finish.flush()]
        else:
            body = [encoded, tail.encode("utf-8")]
        with self._lock:
            self._cache[key] = (versions, body)
        return body

    def _data_chunk(self, openmetrics: bool, compressed: bool, version: int, data: str) -> tuple[bytes, bytes | None, Any]:
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
            rows.append("<tr>" + "".join(f"<td>{html.escape(str(cell))}</td>" for cell in (
                scope, source, status.api or "", state, _when(status.last_refresh),
                _when(status.last_success), days or "none yet", status.last_error or "",
                "; ".join(status.notes),
            )) + "</tr>")
        table = "".join(rows) or '<tr><td colspan="9">no refresh yet</td></tr>'
        return (
            "<!doctype html><html><head><meta charset='utf-8'><title>Copilot exporter</title>"
            "<style>body{font-family:sans-serif;margin:2em}td,th{padding:4px 10px;text-align:left;"
            "border-bottom:1px solid #ddd}</style></head><body>"
            f"<h1>Copilot exporter</h1><p>Version {__version__}, up since {_when(self.started)}. "
            "<a href='/metrics'>Metrics</a> &middot; <a href='/healthz'>Health</a></p>"
            "<table><tr><th>scope</th><th>source</th><th>API</th><th>state</th><th>last refresh</th>"
            "<th>last success</th><th>day exported</th><th>last error</th><th>notes</th></tr>"
            f"{table}</table></body></html>\n"
        )


def _when(timestamp: float | None) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(timestamp)) if timestamp else "never"


def _reply(start_response: StartResponse, status: str, body: bytes | list[bytes], content_type: str,
           headers: list[tuple[str, str]] | None = None) -> list[bytes]:
    chunks = [body] if isinstance(body, bytes) else body
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(sum(map(len, chunks))))]
                   + (headers or []))
    return chunks


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    # socketserver's default backlog of 5 drops connections when many scrapers connect at once:
    # their retried SYNs then take seconds.
    request_queue_size = 128


class _ThreadingServer6(_ThreadingServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # access logs would drown the useful ones
        pass


def parse_listen_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]") or "0.0.0.0", int(port)


def serve(app: Callable, listen_address: str, web: webconfig.WebConfig | None = None) -> WSGIServer:
    """Bind and return the server (call serve_forever on it); port 0 picks a free port.

    With a web config, requests need its basic auth users and connections its TLS settings.
    """
    host, port = parse_listen_address(listen_address)
    server_class = _ThreadingServer6 if ":" in host else _ThreadingServer
    if web is not None:
        app = webconfig.protect(app, web)
        context = webconfig.ssl_context(web)
        if context is not None:
            server_class = webconfig.with_tls(server_class, context)
    return make_server(host, port, app, server_class=server_class, handler_class=_QuietHandler)
