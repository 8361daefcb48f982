"""Copilot billing and seat assignments -> metric samples.

Pure functions over decoded JSON bodies of `GET /orgs/{org}/copilot/billing` and of the
(organization or enterprise) `.../copilot/billing/seats` pages. No login ever becomes a label.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from typing import NamedTuple

from copilot_exporter.errors import PayloadError
from copilot_exporter.metrics.fields import Fields
from copilot_exporter.model import FamilyBuilder

BILLING = "copilot/billing"
SEATS = "copilot/billing/seats"

# Metric -> field of `seat_breakdown`.
_SEAT_BREAKDOWN: dict[str, str] = {
    "copilot_seats": "total",
    "copilot_seats_active_this_cycle": "active_this_cycle",
    "copilot_seats_inactive_this_cycle": "inactive_this_cycle",
    "copilot_seats_added_this_cycle": "added_this_cycle",
    "copilot_seats_pending_invitation": "pending_invitation",
    "copilot_seats_pending_cancellation": "pending_cancellation",
}

# Labels of copilot_organization_info, each read from the billing field of the same name.
_INFO_FIELDS = ("plan_type", "seat_management_setting", "ide_chat", "platform_chat", "cli", "public_code_suggestions")

# `period` label of copilot_seats_active_within -> window length in seconds.
_ACTIVE_WITHIN: dict[str, int] = {"1d": 86_400, "7d": 7 * 86_400, "30d": 30 * 86_400}

UNKNOWN = "unknown"


def add_billing(builder: FamilyBuilder, billing: dict) -> None:
    fields = Fields(billing, BILLING)
    breakdown = fields.child("seat_breakdown")
    if breakdown is not None:
        for name, field in _SEAT_BREAKDOWN.items():
            builder.add(name, breakdown.number(field))
    info = {field: fields.label(field) or "" for field in _INFO_FIELDS}
    builder.set("copilot_organization_info", 1, **info)


class _Seat(NamedTuple):
    last_activity: float | None  # Unix seconds; None = never active
    editor: str
    plan: str


def _timestamp(fields: Fields, key: str) -> float | None:
    text = fields.get(key, "string")
    if text is None:
        return None
    try:
        moment = dt.datetime.fromisoformat(text)  # 3.11 reads both `Z` and `+hh:mm`
    except ValueError:
        raise fields.error(key, "an ISO 8601 timestamp", text) from None
    if moment.tzinfo is None:  # GitHub sends UTC; a missing offset is read as UTC
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return moment.timestamp()


def _read_seat(fields: Fields) -> _Seat:
    editor = fields.label("last_activity_editor")  # "vscode/1.77.3/copilot/1.86.82"
    return _Seat(
        last_activity=_timestamp(fields, "last_activity_at"),
        editor=(editor.split("/", 1)[0] or UNKNOWN) if editor else UNKNOWN,
        plan=fields.label("plan_type") or UNKNOWN,
    )


def _user_key(fields: Fields) -> tuple[str, int | str] | None:
    assignee = fields.child("assignee")
    if assignee is None:
        return None
    user_id = assignee.get("id", "integer")
    if user_id is not None:
        return ("id", user_id)
    login = assignee.label("login")
    return ("login", login) if login is not None else None


class SeatsAccumulator:
    """Collects seat pages, one seat per user.

    Enterprise lists hold one seat per granting organization or team: a user counts once, with
    the seat of their most recent activity. Seats without an assignee each count on their own.
    """

    def __init__(self, now: float):
        self._now = now
        self._seats: dict[object, _Seat] = {}
        self._anonymous = 0

    def add_page(self, seats: list) -> None:
        if not isinstance(seats, list):
            raise PayloadError(f"{SEATS}: seats: expected a list, got {type(seats).__name__}")
        for index, seat in enumerate(seats):
            fields = Fields(seat, SEATS, f"seats[{index}]")
            self._add(_user_key(fields), _read_seat(fields))

    def _add(self, key: tuple[str, int | str] | None, seat: _Seat) -> None:
        if key is None:
            self._anonymous += 1
            self._seats[("seat", self._anonymous)] = seat
            return
        kept = self._seats.get(key)
        if kept is None or _rank(seat) > _rank(kept):
            self._seats[key] = seat

    def plans(self) -> Counter[str]:
        """Seats per plan type (`unknown` when a seat names none), each user counted once."""
        return Counter(seat.plan for seat in self._seats.values())

    def add_to(self, builder: FamilyBuilder) -> None:
        within = dict.fromkeys(_ACTIVE_WITHIN, 0)
        never = 0
        editors: Counter[str] = Counter()
        for seat in self._seats.values():
            editors[seat.editor] += 1
            if seat.last_activity is None:
                never += 1
                continue
            age = self._now - seat.last_activity
            for period, seconds in _ACTIVE_WITHIN.items():
                if age <= seconds:
                    within[period] += 1
        for period, count in within.items():
            builder.add("copilot_seats_active_within", count, period=period)
        builder.add("copilot_seats_never_active", never)
        for editor, count in editors.items():
            builder.add("copilot_seats_by_editor", count, editor=editor)
        for plan, count in self.plans().items():
            builder.add("copilot_seats_by_plan", count, plan=plan)


def _rank(seat: _Seat) -> tuple:
    """Which of a user's seats to keep: the most recent activity; ties (both never active, or
    the same instant) go to a known editor, then by name, so page order never matters."""
    active = seat.last_activity is not None
    return (active, seat.last_activity if active else 0.0, seat.editor != UNKNOWN, seat.editor, seat.plan)
