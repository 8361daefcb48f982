"""Configuration of the cost figures: billing switch and credentials, seat prices, included credits."""

from __future__ import annotations

import pytest

from copilot_exporter.config import Credentials, SeatPrice, parse_config
from copilot_exporter.errors import ConfigError


def minimal(**top) -> dict:
    return {"github": {"token": "t0ken"}, "organizations": [{"name": "my-org"}], **top}


def problems(data: dict) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, {})
    return info.value.problems


def test_cost_defaults():
    config = parse_config(minimal(), {})
    assert config.billing_refresh_interval == 6 * 3600
    assert config.seat_prices == {}
    assert config.included_ai_credits == {"business": 1900, "enterprise": 3900}
    [entry] = config.entries
    assert (entry.billing, entry.billing_credentials) == (False, None)


def test_cost_settings_are_read():
    config = parse_config(
        minimal(
            billing_refresh_interval="12h",
            seat_prices={
                "business": {"amount": 19, "currency": "USD"},
                "enterprise": {"amount": 36.5, "currency": "EUR"},
            },
            included_ai_credits={"business": 3000},
            organizations=[{"name": "my-org", "billing": True, "billing_github": {"token": "b1ll"}}],
        ),
        {},
    )
    assert config.billing_refresh_interval == 12 * 3600
    assert config.seat_prices == {"business": SeatPrice(19.0, "USD"), "enterprise": SeatPrice(36.5, "EUR")}
    assert config.included_ai_credits == {"business": 3000, "enterprise": 3900}
    [entry] = config.entries
    assert entry.billing and entry.billing_credentials == Credentials(token="b1ll")
    assert entry.credentials is None  # the other sources keep the global credentials
    assert "b1ll" not in repr(config)


@pytest.mark.parametrize(
    "top, problem",
    [
        ({"billing_refresh_interval": "0s"}, 'billing_refresh_interval: must be at least 1s, got "0s"'),
        ({"seat_prices": {"pro": {"amount": 10, "currency": "USD"}}}, "seat_prices.pro: unknown key"),
        ({"seat_prices": {"business": {"currency": "USD"}}}, "seat_prices.business.amount: required"),
        ({"seat_prices": {"business": {"amount": 19}}}, "seat_prices.business.currency: required"),
        (
            {"seat_prices": {"business": {"amount": -1, "currency": "USD"}}},
            "seat_prices.business.amount: must not be negative, got -1",
        ),
        (
            {"seat_prices": {"business": {"amount": "19", "currency": "USD"}}},
            "seat_prices.business.amount: must be a number, got string",
        ),
        (
            {"seat_prices": {"business": {"amount": 19, "currency": "dollars"}}},
            'seat_prices.business.currency: "dollars" is not a three-letter currency code like USD or EUR',
        ),
        (
            {"seat_prices": {"business": {"amount": 19, "currency": "USD", "per": "year"}}},
            "seat_prices.business.per: unknown key",
        ),
        ({"included_ai_credits": {"business": -5}}, "included_ai_credits.business: must not be negative, got -5"),
        ({"included_ai_credits": {"free": 50}}, "included_ai_credits.free: unknown key"),
        (
            {"organizations": [{"name": "my-org", "billing": "yes"}]},
            "organizations[0].billing: must be true or false, got string",
        ),
        (
            {"organizations": [{"name": "my-org", "billing_github": {}}]},
            "organizations[0].billing_github: one of token, token_file or app is required",
        ),
    ],
)
def test_bad_cost_settings_name_their_key_path(top, problem):
    assert problems(minimal(**top)) == [problem]


def test_enterprise_billing_refuses_github_app_credentials(tmp_path):
    key = tmp_path / "app.pem"
    key.write_text("-----BEGIN RSA PRIVATE KEY-----\nx\n-----END RSA PRIVATE KEY-----\n")
    app = {"app": {"app_id": 1, "private_key_file": str(key), "installation_id": 7}}
    # the global credentials are an App and the enterprise has no billing_github
    assert problems({"github": app, "enterprises": [{"name": "initech", "billing": True}]}) == [
        "enterprises[0].billing_github: required: enterprise billing endpoints accept classic "
        "personal access tokens only, not GitHub App tokens"
    ]
    # billing_github itself is an App
    assert problems(minimal(enterprises=[{"name": "initech", "billing": True, "billing_github": app}])) == [
        "enterprises[0].billing_github.app: enterprise billing endpoints accept classic personal access tokens only"
    ]
    # a classic token for billing next to App credentials for the rest is fine, as is billing off
    parse_config(
        {"github": app, "enterprises": [{"name": "initech", "billing": True, "billing_github": {"token": "ghp_x"}}]}, {}
    )
    parse_config({"github": app, "enterprises": [{"name": "initech"}]}, {})


def test_a_wrong_type_of_enterprises_is_reported_once():
    assert problems(minimal(enterprises="initech")) == ["enterprises: must be a list, got string"]
