"""TLS and basic auth for the HTTP server, configured by a Prometheus exporter-toolkit web config file.

The file format is the one of `--web.config.file` in Go exporters, so operators can reuse theirs:

    tls_server_config: {cert_file, key_file, client_auth_type, client_ca_file, min_version, max_version}
    basic_auth_users: {user: bcrypt hash}

Keys of that format this exporter does not implement (inline certificates, cipher suites, SAN
filters, headers, rate limits) are refused rather than ignored, since ignoring a security setting
would quietly weaken it. As in exporter-toolkit, relative file paths are relative to the web
config file's directory.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import os
import re
import secrets
import socket
import ssl
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from copilot_exporter.config import Section, error_reason, read_yaml
from copilot_exporter.errors import ConfigError

log = logging.getLogger(__name__)

CLIENT_AUTH_TYPES = (
    "NoClientCert",
    "RequestClientCert",
    "RequireAnyClientCert",
    "VerifyClientCertIfGiven",
    "RequireAndVerifyClientCert",
)
# Python's ssl module cannot accept a client certificate without verifying it, so the two Go
# policies that take unverified certificates map to their verifying counterparts: stricter, never
# weaker. Hence every policy but NoClientCert needs client_ca_file.
_VERIFY_MODES = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,  # as VerifyClientCertIfGiven
    "RequireAnyClientCert": ssl.CERT_REQUIRED,  # as RequireAndVerifyClientCert
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}

_TOP_KEYS = ("tls_server_config", "basic_auth_users", "http_server_config", "rate_limit")
_TLS_KEYS = ("cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version")
_UNSUPPORTED_TLS_KEYS = (
    "cert",
    "key",
    "client_ca",
    "client_allowed_sans",
    "cipher_suites",
    "prefer_server_cipher_suites",
    "curve_preferences",
)
_HTTP_KEYS = ("http2",)  # accepted and ignored: this server only speaks HTTP/1
_UNSUPPORTED_HTTP_KEYS = ("headers",)
_BCRYPT_HASH = re.compile(r"\$2[abxy]\$(?P<cost>[0-9]{2})\$[./A-Za-z0-9]{53}")
_INSTALL_HINT = "needs the bcrypt package: pip install copilot-exporter[web]"

HANDSHAKE_TIMEOUT = 10.0  # seconds a client gets to finish the TLS handshake, unless the server sets its own
AUTH_CACHE_SECONDS = 60.0  # how long a verified user and password skip bcrypt after their last use
# bcrypt checks running at once: each takes a core for tens of milliseconds; half the cores
# leaves the rest to answer scrapes while a flood of wrong passwords queues here.
BCRYPT_CONCURRENCY = max(1, min(4, (os.cpu_count() or 2) // 2))
# How long a request waits for a bcrypt check before it is answered 503 unchecked: a flood of
# wrong passwords then costs its own requests their answers, not the server its threads, and a
# valid user not yet verified is told to retry rather than that the password is wrong.
BCRYPT_QUEUE_WAIT = 5.0
REALM = "copilot-exporter"


@dataclass(frozen=True)
class TLSServerConfig:
    cert_file: str
    key_file: str
    client_auth_type: str = "NoClientCert"
    client_ca_file: str | None = None
    min_version: str = "TLS12"  # exporter-toolkit's defaults
    max_version: str = "TLS13"


@dataclass(frozen=True)
class WebConfig:
    tls: TLSServerConfig | None = None  # None: plain HTTP
    # user -> bcrypt hash; empty: no authentication. Left out of repr, as the hashes are secrets.
    basic_auth_users: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}), repr=False)


# --- loading ----------------------------------------------------------------------------------


def load_web_config(path: str | os.PathLike) -> WebConfig:
    """Read and check a web config file, TLS files included; raises ConfigError listing every problem."""
    data = read_yaml(path)
    problems: list[str] = []
    web = _web_config(data, Path(path).parent, problems)
    if problems:
        raise ConfigError(problems)
    return web


def _web_config(data: Any, directory: Path, problems: list[str]) -> WebConfig:
    if data is None:  # an empty file, as in exporter-toolkit: plain HTTP, no authentication
        return WebConfig()
    root = Section.of(data, "", problems, _TOP_KEYS)
    if root is None:
        return WebConfig()
    if root.has("rate_limit"):
        root.problem("rate_limit", "not supported by copilot-exporter")
    http = root.child("http_server_config", (*_HTTP_KEYS, *_UNSUPPORTED_HTTP_KEYS))
    if http is not None:
        _refuse_unsupported(http, _UNSUPPORTED_HTTP_KEYS)
        http.flag("http2", True)
    tls = _tls(root.child("tls_server_config", (*_TLS_KEYS, *_UNSUPPORTED_TLS_KEYS)), directory)
    users = _users(root.child("basic_auth_users", _AnyKey()))
    return WebConfig(tls=tls, basic_auth_users=MappingProxyType(users))


class _AnyKey:
    """Allows every key: basic_auth_users is keyed by user names."""

    def __contains__(self, key: object) -> bool:
        return True


def _refuse_unsupported(section: Section, keys: Iterable[str]) -> None:
    for key in keys:
        if section.has(key):
            section.problem(key, "not supported by copilot-exporter")


def _tls(section: Section | None, directory: Path) -> TLSServerConfig | None:
    if section is None or not section.data:  # as in exporter-toolkit, an empty section means no TLS
        return None
    _refuse_unsupported(section, _UNSUPPORTED_TLS_KEYS)
    files = {
        key: _path(section, key, directory, required=key != "client_ca_file")
        for key in ("cert_file", "key_file", "client_ca_file")
    }
    client_auth = section.choice("client_auth_type", "NoClientCert", CLIENT_AUTH_TYPES)
    if client_auth != "NoClientCert" and not section.has("client_ca_file"):
        section.problem(
            "client_ca_file",
            f"required with client_auth_type {client_auth} "
            "(a presented client certificate is always verified against it)",
        )
    if section.data.get("client_auth_type") in (None, "NoClientCert") and section.has("client_ca_file"):
        section.problem(
            "client_ca_file",
            "set, but client_auth_type is NoClientCert (use e.g. client_auth_type: RequireAndVerifyClientCert)",
        )
    min_version = section.choice("min_version", "TLS12", TLS_VERSIONS)
    max_version = section.choice("max_version", "TLS13", TLS_VERSIONS)
    if TLS_VERSIONS[min_version] > TLS_VERSIONS[max_version]:
        section.problem("max_version", f"{max_version} is below min_version {min_version}")
    if files["cert_file"] is None or files["key_file"] is None:
        return None
    tls = TLSServerConfig(
        files["cert_file"], files["key_file"], client_auth, files["client_ca_file"], min_version, max_version
    )
    _check_context(section, tls)
    return tls


def _path(section: Section, key: str, directory: Path, *, required: bool) -> str | None:
    """The readable file at key, relative to the web config's directory; None (recorded) otherwise."""
    name = section.text(key, required=required)
    if name is None:
        return None
    path = str(directory / name)  # an absolute name replaces directory
    try:
        with open(path, "rb"):
            pass
    except OSError as err:
        section.problem(key, f"cannot read {path}: {error_reason(err)}")
        return None
    return path


def _check_context(section: Section, tls: TLSServerConfig) -> None:
    """Builds the SSL context once, so a bad certificate, key or CA fails at startup."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file, password=_no_password)
    except (ssl.SSLError, ValueError) as err:
        section.report(f"cannot load cert_file {tls.cert_file} with key_file {tls.key_file}: {_ssl_reason(err)}")
    if tls.client_ca_file:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except ssl.SSLError as err:
            section.problem("client_ca_file", f"cannot load {tls.client_ca_file}: {_ssl_reason(err)}")


def _no_password() -> bytes:
    # Without a callback OpenSSL would prompt on the terminal for an encrypted key's passphrase.
    raise ValueError("the key is encrypted; key_file must hold an unencrypted key")


def _ssl_reason(err: Exception) -> str:
    return getattr(err, "reason", None) or str(err)


def _users(section: Section | None) -> dict[str, str]:
    if section is None:
        return {}
    users: dict[str, str] = {}
    for user, hashed in section.data.items():
        key = str(user)
        if not isinstance(user, str) or not user or ":" in user:
            section.problem(key, "a user name must be a non-empty string without ':' (quote it in YAML)")
        elif not isinstance(hashed, str) or not _bcrypt_cost(hashed):
            section.problem(key, "not a bcrypt hash (make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')")
        else:
            users[user] = hashed
    if users:
        try:
            _bcrypt()
        except ImportError:
            section.report(_INSTALL_HINT)
    return users


def _bcrypt_cost(hashed: str) -> int | None:
    match = _BCRYPT_HASH.fullmatch(hashed)
    cost = int(match["cost"]) if match else 0
    return cost if 4 <= cost <= 31 else None


def _bcrypt() -> Any:
    import bcrypt  # an optional extra: only configurations with basic_auth_users need it

    return bcrypt


# --- TLS --------------------------------------------------------------------------------------


def ssl_context(web: WebConfig) -> ssl.SSLContext | None:
    """The server-side SSL context of the web config; None when it configures no TLS."""
    tls = web.tls
    if tls is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with warnings.catch_warnings():
        # TLS 1.0 and 1.1 are deprecated; asked for explicitly, they are honoured as far as
        # OpenSSL's security level still allows them.
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = TLS_VERSIONS[tls.min_version]
        context.maximum_version = TLS_VERSIONS[tls.max_version]
    context.load_cert_chain(tls.cert_file, tls.key_file, password=_no_password)
    context.verify_mode = _VERIFY_MODES[tls.client_auth_type]
    if tls.client_ca_file:
        context.load_verify_locations(cafile=tls.client_ca_file)
    return context


class TLSServerMixin:
    """For a socketserver.ThreadingMixIn server: the accept loop takes plain TCP connections and
    each connection's thread does its own TLS handshake, so a slow or silent client holds only
    its own thread. A failed handshake (plain HTTP included) closes the connection unanswered."""

    ssl_context: ssl.SSLContext

    def setup_environ(self) -> None:
        super().setup_environ()  # type: ignore[misc]
        self.base_environ["HTTPS"] = "on"  # type: ignore[attr-defined]  # wsgi.url_scheme: https

    def finish_request(self, request: socket.socket, client_address: Any) -> None:
        connection = self._handshake(request, client_address)
        if connection is None:
            return
        try:
            super().finish_request(connection, client_address)  # type: ignore[misc]
        finally:
            # The server then shuts down `request`, but wrapping detached it from the connection.
            self.shutdown_request(connection)  # type: ignore[attr-defined]

    def _handshake(self, request: socket.socket, client_address: Any) -> ssl.SSLSocket | None:
        connection = None
        try:
            connection = self.ssl_context.wrap_socket(request, server_side=True, do_handshake_on_connect=False)
            connections = getattr(self, "connections", None)
            if connections is not None:  # the server's deadline for the request covers the handshake
                connections.replaced(request, connection)
            limits = getattr(self, "limits", None)  # the exporter's server has them (server.ServerLimits)
            connection.settimeout(getattr(limits, "read_header_timeout", HANDSHAKE_TIMEOUT))
            connection.do_handshake()
            # After the handshake the connection is as idle-bounded as a plain one.
            connection.settimeout(getattr(limits, "idle_timeout", HANDSHAKE_TIMEOUT))
            return connection
        except OSError as err:  # ssl.SSLError and timeouts included
            log.debug("TLS handshake with %s failed: %s", client_address[0], err)
            (connection or request).close()
            return None


def with_tls(server_class: type, context: ssl.SSLContext) -> type:
    """A subclass of a threading WSGI server class that serves HTTPS with the context."""
    return type(f"TLS{server_class.__name__}", (TLSServerMixin, server_class), {"ssl_context": context})


# --- basic auth -------------------------------------------------------------------------------

StartResponse = Callable[..., object]


def protect(app: Callable, web: WebConfig) -> Callable:
    """The WSGI app behind basic auth when the web config has users (all paths but /healthz)."""
    if not web.basic_auth_users:
        return app
    try:
        bcrypt = _bcrypt()
    except ImportError:
        raise ConfigError([f"basic_auth_users: {_INSTALL_HINT}"]) from None
    return _BasicAuth(app, web.basic_auth_users, bcrypt)


class _BasicAuth:
    """WSGI middleware checking basic auth credentials against bcrypt hashes.

    Unknown users are checked against a dummy hash of the highest configured cost, so response
    times do not tell which users exist. A successful check is remembered as an HMAC of user and
    password under a per-process key until AUTH_CACHE_SECONDS pass without it being used, so
    regular scrapes pay bcrypt once and the memory holds nothing a password could be recovered
    from cheaply. At most BCRYPT_CONCURRENCY checks run at once, outside any lock the cache
    uses; a request waiting longer than BCRYPT_QUEUE_WAIT for one is refused unchecked, so a
    flood of wrong passwords neither holds threads for long nor delays a cached scrape.
    """

    def __init__(self, app: Callable, users: Mapping[str, str], bcrypt: Any):
        self._app = app
        self._bcrypt = bcrypt
        self._users = {user: hashed.encode("ascii") for user, hashed in users.items()}
        cost = max(_bcrypt_cost(hashed) or 4 for hashed in users.values())
        self._dummy_hash = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost))
        self._cache_key = secrets.token_bytes(32)
        self._verified: dict[str, tuple[bytes, float]] = {}  # user -> (HMAC, expiry)
        self._checks = threading.BoundedSemaphore(BCRYPT_CONCURRENCY)

    def __call__(self, environ: dict, start_response: StartResponse) -> Iterable[bytes]:
        authorized = environ.get("PATH_INFO") == "/healthz" or self._authorized(environ.get("HTTP_AUTHORIZATION"))
        if authorized:
            return self._app(environ, start_response)
        if authorized is None:
            body = b"too many credential checks waiting, retry\n"
            headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(body))), ("Retry-After", "1")]
            start_response("503 Service Unavailable", headers)
        else:
            body = b"unauthorized\n"
            start_response(
                "401 Unauthorized",
                [
                    ("Content-Type", "text/plain"),
                    ("Content-Length", str(len(body))),
                    ("WWW-Authenticate", f'Basic realm="{REALM}"'),
                ],
            )
        return [] if environ.get("REQUEST_METHOD") == "HEAD" else [body]

    def _authorized(self, header: str | None) -> bool | None:
        """True or False for the credentials; None when they could not be checked in time."""
        credentials = _basic_credentials(header)
        if credentials is None:
            return False
        user, password = credentials
        digest = hmac.new(self._cache_key, user.encode() + b"\0" + password, hashlib.sha256).digest()
        cached = self._verified.get(user)
        if cached and cached[1] > time.monotonic() and hmac.compare_digest(cached[0], digest):
            self._verified[user] = (digest, time.monotonic() + AUTH_CACHE_SECONDS)
            return True
        checked = self._check(user, password)
        if not checked:
            return checked
        self._verified[user] = (digest, time.monotonic() + AUTH_CACHE_SECONDS)
        return True

    def _check(self, user: str, password: bytes) -> bool | None:
        hashed = self._users.get(user)
        # bcrypt only ever used the first 72 bytes (htpasswd truncates too); bcrypt>=5 refuses more.
        if not self._checks.acquire(timeout=BCRYPT_QUEUE_WAIT):
            log.debug("basic auth of %r not checked: too many checks waiting", user)
            return None
        try:
            matches = self._bcrypt.checkpw(password[:72], hashed or self._dummy_hash)
        finally:
            self._checks.release()
        return hashed is not None and matches


def _basic_credentials(header: str | None) -> tuple[str, bytes] | None:
    """(user, password) of an `Authorization: Basic ...` header; None if absent or malformed."""
    scheme, _, encoded = (header or "").strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return user.decode("utf-8", "replace"), password
