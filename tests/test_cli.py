"""The command line, run as a real process: collect, check-config, version; promtool on the output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import TOKEN


def run_cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    environment = {**os.environ, **(env or {})}
    return subprocess.run([sys.executable, "-m", "copilot_exporter", *args], capture_output=True, text=True,
                          timeout=timeout, env=environment)


def write_config(tmp_path, api_url: str, source: str, **extra) -> str:
    config = {
        "github": {"api_url": api_url, "token": "${SIM_TOKEN}", "retry_backoff": "100ms", "max_retries": 1},
        "source": source,
        "organizations": [{"name": "acme", "teams": ["platform", "web"], "repositories": True},
                          {"name": "globex", "teams": ["mobile"]}],
        "enterprises": [{"name": "initech", "teams": ["core"]}],
        **extra,
    }
    path = tmp_path / f"config-{source}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is required (Debian package prometheus); scripts/test installs it"
    return path


@pytest.mark.parametrize("source", ["legacy", "reports", "auto"])
def test_collect_prints_an_exposition_that_promtool_accepts(simulator, tmp_path, source):
    result = run_cli("collect", "--config", write_config(tmp_path, simulator.api_url, source), env={"SIM_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr
    families = {family.name: family for family in text_string_to_metric_families(result.stdout)}
    assert "copilot_daily_active_users" in families and "copilot_seats" in families
    if source == "legacy":
        assert "copilot_ide_code_suggestions" in families
    else:
        assert "copilot_code_generation_activities_by_language_model" in families
    check = subprocess.run([promtool(), "check", "metrics"], input=result.stdout, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert TOKEN not in result.stdout + result.stderr


def test_collect_values_match_the_simulator(simulator, tmp_path):
    from test_legacy_integration import newest_day

    result = run_cli("collect", "--config", write_config(tmp_path, simulator.api_url, "legacy"), env={"SIM_TOKEN": TOKEN})
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(result.stdout) for s in family.samples}
    day = newest_day(simulator, "/orgs/acme/team/web/copilot/metrics")
    assert samples[("copilot_daily_active_users", (("org", "acme"), ("team", "web")))] == day["total_active_users"]
    chat = day["copilot_dotcom_chat"]["models"][0]
    assert samples[("copilot_dotcom_chats", (("model", chat["name"]), ("org", "acme"), ("team", "web")))] == chat["total_chats"]


def test_collect_exits_1_when_a_scope_fails(simulator, tmp_path):
    config = write_config(tmp_path, simulator.api_url, "legacy")
    result = run_cli("collect", "--config", config, env={"SIM_TOKEN": "wrong-token"})
    assert result.returncode == 1
    assert 'reason="unauthorized"' in result.stdout and "wrong-token" not in result.stdout + result.stderr


def test_check_config_lists_every_problem_with_its_key_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("github:\n  token: ${UNSET_FOR_TEST}\nrefresh_interval: soon\n"
                    "organizations:\n  - name: ok-org\n  - teams: [x]\n  - name: bad/org\n")
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 2
    for expected in ("github.token: environment variable UNSET_FOR_TEST is not set",
                     "refresh_interval:", "organizations[1].name: required", "organizations[2].name:"):
        assert expected in result.stderr


def test_serve_refuses_to_start_on_a_bad_config(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("github: {token: x}\n")
    result = run_cli("--config.file", str(path), timeout=20)
    assert result.returncode == 2 and "at least one organization or enterprise" in result.stderr


def test_flags_can_come_from_the_environment(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("github: {token: x}\norganizations: [{name: octo}]\n")
    result = run_cli("check-config", env={"COPILOT_EXPORTER_CONFIG": str(path)})
    assert result.returncode == 0, result.stderr


def test_version_and_help():
    assert run_cli("--version").stdout.startswith("copilot-exporter ")
    help_text = run_cli("--help").stdout
    for command in ("serve", "collect", "check-config", "demo", "--web.listen-address", "COPILOT_EXPORTER_CONFIG"):
        assert command in help_text
