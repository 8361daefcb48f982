"""Values dropped or repaired while mapping: tallied per reason, counted and shown per scope."""

from copilot_exporter.model import FamilyBuilder, Problem, Scope
from copilot_exporter.sources import Result
from copilot_exporter.telemetry import Telemetry


def test_builder_tallies_problems_per_reason_keeping_the_first_message():
    builder = FamilyBuilder()
    builder.problems.note("bad_value", "totals_by_mcp[0]: no name")
    builder.problems.note("bad_value", "totals_by_mcp[3]: no name")
    builder.problems.note("label_replaced", "ide: lone surrogate")
    result = Result.built(builder)
    assert result.problems == (
        Problem("bad_value", 2, "totals_by_mcp[0]: no name"),
        Problem("label_replaced", 1, "ide: lone surrogate"),
    )


def test_dropped_values_and_folded_series_are_exported_per_scope_and_source():
    telemetry = Telemetry()
    scope = Scope("org", "acme")
    telemetry.count_dropped(scope, "reports", "bad_value", 2)
    telemetry.count_dropped(scope, "reports", "bad_value", 3)
    telemetry.set_folded(scope, "reports", (("copilot_lines_added_by_language_model", 7),))
    families = {family.name: family.samples for family in telemetry.families()}
    assert families["copilot_exporter_dropped_values_total"] == (
        ((("org", "acme"), ("source", "reports"), ("reason", "bad_value")), 5),
    )
    assert families["copilot_exporter_folded_series"] == (
        ((("org", "acme"), ("source", "reports"), ("family", "copilot_lines_added_by_language_model")), 7),
    )
    telemetry.forget(scope, "reports")
    assert {f.name: f.samples for f in telemetry.families()}["copilot_exporter_folded_series"] == ()
