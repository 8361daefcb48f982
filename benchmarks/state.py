"""The state store at scale: an organization of 100,000 users whose 28 days of users and
user-teams reports are filled on a first start, then a restart on the same state_dir.

The exporter runs in a fresh child process forked from a fork server started first (see
memory.py for why), with `fill_days_per_refresh: 28` so the first refresh fills the whole
window; the simulated GitHub runs in another process. Measured: the first refresh's wall time
(every report of the newest day plus 27 past days of users and user-teams reports) and the
exporter's CPU time in it (the simulated GitHub's own work, generating the reports, is not
counted there), the process's peak RSS (ru_maxrss), the database's size on disk, the time of the window queries,
and a second process on the same directory: what it serves before refreshing, its refresh time
and its downloads (none). Then `copilot-exporter backfill` of the 26 full days held, beside the
store (as a process, reading it read-only): its time and downloads, and the size of the
per-day families the store keeps for it. The simulated GitHub's CPU time over each refresh is
printed too (Linux: read from /proc): on a machine of few cores it bounds the wall time.

    python benchmarks/state.py [--users 100000] [--teams 3]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import machine
from memory import CONTEXT, rss_mb, start_fork_server

from copilot_exporter.simulator.remote import RemoteSimulator

ORG = "bigco"


def _exporter(connection, api_url: str, state_dir: str) -> None:
    from copilot_exporter.config import parse_config
    from copilot_exporter.refresher import Refresher
    from copilot_exporter.state import StateStore
    from copilot_exporter.store import Store
    from copilot_exporter.telemetry import Telemetry

    baseline = rss_mb()
    config = parse_config(
        {
            "github": {"api_url": api_url, "token": "bench-token", "read_timeout": "5m"},
            "source": "reports",
            "fill_days_per_refresh": 28,
            "refresh_timeout": "30m",
            "organizations": [{"name": ORG, "seats": False}],
        }
    )
    state, store = StateStore(state_dir), Store()
    started = time.perf_counter()
    refresher = Refresher(config, store, Telemetry(), state=state)
    restored = sum(len(family.samples) for family in store.families())
    restore_seconds = time.perf_counter() - started
    started = time.perf_counter()
    ok = refresher.run_once()
    seconds = time.perf_counter() - started
    source = refresher.jobs[0].reports
    day = source.users_day()
    started = time.perf_counter()
    windows = {days: len(state.team_windows(source.key, day, days)) for days in (7, 28)}
    query_seconds = time.perf_counter() - started
    refresher.stop()
    state.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    cpu = usage.ru_utime + usage.ru_stime
    connection.send((ok, restored, restore_seconds, seconds, cpu, windows, query_seconds, baseline, rss_mb()))


def run(sim: RemoteSimulator, state_dir: str) -> tuple:
    connection, child = CONTEXT.Pipe()
    process = CONTEXT.Process(target=_exporter, args=(child, sim.api_url, state_dir), daemon=True)
    process.start()
    result = connection.recv()
    process.join(30)
    return result


def cpu_seconds(pid: int | None) -> float:
    """User and system CPU time of a process so far (Linux: /proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def size_mb(directory: str) -> float:
    return sum(path.stat().st_size for path in Path(directory).glob("state.sqlite3*")) / 1e6


def families_kept(directory: str) -> tuple[int, float]:
    """Rows of the per-day families table and their compressed size in MB."""
    db = sqlite3.connect(f"{(Path(directory) / 'state.sqlite3').resolve().as_uri()}?mode=ro", uri=True)
    rows, size = db.execute("SELECT COUNT(*), SUM(LENGTH(families)) FROM day_families").fetchone()
    db.close()
    return rows, (size or 0) / 1e6


def backfill(sim: RemoteSimulator, state_dir: str, scratch: str) -> tuple[float, str]:
    """`copilot-exporter backfill` of the held days before the live one: its wall time and summary."""
    today = dt.datetime.now(dt.timezone.utc).date()
    config = Path(scratch) / "config.yaml"
    config.write_text(
        f"github: {{api_url: '{sim.api_url}', token: '${{BENCH_TOKEN}}', read_timeout: 5m}}\n"
        f"source: reports\norganizations: [{{name: {ORG}, seats: false}}]\n"
    )
    first, last = (today - dt.timedelta(days=back) for back in (29, 4))
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "copilot_exporter", "backfill", "--config", str(config)]
        + ["--output", str(Path(scratch) / "history.om"), "--state.dir", state_dir]
        + ["--from", first.isoformat(), "--to", last.isoformat()],
        capture_output=True,
        text=True,
        env={**os.environ, "BENCH_TOKEN": "bench-token"},
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(result.stderr)
    return seconds, re.findall(r"backfill: wrote .*", result.stderr)[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--teams", type=int, default=3)
    args = parser.parse_args()
    from copilot_exporter.simulator import OrgSpec, World

    start_fork_server()
    print(f"machine: {machine()}\n")
    teams = tuple(f"team-{i}" for i in range(args.teams))
    world = World(organizations=(OrgSpec(ORG, users=args.users, teams=teams),))
    with RemoteSimulator(world=world) as sim, tempfile.TemporaryDirectory() as state_dir:
        for run_name in ("first start (fills 28 days)", "restart, same state_dir"):
            sim.reset_log()
            simulator_cpu = cpu_seconds(sim.pid)
            ok, restored, restore_seconds, seconds, cpu, windows, query_seconds, baseline, end = run(sim, state_dir)
            simulator_cpu = cpu_seconds(sim.pid) - simulator_cpu
            if not ok:
                raise SystemExit("a refresh failed: see the log")
            print(f"{run_name}: organization of {args.users:,} users, {args.teams} teams")
            print(f"  series served before the refresh   {restored:>9,} (restored in {restore_seconds:.2f} s)")
            print(
                f"  refresh                            {seconds:>9.1f} s ({cpu:.1f} s of CPU in the exporter), "
                f"{sim.request_count(server='api')} API requests, {sim.request_count(server='download')} downloads"
            )
            print(f"  CPU of the simulated GitHub         {simulator_cpu:>9.1f} s (generating the reports)")
            print(
                f"  load average after it               {os.getloadavg()[0]:>9.1f} (other work on the machine counts)"
            )
            print(
                f"  team windows 7 / 28 days           {windows[7]} / {windows[28]} teams, "
                f"queried in {query_seconds:.2f} s"
            )
            print(f"  database on disk                   {size_mb(state_dir):>9.1f} MB")
            print(
                f"  RSS: baseline {baseline[0]:.1f} MB, after {end[0]:.1f} MB, "
                f"peak ru_maxrss {end[1]:.1f} MB (VmHWM {end[2]:.1f} MB)\n",
                flush=True,
            )
        rows, families_mb = families_kept(state_dir)
        print(f"per-day families kept: {rows} report-days, {families_mb:.2f} MB compressed")
        sim.reset_log()
        with tempfile.TemporaryDirectory() as scratch:
            seconds, summary = backfill(sim, state_dir, scratch)
        print(
            f"backfill of 26 held days: {seconds:.1f} s, {sim.request_count(server='api')} API requests, "
            f"{sim.request_count(server='download')} downloads\n  {summary}"
        )


if __name__ == "__main__":
    main()
