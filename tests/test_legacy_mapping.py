"""Legacy Copilot Metrics API day objects -> metric samples."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from copilot_exporter.errors import PayloadError
from copilot_exporter.metrics.legacy import add_day
from copilot_exporter.model import FamilyBuilder
from conftest import family_values

EXAMPLE = Path(__file__).parent / "data/examples/legacy-org-metrics.json"
ORG = (("org", "octo"),)


def mapped(day: dict) -> dict:
    builder = FamilyBuilder(ORG)
    add_day(builder, day)
    return family_values(builder.build())


def key(name: str, **labels: str) -> tuple[str, frozenset]:
    return name, frozenset((("org", "octo"),) + tuple(labels.items()))


def test_official_example_maps_to_exact_values():
    values = mapped(json.loads(EXAMPLE.read_text())[0])
    vscode = {"editor": "vscode", "model": "default"}
    neovim = {"editor": "neovim", "model": "a-custom-model"}
    expected = {
        key("copilot_daily_active_users"): 24,
        key("copilot_daily_engaged_users"): 20,
        key("copilot_ide_code_completions_engaged_users"): 20,
        key("copilot_ide_code_completions_language_engaged_users", language="python"): 10,
        key("copilot_ide_code_completions_language_engaged_users", language="ruby"): 10,
        key("copilot_ide_code_completions_editor_engaged_users", editor="vscode"): 13,
        key("copilot_ide_code_completions_editor_engaged_users", editor="neovim"): 7,
        key("copilot_ide_code_completions_model_engaged_users", **vscode): 13,
        key("copilot_ide_code_completions_model_language_engaged_users", **vscode, language="python"): 6,
        key("copilot_ide_code_completions_model_language_engaged_users", **vscode, language="ruby"): 7,
        key("copilot_ide_code_completions_model_language_engaged_users", **neovim, language="typescript"): 3,
        key("copilot_ide_code_completions_model_language_engaged_users", **neovim, language="go"): 4,
        key("copilot_ide_code_suggestions", **vscode, language="python"): 249,
        key("copilot_ide_code_acceptances", **vscode, language="python"): 123,
        key("copilot_ide_code_lines_suggested", **vscode, language="python"): 225,
        key("copilot_ide_code_lines_accepted", **vscode, language="python"): 135,
        key("copilot_ide_code_suggestions", **vscode, language="ruby"): 496,
        key("copilot_ide_code_acceptances", **vscode, language="ruby"): 253,
        key("copilot_ide_code_lines_suggested", **vscode, language="ruby"): 520,
        key("copilot_ide_code_lines_accepted", **vscode, language="ruby"): 270,
        key("copilot_ide_code_suggestions", **neovim, language="typescript"): 112,
        key("copilot_ide_code_acceptances", **neovim, language="typescript"): 56,
        key("copilot_ide_code_lines_suggested", **neovim, language="typescript"): 143,
        key("copilot_ide_code_lines_accepted", **neovim, language="typescript"): 61,
        key("copilot_ide_code_suggestions", **neovim, language="go"): 132,
        key("copilot_ide_code_acceptances", **neovim, language="go"): 67,
        key("copilot_ide_code_lines_suggested", **neovim, language="go"): 154,
        key("copilot_ide_code_lines_accepted", **neovim, language="go"): 72,
        key("copilot_ide_chat_engaged_users"): 13,
        key("copilot_ide_chat_editor_engaged_users", editor="vscode"): 13,
        key("copilot_ide_chat_model_engaged_users", editor="vscode", model="default"): 12,
        key("copilot_ide_chat_model_engaged_users", editor="vscode", model="a-custom-model"): 1,
        key("copilot_ide_chats", editor="vscode", model="default"): 45,
        key("copilot_ide_chat_insertion_events", editor="vscode", model="default"): 12,
        key("copilot_ide_chat_copy_events", editor="vscode", model="default"): 16,
        key("copilot_ide_chats", editor="vscode", model="a-custom-model"): 10,
        key("copilot_ide_chat_insertion_events", editor="vscode", model="a-custom-model"): 11,
        key("copilot_ide_chat_copy_events", editor="vscode", model="a-custom-model"): 3,
        key("copilot_dotcom_chat_engaged_users"): 14,
        key("copilot_dotcom_chat_model_engaged_users", model="default"): 14,
        key("copilot_dotcom_chats", model="default"): 38,
        key("copilot_dotcom_pull_requests_engaged_users"): 12,
        key("copilot_dotcom_pull_requests_repository_engaged_users", repository="demo/repo1"): 8,
        key("copilot_dotcom_pull_requests_repository_engaged_users", repository="demo/repo2"): 4,
        key("copilot_dotcom_pull_requests_model_engaged_users", repository="demo/repo1", model="default"): 8,
        key("copilot_dotcom_pull_requests_model_engaged_users", repository="demo/repo2", model="a-custom-model"): 4,
        key("copilot_dotcom_pull_request_summaries", repository="demo/repo1", model="default"): 6,
        key("copilot_dotcom_pull_request_summaries", repository="demo/repo2", model="a-custom-model"): 10,
        key("copilot_custom_model_info", model="a-custom-model", training_date="2024-02-01"): 1,
    }
    # The neovim custom model in GitHub's own example lacks total_engaged_users: no sample, not 0.
    assert values == expected


def test_sections_null_or_missing_give_no_series():
    values = mapped({"date": "2026-01-01", "total_active_users": 3, "copilot_ide_chat": None})
    assert values == {key("copilot_daily_active_users"): 3}


def test_inner_fields_missing_and_unknown_fields_ignored():
    day = {
        "date": "2026-01-01",
        "brand_new_field": {"x": 1},
        "copilot_ide_code_completions": {
            "editors": [
                {
                    "name": "vscode",
                    "models": [
                        {"name": "m", "languages": [{"name": "go", "total_code_suggestions": 5, "shiny": True}]},
                        {"languages": [{"name": "go", "total_code_suggestions": 99}]},  # no model name
                    ],
                },
            ],
        },
    }
    values = mapped(day)
    assert values == {key("copilot_ide_code_suggestions", editor="vscode", model="m", language="go"): 5}


def test_reported_zero_is_exported_as_zero():
    assert mapped({"date": "2026-01-01", "total_engaged_users": 0}) == {key("copilot_daily_engaged_users"): 0}


def test_duplicated_label_sets_are_summed():
    language = {"name": "go", "total_code_acceptances": 2}
    day = {
        "date": "2026-01-01",
        "copilot_ide_code_completions": {
            "editors": [
                {"name": "vscode", "models": [{"name": "m", "languages": [language, dict(language)]}]},
            ]
        },
    }
    assert mapped(day)[key("copilot_ide_code_acceptances", editor="vscode", model="m", language="go")] == 4


@pytest.mark.parametrize(
    "day",
    [
        {"date": "2026-01-01", "total_active_users": "24"},
        {"date": "2026-01-01", "total_active_users": True},
        {"date": "2026-01-01", "copilot_ide_chat": []},
        {"date": "2026-01-01", "copilot_ide_chat": {"editors": {"name": "vscode"}}},
        {"date": "2026-01-01", "copilot_dotcom_chat": {"models": ["default"]}},
    ],
)
def test_wrong_types_are_a_payload_error(day):
    with pytest.raises(PayloadError):
        mapped(day)
