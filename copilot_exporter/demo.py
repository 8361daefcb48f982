"""`copilot-exporter demo`: the exporter against the built-in simulated GitHub, no token needed."""

from __future__ import annotations

import dataclasses
import logging
import sys

from copilot_exporter.config import _listen_address_problem, parse_config
from copilot_exporter.service import run
from copilot_exporter.simulator import Simulator, World

log = logging.getLogger("copilot_exporter")

DEMO_TOKEN = "demo-token"


def demo_config(api_url: str, world: World, listen_address: str, refresh_interval: str = "5m") -> dict:
    """The configuration the demo runs: every scope of the simulated world, source auto."""
    return {
        "github": {"api_url": api_url, "token": DEMO_TOKEN},
        "source": "auto",
        "refresh_interval": refresh_interval,
        "seats_refresh_interval": refresh_interval,
        "billing_refresh_interval": refresh_interval,
        "seat_prices": {"business": {"amount": 19, "currency": "USD"}, "enterprise": {"amount": 39, "currency": "USD"}},
        "organizations": [
            {"name": org.name, "teams": list(org.teams), "repositories": True, "billing": True}
            for org in world.organizations
        ],
        "enterprises": [{"name": ent.name, "teams": list(ent.teams), "billing": True} for ent in world.enterprises],
        "server": {"listen_address": listen_address},
    }


def run_demo(listen_address: str, state_dir: str | None = None) -> int:
    """Serve the demo; its URL is printed once the server listens. 2 when it cannot listen."""
    problem = _listen_address_problem(listen_address)
    if problem:
        print(f"--web.listen-address: {problem}", file=sys.stderr)
        return 2
    world = World.default()
    with Simulator(world=world, token=DEMO_TOKEN) as simulator:
        config = parse_config(demo_config(simulator.api_url, world, listen_address))
        if state_dir:
            config = dataclasses.replace(config, state_dir=state_dir)
        log.info("simulated GitHub API at %s (reports downloads at %s)", simulator.api_url, simulator.download_url)
        return run(config, listen_address, ready=_announce)


def _announce(url: str) -> None:
    print(f"copilot-exporter demo: open {url} (metrics at {url}metrics); Ctrl-C to stop", flush=True)
