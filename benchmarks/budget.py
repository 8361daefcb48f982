"""GitHub API requests per organization in steady state and per simulated day, the time of a
steady-state refresh, and the memory held per organization: what the capacity table says.

Every organization has every report on (aggregated, users, user-teams, repositories) and seats.
The simulated GitHub runs in a child process and adds `--latency` to every answer; yesterday's
reports are not out yet (the simulator's default), so a steady-state refresh asks for the next
day and finds nothing. The clock is an argument: an hourly refresh and a new UTC day are
simulated, not waited for. At each new day the simulated world moves to the next day: the day
before becomes available, the new yesterday is not out yet. Seats are fetched every 6 hours, with
conditional requests (a 304 does not count against GitHub's limit, and is not counted here).
Each simulated day's requests are broken down by what they ask for.

With `--state` the sources share a state store (in a temporary directory), filled by the first
refresh (`fill_days_per_refresh` 28): as in a deployment with `state_dir`, re-reads then go over
the last three days in turn, not only the held day.

    python benchmarks/budget.py [--orgs 200] [--workers 4] [--latency 0.1] [--days 2] [--state]
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import datetime as dt
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor

from common import machine, organizations_config, organizations_world, peak_rss_mb

from copilot_exporter.simulator.remote import RemoteSimulator

HOUR = 3600.0
SEATS_EVERY = 6  # hours: seats_refresh_interval's default


def counted(sim: RemoteSimulator) -> tuple[int, int, int]:
    """(reports API requests, seats API requests, downloads) since the log was reset; 304s are free."""
    reports = seats = downloads = 0
    for request in sim.requests:
        if request.server == "download":
            downloads += 1
        elif request.status != 304:
            if "/copilot/metrics/reports/" in request.path:
                reports += 1
            else:
                seats += 1
    return reports, seats, downloads


def breakdown(sim: RemoteSimulator, today: dt.date) -> collections.Counter[str]:
    """A simulated day's requests (not 304) by what they ask for; the held day D is the day
    before yesterday (yesterday is not out yet)."""
    held = today - dt.timedelta(days=2)
    names = {today - dt.timedelta(days=1): "next day (probe)", held: "D"}
    found: set[str] = set()  # the organizations whose new day was found: the first ask of D
    kinds: collections.Counter[str] = collections.Counter()
    for request in sim.requests:
        if request.server != "api" or request.status == 304:
            continue
        if "/copilot/metrics/reports/" not in request.path:
            kinds["seats"] += 1
            continue
        org, report = request.path.split("/")[2], request.path.rsplit("/reports/", 1)[1]
        if not request.query.get("day"):
            kinds["28-day report"] += 1
            continue
        day = dt.date.fromisoformat(request.query["day"])
        label = names.get(day, f"D-{(held - day).days}")
        if report != "organization-1-day":
            kinds[f"{report} of {label}"] += 1
        elif label == "D" and org not in found:
            found.add(org)
            kinds["new day D found"] += 1
        elif day > held:
            kinds[label] += 1
        else:
            kinds[f"re-read of {label}"] += 1
    return kinds


def main() -> None:
    from copilot_exporter.github.client import Connection
    from copilot_exporter.sources import seats
    from copilot_exporter.sources.reports import ReportsSource
    from copilot_exporter.state import StateStore
    from copilot_exporter.telemetry import Telemetry

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every answer")
    parser.add_argument("--days", type=int, default=2, help="simulated days of hourly refreshes")
    parser.add_argument("--state", action="store_true", help="with a state store: re-reads of the last three days")
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print(
        f"{args.orgs} organizations, every report and seats; {args.latency * 1000:.0f} ms per request; "
        f"{args.workers} workers\n"
    )
    baseline = peak_rss_mb()
    the_world = organizations_world(args.orgs)
    with RemoteSimulator(world=the_world, latency=args.latency) as sim:
        sim.set_rate_limit(10**6, HOUR, limit=10**6)  # the budget is measured here, not enforced
        cfg = dataclasses.replace(
            organizations_config(sim.api_url, args.orgs, args.workers, seats=True), fill_days_per_refresh=28
        )
        state = StateStore(tempfile.mkdtemp(prefix="budget-state-")) if args.state else None
        sources = [ReportsSource(entry, cfg, state) for entry in cfg.entries]
        connection = Connection(sim.api_url, lambda: "bench-token", Telemetry())
        pool = ThreadPoolExecutor(args.workers)
        start = 1_900_000_000.0

        def refresh(hour: int, today: dt.date, with_seats: bool) -> float:
            now = start + hour * HOUR
            began = time.perf_counter()
            list(pool.map(lambda source: source.fetch(connection.client(), today, now=now), sources))
            if with_seats:
                list(pool.map(lambda source: seats.fetch(connection.client(), source.scope), sources))
            return time.perf_counter() - began

        today = the_world.today
        sim.reset_log()
        first = refresh(0, today, with_seats=True)
        reports, seat_calls, downloads = counted(sim)
        print(
            f"first refresh: {first:.1f} s; per organization {reports / args.orgs:.2f} reports API requests, "
            f"{seat_calls / args.orgs:.2f} seats requests, {downloads / args.orgs:.2f} downloads"
        )
        steady_times = []
        for hour in range(1, 4):
            sim.reset_log()
            steady_times.append(refresh(hour, today, with_seats=False))
            reports, seat_calls, downloads = counted(sim)
            print(
                f"steady refresh {hour}: {steady_times[-1]:.1f} s; per organization "
                f"{reports / args.orgs:.2f} API requests, {downloads} downloads",
                flush=True,
            )
        hours = 4
        for day in range(args.days):
            today += dt.timedelta(days=1)
            sim.set("world", dataclasses.replace(the_world, today=today))
            sim.set("missing_report_days", {today - dt.timedelta(days=1)})
            sim.reset_log()
            for hour in range(24):
                refresh(hours, today, with_seats=hour % SEATS_EVERY == 0)
                hours += 1
            reports, seat_calls, downloads = counted(sim)
            print(
                f"simulated day {day + 1} ({today}): per organization {reports / args.orgs:.1f} reports API "
                f"requests + {seat_calls / args.orgs:.1f} seats requests (not 304) = "
                f"{(reports + seat_calls) / args.orgs:.1f}; {downloads / args.orgs:.1f} downloads",
                flush=True,
            )
            kinds = breakdown(sim, today)
            print("  " + ", ".join(f"{kind} {count / args.orgs:.2f}" for kind, count in sorted(kinds.items())))
        pool.shutdown()
    steady = sorted(steady_times)[len(steady_times) // 2]
    held = sum(
        len(family.samples)
        for source in sources
        for downloaded in source._downloaded.values()
        for family in downloaded.families
    )
    print(
        f"\nsteady refresh, median: {steady:.1f} s for {args.orgs} organizations "
        f"({steady / args.orgs * 1000:.0f} ms each; 2,000 would take {steady / args.orgs * 2000:.0f} s)"
    )
    print(
        f"series held: {held} ({held / args.orgs:.0f} per organization); peak RSS {peak_rss_mb():.1f} MB, "
        f"{(peak_rss_mb() - baseline) / args.orgs * 1000:.0f} kB per organization above the {baseline:.1f} MB start"
    )


if __name__ == "__main__":
    main()
