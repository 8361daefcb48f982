"""The REST API version: sent on every API request, configurable as `github.api_version`."""

from __future__ import annotations

import datetime as dt

import pytest

from copilot_exporter.config import ConfigError, load_config, parse_config
from copilot_exporter.github.client import API_VERSION
from conftest import exporter_config

pytestmark = pytest.mark.integration


def github(**keys) -> dict:
    return {"github": {"token": "t0ken", **keys}, "organizations": [{"name": "my-org"}]}


def test_the_default_is_githubs_current_version():
    assert API_VERSION == "2026-03-10"
    assert parse_config(github(), {}).github.api_version == "2026-03-10"


@pytest.mark.parametrize("value", ["2022-11-28", dt.date(2022, 11, 28), " 2022-11-28 "])
def test_a_configured_version_is_a_date_quoted_or_not(value):
    assert parse_config(github(api_version=value), {}).github.api_version == "2022-11-28"


def test_an_unquoted_yaml_date_is_accepted(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("github:\n  token: t0ken\n  api_version: 2022-11-28\norganizations:\n  - name: my-org\n")
    assert load_config(str(path), {}).github.api_version == "2022-11-28"


@pytest.mark.parametrize(
    "value,message",
    [
        ("latest", '"latest" is not a YYYY-MM-DD date'),
        ("2026-13-01", '"2026-13-01" is not a YYYY-MM-DD date'),
        ("2026-3-10", '"2026-3-10" is not a YYYY-MM-DD date'),
        (20260310, "must be a date like 2026-03-10, got integer"),
        (dt.datetime(2026, 3, 10, 12, 0), "is not a YYYY-MM-DD date"),
    ],
)
def test_a_version_that_is_not_a_date_is_a_key_path_error(value, message):
    with pytest.raises(ConfigError) as info:
        parse_config(github(api_version=value), {})
    [problem] = info.value.problems
    assert problem.startswith("github.api_version: ") and message in problem


@pytest.mark.parametrize("configured,sent", [(None, "2026-03-10"), ("2022-11-28", "2022-11-28")])
def test_the_simulator_receives_the_version_on_every_api_request(simulator, make_exporter, configured, sent):
    overrides = {"github": {"api_version": configured}} if configured else {}
    config = exporter_config(
        simulator.api_url, organizations=[{"name": "acme", "teams": ["web"]}], source="reports", **overrides
    )
    assert make_exporter(config).refresh()
    api = [r for r in simulator.requests if r.server == "api"]
    assert any("/copilot/metrics/reports/" in r.path for r in api) and any("/billing/seats" in r.path for r in api)
    assert {r.headers.get("X-GitHub-Api-Version") for r in api} == {sent}
    downloads = [r for r in simulator.requests if r.server == "download"]
    assert downloads and not any("X-GitHub-Api-Version" in r.headers for r in downloads)
