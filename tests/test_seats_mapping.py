"""Copilot billing and seat lists -> metric samples (copilot_exporter.metrics.seats)."""

from __future__ import annotations

import copy
import datetime as dt
import json
import re
from pathlib import Path

import pytest
from conftest import family_values

from copilot_exporter.errors import PayloadError
from copilot_exporter.metrics.seats import SeatsAccumulator, add_billing
from copilot_exporter.model import FamilyBuilder

# The `default` response examples of GitHub's OpenAPI description of the billing endpoints.
EXAMPLES = Path(__file__).resolve().parent / "data" / "examples"

SCOPE = (("org", "acme"),)
NOW = dt.datetime(2026, 1, 10, 12, 0, tzinfo=dt.timezone.utc)


def read_example(name: str) -> dict:
    return json.loads((EXAMPLES / name).read_text())


def key(name: str, **labels: str) -> tuple[str, frozenset]:
    return (name, frozenset(SCOPE + tuple(labels.items())))


def seats_values(pages: list, now: dt.datetime = NOW) -> dict:
    seats = SeatsAccumulator(now.timestamp())
    for page in pages:
        seats.add_page(page)
    builder = FamilyBuilder(SCOPE)
    seats.add_to(builder)
    return family_values(builder.build())


def within(day: int, week: int, month: int) -> dict:
    return {
        key("copilot_seats_active_within", period="1d"): day,
        key("copilot_seats_active_within", period="7d"): week,
        key("copilot_seats_active_within", period="30d"): month,
    }


# --- billing ----------------------------------------------------------------------------------


def billing_values(billing) -> dict:
    builder = FamilyBuilder(SCOPE)
    add_billing(builder, billing)
    return family_values(builder.build())


def test_billing_example_maps_to_exact_values():
    assert billing_values(read_example("copilot-billing.json")) == {
        key("copilot_seats"): 12,
        key("copilot_seats_active_this_cycle"): 12,
        key("copilot_seats_inactive_this_cycle"): 11,
        key("copilot_seats_added_this_cycle"): 9,
        key("copilot_seats_pending_invitation"): 0,
        key("copilot_seats_pending_cancellation"): 0,
        key(
            "copilot_organization_info",
            plan_type="business",
            seat_management_setting="assign_selected",
            ide_chat="enabled",
            platform_chat="enabled",
            cli="enabled",
            public_code_suggestions="block",
        ): 1,
    }


def test_billing_missing_fields_are_absent_or_empty_labels():
    billing = {
        "seat_breakdown": {"total": 3, "pending_invitation": None, "future": 1},
        "seat_management_setting": "assign_all",
        "cli": None,
        "new_policy": "on",
    }
    assert billing_values(billing) == {
        key("copilot_seats"): 3,
        key(
            "copilot_organization_info",
            plan_type="",
            seat_management_setting="assign_all",
            ide_chat="",
            platform_chat="",
            cli="",
            public_code_suggestions="",
        ): 1,
    }


def test_billing_without_seat_breakdown_keeps_only_the_info():
    values = billing_values({"plan_type": "enterprise"})
    assert [name for name, _labels in values] == ["copilot_organization_info"]


@pytest.mark.parametrize(
    "billing, field",
    [
        ([], "record"),
        ({"seat_breakdown": {"total": "12"}}, "seat_breakdown.total"),
        ({"seat_breakdown": {"total": True}}, "seat_breakdown.total"),
        ({"seat_breakdown": [12]}, "seat_breakdown"),
        ({"seat_breakdown": {}, "cli": False}, "cli"),
    ],
)
def test_billing_wrong_types(billing, field):
    with pytest.raises(PayloadError, match=rf"^copilot/billing: {re.escape(field)}: "):
        add_billing(FamilyBuilder(SCOPE), billing)


# --- seat lists -------------------------------------------------------------------------------


def test_seats_example_reuses_one_assignee_id():
    # GitHub's example gives octocat and octokitten the same id (1), so they count as one
    # user, with the more recent of the two seats.
    example = read_example("copilot-billing-seats.json")
    values = seats_values([example["seats"]], now=dt.datetime(2021, 10, 15, tzinfo=dt.timezone.utc))
    assert values == {
        **within(1, 1, 1),
        key("copilot_seats_never_active"): 0,
        key("copilot_seats_by_editor", editor="vscode"): 1,
        key("copilot_seats_by_plan", plan="business"): 1,
    }


def test_seats_example_with_distinct_ids():
    seats = copy.deepcopy(read_example("copilot-billing-seats.json")["seats"])
    seats[1]["assignee"]["id"] = 2
    # activities at 2021-10-14T06:53:32Z and 2021-10-13T06:53:32Z; the second seat has no plan
    values = seats_values([seats], now=dt.datetime(2021, 10, 15, tzinfo=dt.timezone.utc))
    assert values == {
        **within(1, 2, 2),
        key("copilot_seats_never_active"): 0,
        key("copilot_seats_by_editor", editor="vscode"): 2,
        key("copilot_seats_by_plan", plan="business"): 1,
        key("copilot_seats_by_plan", plan="unknown"): 1,
    }


def ago(offset: str = "Z", **delta: float) -> str:
    """An ISO 8601 timestamp `delta` before NOW, written with the given UTC offset."""
    moment = NOW - dt.timedelta(**delta)
    if offset == "Z":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    sign = 1 if offset[0] == "+" else -1
    hours, minutes = (int(part) for part in offset[1:].split(":"))
    zone = dt.timezone(sign * dt.timedelta(hours=hours, minutes=minutes))
    return moment.astimezone(zone).isoformat()


def seat(assignee, last_activity_at=None, editor=None, plan=None, **more) -> dict:
    fields = {
        "created_at": "2025-01-01T00:00:00Z",
        "assignee": assignee,
        "last_activity_at": last_activity_at,
        "last_activity_editor": editor,
        "last_authenticated_at": None,
        "pending_cancellation_date": None,
        **more,
    }
    if plan is not None:
        fields["plan_type"] = plan
    return fields


def person(user_id, login=None) -> dict:
    return {"id": user_id, "login": login or f"user{user_id}", "type": "User"}


PAGE_1 = [
    seat(person(1), None, None, "business"),  # never active
    seat(person(2), ago(hours=1), "vscode/1.99.0/copilot-chat/0.30.0", "business"),
    seat(person(3), ago("+02:00", days=3), "JetBrains-IC/2025.3/copilot-intellij/1.5.0", "enterprise"),
    seat(person(4), ago(days=20), "neovim/0.10.0/copilot.vim/1.40", "enterprise"),
    seat(person(5), ago("-06:00", days=200), "vscode/1.80.0/copilot/1.86.82", "business"),
    seat(person(6), ago(days=2), pending_cancellation_date="2026-02-01"),  # no editor, no plan
    seat(None, ago(days=10), "vscode/1.98.0", "business"),
]
# An enterprise list repeats users once per granting organization.
PAGE_2 = [
    seat(None, None, None, "enterprise"),
    seat(person(2), ago(days=5), "xcode/16.0/copilot-xcode/0.40", "business"),  # older: ignored
    seat(person(4), ago(days=6), "zed/0.190", "enterprise"),  # newer: replaces
    seat(person(1), None, "vim/9.1", "business"),  # both never active: the known editor wins
    seat({"login": "ghost"}, None, "emacs/30", "business"),
    seat({"login": "ghost"}, ago(days=40).replace("Z", ".000Z"), "vim/9.1", "business"),
]


def test_generated_seat_lists_count_each_user_once():
    values = seats_values([PAGE_1, PAGE_2])
    # users: 1 never (vim), 2 1h, 3 3d, 4 6d, 5 200d, 6 2d, ghost 40d (vim), two seats
    # without assignee (10d and never)
    assert values == {
        **within(1, 4, 5),
        key("copilot_seats_never_active"): 2,
        key("copilot_seats_by_editor", editor="unknown"): 2,
        key("copilot_seats_by_editor", editor="vscode"): 3,
        key("copilot_seats_by_editor", editor="JetBrains-IC"): 1,
        key("copilot_seats_by_editor", editor="zed"): 1,
        key("copilot_seats_by_editor", editor="vim"): 2,
        key("copilot_seats_by_plan", plan="business"): 5,
        key("copilot_seats_by_plan", plan="enterprise"): 3,
        key("copilot_seats_by_plan", plan="unknown"): 1,
    }


def test_seat_pages_order_does_not_matter():
    assert seats_values([PAGE_2, PAGE_1]) == seats_values([PAGE_1 + PAGE_2])


def test_seat_windows_are_inclusive_and_emitted_when_zero():
    values = seats_values([[seat(person(1), ago(days=1)), seat(person(2), ago(days=30, seconds=1))]])
    assert {k: v for k, v in values.items() if k[0] == "copilot_seats_active_within"} == within(1, 1, 1)
    assert seats_values([[]]) == {**within(0, 0, 0), key("copilot_seats_never_active"): 0}


def test_no_login_becomes_a_label():
    values = seats_values([PAGE_1, PAGE_2])
    label_values = {value for _name, labels in values for _label, value in labels}
    assert not label_values & {"user1", "user2", "ghost"}


@pytest.mark.parametrize(
    "page, field",
    [
        ([5], "seats[0]"),
        ([seat(person(1), 1700000000)], "seats[0].last_activity_at"),
        ([seat(person(1), "yesterday")], "seats[0].last_activity_at"),
        ([seat(person(1)), seat("octocat")], "seats[1].assignee"),
        ([seat(person("1"))], "seats[0].assignee.id"),
        ([seat(person(1), editor=["vscode"])], "seats[0].last_activity_editor"),
        ([seat(person(1), plan=3)], "seats[0].plan_type"),
    ],
)
def test_seats_wrong_types(page, field):
    with pytest.raises(PayloadError, match=rf"^copilot/billing/seats: {re.escape(field)}: "):
        SeatsAccumulator(NOW.timestamp()).add_page(page)


def test_seats_page_must_be_a_list():
    with pytest.raises(PayloadError, match="^copilot/billing/seats: seats: expected a list"):
        SeatsAccumulator(NOW.timestamp()).add_page({"seats": []})
