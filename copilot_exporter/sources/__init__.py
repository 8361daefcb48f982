"""What to ask GitHub for each source, and how to turn the answers into metric families."""

from __future__ import annotations

from dataclasses import dataclass, field

from copilot_exporter.model import Family


@dataclass(frozen=True)
class Result:
    """A successful refresh: the families to serve, the day exported per report, and notes.

    Notes describe a lasting condition worth telling the operator once (e.g. no report yet).
    """

    families: tuple[Family, ...]
    days: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
