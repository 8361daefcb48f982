"""Immutable snapshots of metric families per (scope, source), and their rendered exposition.

A refresh replaces its snapshot whole; a failed refresh replaces nothing, so the last good data
keeps being served. Scrapes read the rendered text, made once per change.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

from copilot_exporter import exposition
from copilot_exporter.model import Family, Scope


@dataclass(frozen=True)
class Snapshot:
    families: tuple[Family, ...]
    lines: dict[str, str]  # family name -> its rendered sample lines

    @classmethod
    def of(cls, families: tuple[Family, ...]) -> Snapshot:
        lines: dict[str, str] = {}
        for family in families:  # a name may come twice (organization and team levels)
            if family.samples:
                lines[family.name] = lines.get(family.name, "") + exposition.sample_lines(family)
        return cls(families, lines)


class Store:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._snapshots: dict[tuple[Scope, str], Snapshot] = {}
        self._rendered: dict[bool, tuple[int, str]] = {}
        self.version = 0

    def replace(self, scope: Scope, source: str, families: tuple[Family, ...]) -> None:
        snapshot = Snapshot.of(families)  # rendered outside the lock
        with self._lock:
            self._snapshots[(scope, source)] = snapshot
            self.version += 1

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
