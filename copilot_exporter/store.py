"""Immutable snapshots of metric families per (scope, source), and their rendered exposition.

A refresh replaces its snapshot whole; a failed refresh replaces nothing, so the last good data
keeps being served. Scrapes read the rendered text, made once per change. Rendering happens
here, when a snapshot is stored, never at scrape time: a snapshot that cannot be rendered (or
whose text is not UTF-8) is refused, counted in copilot_exporter_render_failures_total, and the
last good one of its scope and source stays.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from dataclasses import dataclass

from copilot_exporter import exposition
from copilot_exporter.model import Family, Scope

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Snapshot:
    families: tuple[Family, ...]
    lines: dict[str, str]  # family name -> its rendered sample lines

    @classmethod
    def of(cls, families: tuple[Family, ...]) -> Snapshot:
        """The families rendered; raises whatever makes them unrenderable (then nothing is stored)."""
        lines: dict[str, str] = {}
        for family in families:  # a name may come twice (organization and team levels)
            if family.samples:
                lines[family.name] = lines.get(family.name, "") + exposition.sample_lines(family)
        for text in lines.values():
            text.encode("utf-8")  # what every scrape does: let it fail here, once, if at all
        return cls(families, lines)


class Store:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: dict[tuple[Scope, str], Snapshot] = {}
        self._rendered: dict[bool, tuple[int, str]] = {}
        self._render_failures: Counter[tuple[Scope, str]] = Counter()
        self.version = 0

    def replace(self, scope: Scope, source: str, families: tuple[Family, ...]) -> bool:
        """Store the families as the scope's and source's snapshot; False (counted, logged, the
        last good snapshot kept) when they cannot be rendered."""
        try:
            snapshot = Snapshot.of(families)  # rendered outside the lock
        except Exception as err:  # a bug or a value nothing upstream caught: never a broken scrape
            log.error(
                "%s source=%s: refreshed data cannot be rendered, serving the previous data: %s: %s",
                scope,
                source,
                type(err).__name__,
                err,
            )
            with self._lock:
                self._render_failures[(scope, source)] += 1
                self.version += 1  # the failure counter is part of the next body
            return False
        with self._lock:
            self._snapshots[(scope, source)] = snapshot
            self.version += 1
        return True

    def render_failures(self) -> Family:
        """copilot_exporter_render_failures_total, per scope and source."""
        with self._lock:
            failures = sorted(self._render_failures.items())
        return Family(
            "copilot_exporter_render_failures_total",
            tuple((scope.labels() + (("source", source),), count) for (scope, source), count in failures),
        )

    def drop(self, scope: Scope, source: str) -> None:
        with self._lock:
            if self._snapshots.pop((scope, source), None) is not None:
                self.version += 1

    def families(self) -> list[Family]:
        with self._lock:
            snapshots = [self._snapshots[key] for key in sorted(self._snapshots)]
        return [family for snapshot in snapshots for family in snapshot.families]

    def render(self, openmetrics: bool) -> tuple[int, str]:
        """(version, exposition of every snapshot) without the trailing `# EOF`."""
        with self._lock:
            version = self.version
            cached = self._rendered.get(openmetrics)
            if cached and cached[0] == version:
                return cached
            snapshots = [self._snapshots[key] for key in sorted(self._snapshots)]
        chunks: dict[str, list[str]] = {}
        for snapshot in snapshots:
            for name, lines in snapshot.lines.items():
                chunks.setdefault(name, []).append(lines)
        text = exposition.render(chunks, openmetrics)
        with self._lock:
            if self.version == version:
                self._rendered[openmetrics] = (version, text)
        return version, text
