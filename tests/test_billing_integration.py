"""The billing source and the cost figures over real HTTP against the simulator."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
import requests

from copilot_exporter.github.client import Connection
from copilot_exporter.model import ENTERPRISE, ORG, Scope
from copilot_exporter.simulator import AppSpec, Simulator, World
from copilot_exporter.sources import billing
from copilot_exporter.telemetry import Telemetry
from conftest import TOKEN, exporter_config

pytestmark = pytest.mark.integration


BILLING_TOKEN = "billing-token-77e1"
USAGE = "/settings/billing/ai_credit/usage"


@pytest.fixture
def sim():
    """GitHub where only BILLING_TOKEN may read billing, and may read nothing else."""
    with Simulator(world=World.default(), token=TOKEN, billing_token=BILLING_TOKEN) as simulator:
        yield simulator


def usage(sim, base: str, token: str = BILLING_TOKEN, **params) -> requests.Response:
    return requests.get(
        f"{sim.api_url}{base}{USAGE}", params=params, headers={"Authorization": f"Bearer {token}"}, timeout=5
    )


def totals(body: dict, kind: str) -> tuple[float, float]:
    """(credits, dollars) of one kind, summed over the items of an answer read independently."""
    items = body["usageItems"]
    return (sum(item[f"{kind}Quantity"] for item in items), sum(item[f"{kind}Amount"] for item in items))


def exported(samples: dict, name: str, kind: str, **scope) -> float:
    return sum(
        value
        for (metric, labels), value in samples.items()
        if metric == name and ("kind", kind) in labels and set(scope.items()) <= labels
    )


def billing_entries(with_billing_token: bool = True) -> dict:
    extra = {"billing": True, **({"billing_github": {"token": BILLING_TOKEN}} if with_billing_token else {})}
    return {"organizations": [{"name": "acme", **extra}], "enterprises": [{"name": "initech", **extra}]}


def test_billing_figures_equal_the_answers_and_each_token_goes_only_where_it_belongs(sim, make_exporter):
    exporter = make_exporter(exporter_config(sim.api_url, source="reports", **billing_entries()))
    assert exporter.refresh()
    billing_requests = [r for r in sim.requests if r.server == "api" and r.path.endswith(USAGE)]
    other_requests = [r for r in sim.requests if r.server == "api" and not r.path.endswith(USAGE)]
    assert len(billing_requests) == 2 and len(other_requests) > 10
    samples = exporter.samples()
    today = sim.world.today
    for base, scope in (("/organizations/acme", {"org": "acme"}), ("/enterprises/initech", {"enterprise": "initech"})):
        body = usage(sim, base, year=today.year, month=today.month).json()
        assert body["usageItems"]
        for kind in ("gross", "discount", "net"):
            credits, dollars = totals(body, kind)
            assert exported(samples, "copilot_billing_ai_credits", kind, **scope) == pytest.approx(credits)
            assert exported(samples, "copilot_billing_amount_usd", kind, **scope) == pytest.approx(dollars)
        start = dt.datetime(today.year, today.month, 1, tzinfo=dt.timezone.utc).timestamp()
        assert exporter.value("copilot_billing_period_start_timestamp_seconds", **scope) == start
        assert exporter.value("copilot_exporter_up", source="billing", **scope) == 1
    models = {dict(labels)["model"] for name, labels in samples if name == "copilot_billing_ai_credits"}
    assert "none" in models and len(models) > 3  # code review items name no model

    assert {r.headers["Authorization"] for r in billing_requests} == {f"Bearer {BILLING_TOKEN}"}
    assert {r.headers["Authorization"] for r in other_requests} == {f"Bearer {TOKEN}"}
    assert all(r.query == {"year": str(today.year), "month": str(today.month)} for r in billing_requests)
    assert BILLING_TOKEN not in exporter.scrape_text() and TOKEN not in exporter.scrape_text()
    page = requests.get(exporter.url + "/", timeout=5).text
    assert "<td>org=acme</td><td>billing</td><td></td><td>up</td>" in page
    assert f"billing: {today.year}-{today.month:02d}" in page and BILLING_TOKEN not in page


def test_a_billing_403_leaves_the_usage_data_alone(sim, make_exporter):
    # No billing_github: the main token reaches billing, and GitHub refuses it there.
    exporter = make_exporter(exporter_config(sim.api_url, source="reports", **billing_entries(False)))
    assert not exporter.refresh()
    for scope in ({"org": "acme"}, {"enterprise": "initech"}):
        assert exporter.value("copilot_exporter_up", source="billing", **scope) == 0
        assert exporter.value("copilot_exporter_errors_total", source="billing", reason="forbidden", **scope) == 1
        assert exporter.value("copilot_exporter_up", source="reports", **scope) == 1
        assert exporter.value("copilot_exporter_up", source="seats", **scope) == 1
        assert exporter.value("copilot_daily_active_users", **scope) > 0
        assert exporter.value("copilot_billing_period_start_timestamp_seconds", **scope) is None
    assert sum(1 for r in sim.requests if r.path.endswith(USAGE) and r.status == 403) == 2
    page = requests.get(exporter.url + "/", timeout=5).text
    assert "<td>enterprise=initech</td><td>billing</td><td></td><td>failing</td>" in page
    assert "<td>enterprise=initech</td><td>reports</td><td>reports</td><td>up</td>" in page


def test_billing_is_off_unless_an_entry_turns_it_on(sim, make_exporter):
    exporter = make_exporter(exporter_config(sim.api_url, source="reports", organizations=[{"name": "acme"}]))
    assert exporter.refresh()
    assert not any(r.path.endswith(USAGE) for r in sim.requests)
    assert exporter.value("copilot_exporter_up", org="acme", source="billing") is None
    assert {job.kind for job in exporter.refresher.jobs} == {"data", "seats"}


def test_billing_has_its_own_interval(sim):
    from copilot_exporter.refresher import Refresher
    from copilot_exporter.store import Store

    config = exporter_config(
        sim.api_url,
        organizations=[{"name": "acme", "billing": True}],
        refresh_interval="1h",
        seats_refresh_interval="6h",
        billing_refresh_interval="2h",
    )
    refresher = Refresher(config, Store(), Telemetry())
    assert {job.kind: job.interval for job in refresher.jobs} == {"data": 3600, "seats": 6 * 3600, "billing": 2 * 3600}
    refresher.stop()


@pytest.mark.parametrize(
    "scope, base",
    [(Scope(ORG, "umbrella"), "/organizations/umbrella"), (Scope(ENTERPRISE, "initech"), "/enterprises/initech")],
)
def test_at_a_month_boundary_the_figures_switch_to_the_new_month(sim, scope, base):
    client = Connection(sim.api_url, lambda: BILLING_TOKEN, Telemetry()).client()
    first = dt.datetime(sim.world.today.year, sim.world.today.month, 1, tzinfo=dt.timezone.utc)
    before, after = first - dt.timedelta(seconds=1), first + dt.timedelta(minutes=5)
    results = {}
    for moment in (before, after):
        result = billing.fetch(client, scope, now=moment.timestamp())
        values = {(family.name, labels): value for family in result.families for labels, value in family.samples}
        results[moment] = values
        start = values[("copilot_billing_period_start_timestamp_seconds", scope.labels())]
        assert start == dt.datetime(moment.year, moment.month, 1, tzinfo=dt.timezone.utc).timestamp()
        body = usage(sim, base, year=moment.year, month=moment.month).json()
        net = sum(
            value
            for (name, labels), value in values.items()
            if name == "copilot_billing_amount_usd" and ("kind", "net") in labels
        )
        assert net == pytest.approx(totals(body, "net")[1])
        gross = sum(
            value
            for (name, labels), value in values.items()
            if name == "copilot_billing_ai_credits" and ("kind", "gross") in labels
        )
        assert gross == pytest.approx(totals(body, "gross")[0])
    # the last month is complete, the new one has barely started: the figures differ
    gross_of = {
        m: sum(
            v for (n, labels), v in values.items() if n == "copilot_billing_ai_credits" and ("kind", "gross") in labels
        )
        for m, values in results.items()
    }
    assert gross_of[before] > gross_of[after] > 0


def test_enterprise_billing_refuses_app_tokens_and_org_billing_takes_them():
    world = dataclasses.replace(World.default(), app=AppSpec(app_id=1, public_key_pem="unused"))
    with Simulator(world=world, token=TOKEN) as sim:
        app_token, _expiry = sim._issue_app_token()
        assert usage(sim, "/enterprises/initech", token=app_token).status_code == 403
        assert usage(sim, "/organizations/acme", token=app_token).status_code == 200
        assert usage(sim, "/enterprises/initech", token=TOKEN).status_code == 200


def test_included_credits_and_seat_prices_come_with_the_seats(sim, make_exporter):
    config = exporter_config(
        sim.api_url,
        source="reports",
        organizations=[{"name": "acme"}, {"name": "globex"}],
        seat_prices={"business": {"amount": 19, "currency": "USD"}, "enterprise": {"amount": 36.5, "currency": "EUR"}},
        included_ai_credits={"business": 3000},
    )
    exporter = make_exporter(config)
    assert exporter.refresh()
    credits = {"business": 3000, "enterprise": 3900}
    for org in ("acme", "globex"):
        plans = {
            dict(labels)["plan"]: value
            for (name, labels), value in exporter.samples().items()
            if name == "copilot_seats_by_plan" and ("org", org) in labels
        }
        assert plans and set(plans) <= set(credits)
        assert exporter.value("copilot_billing_included_ai_credits", org=org) == sum(
            count * credits[plan] for plan, count in plans.items()
        )
    assert exporter.value("copilot_seat_price", org="acme", plan="business", currency="USD") == 19
    assert exporter.value("copilot_seat_price", org="globex", plan="enterprise", currency="EUR") == 36.5
    prices = [labels for name, labels in exporter.samples() if name == "copilot_seat_price"]
    assert len(prices) == 2  # only the plan each organization has seats of


def test_without_configured_prices_no_seat_price_is_exported(sim, make_exporter):
    exporter = make_exporter(exporter_config(sim.api_url, source="reports", organizations=[{"name": "acme"}]))
    assert exporter.refresh()
    assert not any(name == "copilot_seat_price" for name, _labels in exporter.samples())
    assert exporter.value("copilot_billing_included_ai_credits", org="acme") > 0


def test_a_billing_422_is_counted_as_a_billing_problem_and_keeps_the_last_figures(sim, make_exporter):
    from copilot_exporter.simulator import Fault

    exporter = make_exporter(
        exporter_config(
            sim.api_url,
            source="reports",
            organizations=[{"name": "umbrella", "billing": True, "billing_github": {"token": BILLING_TOKEN}}],
        )
    )
    assert exporter.refresh()
    before = {key: value for key, value in exporter.samples().items() if key[0].startswith("copilot_billing_")}
    assert before
    sim.add_fault("/organizations/umbrella" + USAGE, Fault(status=422))
    assert not exporter.refresh()
    assert (
        exporter.value("copilot_exporter_errors_total", org="umbrella", source="billing", reason="billing_problem") == 1
    )
    assert exporter.value("copilot_exporter_up", org="umbrella", source="billing") == 0
    after = {key: value for key, value in exporter.samples().items() if key[0].startswith("copilot_billing_")}
    assert after == before
