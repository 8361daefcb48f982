"""The state store: windows equal brute-force distinct counts, one process per directory, corruption survived."""

from __future__ import annotations

import datetime as dt
import json
import random
import sqlite3
import subprocess
import sys

import pytest

from copilot_exporter.model import Family
from copilot_exporter.state import (
    MIGRATIONS,
    SCHEMA_VERSION,
    WINDOW_DAYS,
    Asked,
    DayFamilies,
    Membership,
    StateError,
    StateStore,
    StateView,
    UserDay,
)

START = dt.date(2026, 10, 1)


def month_of_days(seed: int = 7, days: int = 35, users: int = 300, teams: int = 6):
    """Per day: active user ids and (team_id, slug, user_id) memberships, members moving between
    teams and in and out of activity; two teams share a slug."""
    rng = random.Random(seed)
    team_of = {user: rng.randrange(teams) for user in range(users)}
    world = {}
    for offset in range(days):
        day = (START + dt.timedelta(days=offset)).isoformat()
        for user in rng.sample(range(users), 10):  # a few members move team each day
            team_of[user] = rng.randrange(teams)
        active = {user for user in range(users) if rng.random() < 0.4}
        listed = [
            (team_of[user], "platform" if team_of[user] in (0, 1) else f"team-{team_of[user]}", user)
            for user in range(users)
            if rng.random() < 0.9
        ]  # members listed whether active or not
        world[day] = (active, listed)
    return world


def fill(store: StateStore, scope: str, world) -> None:
    for day, (active, listed) in world.items():
        store.write_day(
            scope,
            day,
            identities={"users": f"u-{day}", "user_teams": f"t-{day}"},
            users=[UserDay(user, None, (1, 2.5, None)) for user in sorted(active)],
            memberships=[Membership(*row) for row in listed],
        )


def brute_force_team(world, end: str, days: int) -> dict[int, int]:
    members: dict[int, set[int]] = {}
    for day, (active, listed) in world.items():
        if _days_between(day, end) in range(days):
            for team_id, _slug, user in listed:
                if user in active:
                    members.setdefault(team_id, set()).add(user)
    return {team: len(users) for team, users in members.items()}


def _days_between(day: str, end: str) -> int:
    return (dt.date.fromisoformat(end) - dt.date.fromisoformat(day)).days


def test_team_windows_equal_a_brute_force_distinct_count(tmp_path):
    world = month_of_days()
    store = StateStore(tmp_path)
    fill(store, "org=acme", world)
    end = max(world)
    for days in (1, 7, 28):
        windows = {window.team_id: window.active_users for window in store.team_windows("org=acme", end, days)}
        assert windows == brute_force_team(world, end, days)
    slugs = {window.team_id: window.slug for window in store.team_windows("org=acme", end, 7)}
    assert slugs[0] == slugs[1] == "platform"  # two teams, one slug, never merged


def test_distinct_users_across_organizations_count_a_person_once(tmp_path):
    acme, globex = month_of_days(seed=1), month_of_days(seed=2)
    store = StateStore(tmp_path)
    fill(store, "org=acme", acme)
    fill(store, "org=globex", globex)
    end = max(acme)
    for days in (1, 7, 28):
        expected = set()
        for world in (acme, globex):
            for day, (active, _listed) in world.items():
                if _days_between(day, end) in range(days):
                    expected |= active
        assert store.distinct_users(["org=acme", "org=globex"], end, days) == len(expected)


def test_days_older_than_the_window_are_pruned(tmp_path):
    world = month_of_days(days=40)
    store = StateStore(tmp_path)
    fill(store, "org=acme", world)
    held = store.days_held("org=acme", "users")
    assert len(held) == WINDOW_DAYS and held[-1] == max(world)
    assert store.users_of("org=acme", min(world)) == []


def test_a_newer_day_of_another_report_keeps_the_users_window_whole(tmp_path):
    """The aggregated report can be a day ahead of the users report: writing its families must
    not prune the first day of the users' 28."""
    world = month_of_days(days=28)
    store = StateStore(tmp_path)
    fill(store, "org=acme", world)
    newest = max(world)
    ahead = (dt.date.fromisoformat(newest) + dt.timedelta(days=1)).isoformat()
    store.write_day("org=acme", ahead, identities={}, families={"organization": DayFamilies("[]", "fp", FAMILIES)})
    assert len(store.days_held("org=acme", "users")) == WINDOW_DAYS
    assert store.families_held("org=acme", "organization", ahead) == ("[]", "fp")


def test_a_write_that_fails_half_way_leaves_the_last_good_day(tmp_path):
    store = StateStore(tmp_path)
    day = "2026-10-05"
    store.write_day("org=acme", day, identities={"users": "a"}, users=[UserDay(1, None, (3,))])

    def broken():
        yield UserDay(2, None, (4,))
        raise RuntimeError("download broke off")

    with pytest.raises(RuntimeError):
        store.write_day("org=acme", day, identities={"users": "b"}, users=broken())
    assert store.users_of("org=acme", day) == [UserDay(1, None, (3,))]
    assert store.identity("org=acme", "users", day) == "a"


def test_state_survives_a_restart(tmp_path):
    store = StateStore(tmp_path)
    store.write_day("org=acme", "2026-10-05", identities={"users": "links"}, users=[UserDay(7, "mona", (1, None))])
    store.close()
    again = StateStore(tmp_path)
    assert again.identity("org=acme", "users", "2026-10-05") == "links"
    assert again.identities("org=acme", "users") == (("2026-10-05", "links"),)
    assert again.users_of("org=acme", "2026-10-05") == [UserDay(7, "mona", (1, None))]


def test_a_users_activity_is_kept_as_the_json_text_of_its_numbers(tmp_path):
    members = [(3, 120.0, None, 0, 1e-05, 2.5e16, 2**70, 0.1 + 0.2, 12.34, 37), (None,) * 9]
    store = StateStore(tmp_path)
    store.write_day(
        "org=acme", "2026-10-05", identities={"users": "links"}, users=[UserDay(7, None, m) for m in members[:1]]
    )
    store.write_day(
        "org=acme", "2026-10-06", identities={"users": "links"}, users=[UserDay(8, None, m) for m in members[1:]]
    )
    store.close()
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:  # what earlier versions wrote: json.dumps
        texts = [text for (text,) in db.execute("SELECT activity FROM users ORDER BY day")]
    assert texts == [json.dumps(member) for member in members]
    again = StateStore(tmp_path)
    assert [user.activity for day in ("2026-10-05", "2026-10-06") for user in again.users_of("org=acme", day)] == (
        members
    )


def test_a_month_of_days_reopens_as_it_was_written(tmp_path, caplog):
    world = month_of_days(days=10)
    store = StateStore(tmp_path)
    fill(store, "org=acme", world)
    day = max(world)
    before = (store.users_of("org=acme", day), store.memberships_of("org=acme", day))
    store.close()
    again = StateStore(tmp_path)
    assert (again.users_of("org=acme", day), again.memberships_of("org=acme", day)) == before
    assert before[1] and "moved aside" not in caplog.text  # a sound database is never taken for corrupt


@pytest.mark.integration
def test_a_second_process_on_the_same_directory_is_refused(tmp_path):
    store = StateStore(tmp_path)
    code = (
        "import sys; from copilot_exporter.state import StateStore, StateError\n"
        "try: StateStore(sys.argv[1])\n"
        "except StateError as err: print(err); sys.exit(3)\n"
    )
    other = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=60)
    assert other.returncode == 3 and "in use by another copilot-exporter process" in other.stdout
    with pytest.raises(StateError):
        StateStore(tmp_path)  # and a second store in the same process
    store.close()
    StateStore(tmp_path).close()  # free again once the first is closed


def test_a_corrupt_database_is_moved_aside_and_rebuilt(tmp_path, caplog):
    (tmp_path / "state.sqlite3").write_bytes(b"this is not a database" * 100)
    store = StateStore(tmp_path)
    store.write_day("org=acme", "2026-10-05", identities={"users": "x"}, users=[])
    assert store.identity("org=acme", "users", "2026-10-05") == "x"
    aside = [path.name for path in tmp_path.iterdir() if ".corrupt-" in path.name]
    assert len(aside) == 1 and "moved aside" in caplog.text


def test_a_new_database_gets_the_current_schema_version(tmp_path):
    StateStore(tmp_path).close()
    db = sqlite3.connect(tmp_path / "state.sqlite3")
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_an_unusable_directory_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(StateError, match="cannot be used"):
        StateStore(blocker / "state")


def test_served_families_come_back_after_a_restart_exactly(tmp_path):
    from copilot_exporter.model import Family
    from copilot_exporter.state import Served

    families = (
        Family("copilot_lines_added", (((("org", "acme"),), 12.0),)),
        Family(
            "copilot_lines_added_by_ide",
            (((("org", "acme"), ("ide", "vscode")), 5), ((("org", "acme"), ("ide", "zed")), 7.5)),
        ),
    )
    store = StateStore(tmp_path)
    store.remember_served("org=acme", "organization", Served("2026-10-05", "/a/b", families))
    store.close()
    again = StateStore(tmp_path)
    assert again.served("org=acme") == {"organization": Served("2026-10-05", "/a/b", families)}
    again.forget_served("org=acme", "organization")
    assert again.served("org=acme") == {}


# Families per day, and the read-only view of another process --------------------------------
FAMILIES = (
    Family("copilot_lines_added", (((("org", "acme"),), 12.0),)),
    Family("copilot_users_used", (((("org", "acme"), ("feature", "chat")), 5),)),
)


def test_a_days_families_come_back_only_under_the_fingerprint_they_were_built_with(tmp_path):
    store = StateStore(tmp_path)
    store.write_day(
        "org=acme",
        "2026-10-05",
        identities={"users": '["/u"]'},
        users=[UserDay(7, "mona", (1, None))],
        families={"users": DayFamilies('["/u"]', "fp-1", FAMILIES)},
    )
    store.close()
    view = StateView.open(tmp_path)
    assert view is not None
    assert view.day_families("org=acme", "users", "2026-10-05", "fp-1") == DayFamilies('["/u"]', "fp-1", FAMILIES)
    assert view.day_families("org=acme", "users", "2026-10-05", "fp-2") is None
    assert view.day_families("org=acme", "users", "2026-10-06", "fp-1") is None
    assert view.users_of("org=acme", "2026-10-05") == [UserDay(7, "mona", (1, None))]


def test_day_families_are_pruned_with_the_days(tmp_path):
    store = StateStore(tmp_path)
    days = [(START + dt.timedelta(days=offset)).isoformat() for offset in range(WINDOW_DAYS + 3)]
    for day in days:
        store.write_day("org=acme", day, identities={}, families={"repos": DayFamilies("[]", "fp", FAMILIES)})
    assert store.families_held("org=acme", "repos", days[-WINDOW_DAYS]) == ("[]", "fp")
    assert store.families_held("org=acme", "repos", days[-WINDOW_DAYS - 1]) is None


def test_a_view_reads_beside_the_running_store_without_its_lock(tmp_path):
    store = StateStore(tmp_path)  # holds the lock, as a running exporter does
    store.write_day("org=acme", "2026-10-05", identities={"users": "a"}, users=[UserDay(1, None, (3,))])
    view = StateView.open(tmp_path)
    assert view is not None and view.identity("org=acme", "users", "2026-10-05") == "a"
    store.write_day("org=acme", "2026-10-06", identities={"users": "b"}, users=[])
    assert view.days_held("org=acme", "users") == ["2026-10-05", "2026-10-06"]  # the writer's new day too
    with pytest.raises(StateError):
        StateStore(tmp_path)  # the view took no lock, and the store still holds it
    view.close()
    store.close()


def test_a_view_of_a_missing_or_corrupt_database_holds_nothing_and_changes_nothing(tmp_path, caplog):
    assert StateView.open(tmp_path / "nowhere") is None
    assert not (tmp_path / "nowhere").exists()
    (tmp_path / "state.sqlite3").write_bytes(b"this is not a database" * 100)
    assert StateView.open(tmp_path) is None
    assert "cannot be read" in caplog.text
    assert (tmp_path / "state.sqlite3").read_bytes() == b"this is not a database" * 100
    assert [path.name for path in tmp_path.iterdir()] == ["state.sqlite3"]


def create_v1_database(directory) -> None:
    """A database as the first schema left it, with a day of users and memberships."""
    db = sqlite3.connect(directory / "state.sqlite3", isolation_level=None)
    db.executescript(f"BEGIN; {MIGRATIONS[0]} PRAGMA user_version=1; COMMIT;")
    db.execute("INSERT INTO reports VALUES ('org=acme', 'users', '2026-10-05', 'links')")
    db.execute("INSERT INTO users VALUES ('org=acme', '2026-10-05', 7, NULL, '[1, null]')")
    db.execute("INSERT INTO memberships VALUES ('org=acme', '2026-10-05', 3, 7, 'web')")
    db.close()


def test_a_version_1_database_migrates_in_place_and_keeps_its_rows(tmp_path, caplog):
    create_v1_database(tmp_path)
    assert StateView.open(tmp_path) is None  # another schema: nothing taken from it, nothing changed
    assert sqlite3.connect(tmp_path / "state.sqlite3").execute("PRAGMA user_version").fetchone()[0] == 1
    store = StateStore(tmp_path)
    assert sqlite3.connect(tmp_path / "state.sqlite3").execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert store.identity("org=acme", "users", "2026-10-05") == "links"
    assert store.users_of("org=acme", "2026-10-05") == [UserDay(7, None, (1, None))]
    assert store.memberships_of("org=acme", "2026-10-05") == [Membership(3, "web", 7)]
    store.write_day("org=acme", "2026-10-05", identities={}, families={"repos": DayFamilies("[]", "fp", FAMILIES)})
    assert store.day_families("org=acme", "repos", "2026-10-05", "fp") == DayFamilies("[]", "fp", FAMILIES)
    assert "moved aside" not in caplog.text


def test_when_days_were_asked_comes_back_after_a_restart_and_only_the_days_given_are_kept(tmp_path):
    store = StateStore(tmp_path)
    store.remember_asked("org=acme", {("organization", "2026-10-03"): Asked(10.0, '["/a"]')})
    store.remember_asked(
        "org=acme",
        {("organization", "2026-10-04"): Asked(20.0, '["/b"]'), ("organization", "2026-10-05"): Asked(30.5, "[]")},
    )
    store.remember_asked("org=acme", {("users", "2026-10-05"): Asked(31.0, '["/u"]')})
    store.remember_asked("org=globex", {("organization", "2026-10-05"): Asked(40.0, '["/g"]')})
    store.close()
    again = StateStore(tmp_path)
    assert again.asked("org=acme") == {
        ("organization", "2026-10-04"): Asked(20.0, '["/b"]'),  # 2026-10-03 was no longer given
        ("organization", "2026-10-05"): Asked(30.5, "[]"),
        ("users", "2026-10-05"): Asked(31.0, '["/u"]'),  # another report's days are left alone
    }
    assert again.asked("org=globex") == {("organization", "2026-10-05"): Asked(40.0, '["/g"]')}


def test_a_database_of_the_first_schema_is_migrated_keeping_what_it_holds(tmp_path):
    db = sqlite3.connect(tmp_path / "state.sqlite3")
    db.executescript(f"BEGIN; {MIGRATIONS[0]} PRAGMA user_version=1; COMMIT;")
    db.execute("INSERT INTO reports VALUES ('org=acme', 'users', '2026-10-05', 'x')")
    db.commit()
    db.close()
    store = StateStore(tmp_path)
    assert store.identity("org=acme", "users", "2026-10-05") == "x"
    assert store.asked("org=acme") == {}  # nothing asked kept yet: every held day is due once
    store.close()
    assert sqlite3.connect(tmp_path / "state.sqlite3").execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
