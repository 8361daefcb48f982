"""Advice for the failures of a first run: bad token, missing permission, SSO, network, TLS.

Each failure is produced for real: the simulator answers 401/403 (with GitHub's headers), or the
exporter is pointed at a closed port, an unresolvable host, a proxy that is not there, or a TLS
server it does not trust. The advice is read where the operator reads it: the log and the
landing page.
"""

from __future__ import annotations

import logging
import socket

import pytest
import requests

from copilot_exporter.simulator import Fault
from conftest import TOKEN, exporter_config
from forward_proxy import TlsFront, self_signed

pytestmark = pytest.mark.integration


NOT_ACCESSIBLE = {"message": "Resource not accessible by personal access token"}


def failures(caplog, scope: str, source: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno == logging.WARNING and f"{scope} source={source} failed" in r.getMessage()
    ]


def only_failure(caplog, scope: str, source: str) -> str:
    found = failures(caplog, scope, source)
    assert len(found) == 1, [r.getMessage() for r in caplog.records]
    return found[0]


def landing(exporter) -> str:
    return requests.get(exporter.url + "/", timeout=5).text


def test_a_401_says_the_token_expired_or_was_revoked(simulator, make_exporter, caplog):
    simulator.add_fault("/orgs/acme/copilot/metrics/reports/", Fault(status=401))
    exporter = make_exporter(
        exporter_config(simulator.api_url, source="reports", organizations=[{"name": "acme", "seats": False}])
    )
    with caplog.at_level(logging.INFO):
        assert not exporter.refresh()
    message = only_failure(caplog, "org=acme", "reports")
    assert "(unauthorized)" in message and "Bad credentials" in message
    assert "expired, been revoked or is mistyped" in message
    assert "expired, been revoked or is mistyped" in landing(exporter)
    assert TOKEN not in message


# (config source, organizations, enterprises, failing path, log scope and source, phrases of the hint)
FORBIDDEN = {
    "reports of an organization": (
        "reports",
        [{"name": "acme", "seats": False}],
        [],
        "/orgs/acme/copilot/metrics/reports/",
        ("org=acme", "reports"),
        ['"Organization Copilot metrics" (read)', "read:org", "policy"],
    ),
    "reports of an enterprise": (
        "reports",
        [],
        [{"name": "initech", "seats": False}],
        "/enterprises/initech/copilot/metrics/reports/",
        ("enterprise=initech", "reports"),
        [
            "manage_billing:copilot or read:enterprise",
            '"Enterprise Copilot metrics" (read)',
            "fine-grained tokens are not accepted",
            '"Enabled everywhere"',
        ],
    ),
    "seats of an organization": (
        "legacy",
        [{"name": "acme"}],
        [],
        "/orgs/acme/copilot/billing",
        ("org=acme", "seats"),
        ['"GitHub Copilot Business" (read)', "manage_billing:copilot"],
    ),
    "seats of an enterprise": (
        "legacy",
        [],
        [{"name": "initech"}],
        "/enterprises/initech/copilot/billing",
        ("enterprise=initech", "seats"),
        ["manage_billing:copilot or read:enterprise"],
    ),
    "legacy metrics of an organization": (
        "legacy",
        [{"name": "acme", "seats": False}],
        [],
        "/orgs/acme/copilot/metrics",
        ("org=acme", "legacy"),
        ['"GitHub Copilot Business" (read)', "read:org"],
    ),
    "legacy metrics of an enterprise": (
        "legacy",
        [],
        [{"name": "initech", "seats": False}],
        "/enterprises/initech/copilot/metrics",
        ("enterprise=initech", "legacy"),
        ["manage_billing:copilot or read:enterprise"],
    ),
}


NOT_FOR = {
    "reports of an organization": ["GitHub Copilot Business", "not accepted"],
    "reports of an enterprise": ["Organization Copilot metrics", "read:org"],
    "seats of an organization": ["Organization Copilot metrics", "not accepted"],
    "seats of an enterprise": ["GitHub Copilot Business", 'Copilot metrics" (read)'],
    "legacy metrics of an organization": ["Organization Copilot metrics", "not accepted"],
    "legacy metrics of an enterprise": ["GitHub Copilot Business", "Organization Copilot metrics", "read:org"],
}


@pytest.mark.parametrize("case", FORBIDDEN)
def test_a_403_names_the_permission_of_that_endpoint(simulator, make_exporter, caplog, case):
    source, organizations, enterprises, path, (scope, label), phrases = FORBIDDEN[case]
    simulator.add_fault(path, Fault(status=403, body=NOT_ACCESSIBLE))
    exporter = make_exporter(
        exporter_config(simulator.api_url, source=source, organizations=organizations, enterprises=enterprises)
    )
    with caplog.at_level(logging.INFO):
        assert not exporter.refresh()
    message = only_failure(caplog, scope, label)
    assert "(forbidden)" in message and "Resource not accessible" in message
    for phrase in phrases:
        assert phrase in message
    for phrase in NOT_FOR[case]:  # advice that belongs to other endpoints
        assert phrase not in message


def sso_refusal(url: str) -> Fault:
    return Fault(
        status=403,
        body={
            "message": "Resource protected by organization SAML enforcement. "
            "You must grant your Personal Access token access to this organization."
        },
        headers={"X-GitHub-SSO": f"required; url={url}"},
    )


def test_a_403_for_sso_says_to_authorise_the_token_without_its_signed_url(simulator, make_exporter, caplog):
    url = "https://github.com/orgs/acme/sso?authorization_request=A4QW7KSECRETREQUEST"
    simulator.add_fault("/orgs/acme/copilot/metrics/reports/", sso_refusal(url))
    exporter = make_exporter(
        exporter_config(simulator.api_url, source="reports", organizations=[{"name": "acme", "seats": False}])
    )
    with caplog.at_level(logging.INFO):
        assert not exporter.refresh()
    message = only_failure(caplog, "org=acme", "reports")
    assert "SAML single sign-on" in message and "Configure SSO" in message
    assert "Organization Copilot metrics" not in message  # not a missing permission
    page = landing(exporter)
    assert "SAML single sign-on" in page
    for text in (message, page, exporter.scrape_text()):
        assert "SECRETREQUEST" not in text and "authorization_request" not in text


def test_an_sso_url_without_a_query_is_given(simulator, make_exporter, caplog):
    simulator.add_fault("/orgs/acme/copilot/billing", sso_refusal("https://github.com/orgs/acme/sso"))
    exporter = make_exporter(exporter_config(simulator.api_url, organizations=[{"name": "acme"}]))
    with caplog.at_level(logging.INFO):
        exporter.refresh()
    assert "authorise it at https://github.com/orgs/acme/sso " in only_failure(caplog, "org=acme", "seats")


# --- no answer at all -------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def unreachable_config(api_url: str, source: str = "auto"):
    return exporter_config(
        api_url, source=source, organizations=[{"name": "acme", "seats": False}], github={"max_retries": 0}
    )


def test_a_closed_port_names_the_address_and_says_refused(make_exporter, caplog):
    port = closed_port()
    exporter = make_exporter(unreachable_config(f"http://127.0.0.1:{port}"))
    with caplog.at_level(logging.INFO):
        assert not exporter.refresh()
    message = only_failure(caplog, "org=acme", "reports")
    assert "(connection_error)" in message and f"connection to 127.0.0.1:{port} refused" in message
    assert "check github.api_url" in message
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "using the reports API" not in logged and "using the legacy API" not in logged


def test_an_unresolvable_host_is_named(make_exporter, caplog):
    exporter = make_exporter(unreachable_config("http://copilot-exporter-test.invalid"))
    with caplog.at_level(logging.INFO):
        assert not exporter.refresh()
    message = only_failure(caplog, "org=acme", "reports")
    assert "cannot resolve copilot-exporter-test.invalid" in message and "DNS" in message
    assert "using the reports API" not in "\n".join(r.getMessage() for r in caplog.records)


def test_a_host_that_never_answers_the_connection_suggests_a_firewall(make_exporter, caplog):
    with socket.socket() as silent:  # a full accept queue: further connection attempts get no answer
        silent.bind(("127.0.0.1", 0))
        silent.listen(0)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        waiting = [socket.socket() for _ in range(3)]
        for sock in waiting:
            sock.setblocking(False)
            sock.connect_ex(silent.getsockname())
        try:
            exporter = make_exporter(
                exporter_config(
                    f"http://{address}",
                    source="reports",
                    organizations=[{"name": "acme", "seats": False}],
                    github={"max_retries": 0, "connect_timeout": "300ms"},
                )
            )
            with caplog.at_level(logging.INFO):
                assert not exporter.refresh()
        finally:
            for sock in waiting:
                sock.close()
    message = only_failure(caplog, "org=acme", "reports")
    assert "(timeout)" in message and f"no connection to {address} within connect_timeout" in message
    assert "firewall" in message


def test_a_proxy_that_is_not_there_is_named(simulator, make_exporter, caplog, monkeypatch):
    port = closed_port()
    for name in ("NO_PROXY", "no_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://proxyuser:proxypass@127.0.0.1:{port}")
    exporter = make_exporter(unreachable_config(simulator.api_url, source="reports"))
    with caplog.at_level(logging.INFO):
        assert not exporter.refresh()
    message = only_failure(caplog, "org=acme", "reports")
    api = simulator.api_url.removeprefix("http://")
    assert f"the proxy 127.0.0.1:{port} failed on the way to {api}: connection refused" in message
    assert "HTTPS_PROXY" in message and "proxypass" not in message


def test_a_broken_download_names_its_host_but_never_the_signed_link(simulator, make_exporter, caplog):
    simulator.add_fault("/reports/", Fault(kind="reset"), server="download")
    exporter = make_exporter(unreachable_config(simulator.api_url, source="reports"))
    with caplog.at_level(logging.INFO):
        assert not exporter.refresh()
    message = only_failure(caplog, "org=acme", "reports")
    host = simulator.download_url.removeprefix("http://")
    assert f"connection to {host} reset" in message
    logged = "\n".join(r.getMessage() for r in caplog.records) + landing(exporter)
    assert "sig=" not in logged and "expires=" not in logged and "/reports/org/" not in logged


# --- TLS ----------------------------------------------------------------------------------------


@pytest.fixture
def untrusted_tls(tmp_path):
    """An HTTPS server on 127.0.0.1 with a self-signed certificate; yields (url, certificate file)."""
    cert, key = self_signed(tmp_path)
    server = TlsFront(None, cert, key)
    yield server.url, cert
    server.close()


def test_an_untrusted_certificate_suggests_the_ca_bundle(untrusted_tls, make_exporter, caplog):
    url, _cert = untrusted_tls
    exporter = make_exporter(unreachable_config(url, source="reports"))
    with caplog.at_level(logging.INFO):
        assert not exporter.refresh()
    message = only_failure(caplog, "org=acme", "reports")
    assert f"TLS verification of {url.removeprefix('https://')} failed (self-signed certificate)" in message
    assert "set github.ca_bundle" in message


def test_with_the_ca_bundle_the_same_server_is_trusted(untrusted_tls, make_exporter, caplog):
    url, cert = untrusted_tls
    exporter = make_exporter(
        exporter_config(
            url,
            source="reports",
            organizations=[{"name": "acme", "seats": False}],
            github={"max_retries": 0, "ca_bundle": cert},
        )
    )
    with caplog.at_level(logging.INFO):
        exporter.refresh()
    message = only_failure(caplog, "org=acme", "reports")
    assert "(not_found)" in message and "TLS" not in message  # it answered: 404 on every report
