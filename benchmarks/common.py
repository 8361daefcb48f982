"""What the benchmarks share: the machine they ran on, percentiles, a process context."""

from __future__ import annotations

import multiprocessing
import os
import platform
import resource
import statistics
import sys
from pathlib import Path

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
    return (
        f"{os.cpu_count()} CPUs ({model}), Python {platform.python_version()} "
        f"({platform.python_implementation()}), {platform.system()} {platform.release()}"
    )


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), nearest rank."""
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


def median(values: list[float]) -> float:
    return statistics.median(values)


def spawn() -> multiprocessing.context.BaseContext:
    return multiprocessing.get_context("spawn")


def organizations_world(orgs: int):
    """A simulated GitHub of `orgs` organizations, 40 users and two teams each."""
    from copilot_exporter.simulator import OrgSpec, World

    return World(
        organizations=tuple(OrgSpec(f"org-{i:04d}", users=40, teams=("backend", "frontend")) for i in range(orgs))
    )


def organizations_config(api_url: str, orgs: int, workers: int, seats: bool, shard: str | None = None):
    """The exporter's configuration for `organizations_world`: the reports API, repositories on;
    with `shard` ("i/n"), the exporter refreshes only that shard's organizations."""
    from copilot_exporter.config import parse_config

    return parse_config(
        {
            "github": {"api_url": api_url, "token": "bench-token", "max_retries": 1, "retry_backoff": "100ms"},
            "source": "reports",
            "workers": workers,
            "organizations": [{"name": f"org-{i:04d}", "repositories": True, "seats": seats} for i in range(orgs)],
            **({"shard": shard} if shard else {}),
        }
    )


def peak_rss_mb() -> float:
    """The peak resident set size of this process so far, in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
