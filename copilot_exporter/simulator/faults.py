"""Fault injection: make matching requests fail the way networks, proxies and GitHub do."""

from __future__ import annotations

import datetime
import itertools
import threading
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from copilot_exporter.simulator.reports import ndjson_chunks, user_record
from copilot_exporter.simulator.world import Scope, World

KINDS = (None, "malformed", "truncated", "reset", "wrong_types", "huge", "filler", "bomb", "drip")

# What an HTML error page from a proxy, cut short, looks like to a JSON or NDJSON parser.
MALFORMED = b'<html><body><h1>502 Bad Gateway</h1></body></html>\n{"day": "2026-01-01", "dail'


# Every way github.com says "no report for this day" (COPILOT-APIS.md §2): status, then body.
NO_REPORT_SHAPES = ("204", "empty_string", "message", "null", "empty_body", "no_links", "404", "502", "503")


@dataclass(frozen=True)
class NoReport:
    """A rule of `Simulator.withhold_report`: None matches any day, scope name or report."""

    shape: str
    day: datetime.date | None
    name: str | None  # lower case
    report: str | None

    def matches(self, name: str, report: str, day: datetime.date) -> bool:
        return (
            (self.day is None or self.day == day)
            and (self.report in (None, report))
            and (self.name is None or self.name == name.lower())
        )


@dataclass(frozen=True, eq=False)
class Fault:
    """What to do instead of the normal answer.

    kind None answers `status` with `body` (bytes, text or a JSON document; default: a
    GitHub-style error). The other kinds answer 200: "malformed" (not JSON), "truncated"
    (Content-Length larger than the bytes sent, then the connection closes), "reset" (TCP reset,
    no response), "wrong_types" (the normal document with wrong field types), "huge" (a valid
    users report of about `size` bytes, streamed). `delay` seconds pass before any of this;
    `headers` are added to the answer. `Fault(status=200, delay=5)` gives the normal answer, late.
    `body_delay` seconds pass between the headers and the body: an answer that starts on time and
    then stalls (`Fault(status=200, body_delay=5)`: the normal answer, its body late).

    Attacks on the client's limits: "filler" answers 200 with `size` bytes of `fill`, streamed;
    "bomb" the same bytes gzip-compressed (about a thousandth of the size on the wire), sent as a
    gzip file, or, with `headers={"Content-Encoding": "gzip"}`, as an encoded body; "drip" the
    normal answer (or `body`) one byte every `interval` seconds, never stalling long enough for a
    read timeout. A redirect loop is `Fault(status=302, body=b"", headers={"Location": path})`
    and a paging loop `Fault(status=200, headers={"Link": '<url>; rel="next"'})`.
    """

    status: int = 500
    body: bytes | str | dict | list | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body_delay: float = 0.0
    kind: str | None = None
    size: int = 50_000_000
    fill: bytes = b" "
    interval: float = 0.5

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; known: {KINDS}")

    @property
    def late_but_normal(self) -> bool:
        return self.kind is None and self.status == 200 and self.body is None


@dataclass(eq=False)
class _Rule:
    server: str
    path_prefix: str
    fault: Fault
    times: int | None


class FaultRules:
    """Thread-safe rules; the first matching rule answers, and counts down its `times`."""

    def __init__(self):
        self._rules: list[_Rule] = []
        self._lock = threading.Lock()

    def add(self, server: str, path_prefix: str, fault: Fault, times: int | None) -> None:
        if server not in ("api", "download"):
            raise ValueError(f"server must be 'api' or 'download', not {server!r}")
        if times is not None and times < 1:
            raise ValueError("times must be at least 1, or None for until cleared")
        with self._lock:
            self._rules.append(_Rule(server, path_prefix, fault, times))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def take(self, server: str, path: str) -> Fault | None:
        with self._lock:
            for rule in self._rules:
                if rule.server == server and path.startswith(rule.path_prefix):
                    if rule.times is not None:
                        rule.times -= 1
                        if rule.times <= 0:
                            self._rules.remove(rule)
                    return rule.fault
        return None


def wrong_types(value: Any, depth: int = 0) -> Any:
    """The same document with wrong types: numbers become strings or objects, booleans
    strings, and arrays below the top level objects. Strings and nulls stay as they are."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value) if value % 2 == 0 else {"value": value}
    if isinstance(value, float):
        return {"value": value}
    if isinstance(value, dict):
        return {key: wrong_types(item, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        items = [wrong_types(item, depth + 1) for item in value]
        return items if depth == 0 else {"items": items}
    return value


def huge_report(world: World, size: int) -> Iterator[bytes]:
    """NDJSON chunks of valid user records until about `size` bytes have been produced."""
    day = world.today - datetime.timedelta(days=2)
    scope = Scope("org", "huge")
    period = {"day": day.isoformat()}
    records = (
        user_record(world, scope, index, activity, period, day)
        for index in itertools.count()
        if (activity := world.activity(index, day)) is not None
    )
    sent = 0
    for chunk in ndjson_chunks(records):
        yield chunk
        sent += len(chunk)
        if sent >= size:
            return


def filler(size: int, fill: bytes, chunk: int = 1 << 20) -> Iterator[bytes]:
    """`size` bytes of `fill` repeated, in chunks of about `chunk` bytes."""
    block = fill * (chunk // len(fill))
    sent = 0
    while sent < size:
        piece = block[: size - sent]
        yield piece
        sent += len(piece)


def bomb(size: int, fill: bytes, member: int = 16 << 20) -> Iterator[bytes]:
    """`size` bytes of `fill`, gzip-compressed: one compressed member of `member` bytes, sent again
    and again (a gzip file may hold many members), so serving it costs the simulator nothing."""
    member -= member % len(fill)  # whole repetitions of `fill` in each member
    compressor = zlib.compressobj(9, zlib.DEFLATED, 31)
    packed = b"".join(compressor.compress(piece) for piece in filler(member, fill)) + compressor.flush()
    for _ in range(-(-size // member)):
        yield packed
