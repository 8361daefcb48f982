"""Corporate proxies: API calls and report downloads through a real forward proxy on 127.0.0.1.

The simulator's API (127.0.0.1) and download host (127.0.0.2) are two different hosts, as
api.github.com and copilot-reports.github.com are: the proxy sees which it is asked for, and,
for plain HTTP, every header, so it can tell that the token only ever goes to the API host.
"""

from __future__ import annotations

import pytest

from conftest import TOKEN, exporter_config
from forward_proxy import ForwardProxy, TlsFront, self_signed

pytestmark = pytest.mark.integration


PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY")


@pytest.fixture
def proxy(monkeypatch):
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    running = ForwardProxy()
    yield running
    running.close()


def netloc(url: str) -> str:
    return url.split("://", 1)[1]


def config(api_url: str, **github):
    return exporter_config(api_url, source="reports", organizations=[{"name": "acme", "teams": ["web"]}], github=github)


def test_api_calls_and_downloads_use_the_proxy_and_only_the_api_gets_the_token(
    simulator, make_exporter, proxy, monkeypatch
):
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    exporter = make_exporter(config(simulator.api_url))
    assert exporter.refresh()
    api, downloads = netloc(simulator.api_url), netloc(simulator.download_url)
    assert proxy.hosts() == {api, downloads}
    to_api = [r for r in proxy.forwarded if r.host == api]
    to_downloads = [r for r in proxy.forwarded if r.host == downloads]
    assert {r.path.split("/copilot/")[-1].split("/")[0] for r in to_api} >= {"metrics", "billing"}
    assert to_downloads and all(r.path.startswith("/reports/") for r in to_downloads)
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in to_api)
    for request in to_downloads:
        assert "authorization" not in request.headers and TOKEN not in repr(request.headers)
    assert simulator.download_auth_violations == 0
    assert exporter.value("copilot_exporter_up", org="acme", source="reports") == 1


@pytest.mark.parametrize("bypassed", ["api", "downloads"])
def test_no_proxy_hosts_are_reached_directly(simulator, make_exporter, proxy, monkeypatch, bypassed):
    api, downloads = netloc(simulator.api_url), netloc(simulator.download_url)
    direct, proxied = (api, downloads) if bypassed == "api" else (downloads, api)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", f"example.com,{direct.split(':')[0]}")
    exporter = make_exporter(config(simulator.api_url))
    assert exporter.refresh()
    assert proxy.hosts() == {proxied}
    assert simulator.request_count("/reports/", server="download") > 0  # the downloads happened
    assert simulator.download_auth_violations == 0


def test_https_goes_through_a_connect_tunnel(simulator, make_exporter, proxy, monkeypatch, tmp_path):
    cert, key = self_signed(tmp_path)
    api_host, api_port = netloc(simulator.api_url).split(":")
    front = TlsFront((api_host, int(api_port)), cert, key)
    try:
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        exporter = make_exporter(config(front.url, ca_bundle=cert))
        assert exporter.refresh()
        assert set(proxy.tunnels) == {front.address}  # the API, tunnelled: the proxy sees no header
        assert {r.host for r in proxy.forwarded} == {netloc(simulator.download_url)}
        assert not [r for r in proxy.forwarded if "authorization" in r.headers]
        api_calls = [r for r in simulator.requests if r.server == "api"]
        assert api_calls and all(r.headers.get("Authorization") == f"Bearer {TOKEN}" for r in api_calls)
    finally:
        front.close()
