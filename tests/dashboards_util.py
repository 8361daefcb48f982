"""Reading the Grafana dashboards and the Prometheus rules: panels, queries, metric names.

Shared by the structural dashboard tests and the end-to-end tests, which evaluate every query
against a real Prometheus: `dashboard_queries` and `variable_queries` give the queries with the
template variables replaced by values Prometheus understands.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD_DIR = ROOT / "grafana" / "dashboards"
PROVISIONING_DIR = ROOT / "grafana" / "provisioning"
PROMETHEUS_DIR = ROOT / "prometheus"
RULES = PROMETHEUS_DIR / "rules.yaml"
ALERTS = PROMETHEUS_DIR / "alerts.yaml"
RULE_TESTS_DIR = PROMETHEUS_DIR / "tests"

# What the template variables stand for when a query runs outside Grafana.
INTERVALS = {
    "__rate_interval": "5m",
    "__interval": "5m",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
    "__interval_ms": "300000",
}
ALL = ".*"  # the allValue of the job, instance, org, enterprise and team variables


def dashboard_paths() -> list[Path]:
    return sorted(DASHBOARD_DIR.glob("*.json"))


def load_dashboard(path: str | Path) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def iter_panels(dashboard: dict) -> Iterator[dict]:
    """Every panel, rows included, and the panels inside collapsed rows."""
    for panel in dashboard.get("panels", []):
        yield panel
        yield from panel.get("panels", [])


def query_panels(dashboard: dict) -> Iterator[dict]:
    """Every panel that shows data (rows only group panels, text panels hold text)."""
    return (panel for panel in iter_panels(dashboard) if panel.get("type") not in ("row", "text"))


def substitute(expr: str, values: dict[str, str] | None = None) -> str:
    """The query with Grafana's variables replaced: intervals by durations, the data source
    variable removed, a variable named in `values` by its value, every other variable (job,
    instance, org, enterprise, team...) by the all-value `.*`."""
    values = values or {}

    def interval(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        return INTERVALS.get(name, match.group(0))

    def value(match: re.Match) -> str:
        name = re.search(r"\w+", match.group(0)).group(0)
        return values.get(name, ALL)

    expr = re.sub(r"\$\{(__\w+)\}|\$(__\w+)", interval, expr)
    expr = re.sub(r"\$\{datasource(?::\w+)?\}|\$datasource\b", "", expr)
    expr = re.sub(r"\$\{\w+(?::\w+)?\}|\$\w+|\[\[\w+(?::\w+)?\]\]", value, expr)
    return expr


def dashboard_queries(path: str | Path) -> list[tuple[str, str]]:
    """(panel title, expr) of every target of every panel, variables substituted."""
    dashboard = load_dashboard(path)
    return [
        (panel.get("title", ""), substitute(target["expr"]))
        for panel in query_panels(dashboard)
        for target in panel.get("targets", [])
        if target.get("expr")
    ]


def variable_query(variable: dict) -> str:
    query = variable.get("query", "")
    if isinstance(query, dict):
        query = query.get("query", "")
    return query


LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>\w+)\s*\)\s*$", re.S)


def label_values_to_promql(query: str) -> str:
    """`label_values(selector, label)` as a PromQL query returning one series per value."""
    match = LABEL_VALUES.match(query)
    if not match:
        raise ValueError(f"not a label_values() query: {query!r}")
    label = match.group("label")
    selector = match.group("selector") or f'{{{label}!=""}}'
    if "{" not in selector:
        selector += "{}"
    name, _, matchers = selector.partition("{")
    matchers = matchers.rstrip().removesuffix("}").strip()
    matchers = f'{label}!=""' + (f",{matchers}" if matchers else "")
    return f"count by ({label}) ({name.strip()}{{{matchers}}})"


def variable_queries(path: str | Path, values: dict[str, str] | None = None) -> list[tuple[str, str]]:
    """(variable name, PromQL) of every query variable, label_values() turned into PromQL and
    variables substituted (see `substitute`)."""
    dashboard = load_dashboard(path)
    return [
        (variable["name"], substitute(label_values_to_promql(variable_query(variable)), values))
        for variable in dashboard.get("templating", {}).get("list", [])
        if variable.get("type") == "query"
    ]


TREND_ANNOTATION = "GitHub reporting changes"


def trend_annotation(dashboard: dict) -> dict | None:
    """The annotation marking GitHub's reporting changes, if the dashboard has it."""
    found = [a for a in dashboard.get("annotations", {}).get("list", []) if a.get("name") == TREND_ANNOTATION]
    return found[0] if found else None


def annotation_windows(expr: str) -> list[tuple[str, int, int]]:
    """(day, first second, end second) of every change the trend annotation marks."""
    return [
        (day, int(start), int(end))
        for start, end, day in re.findall(r'vector\(time\(\)\) >= (\d+) < (\d+), "day", "([\d-]+)"', expr)
    ]


def trend_breaks() -> list[list[str]]:
    """The rows (day, change, effect) of the README's table of GitHub's 2026 changes."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    start = readme.index("## Trend breaks")
    section = readme[start : readme.index("\n## ", start + 1)]
    return [
        [cell.strip() for cell in line.strip().strip("|").split("|")]
        for line in section.splitlines()
        if re.match(r"\| \d{4}-\d\d-\d\d \|", line)
    ]


# PromQL words that are not metric names.
PROMQL_KEYWORDS = {
    "and",
    "or",
    "unless",
    "by",
    "without",
    "on",
    "ignoring",
    "group_left",
    "group_right",
    "offset",
    "bool",
    "atan2",
    "inf",
    "nan",
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
    "group",
}


def metric_names(expr: str) -> set[str]:
    """Metric names a PromQL expression reads: identifiers outside strings, label matchers,
    ranges and grouping clauses that are neither functions nor keywords."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`', '""', expr)
    text = re.sub(r"\{[^{}]*\}", " ", text)
    text = re.sub(r"\[[^\[\]]*\]", " ", text)
    text = re.sub(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)", " ", text)
    text = re.sub(r"\boffset\s+-?[\w$]+", " ", text)
    names = set()
    for match in re.finditer(r"(?<![\w:.$])([a-zA-Z_:][\w:]*)", text):
        word = match.group(1)
        following = text[match.end() :].lstrip()
        if following.startswith("(") or word.lower() in PROMQL_KEYWORDS:
            continue
        names.add(word)
    return names


def selectors(expr: str) -> list[tuple[str, str]]:
    """(metric name, matchers between the braces or "") of every metric a PromQL expression
    reads, in order."""
    names = metric_names(expr)
    if not names:
        return []
    pattern = re.compile(
        r'(?<![\w:$"])(' + "|".join(sorted(map(re.escape, names), key=len, reverse=True)) + r")(?![\w:])(\{[^{}]*\})?"
    )
    found = []
    for match in pattern.finditer(expr):
        inside_string = expr[: match.start()].count('"') % 2 == 1
        if inside_string or (match.group(2) is None and expr[match.end() :].lstrip().startswith("(")):
            continue
        found.append((match.group(1), (match.group(2) or "{}")[1:-1]))
    return found


def load_rules(*paths: Path) -> list[dict]:
    rules = []
    for path in paths:
        with open(path, encoding="utf-8") as fh:
            for group in yaml.safe_load(fh)["groups"]:
                rules.extend(group["rules"])
    return rules


def recorded_names() -> set[str]:
    """Names recorded by prometheus/rules.yaml."""
    return {rule["record"] for rule in load_rules(RULES) if "record" in rule}


# A daily data gauge read without `last_over_time(...[1d])` (see the README, "History backfill").
_DATA_SELECTOR = re.compile(r"(?<![\w:])(copilot_(?!exporter_)[a-z0-9_]+)(\{[^{}]*\})?")


def bare_data_selectors(expr: str) -> list[str]:
    """Selectors of copilot data gauges that are neither inside last_over_time() nor a range."""
    bare = []
    for match in _DATA_SELECTOR.finditer(expr):
        before, after = expr[: match.start()], expr[match.end() :].lstrip()
        inside_string = before.count('"') % 2 == 1
        if not inside_string and not after.startswith("[") and not before.rstrip().endswith("last_over_time("):
            bare.append(match.group(0))
    return bare
