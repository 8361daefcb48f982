"""Test helpers for the network path: a forward proxy and a TLS front, both on 127.0.0.1.

`ForwardProxy` speaks both ways a client uses a proxy: CONNECT (a tunnel, for https URLs; it
records the host and port it tunnelled to) and plain HTTP proxying (an absolute URL in the
request line, for http URLs; it records the host and the headers of each request). `TlsFront`
terminates TLS with a given certificate and passes requests on to a plain HTTP server, so an
https API URL can lead to the simulator.
"""

from __future__ import annotations

import datetime
import http.client
import ipaddress
import socket
import socketserver
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
}


@dataclass(frozen=True)
class Forwarded:
    host: str  # host:port the request went to
    method: str
    path: str
    headers: dict[str, str]  # as the proxy received them, names lower-cased


def _pipe(source: socket.socket, target: socket.socket) -> None:
    try:
        while chunk := source.recv(65536):
            target.sendall(chunk)
    except OSError:
        pass
    finally:
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _relay(client: socket.socket, upstream: socket.socket) -> None:
    """Bytes both ways until either side closes."""
    back = threading.Thread(target=_pipe, args=(upstream, client), daemon=True)
    back.start()
    _pipe(client, upstream)
    back.join(10)


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False


class ForwardProxy:
    def __init__(self) -> None:
        self.tunnels: list[str] = []
        self.forwarded: list[Forwarded] = []
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request_line = self.rfile.readline(65537).decode("latin-1").strip()
                if not request_line:
                    return
                method, target, _version = request_line.split(" ", 2)
                headers = http.client.parse_headers(self.rfile)
                if method == "CONNECT":
                    proxy._tunnel(self.connection, target)
                else:
                    proxy._forward(self, method, target, headers)

        self._server = _Server(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def hosts(self) -> set[str]:
        """Every host:port reached through the proxy, tunnelled or forwarded."""
        with self._lock:
            return set(self.tunnels) | {request.host for request in self.forwarded}

    def _tunnel(self, client: socket.socket, target: str) -> None:
        with self._lock:
            self.tunnels.append(target)
        host, _, port = target.rpartition(":")
        try:
            upstream = socket.create_connection((host, int(port)), timeout=10)
        except OSError:
            client.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\n\r\n")
            return
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        with upstream:
            _relay(client, upstream)

    def _forward(
        self, handler: socketserver.StreamRequestHandler, method: str, target: str, headers: http.client.HTTPMessage
    ) -> None:
        url = urlsplit(target)
        length = int(headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        with self._lock:
            self.forwarded.append(
                Forwarded(url.netloc, method, url.path, {name.lower(): value for name, value in headers.items()})
            )
        upstream = http.client.HTTPConnection(url.hostname, url.port or 80, timeout=30)
        path = url.path + (f"?{url.query}" if url.query else "")
        upstream.request(
            method,
            path,
            body=body,
            headers={name: value for name, value in headers.items() if name.lower() not in HOP_BY_HOP},
        )
        response = upstream.getresponse()
        content = response.read()  # whole, so the answer can carry a Content-Length
        head = [f"HTTP/1.1 {response.status} {response.reason}"]
        head += [
            f"{name}: {value}"
            for name, value in response.getheaders()
            if name.lower() not in HOP_BY_HOP | {"content-length"}
        ]
        head += [f"Content-Length: {len(content)}", "Connection: close"]
        handler.connection.sendall(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + content)
        upstream.close()


class TlsFront:
    """HTTPS on 127.0.0.1 with `cert_file`/`key_file`, passing each request on to the plain HTTP
    server at `backend` (host, port). `None` as backend answers 404 to everything."""

    def __init__(self, backend: tuple[str, int] | None, cert_file: str, key_file: str):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert_file, key_file)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if backend is None:
                    status, reason, answer, content = 404, "Not Found", [], b""
                else:
                    upstream = http.client.HTTPConnection(*backend, timeout=30)
                    upstream.request(
                        self.command,
                        self.path,
                        body=body,
                        headers={name: value for name, value in self.headers.items() if name.lower() not in HOP_BY_HOP},
                    )
                    response = upstream.getresponse()
                    status, reason, answer, content = (
                        response.status,
                        response.reason,
                        response.getheaders(),
                        response.read(),
                    )
                    upstream.close()
                self.send_response(status, reason)
                for name, value in answer:
                    if name.lower() not in HOP_BY_HOP | {"content-length"}:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(content)))
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(content)

            do_POST = do_GET

            def log_message(self, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self.address = f"127.0.0.1:{self._server.server_address[1]}"
        self.url = f"https://{self.address}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def self_signed(directory: Path) -> tuple[str, str]:
    """(certificate file, key file) of a self-signed CA certificate for 127.0.0.1, in PEM."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "corporate proxy CA")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(cert_file), str(key_file)
