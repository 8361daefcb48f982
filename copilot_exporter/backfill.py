"""`copilot-exporter backfill`: past days of Copilot metrics as an OpenMetrics file for promtool,
or sent to a remote-write receiver (Prometheus, Mimir, VictoriaMetrics...), or both.

Every configured scope is read day by day through the live exporter's own sources and mappings
(`ReportsSource.fetch_day`, `legacy.fetch_days` + `legacy.day_result`), so a backfilled value is
exactly what the exporter would have served for that day. The aggregated records of the days the
28-day report covers come from that one report (`ReportsSource.window_days`, its `day_totals`),
read once per scope, instead of one 1-day report per day; users, teams and repositories have no
such report and are read day by day.

The exporter's state store is read first: `StateView` opens the database of `state_dir` (the
same resolution as `serve`) read-only and without its lock, so a backfill runs beside the
exporter. A report's day it holds with the families this configuration builds (the same mapping
fingerprint, `config.mapping_fingerprint`) is taken from it, and a settled day it holds as having
no report is skipped, both without a request; `ReportsSource.fetch_day` decides, per report and
day. No database, or one that cannot be read: nothing is taken from it (the latter with a
warning), and it is never changed. The summary line counts the report-days taken from it.

Timestamp convention, shared with the live exporter
---------------------------------------------------
The live exporter serves a day's values as gauges, without timestamps, from the refresh that
fetches that day's report until the refresh that fetches a newer day's; reports land about two
days after their day, so day D is served, nominally, during [D + 2 days, D + 3 days) (UTC
midnights), and `copilot_report_day_timestamp_seconds{report}` tells which day a value is.
Backfill writes day D's values over that same interval: at D + 2 days, then every `step` (1h by
default) up to, not including, D + 3 days, `copilot_report_day_timestamp_seconds` included. Both
APIs use the same two days, so history of legacy and reports scopes lines up.

The seam with live data: by default each scope's history ends with the day before the one the
live exporter serves now (the newest reported day in its `lookback_days` window, found with the
same rule), so no day is both backfilled and scraped. Samples are never written at or after
now - 3 hours: Prometheus's head block owns that range, and a block reaching into it would make
the head refuse live samples older than the block's end.

Series: the exporter's own names and labels, plus any `--label` (give the `job` and `instance`
Prometheus scrapes the exporter with, and history and live data are one series).

Queries: with a step longer than Prometheus's 5-minute lookback, a raw gauge shows backfilled
history as short dots. Dashboards read the daily gauges as `last_over_time(metric[1d])`, which
is the plain gauge on live data (until a series has been gone for a day), continuous on history,
and bridges the time between the last backfilled sample and the first scrape.

Two sinks, one path: the finished days' chunks become samples through `unique`, `sample_times`
and the `--label`s, whatever the sink. The file holds each series with all its samples in time
order (what promtool wants); `remote_write` gets the samples oldest day first, every series at
each timestamp, so each series is in time order and a receiver's newest sample only moves
forward (an empty Prometheus takes them in order; one with newer data needs its out-of-order
window to reach back to the oldest day).

Resuming: each finished scope-day is written to `OUTPUT.parts/` and listed in `OUTPUT.state`
(after its chunk is complete), so an interrupted run, rerun with the same arguments, only asks
GitHub for the days not finished. The chunks hold one value per series and day; the final file
is a merge of them (each family once, each series in time order), written atomically, after
which the parts and the state are removed; with remote-write, only once every batch has been
accepted, so a rerun sends the same samples again without asking GitHub.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import heapq
import json
import math
import os
import re
import shutil
import sys
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import TextIO

from copilot_exporter import exposition, remote_write
from copilot_exporter.config import Config, Entry, mapping_fingerprint, parse_duration
from copilot_exporter.errors import RefreshError
from copilot_exporter.github.client import RateLimited
from copilot_exporter.metrics.catalogue import CATALOGUE
from copilot_exporter.model import Family, Scope, day_timestamp
from copilot_exporter.refresher import Refresher
from copilot_exporter.sources import legacy
from copilot_exporter.sources.reports import ReportsSource, ReportsUnavailable, aggregated_report
from copilot_exporter.state import StateView
from copilot_exporter.store import Store
from copilot_exporter.telemetry import Telemetry

DAY = 86400
LAG = 2 * DAY  # day D is shown from D + LAG until D + LAG + DAY
RECENT = 3 * 3600  # no sample at or after now - RECENT
DEFAULT_STEP = 3600
LEGACY_WINDOW_DAYS = 28  # the legacy API answers for the last 28 days only
RATE_LIMIT_WAIT = 3660.0  # a backfill waits out a whole primary rate-limit window
MAX_OPEN = 128  # chunk files merged at once
WINDOW_REACH = 35  # days back the 28-day report can cover: 28, plus the days it ends before today
PROGRESS_NAME = "copilot-backfill"  # FILE.state and FILE.parts/ when there is no --output
API_NAMES = {"reports": "reports API", "metrics": "legacy API"}


# Command-line values ------------------------------------------------------------------------
def parse_day(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a day (use YYYY-MM-DD)") from None


_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_OWN_LABELS = frozenset({"org", "enterprise", "team"} | {label for info in CATALOGUE.values() for label in info.labels})


def parse_label(text: str) -> tuple[str, str]:
    """NAME=VALUE, a label added to every written series (e.g. the scrape's job and instance)."""
    name, equals, value = text.partition("=")
    if not equals or not _LABEL_NAME.fullmatch(name) or name.startswith("__"):
        raise argparse.ArgumentTypeError(f"{text!r}: expected NAME=VALUE with a Prometheus label name")
    if name in _OWN_LABELS:
        raise argparse.ArgumentTypeError(f"{text!r}: {name} is a label of the exporter's own series")
    return name, value


def with_labels(series: str, labels: tuple[tuple[str, str], ...]) -> str:
    """`name{a="b"}` with `labels` appended inside the braces."""
    if not labels:
        return series
    escaped = (value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"") for _, value in labels)
    extra = ",".join(f'{name}="{value}"' for (name, _), value in zip(labels, escaped))
    if series.endswith("}"):
        return f"{series[:-1]},{extra}}}"
    return f"{series}{{{extra}}}"


def parse_step(text: str) -> int:
    try:
        seconds = parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if seconds != int(seconds) or not 1 <= seconds <= DAY:
        raise argparse.ArgumentTypeError(f"{text!r}: the step must be whole seconds from 1s to 1d")
    return int(seconds)


# What to write ------------------------------------------------------------------------------
@dataclass
class Track:
    """The history of one scope on one API: the days planned, and how to read one."""

    entry: Entry
    scope: Scope
    api: str  # "reports" or "metrics" (legacy)
    live: str | None  # the day the live exporter serves now, if any
    source: ReportsSource | None = None
    legacy_days: dict[str, dict] = field(default_factory=dict)
    days: list[str] = field(default_factory=list)
    window: dict[str, dict] = field(default_factory=dict)  # aggregated records from the 28-day report

    @property
    def name(self) -> str:
        return f"{self.scope} ({API_NAMES[self.api]})"

    def key(self, day: str) -> str:
        return f"{self.api} {self.scope} {day}"


def _fingerprint(entry: Entry, config: Config) -> str:
    """What a scope's values depend on besides the day: a changed entry invalidates its chunks."""
    data = [mapping_fingerprint(entry, config), vars(entry.reports)]
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


class State:
    """`OUTPUT.state`: one JSON line per finished scope-day, appended once its chunk is complete."""

    def __init__(self, path: str):
        self.path = path
        self.units: dict[str, dict] = {}
        try:
            with open(path, encoding="utf-8") as file:
                for line in file:
                    try:
                        unit = json.loads(line)
                        self.units[unit["unit"]] = unit
                    except (ValueError, KeyError, TypeError):
                        continue  # a line cut short by an interruption
        except FileNotFoundError:
            pass
        self._file: TextIO | None = None

    def finished(self, key: str, fingerprint: str, chunk: str) -> bool:
        unit = self.units.get(key)
        if not unit or unit.get("fp") != fingerprint:
            return False
        return unit.get("status") == "missing" or os.path.exists(chunk)

    def record(self, key: str, fingerprint: str, status: str) -> None:
        unit = {"unit": key, "fp": fingerprint, "status": status}
        if self._file is None:
            self._file = open(self.path, "a", encoding="utf-8")
        self._file.write(json.dumps(unit) + "\n")
        self._file.flush()
        os.fsync(self._file.fileno())
        self.units[key] = unit

    def close(self) -> None:
        if self._file:
            self._file.close()
            self._file = None


# Chunks and the merge -----------------------------------------------------------------------
Record = tuple[str, str, str, str]  # (family, series, day, value): the merge order


def write_chunk(path: str, day: str, families: Iterable[Family]) -> int:
    """One scope-day's values, one line per series sorted by family and series; atomic."""
    rows = []
    for family in families:
        for line in exposition.sample_lines(family).splitlines():
            series, value = line.rsplit(" ", 1)
            rows.append((family.name, series, value))
    rows.sort()
    temporary = path + ".tmp"
    with open(temporary, "w", encoding="utf-8") as file:
        file.writelines(f"{day}\t{value}\t{series}\n" for _, series, value in rows)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    return len(rows)


def _read(path: str) -> Iterator[Record]:
    with open(path, encoding="utf-8") as file:
        for line in file:
            day, value, series = line.rstrip("\n").split("\t", 2)
            yield series.split("{", 1)[0], series, day, value


def merged(paths: list[str], scratch: str) -> Iterator[Record]:
    """Every record of the chunks in (family, series, day) order, with at most MAX_OPEN files
    open: larger sets are first merged into runs in `scratch`."""
    generation = 0
    while len(paths) > MAX_OPEN:
        runs = []
        for start in range(0, len(paths), MAX_OPEN):
            run = os.path.join(scratch, f"run-{generation}-{start}.tsv")
            with open(run, "w", encoding="utf-8") as file:
                for _, series, day, value in heapq.merge(*(_read(p) for p in paths[start : start + MAX_OPEN])):
                    file.write(f"{day}\t{value}\t{series}\n")
            runs.append(run)
        paths, generation = runs, generation + 1
    yield from heapq.merge(*(_read(path) for path in paths))


@dataclass
class Written:
    samples: int = 0
    series: int = 0
    first: int | None = None
    last: int | None = None
    clamped: set[str] = field(default_factory=set)  # days cut at the cutoff


def write_openmetrics(
    path: str, records: Iterable[Record], step: int, cutoff: int, labels: tuple[tuple[str, str], ...] = ()
) -> Written:
    """The OpenMetrics file: each family once, each series' samples in time order, `# EOF`.

    Day D's value is written at D + LAG + k * step, for every such time before D + LAG + DAY
    and before `cutoff`; `labels` are added to every series.
    """
    written = Written()
    temporary = path + ".tmp"
    family = previous = None
    with open(temporary, "w", encoding="utf-8") as out:
        for name, series, day, value in unique(records):
            times = sample_times(day, step, cutoff, written)
            if not times:
                continue
            if name != family:
                out.write(exposition.header(name, openmetrics=True))
                family = name
            if previous != series:
                written.series += 1
            previous = series
            labelled = with_labels(series, labels)
            out.writelines(f"{labelled} {value} {t}\n" for t in times)
            written.samples += len(times)
        out.write("# EOF\n")
    os.replace(temporary, path)
    return written


def unique(records: Iterable[Record]) -> Iterator[Record]:
    """The records of a merge without a series' second value on one day (the first is kept)."""
    previous = None
    for record in records:
        if (record[1], record[2]) != previous:
            previous = (record[1], record[2])
            yield record


def sample_times(day: str, step: int, cutoff: int, written: Written) -> range:
    """When day D's value is written: D + LAG + k * step, before D + LAG + DAY and before `cutoff`
    (both sinks use this); `written` notes the span and days cut at the cutoff."""
    start = int(day_timestamp(day)) + LAG
    times = range(start, min(start + DAY, cutoff), step)
    if times:
        if times.stop < start + DAY:
            written.clamped.add(day)
        written.first = start if written.first is None else min(written.first, start)
        written.last = max(written.last or 0, times[-1])
    return times


_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')
_UNESCAPE = {"\\\\": "\\", "\\n": "\n", '\\"': '"'}


def series_labels(series: str, labels: tuple[tuple[str, str], ...] = ()) -> tuple[tuple[str, str], ...]:
    """The label pairs of an exposition series `name{a="b"}` plus `labels`, `__name__` included,
    sorted by name, without empty values (an empty label is no label)."""
    name, _, inner = series.partition("{")
    pairs = [
        (key, re.sub(r"\\.", lambda m: _UNESCAPE.get(m.group(), m.group()[1]), value))
        for key, value in _LABEL.findall(inner)
    ]
    return tuple(sorted(pair for pair in [("__name__", name), *pairs, *labels] if pair[1]))


# The command --------------------------------------------------------------------------------
def run_backfill(
    config: Config,
    first: dt.date,
    last: dt.date | None,
    output: str | None,
    step: int = DEFAULT_STEP,
    labels: Iterable[tuple[str, str]] = (),
    err: TextIO | None = None,
    remote: remote_write.Options | None = None,
) -> int:
    """Write the history of every configured scope from `first` to `last` (or the default end)
    into `output` and/or send it to `remote`; 0 when complete, 1 when some days failed or were
    not accepted (rerun to resume), 2 when the arguments cannot work."""
    err = err or sys.stderr
    labels = tuple(labels)
    names = [name for name, _ in labels]
    if len(set(names)) != len(names):
        print(f"backfill: a --label name is given twice: {', '.join(names)}", file=err)
        return 2
    if remote and remote_write.available():
        print(f"backfill: {remote_write.available()}", file=err)
        return 2
    return Backfill(config, output, step, err, labels, remote).run(first, last)


class Backfill:
    def __init__(
        self,
        config: Config,
        output: str | None,
        step: int,
        err: TextIO,
        labels: tuple[tuple[str, str], ...] = (),
        remote: remote_write.Options | None = None,
    ):
        self.config = config
        self.output = output
        self.step = step
        self.labels = labels
        self.err = err
        self.remote = remote
        progress = output or PROGRESS_NAME
        self.parts = progress + ".parts"
        self.state_path = progress + ".state"
        self.telemetry = Telemetry()
        # The exporter's own connections: same credentials handling, retries and rate limits.
        self.refresher = Refresher(config, Store(), self.telemetry)
        self.failures: list[str] = []
        self._last_progress = 0.0
        self.history: StateView | None = None  # the exporter's state store, read-only (see `run`)

    def say(self, message: str) -> None:
        print(message, file=self.err, flush=True)

    def client(self, entry: Entry):
        connection = self.refresher._connection(entry)
        connection.max_rate_limit_wait = max(connection.max_rate_limit_wait, RATE_LIMIT_WAIT)
        # Its deadline leaves room to wait out a whole rate-limit window, as a backfill does.
        return connection.client(timeout=RATE_LIMIT_WAIT + connection.limits.refresh_timeout)

    def requests(self) -> int:
        return int(
            sum(
                value
                for family in self.telemetry.families()
                if family.name == "copilot_exporter_github_requests_total"
                for _, value in family.samples
            )
        )

    def run(self, first: dt.date, last: dt.date | None) -> int:
        self.history = StateView.open(self.config.state_dir)
        try:
            return self._run(first, last)
        except KeyboardInterrupt:
            self.say("backfill: interrupted; rerun the same command to resume (finished days are kept)")
            return 130
        except OSError as error:
            self.say(f"backfill: {error}")
            return 1
        finally:
            self.refresher.stop()
            if self.history is not None:
                self.history.close()

    def _run(self, first: dt.date, last: dt.date | None) -> int:
        now = time.time()
        today = dt.datetime.fromtimestamp(now, dt.timezone.utc).date()
        yesterday = today - dt.timedelta(days=1)
        if first > yesterday:
            self.say(f"backfill: --from {first} is not in the past (the newest possible day is {yesterday})")
            return 2
        if last is not None and last < first:
            self.say(f"backfill: --to {last} is before --from {first}")
            return 2
        # The last day whose first sample (D + LAG) is older than now - RECENT.
        writable = dt.datetime.fromtimestamp(int(now) - RECENT - LAG - 1, dt.timezone.utc).date()
        seats = [str(entry.scope) for entry in self.config.own_entries() if entry.seats]
        if seats:
            self.say(
                "backfill: seats have no history (GitHub only lists the current seats): "
                f"not backfilled for {', '.join(seats)}"
            )

        tracks = self._tracks(first, today)
        for track in tracks:
            self._plan(track, first, last, yesterday, writable)

        os.makedirs(self.parts, exist_ok=True)
        state = State(self.state_path)
        fingerprints = {id(track): _fingerprint(track.entry, self.config) for track in tracks}
        units = sorted(((day, index) for index, track in enumerate(tracks) for day in track.days))
        pending = [
            (tracks[index], day)
            for day, index in units
            if not state.finished(
                tracks[index].key(day), fingerprints[id(tracks[index])], self._chunk(tracks[index], day)
            )
        ]
        total, done = len(units), len(units) - len(pending)
        for track in tracks:
            self._read_window(track, [day for other, day in pending if other is track], today)
        self.say(
            f"backfill: {total} days to write over {len(tracks)} scopes, one sample every "
            f"{self.step}s per series" + (f"; resuming: {done} already done" if done else "")
        )

        started, done_here, aborted = time.monotonic(), 0, False
        try:
            for track, day in pending:
                try:
                    status = self._write_day(track, day, fingerprints[id(track)])
                except RateLimited as error:
                    self.failures.append(f"{track.scope} {day}: {error}")
                    self.say(f"backfill: {track.scope} {day}: rate limited ({error}); stopping")
                    aborted = True
                    break
                except RefreshError as error:
                    hint = getattr(error, "hint", "")
                    self.failures.append(f"{track.scope} {day}: {error.reason}: {error}")
                    self.say(
                        f"backfill: {track.scope} {day} failed ({error.reason}): {error}"
                        + (f"; {hint}" if hint else "")
                    )
                    continue
                state.record(track.key(day), fingerprints[id(track)], status)
                done += 1
                done_here += 1
                self._progress(done, total, started, done_here)
        finally:
            state.close()
        self._progress(done, total, started, done_here, force=True)

        if self.failures or aborted:
            where = " or ".join(
                ([self.output] if self.output else []) + (["the remote-write endpoint"] if self.remote else [])
            )
            self.say(
                f"backfill: {len(self.failures)} day(s) failed, {done} of {total} done; "
                f"nothing written to {where} yet: rerun the same command to retry "
                "them (finished days are kept)"
            )
            return 1
        chunks = [
            (day, self._chunk(track, day))
            for track in tracks
            for day in track.days
            if state.units[track.key(day)]["status"] == "done"
        ]
        cutoff = int(time.time()) - RECENT
        if self.output:
            written = write_openmetrics(
                self.output, merged(sorted(c for _, c in chunks), self.parts), self.step, cutoff, self.labels
            )
            self._summary(written, tracks, state, cutoff, listing=not self.remote)
        if self.remote and not self._send(self.remote, chunks, tracks, state, cutoff):
            self.say(
                f"backfill: {self.state_path} and {self.parts}/ are kept: rerun the same command to send "
                "again without asking GitHub (the same samples with the same timestamps)"
            )
            return 1
        shutil.rmtree(self.parts, ignore_errors=True)
        if os.path.exists(self.state_path):
            os.remove(self.state_path)
        return 0

    # Planning ------------------------------------------------------------------------------
    def _tracks(self, first: dt.date, today: dt.date) -> list[Track]:
        """Which API serves each entry, and the day its live exporter serves now."""
        tracks: list[Track] = []
        lookback = today - dt.timedelta(days=self.config.lookback_days)
        for entry in self.config.own_entries():
            api = "metrics" if self.config.source == "legacy" else "reports"
            if api == "reports":
                source = ReportsSource(entry, self.config, history=self.history)
                try:
                    live = source.newest_day(self.client(entry), today)
                    tracks.append(Track(entry, entry.scope, "reports", live, source=source))
                    continue
                except ReportsUnavailable as error:
                    if self.config.source == "reports":
                        self._fail(entry.scope, error)
                        continue
                    self.say(f"backfill: {entry.scope}: the reports API answers 404, using the legacy API")
                except RefreshError as error:
                    self._fail(entry.scope, error)
                    continue
            since = max(first, today - dt.timedelta(days=LEGACY_WINDOW_DAYS))
            if first < since:
                self.say(
                    f"backfill: {entry.scope}: the legacy API keeps the last {LEGACY_WINDOW_DAYS} "
                    f"days: {first}..{since - dt.timedelta(days=1)} are not available"
                )
            for scope in [entry.scope] + [entry.scope.with_team(team) for team in entry.teams]:
                try:
                    days = legacy.fetch_days(self.client(entry), scope, since)
                except RefreshError as error:
                    self._fail(scope, error)
                    continue
                live = max((day for day in days if day >= lookback.isoformat()), default=None)
                tracks.append(Track(entry, scope, "metrics", live, legacy_days=days))
        return tracks

    def _fail(self, scope: Scope, error: RefreshError) -> None:
        hint = getattr(error, "hint", "")
        self.failures.append(f"{scope}: {error}")
        self.say(f"backfill: {scope} failed ({error.reason}): {error}" + (f"; {hint}" if hint else ""))

    def _plan(self, track: Track, first: dt.date, last: dt.date | None, yesterday: dt.date, writable: dt.date) -> None:
        start = first
        if track.api == "metrics":
            start = max(first, yesterday + dt.timedelta(days=1 - LEGACY_WINDOW_DAYS))
        live = dt.date.fromisoformat(track.live) if track.live else None
        if last is None:
            end = live - dt.timedelta(days=1) if live else yesterday
        else:
            end = last
            if live and last >= live:
                self.say(
                    f"backfill: {track.name}: --to {last} includes {live}, the day the live "
                    "exporter serves now: that day will be in both history and live data"
                )
        if end > writable:
            self.say(
                f"backfill: {track.name}: days after {writable} are not written: by the timestamp "
                "convention they would be shown less than 3 hours ago or later, which Prometheus "
                "refuses to import (the live exporter serves them)"
            )
            end = writable
        end = min(end, yesterday)
        track.days = [(start + dt.timedelta(days=n)).isoformat() for n in range((end - start).days + 1)]
        span = f"{track.days[0]}..{track.days[-1]} ({len(track.days)} days)" if track.days else "no day"
        self.say(f"backfill: {track.name}: {span}" + (f", live exporter serves {track.live}" if track.live else ""))

    def _read_window(self, track: Track, days: list[str], today: dt.date) -> None:
        """Reads the 28-day aggregated report once when it may cover some of `days`: their
        aggregated values then come from it instead of one 1-day report each."""
        oldest = (today - dt.timedelta(days=WINDOW_REACH)).isoformat()
        if track.source is None or not track.entry.reports.aggregated:
            return
        report = aggregated_report(track.scope.kind)
        days = [day for day in days if not track.source.holds(report, day)]  # the state store has them
        if not any(day >= oldest for day in days):
            return
        try:
            window = track.source.window_days(self.client(track.entry))
        except RefreshError as error:
            self.say(
                f"backfill: {track.name}: the 28-day report could not be read ({error}); "
                "the aggregated report is read day by day"
            )
            return
        track.window = {day: window[day] for day in days if day in window}
        if track.window:
            self.say(
                f"backfill: {track.name}: the aggregated values of {len(track.window)} days come from the "
                f"28-day report ({_ranges(sorted(track.window))}), one download instead of one per day"
            )

    # Writing -------------------------------------------------------------------------------
    def _chunk(self, track: Track, day: str) -> str:
        return os.path.join(self.parts, hashlib.sha256(track.key(day).encode()).hexdigest()[:32] + ".tsv")

    def _write_day(self, track: Track, day: str, fingerprint: str) -> str:
        """Read and store one scope-day; "done", or "missing" when GitHub has no report for it."""
        if track.api == "reports":
            assert track.source is not None  # a track on the reports API has its source
            try:
                result = track.source.fetch_day(self.client(track.entry), day, aggregated=track.window.get(day))
            except ReportsUnavailable:  # every endpoint answered 404 for this day
                return "missing"
            if not result.days:
                return "missing"
            families = result.families
        else:
            record = track.legacy_days.get(day)
            if record is None:
                return "missing"
            families = legacy.day_result(track.scope, day, record).families
        write_chunk(self._chunk(track, day), day, families)
        return "done"

    def _send(
        self,
        remote: remote_write.Options,
        chunks: list[tuple[str, str]],
        tracks: list[Track],
        state: State,
        cutoff: int,
    ) -> bool:
        """Send the samples of the finished days to the remote-write endpoint, oldest first: at each
        timestamp every series of that day, so each series is in time order and the receiver's
        newest sample moves forward. True when every batch was accepted."""
        by_day: dict[str, list[str]] = {}
        for day, chunk in chunks:
            by_day.setdefault(day, []).append(chunk)
        writer = remote_write.RemoteWriter(remote)
        written = Written()
        self.say(
            f"backfill: sending {len(by_day)} days to {_endpoint(remote.url)} in batches of {remote.batch_size} samples"
        )
        try:
            for number, day in enumerate(sorted(by_day), 1):
                times = sample_times(day, self.step, cutoff, written)
                rows = [
                    (series_labels(series, self.labels), float(value))
                    for _, series, _, value in unique(merged(sorted(by_day[day]), self.parts))
                ]
                for t in times:
                    for labels, value in rows:
                        writer.add(labels, t * 1000, value, day)
                written.samples += len(times) * len(rows)
                if number == len(by_day):
                    writer.flush()
                self._send_progress(writer, number, len(by_day), force=number == len(by_day))
        except remote_write.RemoteWriteError as error:
            self.say(
                f"backfill: the remote-write endpoint refused a batch: {error}; "
                f"{writer.sent} samples were accepted before it"
            )
            return False
        finally:
            writer.close()
        self._summary(written, tracks, state, cutoff, sent=writer.sent)
        if writer.refused.samples:
            self._too_old(writer.refused)
            return False
        return True

    def _send_progress(self, writer: remote_write.RemoteWriter, days: int, total: int, force: bool) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < 1.0:
            return
        self._last_progress = now
        refused = f", {writer.refused.samples} refused" if writer.refused.samples else ""
        self.say(f"backfill: sent {writer.sent} samples{refused}, {days}/{total} days")

    def _too_old(self, refused: remote_write.Refused) -> None:
        days = sorted(refused.days)
        window = math.ceil((time.time() - (refused.oldest or 0) / 1000) / DAY) + 1
        self.say(
            f"backfill: the receiver refused {refused.samples} samples as older than it accepts "
            f"({refused.message or 'no message'}), of the days {_ranges(days)}. To accept them, allow "
            f"out-of-order samples at least {window}d old: Prometheus: storage.tsdb.out_of_order_time_window "
            f"in prometheus.yml (storage: tsdb:); Mimir: out_of_order_time_window (limits); then rerun"
        )

    def _progress(self, done: int, total: int, started: float, done_here: int, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_progress < 1.0:
            return
        self._last_progress = now
        left = ""
        if done_here and done < total:
            left = f", about {_duration((now - started) / done_here * (total - done))} left"
        self.say(f"backfill: {done}/{total} days, {self.requests()} requests{left}")

    def _summary(
        self,
        written: Written,
        tracks: list[Track],
        state: State,
        cutoff: int,
        sent: int | None = None,
        listing: bool = True,
    ) -> None:
        def when(seconds: int | None) -> str:
            return dt.datetime.fromtimestamp(seconds or 0, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

        span = f", {when(written.first)} to {when(written.last)}" if written.samples else ""
        if self.history is not None:
            reused = sum(len(track.source.reused) for track in tracks if track.source is not None)
            span += f"; {reused} report-days taken from the state store in {self.config.state_dir}"
        if sent is None:
            self.say(f"backfill: wrote {self.output}: {written.samples} samples of {written.series} series{span}")
        else:
            endpoint = _endpoint(self.remote.url) if self.remote else ""
            self.say(f"backfill: sent {sent} of {written.samples} samples to {endpoint}{span}")
        if written.clamped:
            self.say(
                f"backfill: {', '.join(sorted(written.clamped))}: no sample at or after {when(cutoff)} "
                "(the last 3 hours belong to Prometheus's head block)"
            )
        if not listing:
            return
        missing = [
            (track.name, [day for day in track.days if state.units[track.key(day)]["status"] == "missing"])
            for track in tracks
        ]
        missing = [(name, days) for name, days in missing if days]
        if missing:
            self.say("backfill: days without a report (skipped):")
            for name, days in missing:
                self.say(f"  {name}: {_ranges(days)}")


def _endpoint(url: str) -> str:
    """The URL without user info or query, which may hold credentials."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or ''}{':' + str(parts.port) if parts.port else ''}{parts.path}"


def _ranges(days: list[str]) -> str:
    """2026-01-01, 2026-01-03..2026-01-05: consecutive days as ranges."""
    groups: list[list[dt.date]] = []
    for day in map(dt.date.fromisoformat, days):
        if groups and day - groups[-1][-1] == dt.timedelta(days=1):
            groups[-1].append(day)
        else:
            groups.append([day])
    return ", ".join(str(g[0]) if len(g) == 1 else f"{g[0]}..{g[-1]}" for g in groups)


def _duration(seconds: float) -> str:
    seconds = math.ceil(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes:02d}m"
    return f"{minutes}m{seconds:02d}s" if minutes else f"{seconds}s"
