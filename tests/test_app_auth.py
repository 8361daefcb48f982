"""GitHub App credentials, over real HTTP against the simulator: the simulator checks each JWT
with the App's public key and accepts only the installation tokens it issued."""

from __future__ import annotations

import dataclasses
import logging
import sys
import threading
import time

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from copilot_exporter.config import AppAuth
from copilot_exporter.errors import RefreshError
from copilot_exporter.github.app import AppTokens
from copilot_exporter.limits import Limits
from copilot_exporter.simulator import AppSpec, Fault, Simulator, World
from conftest import TOKEN, exporter_config

pytestmark = pytest.mark.integration


APP_ID = 424242
METRICS = "/orgs/acme/copilot/metrics"


def rsa_key() -> tuple[bytes, bytes]:
    """(private key PEM, public key PEM) of a fresh RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


@pytest.fixture(scope="module")
def app_key() -> tuple[bytes, bytes]:
    return rsa_key()


@pytest.fixture
def key_file(tmp_path, app_key) -> str:
    path = tmp_path / "app.pem"
    path.write_bytes(app_key[0])
    return str(path)


def app_simulator(public_key: bytes, token_ttl: float = 3600.0) -> Simulator:
    world = dataclasses.replace(World.default(), app=AppSpec(APP_ID, public_key, token_ttl=token_ttl))
    return Simulator(world=world, token=TOKEN)


@pytest.fixture
def sim(app_key):
    with app_simulator(app_key[1]) as simulator:
        yield simulator


def app_config(sim, key_file: str, installation_id: int | None = None, organizations=None, **overrides):
    app = {"app_id": APP_ID, "private_key_file": key_file}
    if installation_id is not None:
        app["installation_id"] = installation_id
    return exporter_config(
        sim.api_url,
        organizations=organizations or [{"name": "acme", "seats": False}],
        github={"token": None, "app": app},
        **overrides,
    )


def authorizations(sim, path_prefix: str) -> list[str]:
    """The credential of every request the simulator logged under a path."""
    return [
        entry.headers.get("Authorization", "").partition(" ")[2]
        for entry in sim.requests
        if entry.path.startswith(path_prefix)
    ]


def test_org_is_refreshed_with_an_installation_token(sim, key_file, make_exporter):
    exporter = make_exporter(app_config(sim, key_file))
    assert exporter.refresh()
    assert exporter.value("copilot_exporter_up", org="acme", source="legacy") == 1
    assert exporter.value("copilot_daily_active_users", org="acme") is not None
    assert len(sim.issued_app_tokens) == 1
    used = authorizations(sim, METRICS)
    assert used and set(used) == {sim.issued_app_tokens[0]}
    assert TOKEN not in used
    # The JWT goes only to the App endpoints, the installation token to the others.
    jwts = authorizations(sim, "/app/") + authorizations(sim, "/orgs/acme/installation")
    assert jwts and not set(jwts) & set(used)
    assert (
        exporter.value(
            "copilot_exporter_github_requests_total",
            endpoint="/app/installations/{installation_id}/access_tokens",
            code="201",
        )
        == 1
    )


def test_installation_is_looked_up_once_when_not_configured(sim, key_file, make_exporter):
    exporter = make_exporter(
        app_config(
            sim, key_file, organizations=[{"name": "acme", "seats": False}, {"name": "umbrella", "seats": False}]
        )
    )
    assert exporter.refresh()
    assert exporter.refresh()
    assert sim.request_count("/orgs/acme/installation") == 1
    assert sim.request_count("/orgs/umbrella/installation") == 1
    # One installation token per organization, each asked for at that organization's installation.
    assert len(sim.issued_app_tokens) == 2
    asked = {entry.path for entry in sim.requests if entry.path.startswith("/app/installations/")}
    assert asked == {
        f"/app/installations/{sim.world.installation_id(org)}/access_tokens" for org in ("acme", "umbrella")
    }


def test_configured_installation_is_used_directly(sim, key_file, make_exporter):
    installation = sim.world.installation_id("acme")
    exporter = make_exporter(
        app_config(
            sim,
            key_file,
            installation_id=installation,
            organizations=[{"name": "acme", "seats": False}, {"name": "globex", "seats": False}],
        )
    )
    assert exporter.refresh()
    assert not [entry.path for entry in sim.requests if entry.path.endswith("/installation")]
    # Both organizations share the one installation, so the one connection and token.
    assert [entry.path for entry in sim.requests if entry.path.startswith("/app/")] == [
        f"/app/installations/{installation}/access_tokens"
    ]
    assert len(sim.issued_app_tokens) == 1


def test_token_is_cached_across_refreshes(sim, key_file, make_exporter):
    exporter = make_exporter(app_config(sim, key_file))
    for _ in range(3):
        assert exporter.refresh()
    assert len(sim.issued_app_tokens) == 1
    assert sim.request_count("/app/installations/") == 1


def test_token_is_renewed_after_expiry(app_key, key_file, make_exporter):
    with app_simulator(app_key[1], token_ttl=2) as sim:
        exporter = make_exporter(app_config(sim, key_file))
        assert exporter.refresh()
        first = list(sim.issued_app_tokens)
        time.sleep(2.5)
        assert not sim._accepts(first[-1])  # the simulator no longer takes the old one
        sim.reset_log()
        assert exporter.refresh()
        assert len(sim.issued_app_tokens) > len(first)
        assert exporter.value("copilot_exporter_up", org="acme", source="legacy") == 1
        used = authorizations(sim, METRICS)
        assert used and not set(used) & set(first)
        assert set(used) <= set(sim.issued_app_tokens)


def test_wrong_key_fails_only_the_scopes_using_it(sim, tmp_path, make_exporter, caplog):
    other = tmp_path / "other.pem"
    other.write_bytes(rsa_key()[0])
    config = app_config(
        sim,
        str(other),
        organizations=[
            {"name": "acme", "seats": False},
            {"name": "umbrella", "seats": False, "github": {"token": TOKEN}},
        ],
    )
    exporter = make_exporter(config)
    with caplog.at_level(logging.WARNING):
        assert not exporter.refresh()
    assert exporter.value("copilot_exporter_up", org="acme", source="legacy") == 0
    assert exporter.value("copilot_exporter_errors_total", org="acme", source="legacy", reason="unauthorized") == 1
    assert exporter.value("copilot_exporter_up", org="umbrella", source="legacy") == 1
    assert sim.issued_app_tokens == []
    assert sim.request_count(METRICS) == 0
    message = next(r.getMessage() for r in caplog.records if "org=acme" in r.getMessage())
    assert "unauthorized" in message and "/orgs/{org}/installation" in message
    assert "private key" in message  # the hint says what to check


def test_wrong_installation_id_is_not_found(sim, key_file, make_exporter):
    exporter = make_exporter(app_config(sim, key_file, installation_id=1))
    assert not exporter.refresh()
    assert exporter.value("copilot_exporter_errors_total", org="acme", source="legacy", reason="not_found") == 1


def test_token_failure_is_not_read_as_an_answer_of_the_data_endpoint(sim, key_file, make_exporter, caplog):
    # With source auto a 404 of the reports API means "fall back to the legacy API": a 404 of
    # the token exchange must not be taken for one.
    exporter = make_exporter(app_config(sim, key_file, installation_id=1, source="auto"))
    with caplog.at_level(logging.WARNING):
        assert not exporter.refresh()
    assert exporter.value("copilot_exporter_errors_total", org="acme", source="reports", reason="not_found") == 1
    assert exporter.value("copilot_exporter_up", org="acme", source="legacy") is None
    assert sim.request_count("/orgs/acme/copilot") == 0
    message = next(r.getMessage() for r in caplog.records if "org=acme" in r.getMessage())
    assert "/app/installations/{installation_id}/access_tokens" in message
    assert "installation_id" in message and "legacy" not in message


def test_secrets_never_reach_logs_or_metrics(app_key, key_file, make_exporter, caplog, tmp_path):
    other = tmp_path / "other.pem"
    other.write_bytes(rsa_key()[0])
    with app_simulator(app_key[1], token_ttl=2) as sim, caplog.at_level(logging.DEBUG):
        good = make_exporter(app_config(sim, key_file, source="auto"))
        bad = make_exporter(app_config(sim, str(other)))
        assert good.refresh()
        time.sleep(2.5)
        assert good.refresh()  # renewed
        assert not bad.refresh()
        shown = caplog.text + good.scrape_text() + bad.scrape_text()
        shown += requests.get(good.url + "/", timeout=5).text + requests.get(bad.url + "/", timeout=5).text
        jwts = authorizations(sim, "/app/") + authorizations(sim, "/orgs/acme/installation")
        secrets = set(sim.issued_app_tokens) | set(jwts)
        assert len(sim.issued_app_tokens) >= 2 and jwts
        for secret in secrets:
            assert secret not in shown
        assert sim.download_auth_violations == 0
    for key in (app_key[0], other.read_bytes()):
        body = b"".join(key.splitlines()[1:-1]).decode()
        assert body[200:260] not in shown


def test_entry_app_credentials_override_the_global_token(sim, key_file, make_exporter):
    app = {"app_id": APP_ID, "private_key_file": key_file}
    config = exporter_config(
        sim.api_url,
        organizations=[
            {"name": "acme", "seats": False, "github": {"app": app}},
            {"name": "umbrella", "seats": False},
        ],
    )
    exporter = make_exporter(config)
    assert exporter.refresh()
    assert set(authorizations(sim, METRICS)) == set(sim.issued_app_tokens) and sim.issued_app_tokens
    assert set(authorizations(sim, "/orgs/umbrella/copilot/metrics")) == {TOKEN}


def test_enterprise_app_credentials_use_the_configured_installation(sim, key_file, make_exporter):
    installation = sim.world.installation_id("acme")
    config = exporter_config(
        sim.api_url,
        enterprises=[
            {
                "name": "initech",
                "seats": False,
                "github": {"app": {"app_id": APP_ID, "private_key_file": key_file, "installation_id": installation}},
            }
        ],
    )
    exporter = make_exporter(config)
    assert exporter.refresh()
    assert set(authorizations(sim, "/enterprises/initech/copilot/metrics")) == set(sim.issued_app_tokens)
    assert sim.request_count("/orgs/") == 0


def test_unreadable_key_fails_the_refresh_clearly(sim, key_file, make_exporter, caplog):
    exporter = make_exporter(app_config(sim, key_file))
    with open(key_file, "w") as handle:
        handle.write("not a key\n")
    with caplog.at_level(logging.WARNING):
        assert not exporter.refresh()
    assert exporter.value("copilot_exporter_errors_total", org="acme", source="legacy", reason="unauthorized") == 1
    assert any(key_file in r.getMessage() and "not a PEM private key" in r.getMessage() for r in caplog.records)
    assert sim.request_count("/") == 0


def test_rotated_key_is_picked_up_at_renewal(key_file, make_exporter, tmp_path):
    private, public = rsa_key()
    with app_simulator(public, token_ttl=2) as sim:
        exporter = make_exporter(app_config(sim, key_file))  # the old key: GitHub refuses it
        assert not exporter.refresh()
        with open(key_file, "wb") as handle:
            handle.write(private)  # the new key, written in place as a mounted secret is
        assert exporter.refresh()
        assert exporter.value("copilot_exporter_up", org="acme", source="legacy") == 1


def test_failed_renewal_keeps_a_still_valid_token(sim, key_file, caplog):
    offset = 0.0
    tokens = AppTokens(
        AppAuth(str(APP_ID), key_file, None), sim.api_url, organization="acme", clock=lambda: time.time() + offset
    )
    first = tokens()
    assert tokens() == first and len(sim.issued_app_tokens) == 1
    offset = 3400.0  # in the renewal window: five minutes or less left
    sim.add_fault("/app/installations/", Fault(status=502))
    with caplog.at_level(logging.WARNING):
        assert tokens() == first
    assert "still valid" in caplog.text and first not in caplog.text
    offset = 3600.0  # expired: nothing left to fall back on
    with pytest.raises(RefreshError) as info:
        tokens()
    assert info.value.reason == "server_error"
    assert "/app/installations/{installation_id}/access_tokens" in str(info.value)


def test_concurrent_callers_share_one_exchange(sim, key_file):
    tokens = AppTokens(AppAuth(str(APP_ID), key_file, None), sim.api_url, organization="acme")
    got: list[str] = []
    threads = [threading.Thread(target=lambda: got.append(tokens())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(got)) == 1 and len(got) == 8
    assert len(sim.issued_app_tokens) == 1
    assert sim.request_count("/orgs/acme/installation") == 1


def test_missing_pyjwt_names_the_extra(sim, key_file, make_exporter, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "jwt", None)  # what an environment without PyJWT imports
    exporter = make_exporter(app_config(sim, key_file))
    with caplog.at_level(logging.WARNING):
        assert not exporter.refresh()
    assert (
        exporter.value("copilot_exporter_errors_total", org="acme", source="legacy", reason="missing_dependency") == 1
    )
    assert "pip install copilot-exporter[app]" in caplog.text
    assert sim.request_count("/") == 0


def test_token_exchanges_send_the_configured_api_version_and_keep_to_max_response_bytes(sim, key_file):
    tokens = AppTokens(
        AppAuth(str(APP_ID), key_file, None),
        sim.api_url,
        organization="acme",
        api_version="2022-11-28",
        limits=Limits(max_response_bytes=10_000),
    )
    assert tokens()
    asked = [entry for entry in sim.requests if entry.path.startswith(("/orgs/acme/installation", "/app/"))]
    assert asked and {entry.headers["X-GitHub-Api-Version"] for entry in asked} == {"2022-11-28"}
    assert {entry.headers["Accept-Encoding"] for entry in asked} == {"gzip, deflate"}

    small = AppTokens(
        AppAuth(str(APP_ID), key_file, None), sim.api_url, organization="acme", limits=Limits(max_response_bytes=10)
    )
    with pytest.raises(RefreshError, match="max_response_bytes"):
        small()
