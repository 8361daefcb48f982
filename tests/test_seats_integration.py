"""Seats and licence utilisation over real HTTP against the simulator."""

from __future__ import annotations

import datetime as dt

import requests
import pytest

from copilot_exporter.simulator import Fault, OrgSpec, Simulator, World
from conftest import TOKEN, RunningExporter, exporter_config

pytestmark = pytest.mark.integration


def all_seats(sim, path: str) -> list[dict]:
    """The seat list read independently, page by page."""
    url, seats = f"{sim.api_url}{path}?per_page=100", []
    while url:
        response = requests.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        seats += response.json()["seats"]
        url = response.links.get("next", {}).get("url")
    return seats


def test_a_5000_seat_organization_is_paged_to_the_end():
    world = World(organizations=(OrgSpec("bigco", users=300, seats=5000),))
    with Simulator(world=world, token=TOKEN) as sim:
        exporter = RunningExporter(exporter_config(sim.api_url, organizations=[{"name": "bigco"}], source="legacy"))
        try:
            assert exporter.refresh()
            assert sim.request_count("/orgs/bigco/copilot/billing/seats") == 50
            seats = all_seats(sim, "/orgs/bigco/copilot/billing/seats")
            assert len(seats) == 5000
            now = dt.datetime.now(dt.timezone.utc)
            never = sum(1 for seat in seats if seat["last_activity_at"] is None)
            recent = sum(
                1
                for seat in seats
                if seat["last_activity_at"]
                and now - dt.datetime.fromisoformat(seat["last_activity_at"].replace("Z", "+00:00"))
                <= dt.timedelta(days=7)
            )
            plans: dict[str, int] = {}
            for seat in seats:
                plans[seat.get("plan_type") or "unknown"] = plans.get(seat.get("plan_type") or "unknown", 0) + 1
            assert exporter.value("copilot_seats_never_active", org="bigco") == never
            assert abs(exporter.value("copilot_seats_active_within", org="bigco", period="7d") - recent) <= 2
            for plan, count in plans.items():
                assert exporter.value("copilot_seats_by_plan", org="bigco", plan=plan) == count
            billing = requests.get(
                f"{sim.api_url}/orgs/bigco/copilot/billing", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5
            ).json()
            assert exporter.value("copilot_seats", org="bigco") == billing["seat_breakdown"]["total"]
            info = [labels for name, labels in exporter.samples() if name == "copilot_organization_info"]
            assert len(info) == 1 and ("plan_type", billing["plan_type"]) in info[0]
            editors = {
                dict(labels)["editor"] for name, labels in exporter.samples() if name == "copilot_seats_by_editor"
            }
            assert editors and all("/" not in editor for editor in editors)
            assert not any("login" in key or "user" == key for name, labels in exporter.samples() for key, _ in labels)
        finally:
            exporter.close()


def test_enterprise_seats_count_each_user_once(simulator, make_exporter):
    exporter = make_exporter(exporter_config(simulator.api_url, enterprises=[{"name": "initech"}], source="legacy"))
    assert exporter.refresh()
    seats = all_seats(simulator, "/enterprises/initech/copilot/billing/seats")
    users = {seat["assignee"]["id"] for seat in seats if seat.get("assignee")}
    assert len(seats) > len(users)  # a user seated by two organizations appears twice in the list
    total = sum(
        exporter.value("copilot_seats_by_plan", enterprise="initech", plan=plan) or 0
        for plan in ("business", "enterprise", "unknown")
    )
    assert total == len(users) + sum(1 for seat in seats if not seat.get("assignee"))
    assert exporter.value("copilot_exporter_up", enterprise="initech", source="seats") == 1


def test_a_seats_failure_is_isolated_from_the_same_scopes_metrics(simulator, make_exporter):
    exporter = make_exporter(exporter_config(simulator.api_url, organizations=[{"name": "acme"}], source="legacy"))
    assert exporter.refresh()
    seats_before = exporter.value("copilot_seats", org="acme")
    users_before = exporter.value("copilot_daily_active_users", org="acme")
    simulator.add_fault("/orgs/acme/copilot/billing", Fault(status=422))
    assert not exporter.refresh()
    assert exporter.value("copilot_exporter_up", org="acme", source="seats") == 0
    assert exporter.value("copilot_exporter_errors_total", org="acme", source="seats", reason="billing_problem") == 1
    assert exporter.value("copilot_exporter_up", org="acme", source="legacy") == 1
    assert exporter.value("copilot_seats", org="acme") == seats_before
    assert exporter.value("copilot_daily_active_users", org="acme") == users_before


def test_seats_can_be_turned_off_per_entry(simulator, make_exporter):
    exporter = make_exporter(
        exporter_config(simulator.api_url, organizations=[{"name": "acme", "seats": False}], source="legacy")
    )
    assert exporter.refresh()
    assert simulator.request_count("/orgs/acme/copilot/billing") == 0
    assert exporter.value("copilot_seats", org="acme") is None


def test_seats_have_their_own_interval(simulator):
    config = exporter_config(
        simulator.api_url,
        organizations=[{"name": "acme"}],
        source="legacy",
        refresh_interval="1h",
        seats_refresh_interval="6h",
    )
    from copilot_exporter.refresher import Refresher
    from copilot_exporter.store import Store
    from copilot_exporter.telemetry import Telemetry

    refresher = Refresher(config, Store(), Telemetry())
    intervals = {job.kind: job.interval for job in refresher.jobs}
    assert intervals == {"data": 3600, "seats": 6 * 3600}
    refresher.stop()
