"""Tolerant, typed reads of API records: absent or null is None, a wrong type is a PayloadError.

GitHub adds fields often and older records lack newer ones, so nothing here is required; but a
value of the wrong type means the payload is not what the API describes, and is refused.
"""

from __future__ import annotations

from typing import Any

from copilot_exporter.errors import PayloadError


def _fail(where: str, key: str, expected: str, value: Any) -> PayloadError:
    return PayloadError(f"{where}: {key}: expected {expected}, got {value!r:.60}")


def number(record: dict, key: str, where: str) -> float | None:
    value = record.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(where, key, "a number", value)
    return value


def text(record: dict, key: str, where: str) -> str | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise _fail(where, key, "a string", value)
    return value


def flag(record: dict, key: str, where: str) -> bool | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _fail(where, key, "true or false", value)
    return value


def section(record: dict, key: str, where: str) -> dict | None:
    value = record.get(key)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _fail(where, key, "an object", value)
    return value


def entries(record: dict, key: str, where: str) -> list[dict]:
    """A list of objects; absent or null is an empty list."""
    value = record.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise _fail(where, key, "a list of objects", value)
    return value


def record_of(value: Any, where: str) -> dict:
    if not isinstance(value, dict):
        raise PayloadError(f"{where}: expected an object, got {value!r:.60}")
    return value
