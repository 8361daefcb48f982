"""A simulated GitHub API for the demo and the tests: generated, deterministic Copilot data
behind real HTTP, with fault injection, rate limits, paging, ETags and signed report links."""

from copilot_exporter.simulator.faults import NO_REPORT_SHAPES, Fault
from copilot_exporter.simulator.server import Simulator
from copilot_exporter.simulator.transport import RecordedRequest
from copilot_exporter.simulator.world import AppSpec, EnterpriseSpec, OrgSpec, World

__all__ = ["NO_REPORT_SHAPES", "AppSpec", "EnterpriseSpec", "Fault", "OrgSpec", "RecordedRequest", "Simulator", "World"]
