"""Cost of a /metrics scrape at 1k, 10k and 100k data series, over real HTTP.

Each server runs alone in a child process; this process is the client. Servers compared, all on
the same HTTP stack (wsgiref's WSGIServer with a thread per request, the exporter's own class):

  exporter          the exporter's App over a Store holding the series (1,000 per organization)
  exporter, miss    the same, its self-metrics changed before every scrape, as while a refresh
                    runs: the body is put together again (the data part stays rendered)
  prometheus_client a custom collector building the same families on every scrape, rendered by
                    prometheus_client (generate_latest, through its make_wsgi_app)
  static file       the exporter's body, saved to a file and served as is: the floor

For each: median and p99 latency of sequential scrapes, and throughput with 4 concurrent
clients. Once plain, once with `Accept-Encoding: gzip` (what Prometheus sends).

    python benchmarks/scrape.py [--series 1000,10000,100000] [--seconds 10]
"""

from __future__ import annotations

import argparse
import http.client
import os
import tempfile
import threading
import time

from common import machine, median, percentile, spawn

LANGUAGES = (
    "python",
    "typescript",
    "javascript",
    "go",
    "java",
    "csharp",
    "cpp",
    "c",
    "rust",
    "ruby",
    "php",
    "kotlin",
    "swift",
    "scala",
    "shell",
    "sql",
    "html",
    "css",
    "markdown",
    "yaml",
)
MODELS = (
    "gpt-4.1",
    "gpt-4o",
    "gpt-5",
    "gpt-5-mini",
    "claude-sonnet-4",
    "claude-sonnet-4.5",
    "claude-opus-4.1",
    "gemini-2.5-pro",
    "o3-mini",
    "default",
)
FAMILIES = (
    "copilot_code_generation_activities_by_language_model",
    "copilot_code_acceptance_activities_by_language_model",
    "copilot_lines_suggested_to_add_by_language_model",
    "copilot_lines_added_by_language_model",
    "copilot_lines_deleted_by_language_model",
)
PER_ORG = len(FAMILIES) * len(LANGUAGES) * len(MODELS)  # 1,000 series per organization


def organization_families(index: int):
    """The families of one organization: 1,000 series, values like real counts."""
    from copilot_exporter.model import FamilyBuilder

    builder = FamilyBuilder((("org", f"organization-{index:04d}"),))
    for f, name in enumerate(FAMILIES):
        for lang, language in enumerate(LANGUAGES):
            for m, model in enumerate(MODELS):
                builder.add(
                    name, (index * 7919 + f * 104729 + lang * 31 + m * 977) % 50_000, language=language, model=model
                )
    return builder.build()


def scopes(series: int):
    from copilot_exporter.model import Scope

    for index in range(max(1, series // PER_ORG)):
        yield Scope("org", f"organization-{index:04d}"), organization_families(index)


# -- servers, each in its own process ---------------------------------------------------------


def _exporter_app(series: int, miss: bool):
    from copilot_exporter.server import App
    from copilot_exporter.store import Store
    from copilot_exporter.telemetry import Telemetry

    store, telemetry = Store(), Telemetry()
    for scope, families in scopes(series):
        store.replace(scope, "reports", families)
        telemetry.refresh_succeeded(scope, "reports", 1.0, {"organization": "2026-01-01"}, "reports")
    app = App(store, telemetry)
    if not miss:
        return app

    def changing(environ, start_response):
        telemetry.count_request("/orgs/{org}/copilot/metrics/reports/users-1-day", "200")
        return app(environ, start_response)

    return changing


def _prometheus_client_app(series: int):
    from prometheus_client import CollectorRegistry, make_wsgi_app
    from prometheus_client.core import GaugeMetricFamily

    from copilot_exporter.metrics.catalogue import CATALOGUE

    data = list(scopes(series))  # what the exporter would hold: the samples, not rendered text

    class Collector:
        def collect(self):
            merged: dict[str, GaugeMetricFamily] = {}
            for _scope, families in data:
                for family in families:
                    if family.name not in merged:
                        labels = [key for key, _ in family.samples[0][0]]
                        merged[family.name] = GaugeMetricFamily(family.name, CATALOGUE[family.name].help, labels=labels)
                    gauge = merged[family.name]
                    for labels, value in family.samples:
                        gauge.add_metric([value for _, value in labels], value)
            yield from merged.values()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Collector())
    return make_wsgi_app(registry)


def _static_app(path: str, gzipped_path: str):
    with open(path, "rb") as plain, open(gzipped_path, "rb") as gzipped:
        bodies = {False: plain.read(), True: gzipped.read()}

    def app(environ, start_response):
        compressed = "gzip" in environ.get("HTTP_ACCEPT_ENCODING", "")
        body = bodies[compressed]
        headers = [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"), ("Content-Length", str(len(body)))]
        if compressed:
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [body]

    return app


def _serve(connection, variant: str, series: int, files: tuple[str, str]) -> None:
    from copilot_exporter.server import serve

    if variant == "exporter":
        app = _exporter_app(series, miss=False)
    elif variant == "exporter, miss":
        app = _exporter_app(series, miss=True)
    elif variant == "prometheus_client":
        app = _prometheus_client_app(series)
    else:
        app = _static_app(*files)
    server = serve(app, "127.0.0.1:0")
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    connection.send(server.server_address[1])
    connection.recv()  # until told to stop
    server.shutdown()


class Server:
    def __init__(self, variant: str, series: int, files: tuple[str, str] = ("", "")):
        context = spawn()
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, variant, series, files), daemon=True)
        self._process.start()
        self.port = self._connection.recv()

    def close(self) -> None:
        self._connection.send(None)
        self._process.join(30)


# -- the client ----------------------------------------------------------------------------------


def get(port: int, gzip: bool) -> bytes:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"} if gzip else {})
        response = connection.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"status {response.status}")
        return body
    finally:
        connection.close()


def latency_rounds(
    servers: dict[str, Server], gzip: bool, rounds: int, per_round: int, budget: float
) -> dict[str, list[float]]:
    """Sequential scrapes, the servers taking turns `per_round` scrapes at a time, so that a
    change of the machine's load during the run weighs on all of them alike. A server slower
    than `budget` seconds per round gets fewer scrapes (3 at least)."""
    measured: dict[str, list[float]] = {name: [] for name in servers}
    for server in servers.values():
        for _ in range(3):
            get(server.port, gzip)  # warm up
    for _ in range(rounds):
        for name, server in servers.items():
            started = time.perf_counter()
            for count in range(per_round):
                if count >= 3 and time.perf_counter() - started > budget:
                    break
                begin = time.perf_counter()
                get(server.port, gzip)
                measured[name].append(time.perf_counter() - begin)
    return measured


def throughput(port: int, gzip: bool, seconds: float, clients: int = 4) -> tuple[int, float]:
    """(scrapes completed, seconds) with `clients` concurrent clients for about `seconds`."""
    done = [0] * clients
    deadline = time.perf_counter() + seconds

    def client(i: int) -> None:
        while time.perf_counter() < deadline:
            get(port, gzip)
            done[i] += 1

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(done), time.perf_counter() - started


def throughput_rounds(servers: dict[str, Server], gzip: bool, rounds: int, seconds: float) -> dict[str, float]:
    totals = {name: [0, 0.0] for name in servers}
    for _ in range(rounds):
        for name, server in servers.items():
            count, elapsed = throughput(server.port, gzip, seconds)
            totals[name][0] += count
            totals[name][1] += elapsed
    return {name: count / elapsed for name, (count, elapsed) in totals.items()}


VARIANTS = ("exporter", "exporter, miss", "prometheus_client", "static file")
SHORT = dict(zip(("exporter", "miss", "client", "static"), VARIANTS))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", default="1000,10000,100000")
    parser.add_argument("--rounds", type=int, default=10, help="turns each server takes (latency)")
    parser.add_argument("--per-round", type=int, default=40, help="sequential scrapes per turn")
    parser.add_argument("--seconds", type=float, default=1.0, help="seconds per throughput turn (5 turns)")
    parser.add_argument("--servers", default=",".join(SHORT), help="some of: " + ", ".join(SHORT))
    args = parser.parse_args()
    variants = [SHORT[name] for name in args.servers.split(",")]
    if "static file" in variants and "exporter" not in variants:
        variants.insert(0, "exporter")  # the floor serves the exporter's bytes
    print(f"machine: {machine()}")
    print(
        f"latency: sequential scrapes, a new connection each (HTTP/1.0), {args.rounds} turns of "
        f"{args.per_round} per server; throughput: 4 concurrent clients, 5 turns of {args.seconds:g}s per server\n"
    )
    print(
        f"{'series':>7} {'encoding':8} {'server':18} {'body':>9} {'n':>5} "
        f"{'median ms':>10} {'p99 ms':>8} {'scrapes/s':>10}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        for series in (int(n) for n in args.series.split(",")):
            files = (os.path.join(tmp, f"{series}.txt"), os.path.join(tmp, f"{series}.txt.gz"))
            servers: dict[str, Server] = {}
            try:
                for variant in VARIANTS:
                    if variant not in variants:
                        continue
                    if variant == "static file":  # the floor serves the exporter's bytes
                        for path, gzip in zip(files, (False, True)):
                            with open(path, "wb") as out:
                                out.write(get(servers["exporter"].port, gzip))
                    servers[variant] = Server(variant, series, files)
                for gzip in (False, True):
                    encoding = "gzip" if gzip else "plain"
                    measured = latency_rounds(servers, gzip, args.rounds, args.per_round, budget=2.0)
                    rates = throughput_rounds(servers, gzip, 5, args.seconds)
                    stats = {
                        name: (median(values), percentile(values, 99), rates[name]) for name, values in measured.items()
                    }
                    for name, server in servers.items():
                        size = len(get(server.port, gzip))
                        print(
                            f"{series:>7} {encoding:8} {name:18} {size / 1e6:>7.2f}MB {len(measured[name]):>5} "
                            f"{stats[name][0] * 1e3:>10.2f} {stats[name][1] * 1e3:>8.2f} {stats[name][2]:>10.1f}"
                        )
                    exporter, ratios = stats.get("exporter"), []
                    if exporter and "static file" in stats:
                        floor = stats["static file"]
                        ratios.append(
                            f"exporter vs static file: median {exporter[0] / floor[0]:.2f}x, "
                            f"p99 {exporter[1] / floor[1]:.2f}x, throughput {floor[2] / exporter[2]:.2f}x lower"
                        )
                    if exporter and "prometheus_client" in stats:
                        client = stats["prometheus_client"]
                        ratios.append(
                            f"prometheus_client vs exporter: median {client[0] / exporter[0]:.0f}x, "
                            f"throughput {exporter[2] / client[2]:.0f}x lower"
                        )
                    if exporter and "exporter, miss" in stats:
                        ratios.append(f"miss vs exporter: median {stats['exporter, miss'][0] / exporter[0]:.2f}x")
                    print(f"{series:>7} {encoding:8} " + " | ".join(ratios), flush=True)
            finally:
                for server in servers.values():
                    server.close()
            print()


if __name__ == "__main__":
    main()
