"""Prints the README's metric table from the catalogue: python scripts/metrics_table.py.

The README holds its output between the metrics-table markers; a test keeps the two equal.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from copilot_exporter.metrics.catalogue import CATALOGUE, TEAM_FAMILIES, UNSCOPED  # noqa: E402

GROUPS = {
    "day": "Day of the data",
    "shared": "Shared by both APIs",
    "legacy": "Legacy Copilot Metrics API (`source: legacy`, or `auto` where reports answer 404)",
    "reports_users": "Reports API: active and engaged users (`organization-1-day` / `enterprise-1-day`, 28-day engagement)",
    "reports_activity": "Reports API: activity, day totals and breakdowns",
    "reports_pull_requests": "Reports API: pull requests, CLI, Copilot app, agents, customizations, adoption phases",
    "reports_user_records": "Reports API: users report (aggregated; per-user series only when opted in)",
    "reports_repositories": "Reports API: repositories (`repositories: true`)",
    "seats": "Seats and licences (`seats: true`, the default)",
    "billing": "Cost (`billing: true` for the billing API; prices and included credits come with seats)",
    "exporter": "The exporter's own metrics",
}


def _scope(name: str) -> str:
    if name in UNSCOPED:
        return ""
    return "scope (per team: + `team`, `team_id`)" if name in TEAM_FAMILIES else "scope"


def markdown() -> str:
    parts = []
    for group, title in GROUPS.items():
        parts.append(f"\n**{title}**\n\n| metric | type | labels | meaning |\n|---|---|---|---|\n")
        for name, info in CATALOGUE.items():
            if info.group != group:
                continue
            labels = ", ".join(f"`{label}`" for label in info.labels)
            labels = ", ".join(filter(None, [_scope(name), labels]))
            parts.append(f"| `{name}` | {info.type} | {labels} | {info.help} |\n")
    return "".join(parts)


if __name__ == "__main__":
    sys.stdout.write(markdown())
