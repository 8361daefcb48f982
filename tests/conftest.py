"""Shared test helpers."""

from __future__ import annotations

import pytest


def family_values(families) -> dict[tuple[str, frozenset], float]:
    """{(metric name, frozenset of label pairs): value} for a sequence of model.Family."""
    return {
        (family.name, frozenset(labels)): value
        for family in families
        for labels, value in family.samples
    }


@pytest.fixture
def values_of():
    return family_values
