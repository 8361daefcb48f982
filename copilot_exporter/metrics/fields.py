"""Typed reads of API records: absent or null is None, a wrong type is a PayloadError.

GitHub adds fields often and older records lack newer ones, so nothing here is required; but a
value of the wrong type means the payload is not what the API describes, and is refused.

Numbers follow the same rule. Every number these APIs send is a count, a sum or a duration
(none can legitimately be negative), so `number` refuses NaN, Infinity (Python's JSON decoder
accepts both, and turns 1e400 into Infinity), negative values and integers beyond float range
(a 400-digit count), each as a PayloadError naming the report and the field: the refresh fails
and the last good data stays served. Refusing the record rather than dropping the one field is
deliberate: a record with an impossible count was not produced as the API documents, so its
other values (totals and breakdowns of the same activity) cannot be trusted to agree either.
Integers beyond 2**53 are accepted; the exposition prints them as the float they become.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from copilot_exporter.errors import PayloadError

T = TypeVar("T")

# Field kinds: accepted Python types and how an error message names them.
_KINDS: dict[str, tuple[tuple[type, ...], str]] = {
    "number": ((int, float), "a number"),
    "integer": ((int,), "an integer"),
    "boolean": ((bool,), "a boolean"),
    "string": ((str,), "a string"),
    "list": ((list,), "a list"),
    "object": ((dict,), "an object"),
}

# The exact types the JSON decoder gives each kind: the common case, checked with one lookup.
_DECODED: dict[str, frozenset[type]] = {
    kind: frozenset(types) - ({bool} if kind != "boolean" else set()) for kind, (types, _text) in _KINDS.items()
}


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


class Fields:
    """Typed access to the optional fields of one JSON object of a report.

    Every read returns None for an absent or null field and raises PayloadError, naming the
    report and the field's path (`totals_by_ide[0].ide`), when the value has the wrong type.
    """

    __slots__ = ("_data", "_report", "_path")

    def __init__(self, data: object, report: str, path: str = ""):
        if not isinstance(data, dict):
            raise PayloadError(f"{report}: {path or 'record'}: expected an object, got {_show(data)}")
        self._data: dict[str, Any] = data
        self._report = report
        self._path = path

    def _where(self, key: str) -> str:
        return f"{self._path}.{key}" if self._path else key

    def get(self, key: str, kind: str) -> Any:
        value = self._data.get(key)
        if value is None or type(value) in _DECODED[kind]:
            return value
        types, text = _KINDS[kind]
        # bool is a subclass of int: `true` must not pass for the number 1, nor 1 for `true`.
        if not isinstance(value, types) or isinstance(value, bool) != (kind == "boolean"):
            raise self.error(key, text, value)
        return value

    def error(self, key: str, expected: str, value: object) -> PayloadError:
        """The error for a field whose value is not what the API describes."""
        return PayloadError(f"{self._report}: {self._where(key)}: expected {expected}, got {_show(value)}")

    def number(self, key: str) -> float | None:
        """A count, sum or duration: finite, not negative and within float range."""
        value = self.get(key, "number")
        if value is None:
            return None
        if isinstance(value, int) and value > sys.float_info.max:  # float(value) would overflow
            raise PayloadError(
                f"{self._report}: {self._where(key)}: expected a number within float range, "
                f"got an integer of {value.bit_length()} bits"
            )
        if not math.isfinite(value) or value < 0:
            raise self.error(key, "a finite number that is not negative", value)
        return value

    def flag(self, key: str) -> bool | None:
        return self.get(key, "boolean")

    def label(self, key: str) -> str | None:
        """A string for a label value; empty counts as absent (Prometheus drops empty labels)."""
        return self.get(key, "string") or None

    def ident(self, key: str) -> str | None:
        """An id as a label value: GitHub sends some ids as integers, others as strings."""
        value = self._data.get(key)
        if value is None or value == "":
            return None
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            raise self.error(key, "an id (integer or string)", value)
        return str(value)

    def sole_string(self) -> str:
        """The value of the object's only string field: the name of an entry whose name field
        GitHub does not spell uniformly. Zero or several string fields, or an empty one, is a
        PayloadError."""
        strings = [value for value in self._data.values() if isinstance(value, str)]
        if len(strings) != 1 or not strings[0]:
            raise PayloadError(
                f"{self._report}: {self._path or 'record'}: expected exactly one "
                f"non-empty string field (the name), got {_show(strings)}"
            )
        return strings[0]

    def filled(self, prefix: str) -> bool:
        """Whether any field whose name starts with `prefix` holds a non-empty list or object."""
        return any(
            key.startswith(prefix) and isinstance(value, (list, dict)) and len(value) > 0
            for key, value in self._data.items()
        )

    def child(self, key: str) -> Fields | None:
        value = self.get(key, "object")
        return None if value is None else Fields(value, self._report, self._where(key))

    def children(self, key: str) -> Iterator[Fields]:
        """The objects of a list field; nothing when the list is absent or empty."""
        for index, item in enumerate(self.get(key, "list") or ()):
            yield Fields(item, self._report, f"{self._where(key)}[{index}]")

    def each(
        self, key: str, read: Callable[[Fields], T | None], refused: Callable[[PayloadError], None]
    ) -> Iterator[T]:
        """What `read` takes from each entry of a list field, skipping the entries it refuses.

        An entry that is not an object, or that `read` refuses with a PayloadError, is handed to
        `refused` and skipped, so one bad entry costs that entry, not the whole record. A None
        from `read` is skipped silently (nothing to export). The list itself must be a list.
        """
        for index, item in enumerate(self.get(key, "list") or ()):
            try:
                value = read(Fields(item, self._report, f"{self._where(key)}[{index}]"))
            except PayloadError as err:
                refused(err)
                continue
            if value is not None:
                yield value
