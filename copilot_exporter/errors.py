"""Errors that end one refresh of one scope and source, each with the reason it is counted under."""

from __future__ import annotations


class RefreshError(Exception):
    """A refresh failed; `reason` is the `reason` label of copilot_exporter_errors_total."""

    reason = "error"


class PayloadError(RefreshError):
    """GitHub answered, but the body is not what the API describes (not JSON, wrong types)."""

    reason = "bad_payload"


class ConfigError(Exception):
    """The configuration is invalid; `problems` lists every `key.path: what is wrong`."""

    def __init__(self, problems: list[str]):
        super().__init__("invalid configuration:\n  " + "\n  ".join(problems))
        self.problems = problems
