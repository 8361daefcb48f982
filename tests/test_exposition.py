"""Rendering of snapshots: both formats parse, families are grouped, escaping is right."""

from __future__ import annotations

from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from copilot_exporter import exposition
from copilot_exporter.model import Family, FamilyBuilder, Scope
from copilot_exporter.store import Store
from copilot_exporter.telemetry import Telemetry

ACME, GLOBEX = Scope("org", "acme"), Scope("org", "globex")


def snapshot(scope: Scope, users: int) -> tuple[Family, ...]:
    builder = FamilyBuilder(scope.labels())
    builder.add("copilot_daily_active_users", users)
    builder.add("copilot_ide_chats", 2.5, editor='vs"code\\x\n', model="m")
    return builder.build()


def test_families_of_several_scopes_share_one_header_and_parse():
    store = Store()
    store.replace(ACME, "legacy", snapshot(ACME, 10))
    store.replace(GLOBEX, "legacy", snapshot(GLOBEX, 7))
    text = store.render(openmetrics=False)[1]
    assert text.count("# TYPE copilot_daily_active_users gauge") == 1
    parsed = {f.name: f for f in parse_text(text)}
    users = {s.labels["org"]: s.value for s in parsed["copilot_daily_active_users"].samples}
    assert users == {"acme": 10, "globex": 7}
    chat = parsed["copilot_ide_chats"].samples[0]
    assert chat.labels["editor"] == 'vs"code\\x\n' and chat.value == 2.5


def test_openmetrics_counters_and_eof():
    telemetry = Telemetry()
    telemetry.refresh_failed(ACME, "legacy", 0.1, "forbidden", "no")
    telemetry.count_request("/orgs/{org}/copilot/metrics", "403")
    text = exposition.render_families(telemetry.families(), openmetrics=True) + "# EOF\n"
    families = {f.name: f for f in parse_openmetrics(text)}
    assert families["copilot_exporter_errors"].type == "counter"
    errors = families["copilot_exporter_errors"].samples[0]
    assert errors.name == "copilot_exporter_errors_total" and errors.value == 1
    assert errors.labels == {"org": "acme", "source": "legacy", "reason": "forbidden"}
    assert families["copilot_exporter_up"].samples[0].value == 0


def test_replace_swaps_whole_snapshot_and_disappeared_labels_vanish():
    store = Store()
    builder = FamilyBuilder(ACME.labels())
    builder.add("copilot_dotcom_chats", 1, model="old")
    store.replace(ACME, "legacy", builder.build())
    builder = FamilyBuilder(ACME.labels())
    builder.add("copilot_dotcom_chats", 2, model="new")
    store.replace(ACME, "legacy", builder.build())
    text = store.render(openmetrics=False)[1]
    assert 'model="old"' not in text and 'copilot_dotcom_chats{org="acme",model="new"} 2' in text


def test_render_is_cached_until_a_change():
    store = Store()
    store.replace(ACME, "legacy", snapshot(ACME, 1))
    first = store.render(False)
    assert store.render(False)[1] is first[1]
    store.drop(ACME, "legacy")
    assert store.render(False)[1] == ""


def test_numbers_render_as_integers_when_whole():
    assert exposition._number(3.0) == "3" and exposition._number(1.5) == "1.5"
    assert exposition._number(1763942400.0) == "1763942400"
