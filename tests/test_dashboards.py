"""The Grafana dashboards and their provisioning: structure, data source, variables, units,
descriptions, and every query reading only metrics the exporter exposes or the rules record."""

from __future__ import annotations

import datetime
import re
import shutil
import subprocess

import pytest
import yaml

from copilot_exporter.metrics.catalogue import CATALOGUE
from dashboards_util import (
    ALERTS,
    DASHBOARD_DIR,
    RULES,
    PROVISIONING_DIR,
    ROOT,
    dashboard_paths,
    dashboard_queries,
    iter_panels,
    label_values_to_promql,
    load_dashboard,
    load_rules,
    metric_names,
    query_panels,
    bare_data_selectors,
    recorded_names,
    selectors,
    substitute,
    variable_queries,
    variable_query,
    annotation_windows,
    trend_annotation,
    trend_breaks,
)

EXPECTED = {
    "copilot-adoption.json",
    "copilot-completions-chat.json",
    "copilot-agents-pull-requests.json",
    "copilot-teams.json",
    "copilot-licences.json",
    "copilot-exporter-health.json",
    "copilot-cost.json",
}
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GRAFANA_DASHBOARDS_PATH = "/var/lib/grafana/dashboards"

PATHS = dashboard_paths()


@pytest.fixture(params=PATHS, ids=[path.stem for path in PATHS])
def path(request):
    return request.param


@pytest.fixture
def dashboard(path):
    return load_dashboard(path)


def all_targets(dashboard):
    return [(panel, target) for panel in query_panels(dashboard) for target in panel.get("targets", [])]


def variables(dashboard) -> dict[str, dict]:
    return {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}


def test_the_six_dashboards_exist():
    assert {path.name for path in PATHS} == EXPECTED


def test_dashboard_model(dashboard, path):
    assert 36 <= dashboard["schemaVersion"] <= 41
    assert dashboard["title"].strip() and dashboard["description"].strip()
    assert dashboard.get("id") is None, "an exported id would clash on import"
    assert "__inputs" not in dashboard and "__requires" not in dashboard
    assert "${DS_" not in path.read_text(encoding="utf-8")
    assert list(query_panels(dashboard)), "no panels"


def test_uids_are_stable_short_and_unique():
    uids = [load_dashboard(path)["uid"] for path in PATHS]
    assert len(uids) == len(set(uids)), uids
    for path, uid in zip(PATHS, uids):
        assert re.fullmatch(r"[a-z0-9][a-z0-9-]{0,39}", uid), uid
        assert uid == path.stem, f"{path.name}: uid {uid} should be the file name, so links stay stable"


def test_datasource_variable(dashboard):
    sources = [v for v in variables(dashboard).values() if v.get("type") == "datasource"]
    assert len(sources) == 1
    assert sources[0]["name"] == "datasource" and sources[0]["query"] == "prometheus"


def test_every_panel_and_target_uses_the_datasource_variable(dashboard):
    for panel in query_panels(dashboard):
        assert panel.get("datasource") == DATASOURCE, panel["title"]
        assert panel.get("targets"), f"{panel['title']}: no query"
        for target in panel["targets"]:
            assert target.get("datasource") == DATASOURCE, panel["title"]
            assert target.get("expr", "").strip(), panel["title"]
    for variable in variables(dashboard).values():
        if variable["type"] == "query":
            assert variable.get("datasource") == DATASOURCE, variable["name"]


def test_every_panel_has_a_unit_and_a_description(dashboard):
    for panel in query_panels(dashboard):
        assert panel.get("fieldConfig", {}).get("defaults", {}).get("unit"), f"{panel['title']}: no unit"
        assert panel.get("description", "").strip(), f"{panel['title']}: no description"
        assert panel.get("title", "").strip()


def test_panel_ids_are_unique_and_placed(dashboard):
    ids = [panel["id"] for panel in iter_panels(dashboard)]
    assert len(ids) == len(set(ids))
    for panel in iter_panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24 and grid["h"] > 0, panel["title"]


def test_refids_are_unique_per_panel(dashboard):
    for panel in query_panels(dashboard):
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


def test_scope_variables(dashboard):
    found = variables(dashboard)
    assert {"job", "instance", "org", "enterprise"} <= set(found)
    for name, variable in found.items():
        if variable["type"] != "query":
            continue
        assert name in ("job", "instance", "org", "enterprise", "team"), name
        assert variable["multi"] is True and variable["includeAll"] is True, name
        assert variable["allValue"] == ".*", name
        assert variable["current"]["value"] == ["$__all"], f"{name} should default to All"
        query = variable_query(variable)
        assert query.startswith("label_values(") and query.rstrip().endswith(f", {name})"), query
        assert variable.get("definition", query) == query


def test_job_and_instance_variables(dashboard):
    """Several exporters (or shards) are told apart by the job and instance Prometheus scrapes
    them with: instance follows job, and the scope variables follow both."""
    found = variables(dashboard)
    assert variable_query(found["job"]) == "label_values(copilot_exporter_build_info, job)"
    assert variable_query(found["instance"]) == 'label_values(copilot_exporter_build_info{job=~"$job"}, instance)'
    for name in ("org", "enterprise"):
        assert variable_query(found[name]) == (
            f'label_values(copilot_exporter_up{{job=~"$job",instance=~"$instance"}}, {name})'
        )


JOB_INSTANCE = ('job=~"$job"', 'instance=~"$instance"')


def test_every_query_filters_by_job_and_instance(dashboard):
    queries = [(panel["title"], target["expr"]) for panel, target in all_targets(dashboard)]
    queries += [
        (f"variable {name}", label_values_to_promql(variable_query(variable)))
        for name, variable in variables(dashboard).items()
        if variable["type"] == "query" and name not in ("job", "instance")
    ]
    for title, expr in queries:
        found = selectors(expr)
        assert found, f"{title}: no selector in {expr}"
        for name, matchers in found:
            assert all(m in matchers for m in JOB_INSTANCE), f"{title}: {name}{{{matchers}}} lacks job/instance"


def test_team_variable_lists_the_teams_of_the_selected_scopes(dashboard):
    """Every series has an org or an enterprise, never both: `org=~"$org|"` keeps the selected
    organizations' teams and every enterprise team, `enterprise=~"$enterprise|"` the reverse."""
    team = variables(dashboard).get("team")
    if team is None:
        return
    ((name, matchers),) = selectors(label_values_to_promql(variable_query(team)))
    assert name == "copilot_daily_active_users"
    for matcher in ('team!=""', 'org=~"$org|"', 'enterprise=~"$enterprise|"') + JOB_INSTANCE:
        assert matcher in matchers.split(","), matcher


def test_selectors_helper():
    assert selectors(
        'sum(rate(copilot_a{x="copilot_b"}[5m])) / copilot:c or label_replace(copilot_d{}, "a", "b", "", "")'
    ) == [("copilot_a", 'x="copilot_b"'), ("copilot:c", ""), ("copilot_d", "")]


def test_every_variable_used_is_defined(dashboard):
    defined = set(variables(dashboard))
    for panel, target in all_targets(dashboard):
        for name in re.findall(r"\$\{?(\w+)", target["expr"]):
            assert name.startswith("__") or name in defined, f"{panel['title']}: ${name} undefined"


SELECTOR = re.compile(r"\{([^{}]*)\}")


def test_scope_selectors_never_mix_organizations_and_enterprises(dashboard):
    """`org=~".*"` also matches series without org (enterprise series): every selector using the
    org or enterprise variable also requires the label, and none filters both."""
    for panel, target in all_targets(dashboard):
        for selector in SELECTOR.findall(target["expr"]):
            uses = {label for label in ("org", "enterprise") if f'{label}=~"${label}"' in selector}
            assert len(uses) <= 1, f"{panel['title']}: {selector}"
            for label in uses:
                assert f'{label}!=""' in selector, f'{panel["title"]}: {selector} lacks {label}!=""'
            if "org" in uses or "enterprise" in uses:
                continue
            assert not re.search(r"\b(org|enterprise)=~", selector), f"{panel['title']}: {selector}"


def test_queries_read_only_exported_or_recorded_metrics(dashboard):
    known = set(CATALOGUE) | recorded_names()
    for panel, target in all_targets(dashboard):
        names = metric_names(target["expr"])
        assert names, f"{panel['title']}: no metric found in {target['expr']}"
        assert not names - known, f"{panel['title']}: unknown metrics {names - known}"
    for variable in variables(dashboard).values():
        if variable["type"] == "query":
            names = metric_names(label_values_to_promql(variable_query(variable)))
            assert names and not names - known, variable["name"]


@pytest.mark.e2e
def test_queries_are_valid_promql(tmp_path):
    """Every query (variables substituted) as a recording rule: promtool parses it."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail(
            "promtool is not on PATH: install Prometheus' promtool (Debian/Ubuntu: "
            "apt-get install prometheus, or scripts/setup --with-prometheus)",
            pytrace=False,
        )
    annotations = [
        ("annotation", annotation["target"]["expr"])
        for path in PATHS
        if (annotation := trend_annotation(load_dashboard(path)))
    ]
    rules = [
        {"record": f"dashboard:query_{i}:check", "expr": expr}
        for i, (_, expr) in enumerate(
            [q for path in PATHS for q in dashboard_queries(path) + variable_queries(path)] + annotations
        )
    ]
    rule_file = tmp_path / "queries.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{result.stdout}\n{result.stderr}"


def test_dashboard_queries_helper(path):
    queries = dashboard_queries(path)
    dashboard = load_dashboard(path)
    assert len(queries) == len(all_targets(dashboard))
    for title, expr in queries:
        assert title and expr
        assert "$" not in expr and "[[" not in expr, expr
    for name, expr in variable_queries(path):
        assert expr.startswith("count by (") and "$" not in expr, (name, expr)


def test_substitute():
    assert substitute('rate(x{org=~"$org",team=~"${team}"}[$__rate_interval])') == 'rate(x{org=~".*",team=~".*"}[5m])'
    assert substitute("increase(x[$__range]) or y[${__interval}]") == "increase(x[1h]) or y[5m]"
    assert substitute('x{a=~"${org:regex}",b="[[enterprise]]"}$datasource') == 'x{a=~".*",b=".*"}'
    assert substitute('x{org=~"$org|",team=~"$team"}', {"org": "acme"}) == 'x{org=~"acme|",team=~".*"}'


def test_metric_names():
    assert metric_names(
        'topk by (org, enterprise) (10, sum by (org, language) (copilot_a{feature="x_y"}[5m] offset 7d)) '
        '/ on (org) group_left () copilot:b:ratio or on () label_replace(vector(0), "r", "n", "", "") * 1e3'
    ) == {"copilot_a", "copilot:b:ratio"}
    assert metric_names("time() - copilot_c * 1000 > bool 4 and sum without (x) (copilot_d)") == {
        "copilot_c",
        "copilot_d",
    }


def test_every_alert_links_an_existing_dashboard():
    uids = {load_dashboard(path)["uid"] for path in PATHS}
    for rule in load_rules(ALERTS):
        link = rule["annotations"]["dashboard_url"]
        match = re.fullmatch(r"/d/([\w-]+)(?:/[\w-]*)?(?:\?.*)?", link)
        assert match and match.group(1) in uids, f"{rule['alert']}: {link}"


def test_provisioning_datasource():
    path = PROVISIONING_DIR / "datasources" / "prometheus.yaml"
    document = yaml.safe_load(path.read_text())
    assert document["apiVersion"] == 1
    (source,) = [s for s in document["datasources"] if s["type"] == "prometheus"]
    assert source["uid"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source.get("isDefault") is True


def test_provisioning_dashboards_point_where_the_dashboards_live():
    path = PROVISIONING_DIR / "dashboards" / "copilot.yaml"
    document = yaml.safe_load(path.read_text())
    assert document["apiVersion"] == 1
    (provider,) = document["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == GRAFANA_DASHBOARDS_PATH
    # The README tells to mount grafana/dashboards there.
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert f"grafana/dashboards:{GRAFANA_DASHBOARDS_PATH}" in readme
    assert DASHBOARD_DIR.is_dir() and PATHS


@pytest.mark.parametrize("path", dashboard_paths(), ids=lambda p: p.name)
def test_data_gauges_are_read_through_last_over_time(path):
    """Backfilled history is one sample per step: only last_over_time(...[1d]) shows it as a line."""
    bare = [(title, selector) for title, expr in dashboard_queries(path) for selector in bare_data_selectors(expr)]
    assert not bare, bare


ACTIVITY_BASES = (
    "copilot_user_initiated_interactions",
    "copilot_code_generation_activities",
    "copilot_code_acceptance_activities",
    "copilot_lines_suggested_to_add",
    "copilot_lines_suggested_to_delete",
    "copilot_lines_added",
    "copilot_lines_deleted",
)
ACTIVITY = {
    name for name in CATALOGUE if name in ACTIVITY_BASES or name.startswith(tuple(f"{b}_by_" for b in ACTIVITY_BASES))
}
IDE_WORDS = re.compile(r"\b(IDEs?|editors?)\b", re.I)


def activity_read(expr: str, rules: dict[str, str]) -> set[str]:
    """The reports activity families an expression reads, through recording rules too, less the
    IDE-only ones: `_by_ide` (GitHub's totals_by_ide) and the code_completion feature."""
    found = set()
    for name, matchers in selectors(expr):
        if name in rules:
            found |= activity_read(rules[name], rules)
        elif name in ACTIVITY and not name.endswith("_by_ide") and 'feature="code_completion"' not in matchers:
            found.add(name)
    return found


def test_activity_families_are_known():
    assert len(ACTIVITY) == 7 * 6
    rules = {rule["record"]: rule["expr"] for rule in load_rules(RULES) if "record" in rule}
    assert activity_read("copilot:code_suggestions:by_ide", rules) == set()
    assert activity_read("copilot:code_suggestions:by_model", rules) == {
        "copilot_code_generation_activities_by_model_feature"
    }
    assert activity_read("copilot:completion_acceptance:ratio", rules) == set()


def test_ide_panels_read_only_ide_figures(dashboard):
    """Since 2026-04-10 (CLI) and 2026-07-28 (Copilot app) the reports' totals and their feature,
    language and model breakdowns count more than IDEs; only totals_by_ide is IDE activity. A panel
    titled IDE or editor reads no other activity family, and a panel over the totals that mentions
    IDEs in its description also says the CLI is counted."""
    rules = {rule["record"]: rule["expr"] for rule in load_rules(RULES) if "record" in rule}
    for panel in query_panels(dashboard):
        read = set().union(*(activity_read(target["expr"], rules) for target in panel["targets"]))
        if IDE_WORDS.search(panel["title"]):
            assert not read, f"{panel['title']}: an IDE panel reads {sorted(read)}"
        if read and IDE_WORDS.search(panel["description"]):
            assert "CLI" in panel["description"], f"{panel['title']}: reads {sorted(read)}, described as IDE"


def test_recording_rules_read_data_gauges_through_last_over_time():
    bare = [
        (rule["record"], selector)
        for rule in load_rules(RULES)
        if "record" in rule
        for selector in bare_data_selectors(rule["expr"])
    ]
    assert not bare, bare


USAGE_DASHBOARDS = {"copilot-adoption", "copilot-completions-chat", "copilot-agents-pull-requests", "copilot-teams"}
DAY = 86400


def test_readme_lists_the_trend_breaks():
    rows = trend_breaks()
    days = [row[0] for row in rows]
    assert len(rows) >= 8 and all(len(row) == 3 and all(row) for row in rows), rows
    assert days == sorted(days) and len(set(days)) == len(days)
    for day in (
        "2026-03-20",
        "2026-04-10",
        "2026-06-15",
        "2026-07-02",
        "2026-07-28",
        "2026-08-07",
        "2026-09-17",
        "2026-10-06",
    ):
        assert day in days, day


def test_usage_dashboards_mark_every_trend_break(dashboard, path):
    """One region per README row, from two to three days after the day: where the day's values
    are drawn (reports land about two days late; backfill writes day D at D + 2 days)."""
    annotation = trend_annotation(dashboard)
    if path.stem not in USAGE_DASHBOARDS:
        assert annotation is None
        return
    assert annotation and annotation["enable"] is True
    assert annotation["datasource"] == DATASOURCE and annotation["useValueForTime"] is False
    assert "{{change}}" in annotation["textFormat"] and "{{day}}" in annotation["titleFormat"]
    windows = annotation_windows(annotation["target"]["expr"])
    assert [day for day, _, _ in windows] == [row[0] for row in trend_breaks()]
    for day, start, end in windows:
        midnight = int(datetime.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=datetime.timezone.utc).timestamp())
        assert (start, end) == (midnight + 2 * DAY, midnight + 3 * DAY), day


def test_adoption_dashboard_shows_the_trend_break_table():
    dashboard = load_dashboard(DASHBOARD_DIR / "copilot-adoption.json")
    (text,) = [panel for panel in iter_panels(dashboard) if panel.get("type") == "text"]
    lines = text["options"]["content"].splitlines()
    assert text["options"]["mode"] == "markdown"
    for row in trend_breaks():
        assert "| " + " | ".join(row) + " |" in lines, row[0]


SHOWN_2026 = {
    "copilot-adoption": {
        "copilot_users_without_client_telemetry",
        "copilot_users_reported",
        "copilot_users_by_adoption_phase",
        "copilot_adoption_phase_engaged_users",
        "copilot_adoption_phase_users_28d",
        "copilot_adoption_phase_pull_requests_merged",
        "copilot_adoption_phase_review_time_seconds",
        "copilot_adoption_phase_review_cycles",
        "copilot_engaged_users_28d",
        "copilot_engaged_users_28d_by_feature",
    },
    "copilot-agents-pull-requests": {
        "copilot_daily_active_app_users",
        "copilot_weekly_active_app_users",
        "copilot_monthly_active_app_users",
        "copilot_app_sessions",
        "copilot_app_requests",
        "copilot_app_prompts",
        "copilot_app_prompt_tokens",
        "copilot_app_output_tokens",
        "copilot_daily_active_vscode_agent_users",
        "copilot_weekly_active_vscode_agent_users",
        "copilot_monthly_active_vscode_agent_users",
        "copilot_vscode_agent_sessions",
        "copilot_vscode_agent_user_messages",
        "copilot_third_party_agent_interactions",
        "copilot_third_party_agent_sessions",
        "copilot_cli_customization_interactions",
        "copilot_cli_customizations_distinct",
        "copilot_users_by_cli_version",
        "copilot_weekly_active_cli_users",
        "copilot_monthly_active_cli_users",
        "copilot_daily_active_cloud_agent_users",
    },
    "copilot-teams": {"copilot_users_used", "copilot_ai_credits_used"},
}


@pytest.mark.parametrize("name", sorted(SHOWN_2026))
def test_the_2026_report_families_have_panels(name):
    read = {
        metric for _title, expr in dashboard_queries(DASHBOARD_DIR / f"{name}.json") for metric in metric_names(expr)
    }
    assert not SHOWN_2026[name] - read, sorted(SHOWN_2026[name] - read)
