"""AI-credit usage, included credits and seat prices -> metric samples (copilot_exporter.metrics.billing)."""

from __future__ import annotations

import datetime as dt

import pytest
from conftest import family_values

from copilot_exporter.errors import PayloadError
from copilot_exporter.metrics.billing import add_included_credits, add_seat_prices, add_usage
from copilot_exporter.model import FamilyBuilder

SCOPE = (("enterprise", "initech"),)
MAY_2026 = dt.datetime(2026, 5, 1, tzinfo=dt.timezone.utc).timestamp()


def key(name: str, **labels: str) -> tuple[str, frozenset]:
    return (name, frozenset(SCOPE + tuple(labels.items())))


def item(sku: str, model: str | None, gross: float, discount: float, price: float = 0.01, **extra) -> dict:
    """A usage item in the documented shape (COPILOT-APIS.md §7); no `model` key when None."""
    entry = {
        "product": "copilot",
        "sku": sku,
        "unitType": "ai-credits",
        "pricePerUnit": price,
        "grossQuantity": gross,
        "grossAmount": gross * price,
        "discountQuantity": discount,
        "discountAmount": discount * price,
        "netQuantity": gross - discount,
        "netAmount": (gross - discount) * price,
        **extra,
    }
    if model is not None:
        entry["model"] = model
    return entry


def usage_values(body, year: int = 2026, month: int = 5) -> tuple[dict, FamilyBuilder]:
    builder = FamilyBuilder(SCOPE)
    add_usage(builder, body, year, month)
    return family_values(builder.build()), builder


def expected(labels: dict, gross: float, discount: float, price: float = 0.01) -> dict:
    quantities = {"gross": gross, "discount": discount, "net": gross - discount}
    values = {}
    for kind, quantity in quantities.items():
        values[key("copilot_billing_ai_credits", kind=kind, **labels)] = quantity
        values[key("copilot_billing_amount_usd", kind=kind, **labels)] = quantity * price
    return values


def test_documented_answer_maps_to_exact_values():
    body = {
        "timePeriod": {"year": 2026, "month": 5},
        "enterprise": "initech",
        "usageItems": [
            item("copilot_agent_mode", "claude-sonnet-4.5", 1234.5, 1000.25),
            item("copilot_chat", "gpt-5-mini", 10.0, 0.0),
        ],
    }
    values, builder = usage_values(body)
    assert values == {
        **expected({"product": "copilot", "sku": "copilot_agent_mode", "model": "claude-sonnet-4.5"}, 1234.5, 1000.25),
        **expected({"product": "copilot", "sku": "copilot_chat", "model": "gpt-5-mini"}, 10.0, 0.0),
        key("copilot_billing_period_start_timestamp_seconds"): MAY_2026,
    }
    assert not builder.problems.frozen()


def test_fractional_amounts_are_kept_exactly():
    body = {
        "usageItems": [
            {
                "product": "copilot",
                "sku": "copilot_cli",
                "model": "gpt-5-mini",
                "grossQuantity": 0.3,
                "grossAmount": 0.003,
                "netQuantity": 0.3,
                "netAmount": 0.003,
            }
        ]
    }
    values, _ = usage_values(body)
    labels = {"product": "copilot", "sku": "copilot_cli", "model": "gpt-5-mini"}
    assert values[key("copilot_billing_amount_usd", kind="gross", **labels)] == 0.003
    assert values[key("copilot_billing_ai_credits", kind="net", **labels)] == 0.3
    # absent discount fields give no discount sample (absent, never 0)
    assert key("copilot_billing_amount_usd", kind="discount", **labels) not in values


@pytest.mark.parametrize("model", [None, "", "absent"])
def test_an_item_without_a_model_is_labelled_none(model):
    entry = item("copilot_code_review", None, 42.5, 2.5)
    if model != "absent":
        entry["model"] = model
    values, _ = usage_values({"usageItems": [entry]})
    assert values == {
        **expected({"product": "copilot", "sku": "copilot_code_review", "model": "none"}, 42.5, 2.5),
        key("copilot_billing_period_start_timestamp_seconds"): MAY_2026,
    }


def test_items_sharing_labels_are_summed():
    body = {
        "usageItems": [
            item("copilot_chat", "gpt-4.1", 100.5, 50.0),
            item("copilot_chat", "gpt-4.1", 20.25, 0.0),
            item("copilot_chat", "o4-mini", 1.0, 1.0),
        ]
    }
    values, _ = usage_values(body)
    chat = {"product": "copilot", "sku": "copilot_chat"}
    assert values[key("copilot_billing_ai_credits", kind="gross", model="gpt-4.1", **chat)] == 120.75
    assert values[key("copilot_billing_ai_credits", kind="net", model="gpt-4.1", **chat)] == pytest.approx(70.75)
    assert values[key("copilot_billing_amount_usd", kind="discount", model="gpt-4.1", **chat)] == pytest.approx(0.5)
    assert values[key("copilot_billing_ai_credits", kind="net", model="o4-mini", **chat)] == 0.0


@pytest.mark.parametrize("body", [{"usageItems": []}, {"timePeriod": {"year": 2026, "month": 5}}, {"usageItems": None}])
def test_no_items_give_only_the_period_start(body):
    values, _ = usage_values(body)
    assert values == {key("copilot_billing_period_start_timestamp_seconds"): MAY_2026}


def test_the_period_start_is_the_first_of_the_month_asked_for():
    values, _ = usage_values({"usageItems": []}, year=2027, month=1)
    start = dt.datetime.fromtimestamp(values[key("copilot_billing_period_start_timestamp_seconds")], dt.timezone.utc)
    assert start == dt.datetime(2027, 1, 1, tzinfo=dt.timezone.utc)


def test_a_bad_item_is_dropped_and_counted_the_others_kept():
    body = {
        "usageItems": [
            item("copilot_chat", "gpt-4.1", 10.0, 0.0),
            item("copilot_cli", "gpt-5-mini", 5.0, 0.0, netAmount="0.05"),
            "not an item",
        ]
    }
    values, builder = usage_values(body)
    assert {dict(labels).get("sku") for name, labels in values if name == "copilot_billing_ai_credits"} == {
        "copilot_chat"
    }
    [problem] = builder.problems.frozen()
    assert (problem.reason, problem.count) == ("bad_billing_item", 2)
    assert "usageItems[1].netAmount" in problem.example


@pytest.mark.parametrize(
    "body, message",
    [
        ([], "expected an object"),
        ({"usageItems": {"a": 1}}, "usageItems: expected a list"),
        (
            {"timePeriod": {"year": 2026, "month": 4}, "usageItems": []},
            "timePeriod 2026-04 is not the month asked for, 2026-05",
        ),
    ],
)
def test_a_body_of_the_wrong_shape_fails_the_refresh(body, message):
    with pytest.raises(PayloadError, match=message):
        usage_values(body)


# --- included credits and seat prices ---------------------------------------------------------


def cost_values(plans: dict, credits: dict | None = None, prices: dict | None = None) -> dict:
    builder = FamilyBuilder(SCOPE)
    add_included_credits(builder, plans, credits or {})
    add_seat_prices(builder, plans, prices or {})
    return family_values(builder.build())


def test_included_credits_are_seats_per_plan_times_credits_per_licence():
    values = cost_values(
        {"business": 12, "enterprise": 3, "unknown": 5}, credits={"business": 1900.0, "enterprise": 3900.0}
    )
    assert values == {key("copilot_billing_included_ai_credits"): 12 * 1900 + 3 * 3900}


def test_configured_credits_per_licence_replace_the_defaults():
    values = cost_values({"business": 10}, credits={"business": 3000.0, "enterprise": 7000.0})
    assert values == {key("copilot_billing_included_ai_credits"): 30000}


def test_no_seats_of_a_known_plan_give_no_included_credits():
    assert cost_values({"unknown": 4}, credits={"business": 1900.0}) == {}


def test_seat_prices_are_exported_as_configured_for_plans_with_seats_only():
    values = cost_values(
        {"business": 10, "enterprise": 0}, prices={"business": (19.0, "USD"), "enterprise": (36.5, "EUR")}
    )
    assert values == {key("copilot_seat_price", plan="business", currency="USD"): 19.0}


def test_no_price_is_invented_when_none_is_configured():
    assert cost_values({"business": 10, "enterprise": 2}) == {}


# --- consumption per team (users report joined with user-teams; not a billed amount) ----------


def test_team_consumption_sums_the_credits_of_members_who_reported_any():
    from copilot_exporter.metrics.reports import UsersAccumulator, add_teams

    users = UsersAccumulator()
    for user_id, credits in ((1, 12.5), (2, 0.25), (3, None), (4, 7.0)):
        record = {"user_id": user_id, "user_login": f"u{user_id}", "day": "2026-05-04", "organization_id": "7"}
        if credits is not None:
            record["ai_credits_used"] = credits
        users.add(record)
    rows = [
        {"user_id": user_id, "team_id": team_id, "slug": slug, "day": "2026-05-04", "organization_id": "7"}
        for user_id, team_id, slug in (
            (1, 10, "web"),
            (2, 10, "web"),
            (4, 20, "data"),
            (3, 30, "docs"),
            (9, 20, "data"),
        )
    ]
    builder = FamilyBuilder((("org", "acme"),))
    add_teams(builder, rows, users)
    credits = {
        dict(labels)["team"]: value
        for (name, labels), value in family_values(builder.build()).items()
        if name == "copilot_ai_credits_used"
    }
    assert credits == {"web": 12.75, "data": 7.0}  # docs' only member reported no credits: absent
