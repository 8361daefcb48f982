"""A Simulator in a child process, steered through a pipe.

For measurements and fault tests: the simulator's own work (generating reports, gzip) then does
not compete with the exporter under test for the interpreter lock of one process.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
import threading
from typing import Any

from copilot_exporter.simulator.faults import Fault


def _simulator_process(connection, options: dict) -> None:
    """Runs a Simulator and executes the parent's calls (attribute name, arguments) on it."""
    from copilot_exporter.simulator import Simulator

    with Simulator(**options) as sim:
        connection.send((sim.api_url, sim.download_url))
        while (message := connection.recv()) is not None:
            name, args = message
            try:
                attribute = getattr(sim, name)
                connection.send((True, attribute(*args) if callable(attribute) else attribute))
            except Exception as err:  # handed to the parent, which raises it
                connection.send((False, err))


class RemoteSimulator:
    """The Simulator's steering methods, executed in a child process."""

    def __init__(self, **options: Any):
        context = multiprocessing.get_context("spawn")
        self._connection, child = context.Pipe()
        self._process = context.Process(target=_simulator_process, args=(child, options), daemon=True)
        self._process.start()
        self._lock = threading.Lock()
        self.api_url, self.download_url = self._receive()

    @property
    def pid(self) -> int | None:
        """The simulator process's id (benchmarks read its CPU time)."""
        return self._process.pid

    def _receive(self) -> Any:
        if not self._connection.poll(60):
            raise RuntimeError("the simulator process does not answer")
        return self._connection.recv()

    def _call(self, name: str, *args: Any) -> Any:
        with self._lock:
            self._connection.send((name, args))
            ok, result = self._receive()
        if not ok:
            raise result
        return result

    def add_fault(self, path_prefix: str, fault: Fault, times: int | None = None, server: str = "api") -> None:
        self._call("add_fault", path_prefix, fault, times, server)

    def clear_faults(self) -> None:
        self._call("clear_faults")

    def reset_log(self) -> None:
        self._call("reset_log")

    def revise(self, kind: str, name: str, day: dt.date, report: str | None = None) -> None:
        self._call("revise", kind, name, day, report)

    def set_rate_limit(self, remaining: int, reset_in: float, limit: int | None = None) -> None:
        self._call("set_rate_limit", remaining, reset_in, limit)

    def withhold_report(
        self, shape: str, day: dt.date | None = None, name: str | None = None, report: str | None = None
    ) -> None:
        self._call("withhold_report", shape, day, name, report)

    def set(self, name: str, value: Any) -> None:
        self._call("__setattr__", name, value)

    @property
    def requests(self) -> list:
        return self._call("requests")

    def request_count(self, path_prefix: str = "", server: str = "api") -> int:
        return self._call("request_count", path_prefix, server)

    def close(self) -> None:
        with self._lock:
            self._connection.send(None)
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()

    def __enter__(self) -> RemoteSimulator:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
