"""The exporter's memory across refreshes and restarts: an embedded SQLite database in `state_dir`.

What it keeps, per scope (an organization or enterprise) and day, for the last `WINDOW_DAYS` days:
- the users of the day's users report, by `user_id` (the login only when the operator opted in to
  per-user series), each with the activity the team sums are computed from;
- the team memberships of the day's user-teams report (`team_id`, slug, `user_id`) whose user is
  in that day's users report: the team join keeps no other row;
- the identity of each report downloaded (its links' paths), so a restart downloads nothing it holds;
- the families last served per scope and report, so a restart serves them before its first refresh;
- the families built from each dated report downloaded (`day_families`), per scope, report and day,
  with the fingerprint of the settings that shaped them (`config.mapping_fingerprint`), so
  `copilot-exporter backfill` takes a day held from here instead of downloading it again. Per-user
  series are not stored twice: they are rebuilt from the users table (label and activity).
- when each report's recent days were last asked of GitHub, with the identity they answered, so a
  restart does not ask every held day again at once (`asked`).

Rules:
- one process per directory: an exclusive lock on `state_dir/lock`; a second process is refused;
- a database that cannot be opened or fails its check is moved aside with a warning and rebuilt
  (GitHub still has the data): never a crash loop;
- writing a day is one transaction: a refresh that fails half-way leaves the last good state;
- the schema version is SQLite's `user_version`; `MIGRATIONS[v]` takes version v to v + 1;
- other processes read it through `StateView`: read-only, without the lock, beside the writer
  (WAL lets a reader work while the exporter writes); it never changes the database.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import logging
import os
import sqlite3
import threading
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from copilot_exporter.model import Family

log = logging.getLogger(__name__)

WINDOW_DAYS = 28  # the longest window GitHub defines (monthly actives): older days are pruned
DATABASE = "state.sqlite3"
LOCK = "lock"

# Key columns come first in every table: SQLite 3.40's quick_check reports a NOT NULL column
# placed between the key columns of a WITHOUT ROWID table as NULL, which would make a sound
# database look corrupt.
MIGRATIONS: tuple[str, ...] = (
    # 0 -> 1
    """
    CREATE TABLE reports (
        scope TEXT NOT NULL, report TEXT NOT NULL, day TEXT NOT NULL, identity TEXT NOT NULL,
        PRIMARY KEY (scope, report, day)) WITHOUT ROWID;
    CREATE TABLE users (
        scope TEXT NOT NULL, day TEXT NOT NULL, user_id INTEGER NOT NULL, login TEXT,
        activity TEXT NOT NULL,
        PRIMARY KEY (scope, day, user_id)) WITHOUT ROWID;
    CREATE TABLE memberships (
        scope TEXT NOT NULL, day TEXT NOT NULL, team_id INTEGER NOT NULL, user_id INTEGER NOT NULL,
        slug TEXT NOT NULL,
        PRIMARY KEY (scope, day, team_id, user_id)) WITHOUT ROWID;
    CREATE TABLE served (
        scope TEXT NOT NULL, report TEXT NOT NULL, day TEXT NOT NULL, identity TEXT NOT NULL,
        families TEXT NOT NULL,
        PRIMARY KEY (scope, report)) WITHOUT ROWID;
    """,
    # 1 -> 2
    """
    CREATE TABLE day_families (
        scope TEXT NOT NULL, report TEXT NOT NULL, day TEXT NOT NULL, identity TEXT NOT NULL,
        fingerprint TEXT NOT NULL, families BLOB NOT NULL,
        PRIMARY KEY (scope, report, day)) WITHOUT ROWID;
    """,
    # 2 -> 3: when each (scope, report, day) was last asked, and the identity it answered
    """
    CREATE TABLE asked (
        scope TEXT NOT NULL, report TEXT NOT NULL, day TEXT NOT NULL, at REAL NOT NULL, identity TEXT NOT NULL,
        PRIMARY KEY (scope, report, day)) WITHOUT ROWID;
    """,
)
DAILY_TABLES = ("users", "memberships", "reports", "day_families", "asked")  # pruned to the last WINDOW_DAYS days
SCHEMA_VERSION = len(MIGRATIONS)


class StateError(Exception):
    """The state directory cannot be used (locked by another process, not writable)."""


@dataclass(frozen=True)
class UserDay:
    """One user's row of one day's users report, as kept: `activity` is the mapping's own tuple."""

    user_id: int
    login: str | None
    activity: tuple


@dataclass(frozen=True)
class Membership:
    team_id: int | str  # GitHub's id as the report spells it (SQLite keeps a numeric one as an integer)
    slug: str
    user_id: int


@dataclass(frozen=True)
class Served:
    """What was last served for one scope and report: the day, its identity and its families."""

    day: str
    identity: str
    families: tuple[Family, ...]


@dataclass(frozen=True)
class DayFamilies:
    """The families built from one day's report, and what they were built from: the report's
    identity and the fingerprint of the mapping settings (`config.mapping_fingerprint`)."""

    identity: str
    fingerprint: str
    families: tuple[Family, ...]


@dataclass(frozen=True)
class Asked:
    """When a report's day was last asked of GitHub (a Unix time), and the identity it answered."""

    at: float
    identity: str


@dataclass(frozen=True)
class TeamWindow:
    """Distinct members of a team over the joined rows of a window; `slug` as on its newest day."""

    team_id: int
    slug: str
    active_users: int


class _Reading:
    """The queries of the state database, shared by the exporter's store and read-only views."""

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        raise NotImplementedError

    def identity(self, scope: str, report: str, day: str) -> str | None:
        """The identity of a report held for a day, None when it is not held."""
        rows = self._query(
            "SELECT identity FROM reports WHERE scope = ? AND report = ? AND day = ?", (scope, report, day)
        )
        return rows[0][0] if rows else None

    def days_held(self, scope: str, report: str) -> list[str]:
        """The days of a report held for a scope, oldest first."""
        return [
            day
            for (day,) in self._query(
                "SELECT day FROM reports WHERE scope = ? AND report = ? ORDER BY day", (scope, report)
            )
        ]

    def identities(self, scope: str, report: str) -> tuple[tuple[str, str], ...]:
        """(day, identity) of each day of a report held for a scope, oldest first."""
        return tuple(
            (day, identity)
            for day, identity in self._query(
                "SELECT day, identity FROM reports WHERE scope = ? AND report = ? ORDER BY day", (scope, report)
            )
        )

    def users_of(self, scope: str, day: str) -> list[UserDay]:
        return [
            UserDay(user_id, login, tuple(json.loads(activity)))
            for user_id, login, activity in self._query(
                "SELECT user_id, login, activity FROM users WHERE scope = ? AND day = ? ORDER BY user_id", (scope, day)
            )
        ]

    def memberships_of(self, scope: str, day: str) -> list[Membership]:
        return [
            Membership(*row)
            for row in self._query(
                "SELECT team_id, slug, user_id FROM memberships WHERE scope = ? AND day = ? ORDER BY team_id, user_id",
                (scope, day),
            )
        ]

    def team_windows(self, scope: str, end_day: str, days: int) -> list[TeamWindow]:
        """Per team, distinct members over the joined rows (membership and users report on the
        same day) of the `days` days ending at `end_day`; a day without reports adds nobody."""
        start = _days_before(end_day, days)
        rows = self._query(
            "SELECT m.team_id, m.slug, MAX(m.day), COUNT(DISTINCT m.user_id) FROM memberships m "
            "JOIN users u ON u.scope = m.scope AND u.day = m.day AND u.user_id = m.user_id "
            "WHERE m.scope = ? AND m.day > ? AND m.day <= ? GROUP BY m.team_id ORDER BY m.team_id",
            (scope, start, end_day),
        )
        return [TeamWindow(team_id, slug, count) for team_id, slug, _day, count in rows]

    def distinct_users(self, scopes: Iterable[str], end_day: str, days: int) -> int:
        """Distinct `user_id`s over the users reports of `scopes` in the `days` days ending at `end_day`."""
        scopes = list(scopes)
        marks = ",".join("?" * len(scopes))
        rows = self._query(
            f"SELECT COUNT(DISTINCT user_id) FROM users WHERE scope IN ({marks}) "  # noqa: S608
            "AND day > ? AND day <= ?",
            (*scopes, _days_before(end_day, days), end_day),
        )
        return rows[0][0]

    def families_held(self, scope: str, report: str, day: str) -> tuple[str, str] | None:
        """The identity and fingerprint of the families held for a report's day, None when none are."""
        rows = self._query(
            "SELECT identity, fingerprint FROM day_families WHERE scope = ? AND report = ? AND day = ?",
            (scope, report, day),
        )
        return (rows[0][0], rows[0][1]) if rows else None

    def day_families(self, scope: str, report: str, day: str, fingerprint: str) -> DayFamilies | None:
        """The families held for a report's day when they were built with `fingerprint`, else None."""
        rows = self._query(
            "SELECT identity, families FROM day_families "
            "WHERE scope = ? AND report = ? AND day = ? AND fingerprint = ?",
            (scope, report, day, fingerprint),
        )
        if not rows:
            return None
        identity, families = rows[0]
        return DayFamilies(identity, fingerprint, _families_of(zlib.decompress(families)))


class StateStore(_Reading):
    """The state database of one exporter process. Thread-safe: one connection, one lock."""

    def __init__(self, state_dir: str | Path):
        self.directory = Path(state_dir)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_file = open(self.directory / LOCK, "a+")
        except OSError as err:
            raise StateError(f"state_dir {self.directory}: cannot be used ({err.strerror})") from None
        try:
            fcntl.flock(self._lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self._lock_file.close()
            raise StateError(
                f"state_dir {self.directory} is in use by another copilot-exporter process; "
                "give each process its own state_dir"
            ) from None
        self._lock_file.seek(0)
        self._lock_file.truncate()
        self._lock_file.write(f"{os.getpid()}\n")
        self._lock_file.flush()
        self._lock = threading.Lock()
        self._db = self._open()

    # Opening ---------------------------------------------------------------------------------
    def _open(self) -> sqlite3.Connection:
        path = self.directory / DATABASE
        try:
            return self._migrated(path)
        except sqlite3.DatabaseError as err:
            aside = path.with_name(f"{DATABASE}.corrupt-{dt.datetime.now(dt.timezone.utc):%Y%m%dT%H%M%SZ}")
            log.warning(
                "state database %s is unreadable (%s); moved aside to %s and rebuilt from GitHub", path, err, aside.name
            )
            for suffix in ("", "-wal", "-shm", "-journal"):
                source = Path(f"{path}{suffix}")
                if source.exists():
                    source.replace(Path(f"{aside}{suffix}"))
            return self._migrated(path)

    @staticmethod
    def _migrated(path: Path) -> sqlite3.Connection:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            if db.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise sqlite3.DatabaseError("integrity check failed")
            version = db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"schema version {version} is newer than this exporter's")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            for target in range(version, SCHEMA_VERSION):
                db.executescript(f"BEGIN; {MIGRATIONS[target]} PRAGMA user_version={target + 1}; COMMIT;")
        except sqlite3.DatabaseError:
            db.close()
            raise
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()
        self._lock_file.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    # Writing ---------------------------------------------------------------------------------
    def write_day(
        self,
        scope: str,
        day: str,
        *,
        identities: dict[str, str],
        users: Iterable[UserDay] | None = None,
        memberships: Iterable[Membership] | None = None,
        families: dict[str, DayFamilies] | None = None,
    ) -> None:
        """Replace what is held for one scope and day, in one transaction, and prune old days.

        `identities` maps each report written to its identity; `users` or `memberships` given as
        None leave that part of the day as it was; `families` maps reports to the families
        built from their report of the day (a users report's without its per-user families,
        which are rebuilt from the users written with them).
        """
        with self._transaction() as db:
            if users is not None:
                db.execute("DELETE FROM users WHERE scope = ? AND day = ?", (scope, day))
                db.executemany(
                    "INSERT OR REPLACE INTO users VALUES (?, ?, ?, ?, ?)",
                    ((scope, day, user.user_id, user.login, _activity_text(user.activity)) for user in users),
                )
            if memberships is not None:
                db.execute("DELETE FROM memberships WHERE scope = ? AND day = ?", (scope, day))
                db.executemany(
                    "INSERT OR IGNORE INTO memberships VALUES (?, ?, ?, ?, ?)",
                    ((scope, day, row.team_id, row.user_id, row.slug) for row in memberships),
                )
            db.executemany(
                "INSERT OR REPLACE INTO reports VALUES (?, ?, ?, ?)",
                ((scope, report, day, identity) for report, identity in identities.items()),
            )
            db.executemany(
                "INSERT OR REPLACE INTO day_families VALUES (?, ?, ?, ?, ?, ?)",
                (
                    (scope, report, day, held.identity, held.fingerprint, zlib.compress(_families_json(held.families)))
                    for report, held in (families or {}).items()
                ),
            )
            self._prune(db, scope, day)

    @staticmethod
    def _prune(db: sqlite3.Connection, scope: str, written: str) -> None:
        """Drop what is older than the window ending at the newest users or user-teams day held
        (else at the day just written): a day of another report written ahead of the users
        report must not take the first day of the users' monthly window."""
        held = db.execute("SELECT MAX(day) FROM reports WHERE scope = ?", (scope,)).fetchone()[0]
        newest = held or written
        oldest = (dt.date.fromisoformat(newest) - dt.timedelta(days=WINDOW_DAYS - 1)).isoformat()
        for table in DAILY_TABLES:
            db.execute(f"DELETE FROM {table} WHERE scope = ? AND day < ?", (scope, oldest))  # noqa: S608

    def remember_served(self, scope: str, report: str, served: Served) -> None:
        families = _families_json(served.families).decode()
        with self._transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO served VALUES (?, ?, ?, ?, ?)",
                (scope, report, served.day, served.identity, families),
            )

    def remember_asked(self, scope: str, asked: dict[tuple[str, str], Asked]) -> None:
        """Keep when each (report, day) was last asked, and what it answered; days no longer
        in `asked` are forgotten for those reports (the caller keeps only the recent ones)."""
        with self._transaction() as db:
            for report in {report for report, _day in asked}:
                days = [day for key, day in asked if key == report]
                marks = ",".join("?" * len(days))
                db.execute(
                    f"DELETE FROM asked WHERE scope = ? AND report = ? AND day NOT IN ({marks})",  # noqa: S608
                    (scope, report, *days),
                )
            db.executemany(
                "INSERT OR REPLACE INTO asked VALUES (?, ?, ?, ?, ?)",
                ((scope, report, day, entry.at, entry.identity) for (report, day), entry in asked.items()),
            )

    def asked(self, scope: str) -> dict[tuple[str, str], Asked]:
        """(report, day) -> when it was last asked, for a scope (before a restart, too)."""
        return {
            (report, day): Asked(at, identity)
            for report, day, at, identity in self._query(
                "SELECT report, day, at, identity FROM asked WHERE scope = ?", (scope,)
            )
        }

    def forget_served(self, scope: str, report: str | None = None) -> None:
        """Forget what was last served for a scope's report (None: for every report of it)."""
        with self._transaction() as db:
            if report is None:
                db.execute("DELETE FROM served WHERE scope = ?", (scope,))
            else:
                db.execute("DELETE FROM served WHERE scope = ? AND report = ?", (scope, report))

    def served(self, scope: str) -> dict[str, Served]:
        """Per report, what was last served for a scope (before a restart, too)."""
        return {
            report: Served(day, identity, _families_of(families))
            for report, day, identity, families in self._query(
                "SELECT report, day, identity, families FROM served WHERE scope = ? ORDER BY report", (scope,)
            )
        }


def _activity_text(activity: tuple) -> str:
    """`json.dumps(activity)` for a tuple of finite numbers and None (what a Member holds), built
    without the encoder's set-up on each of a day's 100,000s of rows: the same text."""
    return "[" + ", ".join(["null" if value is None else repr(value) for value in activity]) + "]"


def _days_before(day: str, days: int) -> str:
    return (dt.date.fromisoformat(day) - dt.timedelta(days=days)).isoformat()


def _families_json(families: Iterable[Family]) -> bytes:
    """Families as compact JSON: `[[name, [[labels, value], ...]], ...]`."""
    return json.dumps(
        [[family.name, [[list(map(list, labels)), value] for labels, value in family.samples]] for family in families],
        separators=(",", ":"),
    ).encode()


def _families_of(text: str | bytes) -> tuple[Family, ...]:
    return tuple(
        Family(name, tuple((tuple(map(tuple, labels)), value) for labels, value in samples))
        for name, samples in json.loads(text)
    )


class StateView(_Reading):
    """The state database of a `state_dir` read by another process (`copilot-exporter backfill`)
    while the exporter may be running: read-only (`mode=ro`), without the directory's lock.

    It never changes the database. One that cannot be read (corrupt, another schema) is warned
    about and counts as holding nothing: whoever uses the view asks GitHub instead.
    """

    def __init__(self, db: sqlite3.Connection, path: Path):
        self._db = db
        self._path = path
        self._lock = threading.Lock()
        self._failed = False

    @classmethod
    def open(cls, state_dir: str | Path) -> StateView | None:
        """The view of `state_dir`'s database; None (nothing held) when there is none or it cannot be read."""
        path = Path(state_dir).resolve() / DATABASE
        if not path.is_file():
            return None
        db = None
        try:
            db = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True, check_same_thread=False)
            version = db.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as err:
            if db is not None:
                db.close()
            log.warning("state database %s cannot be read (%s): nothing is taken from it", path, err)
            return None
        if version != SCHEMA_VERSION:
            db.close()
            log.warning(
                "state database %s has schema version %d, this program reads %d: nothing is taken from it "
                "(the exporter migrates it when it starts)",
                path,
                version,
                SCHEMA_VERSION,
            )
            return None
        return cls(db, path)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _query(self, sql: str, params: tuple = ()) -> list[tuple]:
        with self._lock:
            if self._failed:
                return []
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as err:
                self._failed = True
                log.warning("state database %s cannot be read (%s): nothing more is taken from it", self._path, err)
                return []

    def day_families(self, scope: str, report: str, day: str, fingerprint: str) -> DayFamilies | None:
        try:
            return super().day_families(scope, report, day, fingerprint)
        except (zlib.error, ValueError, TypeError) as err:
            log.warning("state database %s: %s %s %s cannot be read (%s)", self._path, scope, report, day, err)
            return None
