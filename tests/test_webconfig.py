"""The web config file (exporter-toolkit format): validation, basic auth and TLS over loopback."""

from __future__ import annotations

import base64
import socket
import ssl
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import bcrypt
import pytest
import requests

from copilot_exporter import cli, service, webconfig
from copilot_exporter.errors import ConfigError
from copilot_exporter.server import App, serve
from copilot_exporter.store import Store
from copilot_exporter.telemetry import Telemetry
from copilot_exporter.webconfig import TLSServerConfig, WebConfig, load_web_config

pytestmark = pytest.mark.integration


PASSWORD = "s3cret"
HASH = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()


def _web_config(directory: Path, text: str, name: str = "web.yml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def _problems(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_web_config(path)
    return info.value.problems


# --- a running server -------------------------------------------------------------------------


class Running:
    def __init__(self, web: WebConfig | None):
        self.server = serve(App(Store(), Telemetry()), "127.0.0.1:0", web)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def running():
    servers: list[Running] = []

    def start(web: WebConfig | None) -> Running:
        servers.append(Running(web))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _tls(pki: Path, **settings) -> TLSServerConfig:
    return TLSServerConfig(str(pki / "server.crt"), str(pki / "server.key"), **settings)


# --- basic auth -------------------------------------------------------------------------------


def test_basic_auth_accepts_right_credentials_and_refuses_others(running):
    server = running(WebConfig(basic_auth_users={"alice": HASH}))
    assert requests.get(server.url("/metrics"), auth=("alice", PASSWORD), timeout=5).status_code == 200
    for auth in (("alice", "wrong"), ("bob", PASSWORD), None):
        response = requests.get(server.url("/metrics"), auth=auth, timeout=5)
        assert response.status_code == 401, auth
        assert response.headers["WWW-Authenticate"] == 'Basic realm="copilot-exporter"'
    assert requests.get(server.url("/"), timeout=5).status_code == 401


def test_healthz_needs_no_credentials(running):
    server = running(WebConfig(basic_auth_users={"alice": HASH}))
    response = requests.get(server.url("/healthz"), timeout=5)
    assert response.status_code == 200 and response.text == "ok\n"


def _environ(user: str, password: str, path: str = "/metrics") -> dict:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"PATH_INFO": path, "REQUEST_METHOD": "GET", "HTTP_AUTHORIZATION": f"Basic {token}"}


def _status(app, environ: dict) -> str:
    statuses = []
    app(environ, lambda status, headers: statuses.append(status))
    return statuses[0]


@pytest.fixture
def checkpw_calls(monkeypatch) -> list[bytes]:
    """The hashes bcrypt.checkpw is called with."""
    calls: list[bytes] = []
    real = bcrypt.checkpw

    def counting(password: bytes, hashed: bytes) -> bool:
        calls.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(bcrypt, "checkpw", counting)
    return calls


def test_verified_credentials_are_cached_but_failures_are_not(checkpw_calls):
    app = webconfig.protect(
        lambda environ, start: start("200 OK", []) or [b""], WebConfig(basic_auth_users={"alice": HASH})
    )
    assert [_status(app, _environ("alice", PASSWORD)) for _ in range(3)] == ["200 OK"] * 3
    assert len(checkpw_calls) == 1
    assert [_status(app, _environ("alice", "wrong")) for _ in range(2)] == ["401 Unauthorized"] * 2
    assert len(checkpw_calls) == 3


def test_credentials_that_cannot_be_checked_in_time_get_503_not_401(checkpw_calls, monkeypatch):
    app = webconfig.protect(
        lambda environ, start: start("200 OK", []) or [b""], WebConfig(basic_auth_users={"alice": HASH})
    )
    monkeypatch.setattr(webconfig, "BCRYPT_QUEUE_WAIT", 0.01)
    while app._checks.acquire(blocking=False):  # every check slot busy, as under a flood
        pass
    assert _status(app, _environ("alice", PASSWORD)) == "503 Service Unavailable"
    assert checkpw_calls == []  # nothing was checked, so nothing was refused as wrong
    app._checks.release()
    assert _status(app, _environ("alice", PASSWORD)) == "200 OK"


def test_cached_credentials_expire(checkpw_calls, monkeypatch):
    app = webconfig.protect(
        lambda environ, start: start("200 OK", []) or [b""], WebConfig(basic_auth_users={"alice": HASH})
    )
    _status(app, _environ("alice", PASSWORD))
    later = time.monotonic() + webconfig.AUTH_CACHE_SECONDS + 1
    monkeypatch.setattr(webconfig, "time", SimpleNamespace(monotonic=lambda: later))
    assert _status(app, _environ("alice", PASSWORD)) == "200 OK"
    _status(app, _environ("alice", PASSWORD))
    assert len(checkpw_calls) == 2  # verified again once, then cached anew


def test_unknown_user_still_pays_a_bcrypt_check(checkpw_calls):
    app = webconfig.protect(
        lambda environ, start: start("200 OK", []) or [b""], WebConfig(basic_auth_users={"alice": HASH})
    )
    assert _status(app, _environ("mallory", PASSWORD)) == "401 Unauthorized"
    assert len(checkpw_calls) == 1 and checkpw_calls[0] != HASH.encode()
    assert checkpw_calls[0].startswith(b"$2b$04$")  # the dummy hash has the configured cost


@pytest.mark.parametrize("header", ["Bearer abc", "Basic !!!", "Basic " + base64.b64encode(b"nocolon").decode(), ""])
def test_malformed_authorization_is_refused(header):
    app = webconfig.protect(
        lambda environ, start: start("200 OK", []) or [b""], WebConfig(basic_auth_users={"alice": HASH})
    )
    assert _status(app, {"PATH_INFO": "/metrics", "HTTP_AUTHORIZATION": header}) == "401 Unauthorized"


def test_password_longer_than_72_bytes_is_checked_on_its_first_72(checkpw_calls):
    long_password = "x" * 80
    hashed = bcrypt.hashpw(long_password[:72].encode(), bcrypt.gensalt(rounds=4)).decode()
    app = webconfig.protect(
        lambda environ, start: start("200 OK", []) or [b""], WebConfig(basic_auth_users={"alice": hashed})
    )
    assert _status(app, _environ("alice", long_password)) == "200 OK"


# --- TLS --------------------------------------------------------------------------------------


def test_https_with_the_ca(running, pki):
    server = running(WebConfig(tls=_tls(pki)))
    response = requests.get(server.url("/metrics", "https"), verify=str(pki / "ca.crt"), timeout=5)
    assert response.status_code == 200 and "copilot_exporter" in response.text


def test_https_and_basic_auth_together(running, pki):
    server = running(WebConfig(tls=_tls(pki), basic_auth_users={"alice": HASH}))
    url, ca = server.url("/metrics", "https"), str(pki / "ca.crt")
    assert requests.get(url, verify=ca, timeout=5).status_code == 401
    assert requests.get(url, verify=ca, auth=("alice", PASSWORD), timeout=5).status_code == 200


def test_client_certificate_required(running, pki):
    tls = _tls(pki, client_auth_type="RequireAndVerifyClientCert", client_ca_file=str(pki / "ca.crt"))
    server = running(WebConfig(tls=tls))
    url, ca = server.url("/metrics", "https"), str(pki / "ca.crt")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(url, verify=ca, timeout=5)
    client = (str(pki / "client.crt"), str(pki / "client.key"))
    assert requests.get(url, verify=ca, cert=client, timeout=5).status_code == 200


def test_plain_http_to_the_tls_port_gets_no_http_answer(running, pki):
    server = running(WebConfig(tls=_tls(pki)))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
        connection.sendall(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        try:
            answer = connection.recv(1024)
        except ConnectionResetError:
            answer = b""
    assert not answer.startswith(b"HTTP")
    with pytest.raises(requests.exceptions.ConnectionError):
        requests.get(server.url("/metrics"), timeout=5)


def test_min_version_tls13_refuses_a_tls12_client(running, pki):
    server = running(WebConfig(tls=_tls(pki, min_version="TLS13")))
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
        with pytest.raises(ssl.SSLError):
            context.wrap_socket(connection, server_hostname="127.0.0.1")
    context.maximum_version = ssl.TLSVersion.TLSv1_3
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as connection:
        with context.wrap_socket(connection, server_hostname="127.0.0.1") as tls:
            assert tls.version() == "TLSv1.3"


def test_a_silent_client_does_not_block_others(running, pki):
    server = running(WebConfig(tls=_tls(pki)))
    with socket.create_connection(("127.0.0.1", server.port), timeout=5):  # never says hello
        response = requests.get(server.url("/healthz", "https"), verify=str(pki / "ca.crt"), timeout=3)
    assert response.status_code == 200


# --- loading and validation -------------------------------------------------------------------


def test_full_config_loads_with_paths_relative_to_its_folder(pki, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the config's folder
    path = _web_config(
        pki,
        f"""
tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert
  client_ca_file: ca.crt
  min_version: TLS12
  max_version: TLS13
basic_auth_users:
  alice: {HASH}
http_server_config:
  http2: false
""",
        "full.yml",
    )
    web = load_web_config(path)
    assert web.tls == TLSServerConfig(
        str(pki / "server.crt"),
        str(pki / "server.key"),
        "RequireAndVerifyClientCert",
        str(pki / "ca.crt"),
        "TLS12",
        "TLS13",
    )
    assert dict(web.basic_auth_users) == {"alice": HASH}
    assert HASH not in repr(web)
    context = webconfig.ssl_context(web)
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


def test_empty_file_means_plain_http_without_auth(tmp_path):
    web = load_web_config(_web_config(tmp_path, ""))
    assert web == WebConfig() and webconfig.ssl_context(web) is None


def test_defaults(pki):
    web = load_web_config(
        _web_config(pki, "tls_server_config: {cert_file: server.crt, key_file: server.key}", "defaults.yml")
    )
    assert (web.tls.client_auth_type, web.tls.min_version, web.tls.max_version) == ("NoClientCert", "TLS12", "TLS13")
    assert webconfig.ssl_context(web).verify_mode == ssl.CERT_NONE


def test_unreadable_file(tmp_path):
    assert _problems(tmp_path / "missing.yml") == [
        f"{tmp_path / 'missing.yml'}: cannot read: No such file or directory"
    ]


def test_bad_yaml(tmp_path):
    [problem] = _problems(_web_config(tmp_path, "tls_server_config: [unclosed"))
    assert problem.startswith(f"{tmp_path / 'web.yml'}: not valid YAML at line 1")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("- a list", ["top level: must be a mapping, got list"]),
        ("tls_config: {}", ["tls_config: unknown key"]),
        (
            "tls_server_config: {cert_file: server.crt, key_file: server.key, ciphers: []}",
            ["tls_server_config.ciphers: unknown key"],
        ),
        (
            "tls_server_config: {cert_file: server.crt, key_file: server.key, cipher_suites: [TLS_AES_128_GCM_SHA256]}",
            ["tls_server_config.cipher_suites: not supported by copilot-exporter"],
        ),
        (
            "http_server_config: {headers: {X-Frame-Options: deny}}",
            ["http_server_config.headers: not supported by copilot-exporter"],
        ),
        ("rate_limit: {interval: 1s, burst: 5}", ["rate_limit: not supported by copilot-exporter"]),
        ("tls_server_config: {key_file: server.key}", ["tls_server_config.cert_file: required"]),
        ("tls_server_config: {cert_file: server.crt}", ["tls_server_config.key_file: required"]),
        (
            "tls_server_config: {cert_file: nope.crt, key_file: server.key}",
            ["tls_server_config.cert_file: cannot read {dir}/nope.crt: No such file or directory"],
        ),
        (
            "tls_server_config: {cert_file: server.crt, key_file: client.key}",
            [
                "tls_server_config: cannot load cert_file {dir}/server.crt with key_file {dir}/client.key: "
                "KEY_VALUES_MISMATCH"
            ],
        ),
        (
            "tls_server_config: {cert_file: server.crt, key_file: encrypted.key}",
            [
                "tls_server_config: cannot load cert_file {dir}/server.crt with key_file {dir}/encrypted.key: "
                "the key is encrypted; key_file must hold an unencrypted key"
            ],
        ),
        (
            "tls_server_config: {cert_file: not-a-cert.pem, key_file: server.key}",
            ["tls_server_config: cannot load cert_file {dir}/not-a-cert.pem with key_file {dir}/server.key: "],
        ),
        (
            "tls_server_config: {cert_file: server.crt, key_file: server.key, "
            "client_auth_type: RequireAndVerifyClientCert}",
            [
                "tls_server_config.client_ca_file: required with client_auth_type RequireAndVerifyClientCert "
                "(a presented client certificate is always verified against it)"
            ],
        ),
        (
            "tls_server_config: {cert_file: server.crt, key_file: server.key, client_auth_type: RequestClientCert}",
            ["tls_server_config.client_ca_file: required with client_auth_type RequestClientCert "],
        ),
        (
            "tls_server_config: {cert_file: server.crt, key_file: server.key, client_ca_file: ca.crt}",
            ["tls_server_config.client_ca_file: set, but client_auth_type is NoClientCert "],
        ),
        (
            "tls_server_config: {cert_file: server.crt, key_file: server.key, "
            "client_auth_type: VerifyClientCertIfGiven, client_ca_file: not-a-cert.pem}",
            ["tls_server_config.client_ca_file: cannot load {dir}/not-a-cert.pem: NO_CERTIFICATE_OR_CRL_FOUND"],
        ),
        (
            "tls_server_config: {cert_file: server.crt, key_file: server.key, client_auth_type: Always}",
            [
                'tls_server_config.client_auth_type: "Always" is not one of NoClientCert, RequestClientCert, '
                "RequireAnyClientCert, VerifyClientCertIfGiven, RequireAndVerifyClientCert"
            ],
        ),
        (
            "tls_server_config: {cert_file: server.crt, key_file: server.key, min_version: TLS14}",
            ['tls_server_config.min_version: "TLS14" is not one of TLS10, TLS11, TLS12, TLS13'],
        ),
        (
            "tls_server_config: {cert_file: server.crt, key_file: server.key, min_version: TLS13, max_version: TLS12}",
            ["tls_server_config.max_version: TLS12 is below min_version TLS13"],
        ),
        (
            "basic_auth_users: {alice: plaintext}",
            ["basic_auth_users.alice: not a bcrypt hash (make one with: htpasswd -nBC 10 \"\" | tr -d ':\\n')"],
        ),
        ("basic_auth_users: {alice: '$2y$03$" + "a" * 53 + "'}", ["basic_auth_users.alice: not a bcrypt hash "]),
        ("basic_auth_users: {123: '" + HASH + "'}", ["basic_auth_users.123: a user name must be a non-empty string "]),
        (
            "basic_auth_users: {'a:b': '" + HASH + "'}",
            ["basic_auth_users.a:b: a user name must be a non-empty string "],
        ),
        ("basic_auth_users: [alice]", ["basic_auth_users: must be a mapping, got list"]),
    ],
)
def test_validation_problems(pki, text, expected):
    problems = _problems(_web_config(pki, text, "bad.yml"))
    expected = [line.replace("{dir}", str(pki)) for line in expected]
    assert len(problems) == len(expected), problems
    for problem, start in zip(problems, expected):
        assert problem.startswith(start), problem


def test_all_problems_are_reported_at_once(pki):
    problems = _problems(
        _web_config(
            pki,
            """
tls_server_config: {cert_file: nope.crt, key_file: server.key, min_version: TLS9}
basic_auth_users: {alice: plaintext}
""",
            "many.yml",
        )
    )
    assert [problem.split(":")[0] for problem in problems] == [
        "tls_server_config.cert_file",
        "tls_server_config.min_version",
        "basic_auth_users.alice",
    ]


def test_missing_bcrypt_names_the_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "bcrypt", None)  # makes `import bcrypt` fail
    assert _problems(_web_config(tmp_path, f"basic_auth_users: {{alice: '{HASH}'}}")) == [
        "basic_auth_users: needs the bcrypt package: pip install copilot-exporter[web]"
    ]
    with pytest.raises(ConfigError, match=r"pip install copilot-exporter\[web\]"):
        webconfig.protect(lambda environ, start: [], WebConfig(basic_auth_users={"alice": HASH}))


# --- command line -----------------------------------------------------------------------------


def test_run_refuses_an_invalid_web_config(tmp_path, capsys):
    path = _web_config(tmp_path, "basic_auth_users: {alice: plaintext}")
    assert service.run(object(), "127.0.0.1:0", web_config_file=str(path)) == 2  # type: ignore[arg-type]
    assert "basic_auth_users.alice: not a bcrypt hash" in capsys.readouterr().err


def test_flag_and_environment_variable(monkeypatch):
    assert cli._parser().parse_args(["serve", "--web.config.file", "w.yml"]).web_config_file == "w.yml"
    monkeypatch.setenv("COPILOT_EXPORTER_WEB_CONFIG_FILE", "env.yml")
    assert cli._parser().parse_args(["serve"]).web_config_file == "env.yml"


def test_a_yaml_alias_bomb_in_the_web_config_is_refused(tmp_path):
    from test_config import BILLION_LAUGHS

    path = _web_config(tmp_path, BILLION_LAUGHS)
    [problem] = _problems(path)
    assert problem.endswith("its anchors and aliases expand to more than 100,000 values")
