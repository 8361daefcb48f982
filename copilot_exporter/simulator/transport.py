"""HTTP plumbing shared by the API and download servers: request log, faults, replies.

HTTP/1.1 with keep-alive, like the real services: a client that opens a connection per request
would look fine against HTTP/1.0 and slow against GitHub. Streamed bodies use chunked encoding
so a large report never needs its length, or all of its bytes, up front.
"""

from __future__ import annotations

import json
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from requests.structures import CaseInsensitiveDict

from copilot_exporter.simulator.faults import MALFORMED, Fault, bomb, filler, huge_report, wrong_types

JSON = "application/json; charset=utf-8"
NDJSON = "application/x-ndjson"
DOCS = "https://docs.github.com/rest"


@dataclass
class RecordedRequest:
    server: str  # "api" | "download"
    method: str
    path: str
    query: dict[str, str]
    headers: CaseInsensitiveDict
    status: int = 0  # 0 until answered, and for a connection reset


@dataclass
class Reply:
    status: int
    body: bytes | Iterable[bytes] = b""  # an iterable is streamed with chunked encoding
    headers: dict[str, str] = field(default_factory=dict)


def encode_json(payload: Any) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def github_error(
    status: int, message: str, documentation_url: str = DOCS, headers: dict[str, str] | None = None
) -> Reply:
    body = {"message": message, "documentation_url": documentation_url, "status": str(status)}
    return Reply(status, encode_json(body), {"Content-Type": JSON, **(headers or {})})


_SECONDARY_LIMIT = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."
_FAULT_MESSAGES = {
    401: "Bad credentials",
    403: _SECONDARY_LIMIT,
    404: "Not Found",
    422: "Copilot Metrics API access is disabled for this organization or enterprise.",
    429: _SECONDARY_LIMIT,
}


def _fault_body(fault: Fault) -> Reply:
    if fault.body is None:
        return github_error(fault.status, _FAULT_MESSAGES.get(fault.status, "Server Error"))
    if isinstance(fault.body, (dict, list)):
        return Reply(fault.status, encode_json(fault.body), {"Content-Type": JSON})
    body = fault.body.encode() if isinstance(fault.body, str) else fault.body
    return Reply(fault.status, body, {"Content-Type": JSON})


def _same(value: Any) -> Any:
    return value


class Handler(BaseHTTPRequestHandler):
    """Base of both servers: subclasses implement `respond` and may `decorate` every reply."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else small replies wait for delayed ACKs
    timeout = 120  # idle keep-alive connections are closed eventually
    kind = ""  # "api" | "download"
    server: Server

    def respond(self, method: str, path: str, query: dict[str, str], transform: Callable[[Any], Any]) -> Reply:
        """The normal answer; `transform` is applied to every JSON document before encoding."""
        raise NotImplementedError

    def decorate(self, reply: Reply) -> None:
        """Headers every reply of this server carries."""

    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_GET

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the request log is `Simulator.requests`

    def _dispatch(self) -> None:
        sim = self.server.sim
        url = urlsplit(self.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        entry = sim._record(
            RecordedRequest(self.kind, self.command, url.path, query, CaseInsensitiveDict(self.headers.items()))
        )
        fault = sim._faults.take(self.kind, url.path)
        try:
            if sim.latency:
                time.sleep(sim.latency)
            if fault is not None and fault.delay:
                time.sleep(fault.delay)
            if fault is not None and fault.kind == "reset":
                self._reset()
                return
            reply = self._reply(fault, url.path, query)
            entry.status = reply.status
            if fault is not None and fault.kind == "truncated":
                self._send_truncated(reply)
            elif fault is not None and fault.kind == "drip":
                self._send_drip(reply, fault.interval)
            else:
                self._send(reply, fault.body_delay if fault is not None else 0.0)
        except OSError:
            self.close_connection = True  # the client went away: nothing left to answer

    def _reply(self, fault: Fault | None, path: str, query: dict[str, str]) -> Reply:
        try:
            if fault is not None and fault.kind == "drip" and fault.body is not None:
                reply = _fault_body(fault)
                reply.status = 200
            elif fault is None or fault.kind in ("truncated", "wrong_types", "drip") or fault.late_but_normal:
                mangle = fault is not None and fault.kind == "wrong_types"
                reply = self.respond(self.command, path, query, wrong_types if mangle else _same)
            elif fault.kind is None:
                reply = _fault_body(fault)
            elif fault.kind == "malformed":
                reply = Reply(200, MALFORMED, {"Content-Type": JSON})
            elif fault.kind == "filler":
                reply = Reply(200, filler(fault.size, fault.fill), {"Content-Type": JSON})
            elif fault.kind == "bomb":
                reply = Reply(200, bomb(fault.size, fault.fill), {"Content-Type": "application/gzip"})
            else:  # huge
                body = huge_report(self.server.sim.world, fault.size)
                reply = Reply(200, body, {"Content-Type": NDJSON})
        except Exception:
            traceback.print_exc(file=sys.stderr)
            reply = github_error(500, "Simulator error")
        self.decorate(reply)
        if fault is not None:
            reply.headers.update(fault.headers)
        return reply

    def _send(self, reply: Reply, body_delay: float = 0.0) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        if isinstance(reply.body, bytes):
            if reply.status not in (204, 304):
                self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            time.sleep(body_delay)
            if reply.body:
                self.wfile.write(reply.body)
            return
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        time.sleep(body_delay)
        chunks = iter(reply.body)
        while True:
            try:
                chunk = next(chunks)
            except StopIteration:
                break
            except Exception:
                # Too late for an error status: cut the stream so no client takes it as whole.
                traceback.print_exc(file=sys.stderr)
                self.close_connection = True
                return
            if chunk:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
        self.wfile.write(b"0\r\n\r\n")

    def _send_drip(self, reply: Reply, interval: float) -> None:
        """The answer's headers, then its body one byte every `interval` seconds (Content-Length
        announced: the client keeps waiting for the rest)."""
        body = reply.body if isinstance(reply.body, bytes) else b"".join(reply.body)  # the normal answer, whole
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        for index in range(len(body)):
            self.wfile.write(body[index : index + 1])
            self.wfile.flush()
            time.sleep(interval)

    def _send_truncated(self, reply: Reply) -> None:
        body = reply.body if isinstance(reply.body, bytes) else next(iter(reply.body), b"")
        self.send_response(200)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body) + 1024))
        self.end_headers()
        self.wfile.write(body[: len(body) // 2])
        self.close_connection = True

    def _reset(self) -> None:
        # Linger 0: closing sends RST instead of FIN, so the client sees "connection reset".
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # stop() must not wait for delayed or streaming answers
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], handler: type[Handler], sim: Any):
        self.sim = sim
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._connections_lock:
            self._connections.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def server_close(self) -> None:
        """Also ends open keep-alive connections: a stopped server must not answer anyone."""
        super().server_close()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # already closed by its handler

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that stops reading (a limit tripped mid-body) resets its connection: not an error.
        if not isinstance(sys.exc_info()[1], (ConnectionResetError, BrokenPipeError)):
            super().handle_error(request, client_address)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name, which can stall on a resolver.
        socketserver.TCPServer.server_bind(self)
        host, self.server_port = self.server_address[:2]
        self.server_name = str(host)
