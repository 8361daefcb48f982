"""What the benchmarks share: the machine they ran on, percentiles, and a simulated GitHub in a
child process (so that its work does not count in the exporter's process)."""

from __future__ import annotations

import multiprocessing
import os
import platform
import statistics
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing the package
    sys.path.insert(0, str(ROOT))


def machine() -> str:
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()} "
            f"({platform.python_implementation()}), {platform.system()} {platform.release()}")


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: list[float]) -> float:
    return statistics.median(values)


def spawn() -> multiprocessing.context.BaseContext:
    return multiprocessing.get_context("spawn")


def _simulator_process(connection, options: dict) -> None:
    from copilot_exporter.simulator import Simulator

    with Simulator(**options) as sim:
        connection.send((sim.api_url, sim.download_url))
        while (message := connection.recv()) is not None:
            name, args = message
            try:
                attribute = getattr(sim, name)
                connection.send((True, attribute(*args) if callable(attribute) else attribute))
            except Exception as err:
                connection.send((False, err))


class RemoteSimulator:
    """A Simulator running in a child process; method calls go through a pipe."""

    def __init__(self, **options: Any):
        context = spawn()
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_simulator_process, args=(child, options), daemon=True)
        self._process.start()
        self._lock = threading.Lock()
        self.api_url, self.download_url = self._connection.recv()

    def call(self, name: str, *args: Any) -> Any:
        with self._lock:
            self._connection.send((name, args))
            ok, result = self._connection.recv()
        if not ok:
            raise result
        return result

    def request_count(self, path_prefix: str = "", server: str = "api") -> int:
        return self.call("request_count", path_prefix, server)

    def reset_log(self) -> None:
        self.call("reset_log")

    def close(self) -> None:
        with self._lock:
            self._connection.send(None)
        self._process.join(30)
        if self._process.is_alive():
            self._process.kill()

    def __enter__(self) -> RemoteSimulator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
