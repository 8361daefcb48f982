"""Prometheus text format 0.0.4 and OpenMetrics 1.0 rendering of metric families.

Data families are rendered to sample lines once, when a snapshot is stored; a scrape only joins
ready-made bytes. Families of one name coming from several snapshots share one header.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from copilot_exporter.metrics.catalogue import CATALOGUE, COUNTER
from copilot_exporter.model import Family, Labels

TEXT = "text/plain; version=0.0.4; charset=utf-8"
OPENMETRICS = "application/openmetrics-text; version=1.0.0; charset=utf-8"


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


# Integers up to 2**53 are exact as floats, the precision Prometheus stores; a larger one is
# printed as the float it becomes, never as hundreds of digits Prometheus refuses.
EXACT_INTEGER = 2**53


def _number(value: float) -> str:
    """A sample value as Prometheus reads it; an integer beyond float range is an OverflowError."""
    if isinstance(value, int) and abs(value) <= EXACT_INTEGER:
        return str(value)
    value = float(value)
    if math.isfinite(value) and value.is_integer() and abs(value) < 1e15:
        return str(int(value))
    return repr(value).replace("inf", "Inf").replace("nan", "NaN")


def _labels(labels: Labels) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{key}="{_escape(value)}"' for key, value in labels) + "}"


def sample_lines(family: Family) -> str:
    """The sample lines of one family (no header), identical in both formats."""
    name = family.name
    return "".join(f"{name}{_labels(labels)} {_number(value)}\n" for labels, value in family.samples)


def header(name: str, openmetrics: bool) -> str:
    info = CATALOGUE[name]
    if openmetrics and info.type == COUNTER:
        name = name.removesuffix("_total")
    help_text = info.help.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {name} {help_text}\n# TYPE {name} {info.type}\n"


def render(chunks: dict[str, list[str]], openmetrics: bool) -> str:
    """Headers plus the pre-rendered sample lines, grouped by family name in sorted order."""
    return "".join(header(name, openmetrics) + "".join(parts) for name, parts in sorted(chunks.items()))


def render_families(families: Iterable[Family], openmetrics: bool) -> str:
    chunks: dict[str, list[str]] = {}
    for family in families:
        if family.samples:
            chunks.setdefault(family.name, []).append(sample_lines(family))
    return render(chunks, openmetrics)
