"""What to ask GitHub for each source, and how to turn the answers into metric families."""

from __future__ import annotations

from dataclasses import dataclass, field

from copilot_exporter.model import Family, FamilyBuilder, Problem


@dataclass(frozen=True)
class Result:
    """A successful refresh: the families to serve, the day exported per report, and notes.

    Notes describe a lasting condition worth telling the operator once (e.g. no report yet).
    `problems` are values dropped or repaired while mapping (counted, logged once per refresh);
    `folded` is, per family, how many series a cardinality cap folded away.
    """

    families: tuple[Family, ...]
    days: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()
    folded: tuple[tuple[str, int], ...] = ()

    @classmethod
    def built(cls, builder: FamilyBuilder, days: dict[str, str] | None = None,
              notes: tuple[str, ...] = ()) -> Result:
        """The result of one builder: its families, problems and folded series."""
        return cls(builder.build(), days or {}, notes, builder.problems.frozen(),
                   tuple(sorted(builder.folded.items())))
