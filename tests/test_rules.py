"""The Prometheus rules: promtool accepts them, their unit tests pass, and they follow the
conventions the dashboards and alert receivers rely on.

promtool must be on PATH (`scripts/setup --with-prometheus` installs Debian's prometheus
package); a missing promtool fails these tests rather than skipping them.
"""

from __future__ import annotations

import re
import shutil
import subprocess

import pytest
import yaml

from copilot_exporter.metrics.catalogue import CATALOGUE
from dashboards_util import (
    ALERTS,
    PROMETHEUS_DIR,
    RULE_TESTS_DIR,
    RULES,
    load_rules,
    metric_names,
    recorded_names,
)

pytestmark = pytest.mark.e2e


# Series the rules may read besides the exporter's: Prometheus' own scrape health.
PROMETHEUS_SERIES = {"up"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        pytest.fail(
            "promtool is not on PATH: install Prometheus' promtool (Debian/Ubuntu: "
            "apt-get install prometheus, or scripts/setup --with-prometheus)",
            pytrace=False,
        )
    return path


def run_promtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], cwd=PROMETHEUS_DIR.parent, capture_output=True, text=True, timeout=300)


def test_promtool_checks_the_rule_files():
    result = run_promtool("check", "rules", str(RULES), str(ALERTS))
    assert result.returncode == 0, f"promtool check rules failed:\n{result.stdout}\n{result.stderr}"


def rule_test_files() -> list[str]:
    return sorted(str(path) for path in RULE_TESTS_DIR.glob("*.yaml"))


def test_promtool_unit_tests_pass():
    files = rule_test_files()
    assert files, f"no promtool test files in {RULE_TESTS_DIR}"
    result = run_promtool("test", "rules", *files)
    assert result.returncode == 0, f"promtool test rules failed:\n{result.stdout}\n{result.stderr}"
    assert result.stdout.count("SUCCESS") == len(files), result.stdout


def rule_tests() -> list[dict]:
    tests = []
    for path in rule_test_files():
        with open(path, encoding="utf-8") as fh:
            document = yaml.safe_load(fh)
        assert {"../rules.yaml", "../alerts.yaml"} <= set(document["rule_files"]), path
        tests.extend(document["tests"])
    return tests


def test_recording_rule_names_follow_the_convention():
    for rule in load_rules(RULES):
        assert "record" in rule, f"rules.yaml holds recording rules only: {rule}"
        assert re.fullmatch(r"copilot:[a-z0-9_]+:[a-z0-9_]+", rule["record"]), rule["record"]
    names = [rule["record"] for rule in load_rules(RULES)]
    assert len(names) == len(set(names)), "a recording rule name is recorded twice"


def test_group_names_are_unique():
    # promtool's group_eval_order names groups across both files.
    names = [group["name"] for path in (RULES, ALERTS) for group in yaml.safe_load(path.read_text())["groups"]]
    assert len(names) == len(set(names)), names


def test_rules_read_only_known_metrics():
    known = set(CATALOGUE) | recorded_names() | PROMETHEUS_SERIES
    for rule in load_rules(RULES, ALERTS):
        unknown = metric_names(rule["expr"]) - known
        assert not unknown, f"{rule.get('record') or rule.get('alert')} reads unknown metrics {unknown}"


def test_alerts_have_severity_summary_description_and_links():
    alerts = load_rules(ALERTS)
    assert alerts
    for rule in alerts:
        name = rule.get("alert")
        assert name, f"alerts.yaml holds alerting rules only: {rule}"
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), name
        for key in ("summary", "description", "runbook_url", "dashboard_url"):
            assert str(rule["annotations"].get(key, "")).strip(), f"{name}: annotation {key} missing"
        assert rule["annotations"]["dashboard_url"].startswith("/d/"), name


RUNBOOK = PROMETHEUS_DIR.parent / "docs" / "runbook.md"


def heading_anchors(markdown: str) -> list[str]:
    """GitHub's anchors of the second-level headings: lower case, punctuation dropped, spaces to -."""
    return [
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^## (.+)$", markdown, re.MULTILINE)
    ]


def test_every_alert_has_its_own_runbook_section():
    anchors = heading_anchors(RUNBOOK.read_text())
    linked = []
    for rule in load_rules(ALERTS):
        path, _, anchor = rule["annotations"]["runbook_url"].partition("#")
        assert path == "docs/runbook.md", f"{rule['alert']}: {path}"
        assert anchor in anchors, f"{rule['alert']}: docs/runbook.md has no heading for #{anchor}"
        linked.append(anchor)
    assert len(linked) == len(set(linked)), "two alerts share a runbook section"
    assert sorted(linked) == sorted(anchors), "a runbook section belongs to no alert"


def runbook_sections() -> dict[str, str]:
    parts = re.split(r"^## (.+)$", RUNBOOK.read_text(), flags=re.MULTILINE)
    return dict(zip(parts[1::2], parts[2::2]))


def test_every_runbook_section_says_what_to_check_and_what_to_do():
    for title, body in runbook_sections().items():
        for part in ("**Check**", "**Act**"):
            assert part in body, f"runbook section {title} has no {part}"


def test_runbook_names_only_existing_dashboard_panels():
    from dashboards_util import iter_panels, load_dashboard

    titles = {
        panel.get("title")
        for path in sorted((PROMETHEUS_DIR.parent / "grafana" / "dashboards").glob("*.json"))
        for panel in iter_panels(load_dashboard(path))
    }
    text = re.sub(r"`[^`]*`", "", RUNBOOK.read_text())  # code spans hold PromQL, not panel names
    named = {" ".join(m.split()) for m in re.findall(r"(?<![*\w])\*(?=\S)([^*]+?)(?<=\S)\*(?![*\w])", text)}
    assert named, "the runbook names no panel"
    assert named <= titles, f"panels not found in grafana/dashboards: {sorted(named - titles)}"


def test_heading_anchors_follow_github():
    assert heading_anchors("# Title\n## CopilotExporterDown\n## Alert routing: the A-team's\n") == [
        "copilotexporterdown",
        "alert-routing-the-a-teams",
    ]


def hours(duration: str) -> float:
    units = {"s": 1 / 3600, "m": 1 / 60, "h": 1, "d": 24, "w": 168}
    parts = re.findall(r"(\d+)([smhdw])", duration)
    assert parts and "".join(n + u for n, u in parts) == duration, duration
    return sum(int(n) * units[u] for n, u in parts)


def test_adoption_alert_waits_hours_and_has_a_floor():
    rule = next(r for r in load_rules(ALERTS) if r["alert"] == "CopilotAdoptionDropped")
    assert hours(rule["for"]) >= 1
    assert re.search(r">=\s*\d+", rule["expr"]), "an absolute floor keeps small organizations quiet"


def test_every_alert_is_tested_firing_and_silent():
    cases: dict[str, set[bool]] = {}
    for test in rule_tests():
        for case in test.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    for rule in load_rules(ALERTS):
        assert cases.get(rule["alert"]) == {True, False}, (
            f"{rule['alert']}: promtool tests must show it firing and staying silent"
        )


def test_every_recording_rule_is_tested():
    exprs = " ".join(case["expr"] for test in rule_tests() for case in test.get("promql_expr_test", []))
    for name in sorted(recorded_names()):
        assert re.search(re.escape(name) + r"(?![\w:])", exprs), f"no promql_expr_test reads {name}"


README = PROMETHEUS_DIR.parent / "README.md"


def alertmanager_example() -> dict:
    """The Alertmanager configuration of the README's "Alert routing"."""
    section = README.read_text().split("### Alert routing", 1)[1]
    return yaml.safe_load(re.search(r"```yaml\n(.*?)```", section, re.DOTALL).group(1))


def matchers(config: dict) -> list[str]:
    found = [m for route in config["route"].get("routes", []) for m in route.get("matchers", [])]
    for rule in config.get("inhibit_rules", []):
        found += rule.get("source_matchers", []) + rule.get("target_matchers", [])
    return found


def test_readme_alertmanager_example_names_existing_alerts_and_severities():
    alerts = load_rules(ALERTS)
    names = {rule["alert"] for rule in alerts}
    severities = {rule["labels"]["severity"] for rule in alerts}
    config = alertmanager_example()
    receivers = {receiver["name"] for receiver in config["receivers"]}
    routes = [config["route"], *config["route"]["routes"]]
    assert {route["receiver"] for route in routes if "receiver" in route} <= receivers
    checked = matchers(config)
    assert checked
    for matcher in checked:
        label, op, value = re.fullmatch(r'(\w+)\s*(=~|!~|!=|=)\s*"(.*)"', matcher).groups()
        if label == "alertname":
            hits = {name for name in names if re.fullmatch(value, name)} if op == "=~" else {value} & names
            assert hits, f"{matcher} matches no alert of alerts.yaml"
        if label == "severity":
            assert value in severities, f"{matcher}: no alert has severity {value}"
    used = {re.fullmatch(r'severity\s*=\s*"(\w+)"', m).group(1) for m in checked if m.startswith("severity")}
    assert used | {"warning"} == severities, "the example routes every severity the alerts use"


def test_docs_never_install_the_package_by_name_from_an_index():
    docs = [
        README,
        PROMETHEUS_DIR.parent / "deploy" / "helm" / "copilot-exporter" / "README.md",
        *sorted((PROMETHEUS_DIR.parent / "docs").glob("*.md")),
    ]
    for path in docs:
        for line in path.read_text().splitlines():
            assert not re.search(r"pip install\s+['\"]?copilot-exporter\b", line), f"{path.name}: {line}"
