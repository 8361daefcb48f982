"""The metric names and labels are a contract: README table, catalogue and real expositions agree."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from copilot_exporter.metrics.catalogue import CATALOGUE, PROCESS, UNSCOPED
from copilot_exporter.simulator import Fault
from conftest import exporter_config

ROOT = Path(__file__).resolve().parents[1]
SCOPE_LABELS = {"org", "enterprise"}


def load_table_script():
    spec = importlib.util.spec_from_file_location("metrics_table", ROOT / "scripts/metrics_table.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_metric_table_matches_the_catalogue():
    readme = (ROOT / "README.md").read_text()
    start = readme.index("<!-- metrics-table:start -->") + len("<!-- metrics-table:start -->")
    end = readme.index("<!-- metrics-table:end -->")
    assert readme[start:end].strip() == load_table_script().markdown().strip(), \
        "README metric table is stale: python scripts/metrics_table.py"


def full_exposition(simulator, make_exporter) -> str:
    """Every source at once: legacy (one org through auto's fallback), reports with per-user and repositories, seats, billing."""
    simulator.add_fault("/orgs/globex/copilot/metrics/reports", Fault(status=404))
    config = exporter_config(
        simulator.api_url, source="auto", user_hash_salt="pepper",
        seat_prices={"business": {"amount": 19, "currency": "USD"}},
        organizations=[{"name": "acme", "teams": ["platform"], "repositories": True, "per_user": True,
                        "billing": True},
                       {"name": "globex", "teams": ["mobile"]},
                       {"name": "umbrella", "per_user": "hashed"}],
        enterprises=[{"name": "initech", "teams": ["core"]}],
    )
    exporter = make_exporter(config)
    assert exporter.refresh()
    return exporter.scrape_text()


def test_every_exposed_series_follows_the_catalogue(simulator, make_exporter):
    seen = set()
    for family in text_string_to_metric_families(full_exposition(simulator, make_exporter)):
        for sample in family.samples:
            assert sample.name in CATALOGUE, f"{sample.name} is not in the catalogue"
            info = CATALOGUE[sample.name]
            keys = set(sample.labels)
            scope = keys & SCOPE_LABELS
            if sample.name in UNSCOPED:
                assert not scope and "team" not in keys, sample
            else:
                assert len(scope) == 1, f"{sample.name} must carry exactly one of org/enterprise: {sample.labels}"
            assert keys - SCOPE_LABELS - {"team"} == set(info.labels), f"{sample.name}: {sample.labels}"
            assert all(value != "" for value in sample.labels.values()), sample
            seen.add(sample.name)
    # the run exercised every group of the catalogue, so the check above means something
    assert {CATALOGUE[name].group for name in seen} == {info.group for info in CATALOGUE.values()}
    assert "copilot_user_lines_added" in seen and "copilot_repository_pull_requests_created" in seen


def test_no_ratio_or_percentage_and_only_counters_end_in_total():
    for name, info in CATALOGUE.items():
        assert name.startswith("copilot_") or name in PROCESS, name
        assert not any(word in name.split("_") for word in ("ratio", "percent", "percentage")), name
        assert name.endswith("_total") == (info.type == "counter"), name
