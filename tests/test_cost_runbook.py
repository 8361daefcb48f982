"""The cost alerts link their runbook: each runbook_url names a section of docs/runbook.md."""

from __future__ import annotations

import re

import yaml

from dashboards_util import ALERTS, ROOT

RUNBOOK = ROOT / "docs" / "runbook.md"


def cost_alerts() -> list[dict]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups if group["name"] == "copilot-alerts-cost" for rule in group["rules"]]


def anchors() -> set[str]:
    """GitHub's anchors of the runbook's headings: lower case, spaces to hyphens, punctuation dropped."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", RUNBOOK.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


def test_every_cost_alert_links_its_own_runbook_section():
    alerts = cost_alerts()
    assert {rule["alert"] for rule in alerts} == {
        "CopilotIncludedCreditsExhausted",
        "CopilotNetSpendRising",
        "CopilotIdleSeatsHigh",
    }
    known = anchors()
    for rule in alerts:
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert path == "docs/runbook.md" and anchor == rule["alert"].lower(), rule["alert"]
        assert anchor in known, f"{rule['alert']}: docs/runbook.md has no heading ## {rule['alert']}"
