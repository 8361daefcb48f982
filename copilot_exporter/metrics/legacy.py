"""Legacy Copilot Metrics API: one day object -> the catalogue's legacy metric samples."""

from __future__ import annotations

from copilot_exporter.metrics.fields import Fields
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


def add_day(builder: FamilyBuilder, record: dict) -> None:
    day = Fields(record, WHERE)
    builder.add("copilot_daily_active_users", day.number("total_active_users"))
    builder.add("copilot_daily_engaged_users", day.number("total_engaged_users"))
    _completions(builder, day.child("copilot_ide_code_completions"))
    _ide_chat(builder, day.child("copilot_ide_chat"))
    _dotcom_chat(builder, day.child("copilot_dotcom_chat"))
    _pull_requests(builder, day.child("copilot_dotcom_pull_requests"))


def _engaged(builder: FamilyBuilder, name: str, item: Fields, **labels: str) -> None:
    builder.add(name, item.number("total_engaged_users"), **labels)


def _named(parent: Fields, key: str) -> list[tuple[str, Fields]]:
    """Entries with their name; an entry without a name cannot be labelled and is skipped."""
    return [(name, item) for item in parent.children(key) if (name := item.label("name"))]


def _models(builder: FamilyBuilder, parent: Fields) -> list[tuple[str, Fields]]:
    models = _named(parent, "models")
    for name, model in models:
        if model.flag("is_custom_model"):
            training = model.label("custom_model_training_date") or ""
            builder.set("copilot_custom_model_info", 1, model=name, training_date=training)
    return models


def _completions(builder: FamilyBuilder, completions: Fields | None) -> None:
    if completions is None:
        return
    _engaged(builder, "copilot_ide_code_completions_engaged_users", completions)
    for language, item in _named(completions, "languages"):
        _engaged(builder, "copilot_ide_code_completions_language_engaged_users", item, language=language)
    for editor, item in _named(completions, "editors"):
        _engaged(builder, "copilot_ide_code_completions_editor_engaged_users", item, editor=editor)
        for model, model_item in _models(builder, item):
            _engaged(
                builder, "copilot_ide_code_completions_model_engaged_users", model_item, editor=editor, model=model
            )
            for language, lang_item in _named(model_item, "languages"):
                labels = {"editor": editor, "model": model, "language": language}
                _engaged(builder, "copilot_ide_code_completions_model_language_engaged_users", lang_item, **labels)
                for metric, field in COMPLETION_COUNTS.items():
                    builder.add(metric, lang_item.number(field), **labels)


def _ide_chat(builder: FamilyBuilder, chat: Fields | None) -> None:
    if chat is None:
        return
    _engaged(builder, "copilot_ide_chat_engaged_users", chat)
    for editor, item in _named(chat, "editors"):
        _engaged(builder, "copilot_ide_chat_editor_engaged_users", item, editor=editor)
        for model, model_item in _models(builder, item):
            _engaged(builder, "copilot_ide_chat_model_engaged_users", model_item, editor=editor, model=model)
            for metric, field in CHAT_COUNTS.items():
                builder.add(metric, model_item.number(field), editor=editor, model=model)


def _dotcom_chat(builder: FamilyBuilder, chat: Fields | None) -> None:
    if chat is None:
        return
    _engaged(builder, "copilot_dotcom_chat_engaged_users", chat)
    for model, item in _models(builder, chat):
        _engaged(builder, "copilot_dotcom_chat_model_engaged_users", item, model=model)
        builder.add("copilot_dotcom_chats", item.number("total_chats"), model=model)


def _pull_requests(builder: FamilyBuilder, pulls: Fields | None) -> None:
    if pulls is None:
        return
    _engaged(builder, "copilot_dotcom_pull_requests_engaged_users", pulls)
    for repository, item in _named(pulls, "repositories"):
        _engaged(builder, "copilot_dotcom_pull_requests_repository_engaged_users", item, repository=repository)
        for model, model_item in _models(builder, item):
            labels = {"repository": repository, "model": model}
            _engaged(builder, "copilot_dotcom_pull_requests_model_engaged_users", model_item, **labels)
            builder.add(
                "copilot_dotcom_pull_request_summaries", model_item.number("total_pr_summaries_created"), **labels
            )
