"""Legacy Copilot Metrics API: one day object -> the catalogue's legacy metric samples."""

from __future__ import annotations

from copilot_exporter.metrics.fields import entries, number, section, text
from copilot_exporter.model import FamilyBuilder

WHERE = "copilot/metrics"

# Per-language counts of code completions: metric -> field.
COMPLETION_COUNTS = {
    "copilot_ide_code_suggestions": "total_code_suggestions",
    "copilot_ide_code_acceptances": "total_code_acceptances",
    "copilot_ide_code_lines_suggested": "total_code_lines_suggested",
    "copilot_ide_code_lines_accepted": "total_code_lines_accepted",
}
CHAT_COUNTS = {
    "copilot_ide_chats": "total_chats",
    "copilot_ide_chat_insertion_events": "total_chat_insertion_events",
    "copilot_ide_chat_copy_events": "total_chat_copy_events",
}


def add_day(builder: FamilyBuilder, day: dict) -> None:
    builder.add("copilot_daily_active_users", number(day, "total_active_users", WHERE))
    builder.add("copilot_daily_engaged_users", number(day, "total_engaged_users", WHERE))
    _completions(builder, section(day, "copilot_ide_code_completions", WHERE))
    _ide_chat(builder, section(day, "copilot_ide_chat", WHERE))
    _dotcom_chat(builder, section(day, "copilot_dotcom_chat", WHERE))
    _pull_requests(builder, section(day, "copilot_dotcom_pull_requests", WHERE))


def _engaged(builder: FamilyBuilder, name: str, item: dict, **labels: str) -> None:
    builder.add(name, number(item, "total_engaged_users", WHERE), **labels)


def _named(items: list[dict]) -> list[tuple[str, dict]]:
    """Entries with their name; an entry without a name cannot be labelled and is skipped."""
    return [(name, item) for item in items if (name := text(item, "name", WHERE))]


def _models(builder: FamilyBuilder, parent: dict) -> list[tuple[str, dict]]:
    models = _named(entries(parent, "models", WHERE))
    for name, model in models:
        if model.get("is_custom_model") is True:
            training = text(model, "custom_model_training_date", WHERE) or ""
            builder.set("copilot_custom_model_info", 1, model=name, training_date=training)
    return models


def _completions(builder: FamilyBuilder, completions: dict | None) -> None:
    if completions is None:
        return
    _engaged(builder, "copilot_ide_code_completions_engaged_users", completions)
    for language, item in _named(entries(completions, "languages", WHERE)):
        _engaged(builder, "copilot_ide_code_completions_language_engaged_users", item, language=language)
    for editor, item in _named(entries(completions, "editors", WHERE)):
        _engaged(builder, "copilot_ide_code_completions_editor_engaged_users", item, editor=editor)
        for model, model_item in _models(builder, item):
            _engaged(builder, "copilot_ide_code_completions_model_engaged_users", model_item,
                     editor=editor, model=model)
            for language, lang_item in _named(entries(model_item, "languages", WHERE)):
                labels = {"editor": editor, "model": model, "language": language}
                _engaged(builder, "copilot_ide_code_completions_model_language_engaged_users",
                         lang_item, **labels)
                for metric, field in COMPLETION_COUNTS.items():
                    builder.add(metric, number(lang_item, field, WHERE), **labels)


def _ide_chat(builder: FamilyBuilder, chat: dict | None) -> None:
    if chat is None:
        return
    _engaged(builder, "copilot_ide_chat_engaged_users", chat)
    for editor, item in _named(entries(chat, "editors", WHERE)):
        _engaged(builder, "copilot_ide_chat_editor_engaged_users", item, editor=editor)
        for model, model_item in _models(builder, item):
            _engaged(builder, "copilot_ide_chat_model_engaged_users", model_item, editor=editor, model=model)
            for metric, field in CHAT_COUNTS.items():
                builder.add(metric, number(model_item, field, WHERE), editor=editor, model=model)


def _dotcom_chat(builder: FamilyBuilder, chat: dict | None) -> None:
    if chat is None:
        return
    _engaged(builder, "copilot_dotcom_chat_engaged_users", chat)
    for model, item in _models(builder, chat):
        _engaged(builder, "copilot_dotcom_chat_model_engaged_users", item, model=model)
        builder.add("copilot_dotcom_chats", number(item, "total_chats", WHERE), model=model)


def _pull_requests(builder: FamilyBuilder, pulls: dict | None) -> None:
    if pulls is None:
        return
    _engaged(builder, "copilot_dotcom_pull_requests_engaged_users", pulls)
    for repository, item in _named(entries(pulls, "repositories", WHERE)):
        _engaged(builder, "copilot_dotcom_pull_requests_repository_engaged_users", item, repository=repository)
        for model, model_item in _models(builder, item):
            labels = {"repository": repository, "model": model}
            _engaged(builder, "copilot_dotcom_pull_requests_model_engaged_users", model_item, **labels)
            builder.add("copilot_dotcom_pull_request_summaries",
                        number(model_item, "total_pr_summaries_created", WHERE), **labels)
