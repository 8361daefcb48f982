"""The values that travel from sources to the store: scopes and metric families.

Everything here is immutable once built, so a snapshot can be shared between the refresher
thread that makes it and the HTTP threads that serve it without locks.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import Counter
from dataclasses import dataclass

from copilot_exporter.metrics.catalogue import CATALOGUE

ORG = "org"
ENTERPRISE = "enterprise"

Labels = tuple[tuple[str, str], ...]


@dataclass(frozen=True, order=True)
class Scope:
    """One identity GitHub reports on: an organization, an enterprise, or a team of either."""

    kind: str  # ORG or ENTERPRISE
    name: str
    team: str = ""  # empty for the organization or enterprise itself

    def labels(self) -> Labels:
        pairs: Labels = ((self.kind, self.name),)
        return pairs + ((("team", self.team),) if self.team else ())

    def parent(self) -> Scope:
        return Scope(self.kind, self.name)

    def with_team(self, team: str) -> Scope:
        return Scope(self.kind, self.name, team)

    def __str__(self) -> str:
        return ",".join(f"{k}={v}" for k, v in self.labels())


@dataclass(frozen=True)
class Family:
    """One metric family: a name from the catalogue and its samples (label pairs, value)."""

    name: str
    samples: tuple[tuple[Labels, float], ...]

    @property
    def help(self) -> str:
        return CATALOGUE[self.name].help

    @property
    def type(self) -> str:
        return CATALOGUE[self.name].type


@dataclass(frozen=True)
class Problem:
    """Values of one kind that a refresh dropped or repaired while building its families.

    `reason` is the `reason` label of copilot_exporter_dropped_values_total; `example` is the
    first such message, for the log (one line per reason and refresh, not one per value).
    """

    reason: str
    count: int
    example: str


class Problems:
    """Tallies what a mapping refused or repaired, so one bad entry costs that entry, not the report."""

    def __init__(self) -> None:
        self._counts: Counter[str] = Counter()
        self._examples: dict[str, str] = {}

    def note(self, reason: str, message: str, count: int = 1) -> None:
        self._counts[reason] += count
        self._examples.setdefault(reason, message)

    def merge(self, problems: tuple[Problem, ...]) -> None:
        for problem in problems:
            self.note(problem.reason, problem.example, problem.count)

    def frozen(self) -> tuple[Problem, ...]:
        return tuple(Problem(reason, count, self._examples[reason]) for reason, count in sorted(self._counts.items()))


# Far above any real report (a large enterprise has a few hundred language/model pairs a day),
# yet it keeps one malformed or hostile record from turning into millions of series and a
# /metrics answer Prometheus gives up on.
MAX_SERIES_PER_FAMILY = 5_000
OTHERS = "others"  # the label value series beyond the cap are folded into
_SURROGATE = re.compile("[\ud800-\udfff]")


def _encodable(value: str) -> str | None:
    """The value with what UTF-8 cannot encode (lone surrogates, which JSON allows) replaced by
    U+FFFD; None when it already encodes."""
    try:
        value.encode("utf-8")
        return None
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", value)


class FamilyBuilder:
    """Collects samples for many families, summing repeated label sets.

    `scope_labels` go first on every sample. A value of None (a field absent or null in the API)
    adds nothing: absent in the API means absent in /metrics, never zero. `problems` collects
    what the mapping dropped or repaired on the way (a label value UTF-8 cannot encode is
    repaired and noted as `label_replaced`); `folded` counts, per family, series folded into
    others by a cardinality cap.

    The cap: a family keeps at most `max_series` label sets. Past it, a family whose values may
    be summed (the catalogue's `additive`) adds the excess to one more series whose labels all
    read `others`; any other family (distinct user counts, info metrics, times) drops it.
    Per-user families (the catalogue's `per_user`) are bounded by the users report instead.
    """

    def __init__(self, scope_labels: Labels = (), max_series: int = MAX_SERIES_PER_FAMILY):
        self._scope_labels = scope_labels
        self._max_series = max_series
        self._values: dict[str, dict[Labels, float]] = {}
        self._folded_keys: dict[str, set[int]] = {}  # hashes: counting folded series, not adds
        self.problems = Problems()
        self.folded: Counter[str] = Counter()

    def add(self, name: str, value: float | None, /, **labels: str) -> None:
        if value is None or isinstance(value, bool):
            return
        if name not in CATALOGUE:
            raise KeyError(f"metric {name} is not in the catalogue")
        samples = self._values.setdefault(name, {})
        key = self._key(name, samples, labels)
        if key is not None:
            samples[key] = samples.get(key, 0) + value

    def set(self, name: str, value: float | None, /, **labels: str) -> None:
        """Like add, but a repeated label set replaces instead of summing (info metrics)."""
        if value is None:
            return
        samples = self._values.setdefault(name, {})
        key = self._key(name, samples, labels)
        if key is not None:
            samples[key] = value

    def _key(self, name: str, samples: dict[Labels, float], labels: dict[str, str]) -> Labels | None:
        """The label set a value goes to: its own, `others` past the cap, or None (dropped)."""
        key = self._scope_labels + tuple((k, self._label(name, k, v)) for k, v in labels.items())
        if key in samples or len(samples) < self._max_series or not labels:
            return key
        info = CATALOGUE.get(name)
        if info is not None and info.per_user:
            return key
        folded = self._folded_keys.setdefault(name, set())
        if hash(key) not in folded:
            folded.add(hash(key))
            self.folded[name] += 1
        if info is not None and not info.additive:
            return None
        return self._scope_labels + tuple((k, OTHERS) for k in labels)

    def _label(self, name: str, key: str, value: str) -> str:
        repaired = _encodable(value)
        if repaired is None:
            return value
        self.problems.note(
            "label_replaced", f"{name}: label {key} is not valid Unicode; unencodable characters replaced: {repaired!r}"
        )
        return repaired

    def build(self) -> tuple[Family, ...]:
        return tuple(Family(name, tuple(samples.items())) for name, samples in self._values.items())


def day_timestamp(day: str) -> float:
    """UTC midnight of a YYYY-MM-DD day, as Unix seconds."""
    date = dt.date.fromisoformat(day)
    return dt.datetime(date.year, date.month, date.day, tzinfo=dt.timezone.utc).timestamp()
