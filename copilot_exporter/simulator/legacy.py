"""Day objects of the legacy Copilot Metrics API (`GET .../copilot/metrics`).

Each day is drawn from (seed, scope, day, revision) alone, so any page of any query shows the
same object for a day. Engaged users never exceed active users, and acceptances and accepted
lines never exceed suggestions and suggested lines.
"""

from __future__ import annotations

import datetime

from copilot_exporter.simulator.world import LANGUAGES, Draws, Scope, World

EDITORS = ("vscode", "jetbrains", "neovim", "visualstudio")
HISTORY_DAYS = 100


def _model(name: str, training_date: str | None) -> dict:
    return {"name": name, "is_custom_model": training_date is not None, "custom_model_training_date": training_date}


def _named(name: str, engaged: int, **rest: object) -> dict:
    return {"name": name, "total_engaged_users": engaged, **rest}


def _part(d: Draws, total: int, low: float = 0.3, high: float = 0.9) -> int:
    return int(total * (low + (high - low) * d.random()))


class LegacyMetrics:
    """The legacy API's view of one scope."""

    def __init__(self, world: World, scope: Scope):
        self.world = world
        self.scope = scope
        org = scope.name if scope.kind == "org" else world.enterprise_orgs(scope.name)[0].name
        self.custom_model = f"{org}-custom-model"
        self.training_date = (world.today - datetime.timedelta(days=120)).isoformat()
        self.repositories = [f"{org}/{name}" for _, name, _ in world.repositories(org)[:6]]

    def reported_days(self, since: datetime.date | None, until: datetime.date | None) -> list[datetime.date]:
        """Days with data, oldest first: up to yesterday, at most HISTORY_DAYS back, a few
        missing, and none at all for a scope with fewer than five licences."""
        if self.world.licensed_count(self.scope) < 5:
            return []
        first = self.world.today - datetime.timedelta(days=HISTORY_DAYS)
        last = self.world.today - datetime.timedelta(days=1)
        first, last = max(first, since or first), min(last, until or last)
        days = (first + datetime.timedelta(days=n) for n in range((last - first).days + 1))
        return [day for day in days if not self._gap(day)]

    def _gap(self, day: datetime.date) -> bool:
        s = self.scope
        draws = Draws(self.world.seed, "legacy-gap", s.kind, s.name, s.team, day.toordinal())
        return draws.chance(0.1)

    def day(self, day: datetime.date, revision: int = 0) -> dict:
        s = self.scope
        d = Draws(self.world.seed, "legacy", s.kind, s.name, s.team, day.toordinal(), revision)
        licensed = self.world.licensed_count(s)
        active = max(1, _part(d, licensed, 0.45, 0.8) // (3 if day.weekday() >= 5 else 1))
        engaged = max(1, _part(d, active, 0.7, 0.95))
        return {
            "date": day.isoformat(),
            "total_active_users": active,
            "total_engaged_users": engaged,
            "copilot_ide_code_completions": self._completions(d, _part(d, engaged, 0.8, 1.0)),
            "copilot_ide_chat": self._ide_chat(d, _part(d, engaged, 0.4, 0.8)),
            "copilot_dotcom_chat": self._dotcom_chat(d, _part(d, engaged, 0.1, 0.4)),
            "copilot_dotcom_pull_requests": self._pull_requests(d, _part(d, engaged, 0.05, 0.3)),
        }

    def _models(self, editor: str) -> list[dict]:
        models = [_model("default", None)]
        if editor in ("vscode", "jetbrains"):
            models.append(_model(self.custom_model, self.training_date))
        return models

    def _completions(self, d: Draws, engaged: int) -> dict:
        languages = sorted({d.pick(LANGUAGES) for _ in range(7)})
        editors = []
        for editor in EDITORS:
            editor_engaged = _part(d, engaged, 0.1, 0.7)
            models = []
            for model in self._models(editor):
                model_engaged = _part(d, editor_engaged, 0.5, 1.0)
                rows = []
                for language in languages:
                    suggestions = d.int(0, 40) * max(1, model_engaged)
                    acceptances = _part(d, suggestions, 0.2, 0.4)
                    lines_suggested = suggestions * d.int(1, 3)
                    lines_accepted = min(lines_suggested, _part(d, acceptances, 1.0, 2.0))
                    rows.append(
                        {
                            "name": language,
                            "total_engaged_users": _part(d, model_engaged, 0.1, 0.6),
                            "total_code_suggestions": suggestions,
                            "total_code_acceptances": acceptances,
                            "total_code_lines_suggested": lines_suggested,
                            "total_code_lines_accepted": lines_accepted,
                        }
                    )
                models.append({**model, "total_engaged_users": model_engaged, "languages": rows})
            editors.append(_named(editor, editor_engaged, models=models))
        return {
            "total_engaged_users": engaged,
            "languages": [_named(lang, _part(d, engaged, 0.1, 0.6)) for lang in languages],
            "editors": editors,
        }

    def _ide_chat(self, d: Draws, engaged: int) -> dict:
        editors = []
        for editor in EDITORS[:3]:
            editor_engaged = _part(d, engaged, 0.2, 0.8)
            models = []
            for model in self._models(editor):
                chats = d.int(1, 12) * max(1, editor_engaged)
                models.append(
                    {
                        **model,
                        "total_engaged_users": _part(d, editor_engaged, 0.3, 1.0),
                        "total_chats": chats,
                        "total_chat_insertion_events": _part(d, chats, 0.1, 0.5),
                        "total_chat_copy_events": _part(d, chats, 0.1, 0.4),
                    }
                )
            editors.append(_named(editor, editor_engaged, models=models))
        return {"total_engaged_users": engaged, "editors": editors}

    def _dotcom_chat(self, d: Draws, engaged: int) -> dict:
        models = [
            {**model, "total_engaged_users": _part(d, engaged, 0.3, 1.0), "total_chats": d.int(1, 8) * max(1, engaged)}
            for model in self._models("vscode")
        ]
        return {"total_engaged_users": engaged, "models": models}

    def _pull_requests(self, d: Draws, engaged: int) -> dict:
        repositories = []
        for name in self.repositories[: d.int(2, len(self.repositories))]:
            repo_engaged = _part(d, engaged, 0.2, 1.0)
            models = [
                {
                    **model,
                    "total_pr_summaries_created": d.int(0, 3) * max(1, repo_engaged),
                    "total_engaged_users": _part(d, repo_engaged, 0.5, 1.0),
                }
                for model in self._models("vscode")[: d.int(1, 2)]
            ]
            repositories.append(_named(name, repo_engaged, models=models))
        return {"total_engaged_users": engaged, "repositories": repositories}
