"""Copilot seats and billing details (`/copilot/billing`, `/copilot/billing/seats`).

Seat `i` of an organization belongs to its i-th user (the same logins as in the metrics); seats
beyond the users go to people who never used Copilot. Times are relative to `now`, which the
simulator fixes when it starts, so repeated reads give identical bodies (and ETags).
"""

from __future__ import annotations

import datetime
from functools import lru_cache
from typing import NamedTuple

from copilot_exporter.simulator.world import Draws, OrgSpec, Scope, World, profile, stable_id

_EDITORS = {
    "vscode": ("vscode", ("1.105.1", "1.106.2"), "copilot-chat", ("0.32.4", "0.33.1")),
    "intellij": ("JetBrains-IU", ("252.26830.84", "253.28294.4"), "copilot-intellij", ("1.5.59",)),
    "visualstudio": ("VisualStudio", ("17.14.19",), "copilot-vs", ("18.0.458",)),
    "neovim": ("neovim", ("0.11.4",), "copilot.vim", ("1.52.0",)),
    "xcode": ("Xcode", ("26.1",), "copilot-xcode", ("0.44.0",)),
    "eclipse": ("Eclipse", ("4.37",), "copilot-eclipse", ("0.12.0",)),
    "zed": ("zed", ("0.211.4",), "copilot", ("1.0.0",)),
    "vim": ("vim", ("9.1",), "copilot.vim", ("1.52.0",)),
}
_MOUNTAIN = datetime.timezone(datetime.timedelta(hours=-6))  # GitHub's own examples use offsets


class _Seat(NamedTuple):
    # pool index of the assignee; None for a seat holder outside the pool. The field shadows
    # tuple.index, which nothing calls on a seat.
    index: int | None  # type: ignore[assignment]
    user_id: int
    login: str
    created: datetime.datetime
    last_activity: datetime.datetime | None
    pending_cancellation: datetime.date | None


def _seat(world: World, org: OrgSpec, i: int, now: datetime.datetime) -> _Seat:
    d = Draws(world.seed, "seat", org.name, i)
    created = now - datetime.timedelta(days=d.int(1, 700), seconds=d.int(0, 86399))
    if i < org.users:
        index = world.member_ranges("org", org.name)[0].start + i
        user_id, login = world.user_id(index), world.login(index)
        engagement = profile(world.seed, index).engagement
    else:
        index, engagement = None, 0.0
        user_id = stable_id("seat", org.name, i, low=900_000_000)
        login = f"{org.name}-newcomer{i - org.users}"
    if index is None or (engagement == 0 and d.chance(0.6)):
        last = None
    elif engagement > 0.5 and d.chance(0.4):
        last = now - datetime.timedelta(minutes=d.int(1, 59))
    else:
        days = d.int(1, 3) if engagement > 0.5 else d.int(1, 30) if engagement else d.int(60, 400)
        last = now - datetime.timedelta(days=days, seconds=d.int(0, 86399))
    if last is not None:
        created = min(created, last - datetime.timedelta(days=1))
    pending = None
    if d.chance(0.04):
        pending = (world.today.replace(day=1) + datetime.timedelta(days=32)).replace(day=1)
    return _Seat(index, user_id, login, created, last, pending)


def _time(moment: datetime.datetime | None, offset: bool) -> str | None:
    if moment is None:
        return None
    if offset:
        return moment.astimezone(_MOUNTAIN).isoformat(timespec="seconds")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def seat_object(
    world: World, org: OrgSpec, i: int, now: datetime.datetime, api_url: str, with_organization: bool = False
) -> dict:
    s = _seat(world, org, i, now)
    d = Draws(world.seed, "seat-details", org.name, i)
    offset = d.chance(0.5)
    editor = None
    if s.last_activity is not None and not d.chance(0.05):
        ide = profile(world.seed, s.index).ides[0]
        name, versions, plugin, plugin_versions = _EDITORS[ide]
        editor = f"{name}/{d.pick(versions)}/{plugin}/{d.pick(plugin_versions)}"
    if s.last_activity is not None:
        authenticated = s.last_activity - datetime.timedelta(minutes=d.int(0, 30))
    else:
        authenticated = s.created + datetime.timedelta(hours=d.int(1, 48))
        if d.chance(0.5):
            authenticated = None
    teams = [Scope("org", org.name, t) for t in org.teams]
    team = next((t for t in teams if s.index is not None and world.in_team(t, s.index)), None)
    seat = {
        "created_at": _time(s.created, offset),
        "updated_at": _time(s.created + datetime.timedelta(days=d.int(0, 30)), offset),
        "pending_cancellation_date": s.pending_cancellation and s.pending_cancellation.isoformat(),
        "last_activity_at": _time(s.last_activity, offset),
        "last_activity_editor": editor,
        "last_authenticated_at": _time(authenticated, offset),
        "plan_type": org.plan_type,
        # A seat whose user was deleted has no assignee.
        "assignee": None if d.chance(0.005) else _user(api_url, s.user_id, s.login),
    }
    if team is not None and d.chance(0.5):
        seat["assigning_team"] = _team(world, api_url, team)
    if with_organization:
        seat["organization"] = _organization(world, api_url, org.name)
    return seat


def _user(api_url: str, user_id: int, login: str) -> dict:
    return {
        "login": login,
        "id": user_id,
        "node_id": f"U_{user_id:x}",
        "avatar_url": f"https://avatars.githubusercontent.com/u/{user_id}?v=4",
        "url": f"{api_url}/users/{login}",
        "html_url": f"https://github.com/{login}",
        "type": "User",
        "site_admin": False,
    }


def _team(world: World, api_url: str, team: Scope) -> dict:
    team_id = world.team_id(team)
    assert team.team is not None, team
    return {
        "id": team_id,
        "node_id": f"T_{team_id:x}",
        "name": team.team.title(),
        "slug": team.team,
        "description": f"The {team.team} team",
        "privacy": "closed",
        "notification_setting": "notifications_enabled",
        "permission": "pull",
        "url": f"{api_url}/teams/{team_id}",
        "html_url": f"https://github.com/orgs/{team.name}/teams/{team.team}",
        "members_url": f"{api_url}/teams/{team_id}/members{{/member}}",
        "repositories_url": f"{api_url}/teams/{team_id}/repos",
        "parent": None,
    }


def _organization(world: World, api_url: str, org: str) -> dict:
    org_id = world.scope_id("org", org)
    return {"login": org, "id": org_id, "node_id": f"O_{org_id:x}", "url": f"{api_url}/orgs/{org}", "description": None}


@lru_cache(maxsize=64)
def billing(world: World, org_name: str, now: datetime.datetime) -> dict:
    """`/orgs/{org}/copilot/billing`, its breakdown counted from the seat list itself."""
    org = world.org(org_name)
    assert org is not None, org_name
    cycle_start = datetime.datetime.combine(now.date().replace(day=1), datetime.time(), tzinfo=datetime.timezone.utc)
    active = added = pending = 0
    for i in range(org.seat_count):
        s = _seat(world, org, i, now)
        active += s.last_activity is not None and s.last_activity >= cycle_start
        added += s.created >= cycle_start
        pending += s.pending_cancellation is not None
    d = Draws(world.seed, "billing", org.name)
    total = org.seat_count
    return {
        "seat_breakdown": {
            "total": total,
            "added_this_cycle": added,
            "pending_cancellation": pending,
            "pending_invitation": total // 40,
            "active_this_cycle": active,
            "inactive_this_cycle": total - active,
        },
        "seat_management_setting": d.pick(("assign_selected", "assign_all")),
        "plan_type": org.plan_type,
        "public_code_suggestions": d.pick(("block", "allow")),
        "ide_chat": "enabled",
        "platform_chat": d.pick(("enabled", "disabled")),
        "cli": d.pick(("enabled", "disabled", "unconfigured")),
    }


def enterprise_seat_count(world: World, enterprise: str) -> tuple[int, int]:
    """(seats listed, distinct users): a user seated by two orgs is listed twice, counted once."""
    pool_ranges, outside, listed = [], 0, 0
    for org in world.enterprise_orgs(enterprise):
        start = world.member_ranges("org", org.name)[0].start
        pool_ranges.append(range(start, start + min(org.users, org.seat_count)))
        outside += max(0, org.seat_count - org.users)
        listed += org.seat_count
    distinct, reach = 0, 0
    for r in sorted(pool_ranges, key=lambda r: r.start):
        distinct += max(0, r.stop - max(r.start, reach))
        reach = max(reach, r.stop)
    return listed, distinct + outside


def enterprise_seats(
    world: World, enterprise: str, start: int, stop: int, now: datetime.datetime, api_url: str
) -> list[dict]:
    """Entries [start, stop) of the enterprise listing: each org's seats in turn."""
    seats, offset = [], 0
    for org in world.enterprise_orgs(enterprise):
        for i in range(max(start - offset, 0), min(stop - offset, org.seat_count)):
            seats.append(seat_object(world, org, i, now, api_url, with_organization=True))
        offset += org.seat_count
    return seats
