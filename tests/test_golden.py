"""The demo world's exposition, compared with tests/golden/demo.prom: a change to any metric (name,
label, value, HELP text, which series exist) shows here and is taken on purpose, by rewriting the
file with `scripts/update_golden` (or `pytest tests/test_golden.py --update-golden`) and reviewing
its diff.

Deterministic by construction: the simulator is seeded, its world lives on a fixed day and its
seat times are relative to a fixed moment; the exporter's clock is fixed where it reads it for
data (the day it asks reports for, the moment of its seats and billing fetches). Self-metrics
other than `copilot_exporter_up`, `_errors_total` and `_github_requests_total` (times, durations,
rate limits, the version) are left out, and samples are sorted within each family, whose order
is not part of the format.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import difflib
import functools
import io
from pathlib import Path

import pytest

from copilot_exporter import refresher, service
from copilot_exporter.config import parse_config
from copilot_exporter.demo import DEMO_TOKEN, demo_config
from copilot_exporter.simulator import Simulator, World
from copilot_exporter.sources import billing, seats

GOLDEN = Path(__file__).parent / "golden" / "demo.prom"
TODAY = dt.date(2026, 11, 2)  # after every dated change the simulator knows
NOW = dt.datetime.combine(TODAY, dt.time(12, 0), dt.timezone.utc)
KEPT_SELF_METRICS = {"copilot_exporter_up", "copilot_exporter_errors_total", "copilot_exporter_github_requests_total"}


def collect_demo(monkeypatch, state_dir) -> str:
    """`copilot-exporter collect` over the demo's configuration and world, at TODAY and NOW, with
    an empty state directory."""
    monkeypatch.setattr(refresher, "_today", lambda: TODAY)
    monkeypatch.setattr(seats, "fetch", functools.partial(seats.fetch, now=NOW.timestamp()))
    monkeypatch.setattr(billing, "fetch", functools.partial(billing.fetch, now=NOW.timestamp()))
    world = World.default(today=TODAY)
    with Simulator(world=world, token=DEMO_TOKEN) as sim:
        sim.reference_time = NOW
        config = parse_config({**demo_config(sim.api_url, world, ":9452"), "state_dir": str(state_dir)})
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = service.collect(config)
    assert status == 0, "every scope and source of the demo refreshes"
    return out.getvalue()


def normalise(text: str) -> str:
    """Self-metrics outside KEPT_SELF_METRICS left out, samples sorted within each family."""
    lines: list[str] = []
    samples: list[str] = []
    for line in text.splitlines():
        name = line.split(" ")[2] if line.startswith("#") else line.split("{")[0].split(" ")[0]
        if name.startswith("copilot_exporter_") and name not in KEPT_SELF_METRICS:
            continue
        if line.startswith("#"):
            lines += sorted(samples)
            samples = []
            lines.append(line)
        else:
            samples.append(line)
    return "\n".join(lines + sorted(samples)) + "\n"


@pytest.mark.integration
def test_the_demo_exposition_equals_the_golden_file(monkeypatch, request, tmp_path):
    exposition = normalise(collect_demo(monkeypatch, tmp_path / "state"))
    if request.config.getoption("--update-golden"):  # then compared like any run: it passes
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(exposition)
    assert GOLDEN.exists(), "no golden file yet: run scripts/update_golden"
    expected = GOLDEN.read_text()
    if exposition != expected:
        diff = list(
            difflib.unified_diff(
                expected.splitlines(),
                exposition.splitlines(),
                "tests/golden/demo.prom",
                "the demo now",
                lineterm="",
                n=0,
            )
        )
        pytest.fail(
            "the demo exposition differs from the golden file (if intended: scripts/update_golden, "
            "then review and commit the diff):\n"
            + "\n".join(diff[:60])
            + (f"\n... {len(diff) - 60} more diff lines" if len(diff) > 60 else ""),
            pytrace=False,
        )


def test_normalise_drops_volatile_self_metrics_and_sorts_samples():
    text = (
        "# HELP copilot_seats Seats.\n# TYPE copilot_seats gauge\n"
        'copilot_seats{org="b"} 2\ncopilot_seats{org="a"} 1\n'
        "# HELP copilot_exporter_refresh_duration_seconds Time.\n"
        "# TYPE copilot_exporter_refresh_duration_seconds gauge\n"
        "copilot_exporter_refresh_duration_seconds 0.25\n"
        "# HELP copilot_exporter_up Up.\n# TYPE copilot_exporter_up gauge\ncopilot_exporter_up 1\n"
    )
    assert normalise(text) == (
        "# HELP copilot_seats Seats.\n# TYPE copilot_seats gauge\n"
        'copilot_seats{org="a"} 1\ncopilot_seats{org="b"} 2\n'
        "# HELP copilot_exporter_up Up.\n# TYPE copilot_exporter_up gauge\n"
        "copilot_exporter_up 1\n"
    )
