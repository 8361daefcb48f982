"""Peak memory (RSS) of the exporter's process: serving 100k series, and ingesting the reports
of an organization of 100,000 users.

Each measurement runs in a fresh child process that holds only the exporter; the simulated
GitHub runs in another process and does not count. The peak is the child's
resource.getrusage(RUSAGE_SELF).ru_maxrss, read at the end (VmHWM of /proc/self/status, the same
peak as the kernel keeps it for the process's memory, is shown beside it); the baseline is the
resident size before any data (interpreter and imports).

The children are forked from a fork server started first, while this process is small: on
Linux, a process started by fork and exec inherits its parent's ru_maxrss, so a child started
after this process has read 11 MB bodies would report this process's peak, not its own.

    python benchmarks/memory.py [--series 100000] [--users 100000] [--records 100000]
"""

from __future__ import annotations

import argparse
import http.client
import math
import multiprocessing
import resource
import threading
import time

from common import machine

from copilot_exporter.simulator.remote import RemoteSimulator


def rss_mb() -> tuple[float, float, float]:
    """(current, ru_maxrss, VmHWM) resident set sizes of this process, in MB."""
    with open("/proc/self/statm") as statm:
        current = int(statm.read().split()[1]) * resource.getpagesize()
    with open("/proc/self/status") as status:
        hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
    return current / 1e6, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6, hwm * 1024 / 1e6


def _nothing() -> None:
    pass


CONTEXT = multiprocessing.get_context("forkserver")


def start_fork_server() -> None:
    process = CONTEXT.Process(target=_nothing)
    process.start()
    process.join()


# -- serving -------------------------------------------------------------------------------------


def _serving(connection, series: int) -> None:
    from scrape import scopes

    from copilot_exporter.server import App, serve
    from copilot_exporter.store import Store
    from copilot_exporter.telemetry import Telemetry

    baseline = rss_mb()
    store, telemetry = Store(), Telemetry()
    for scope, families in scopes(series):
        store.replace(scope, "reports", families)
        telemetry.refresh_succeeded(scope, "reports", 1.0, {"organization": "2026-01-01"}, "reports")
    filled = rss_mb()
    server = serve(App(store, telemetry), "127.0.0.1:0")
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    connection.send(server.server_address[1])
    while connection.recv() == "bump":  # self-metrics change, as while a refresh runs
        telemetry.count_request("/orgs/{org}/copilot/metrics/reports/users-1-day", "200")
        connection.send(None)
    connection.send((baseline, filled, rss_mb()))
    server.shutdown()


def get(port: int, headers: dict[str, str]) -> int:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("GET", "/metrics", headers=headers)
        response = connection.getresponse()
        return len(response.read())
    finally:
        connection.close()


FORMATS = {
    "text": {},
    "text, gzip": {"Accept-Encoding": "gzip"},
    "OpenMetrics": {"Accept": "application/openmetrics-text; version=1.0.0"},
    "OpenMetrics, gzip": {"Accept": "application/openmetrics-text; version=1.0.0", "Accept-Encoding": "gzip"},
}


def serving(series: int, seconds: float = 5.0) -> None:
    connection, child = CONTEXT.Pipe()
    process = CONTEXT.Process(target=_serving, args=(child, series), daemon=True)
    process.start()
    port = connection.recv()
    sizes = {name: get(port, headers) for name, headers in FORMATS.items()}
    # Then, for a few seconds, 4 concurrent scrapers asking every format, the self-metrics
    # changing before each round so that every body is put together again.
    deadline, count = time.perf_counter() + seconds, [0]

    def scraper() -> None:
        while time.perf_counter() < deadline:
            for headers in FORMATS.values():
                get(port, headers)
                count[0] += 1

    threads = [threading.Thread(target=scraper) for _ in range(4)]
    for thread in threads:
        thread.start()
    while time.perf_counter() < deadline:
        connection.send("bump")
        connection.recv()
        time.sleep(0.05)
    for thread in threads:
        thread.join()
    connection.send("done")
    baseline, filled, end = connection.recv()
    process.join(30)
    print(
        f"serving {series:,} series ({', '.join(f'{name} {size / 1e6:.1f} MB' for name, size in sizes.items())}), "
        f"{count[0]} scrapes in every format by 4 concurrent clients:"
    )
    print(f"  baseline (interpreter, imports)  {baseline[0]:7.1f} MB")
    print(f"  store filled, before any scrape  {filled[0]:7.1f} MB")
    print(f"  after the scrapes                {end[0]:7.1f} MB")
    print(f"  peak RSS: ru_maxrss {end[1]:.1f} MB, VmHWM {end[2]:.1f} MB")


# -- ingesting -----------------------------------------------------------------------------------


def _ingesting(connection, api_url: str, org: str) -> None:
    from copilot_exporter.config import parse_config
    from copilot_exporter.refresher import Refresher
    from copilot_exporter.store import Store
    from copilot_exporter.telemetry import Telemetry

    baseline = rss_mb()
    config = parse_config(
        {
            "github": {"api_url": api_url, "token": "bench-token", "read_timeout": "5m"},
            "source": "reports",
            "organizations": [{"name": org, "repositories": True, "seats": False}],
        }
    )
    store = Store()
    refresher = Refresher(config, store, Telemetry())
    started = time.perf_counter()
    ok = refresher.run_once()
    seconds = time.perf_counter() - started
    refresher.stop()
    values = {(family.name, labels): value for family in store.families() for labels, value in family.samples}
    reported = values.get(("copilot_users_reported", (("org", org),)))
    connection.send((ok, seconds, reported, len(values), baseline, rss_mb()))


def ingesting(users: int) -> float:
    """Measures and prints; returns the user records per user of the report's day."""
    from copilot_exporter.simulator import OrgSpec, World

    world = World(organizations=(OrgSpec("bigco", users=users),))
    with RemoteSimulator(world=world) as sim:
        connection, child = CONTEXT.Pipe()
        process = CONTEXT.Process(target=_ingesting, args=(child, sim.api_url, "bigco"), daemon=True)
        process.start()
        ok, seconds, reported, series, baseline, end = connection.recv()
        process.join(30)
        downloaded = sim.request_count(server="download")
    if not ok:
        raise SystemExit("the refresh failed: see the log")
    print(
        f"ingesting the reports of an organization of {users:,} users (aggregated, users, user-teams, "
        f"repositories): {reported:,.0f} user records in {downloaded} files, {seconds:.1f} s, {series} series:"
    )
    print(f"  baseline (interpreter, imports)  {baseline[0]:7.1f} MB")
    print(f"  after the refresh                {end[0]:7.1f} MB")
    print(f"  peak RSS: ru_maxrss {end[1]:.1f} MB, VmHWM {end[2]:.1f} MB")
    return reported / users


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument(
        "--records",
        type=int,
        default=100_000,
        help="then an organization large enough for its users report to hold this many records",
    )
    args = parser.parse_args()
    start_fork_server()
    print(f"machine: {machine()}\n")
    serving(args.series)
    print()
    share = ingesting(args.users)
    if args.records:
        print()
        ingesting(math.ceil(args.records / share * 1.02))


if __name__ == "__main__":
    main()
