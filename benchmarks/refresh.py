"""A refresh of many organizations with every report, against a simulated GitHub that takes
100 ms to answer each request (API calls and report downloads alike).

Every organization asks for its aggregated, users, user-teams and repositories reports
(seats off). The simulator runs in a child process; the exporter's refresher in this one. For
each worker count: the wall time of a first refresh (downloads everything) and the requests it
made; for the default pool, a second refresh too, which must download nothing (no report
changed). Then the default pool on fewer organizations, for the growth.

With `--shard i/n` the exporter refreshes only its shard of the organizations (`shard: i/n`, as
one of n exporters would), and the peak RSS of this process is the memory of one exporter
serving one shard: the refresher, its store with every family rendered, and one scrape's page
(the simulated GitHub runs in its own process and does not count). `--rate-limit` is the
hourly limit each refresh starts with: a first refresh of more than about 350 organizations
needs more than a token's 5,000 (half of it, `request_budget_share`, is what it may spend).

    python benchmarks/refresh.py [--orgs 200] [--workers 1,4,6,7,8,16] [--latency 0.1] [--growth 50,100]
                                 [--shard i/n] [--rate-limit 5000]
"""

from __future__ import annotations

import argparse
import time

from common import machine, organizations_config, organizations_world, peak_rss_mb

from copilot_exporter.simulator.remote import RemoteSimulator

DEFAULT_WORKERS = 4


def refresh(sim: RemoteSimulator, refresher, rate_limit: int = 5000) -> tuple[float, bool, int, int]:
    """(seconds, all succeeded, API requests, downloads) of one refresh.

    Each starts with a full primary rate limit (5,000 an hour, as GitHub gives a token): a
    refresh of 200 organizations spends 1,400 of it (report links are signed anew each time,
    so they are never answered 304, which would be free), and the runs together would spend
    more than an hour's budget.
    """
    sim.set_rate_limit(rate_limit, 3600, limit=rate_limit)
    sim.reset_log()
    started = time.perf_counter()
    ok = refresher.run_once()
    seconds = time.perf_counter() - started
    return seconds, ok, sim.request_count(server="api"), sim.request_count(server="download")


def exporter(sim: RemoteSimulator, orgs: int, workers: int, shard: str | None = None):
    from copilot_exporter.refresher import Refresher
    from copilot_exporter.store import Store
    from copilot_exporter.telemetry import Telemetry

    store = Store()
    config = organizations_config(sim.api_url, orgs, workers, seats=False, shard=shard)
    return Refresher(config, store, Telemetry()), store


def series(store) -> int:
    return sum(len(family.samples) for family in store.families())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orgs", type=int, default=200)
    parser.add_argument("--workers", default="1,4,6,7,8,16")
    parser.add_argument("--latency", type=float, default=0.1, help="seconds added to every answer")
    parser.add_argument("--growth", default="50,100", help="organization counts for the default pool")
    parser.add_argument("--shard", help="i/n: refresh only this shard of the organizations")
    parser.add_argument("--rate-limit", type=int, default=5000, help="the hourly limit each refresh starts with")
    args = parser.parse_args()
    baseline = peak_rss_mb()
    print(f"machine: {machine()}")
    print(
        f"{args.orgs} organizations, reports: aggregated, users, user-teams, repositories; "
        f"{args.latency * 1000:.0f} ms per request\n"
    )
    print(
        f"{'orgs':>5} {'workers':>7} {'refresh':8} {'seconds':>8} {'speedup':>8} {'API':>6} {'downloads':>9} "
        f"{'per org':>7} {'series':>7}"
    )
    sequential = None
    with RemoteSimulator(world=organizations_world(args.orgs), latency=args.latency) as sim:
        for workers in (int(n) for n in args.workers.split(",")):
            refresher, store = exporter(sim, args.orgs, workers, args.shard)
            owned = len(refresher.config.own_entries()) if args.shard else args.orgs
            try:
                runs = ["first", "second"] if workers == DEFAULT_WORKERS else ["first"]
                for run in runs:
                    seconds, ok, calls, downloads = refresh(sim, refresher, args.rate_limit)
                    if not ok:
                        raise SystemExit("a refresh failed: see the log")
                    if run == "first" and workers == 1:
                        sequential = seconds
                    speedup = f"{sequential / seconds:.2f}x" if sequential and run == "first" else ""
                    print(
                        f"{owned:>5} {workers:>7} {run:8} {seconds:>8.1f} {speedup:>8} {calls:>6} {downloads:>9} "
                        f"{(calls + downloads) / owned:>7.1f} {series(store):>7}",
                        flush=True,
                    )
                    if run == "second" and downloads:
                        print(f"  a second refresh downloaded {downloads} unchanged report files")
                if args.shard:
                    page = store.render(openmetrics=False)[1]  # what a scrape serves
                    print(
                        f"shard {args.shard} of {args.orgs} organizations: {owned} organizations, {series(store)} "
                        f"series, a page of {len(page) / 1e6:.1f} MB; peak RSS {peak_rss_mb():.0f} MB "
                        f"({baseline:.0f} MB before the exporter: "
                        f"{(peak_rss_mb() - baseline) / owned * 1000:.0f} kB per organization)",
                        flush=True,
                    )
            finally:
                refresher.stop()
    for orgs in (int(n) for n in args.growth.split(",") if n):
        with RemoteSimulator(world=organizations_world(orgs), latency=args.latency) as sim:
            refresher, store = exporter(sim, orgs, DEFAULT_WORKERS)
            try:
                seconds, ok, calls, downloads = refresh(sim, refresher)
                print(
                    f"{orgs:>5} {DEFAULT_WORKERS:>7} {'first':8} {seconds:>8.1f} {'':>8} {calls:>6} {downloads:>9} "
                    f"{(calls + downloads) / orgs:>7.1f} {series(store):>7}",
                    flush=True,
                )
            finally:
                refresher.stop()


if __name__ == "__main__":
    main()
