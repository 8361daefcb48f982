"""Report files as a stream of records: NDJSON or a JSON array, plain or gzip, memory bounded.

A report can be gigabytes, so it is never held whole: the download's bytes (decompressed and
bounded by `client.Body`) are split as they arrive, and each record is handed on before the next
is read. No record, and no run of blank space before the first, may be longer than the body's
`max_record_bytes`: past it, TooLarge.
"""

from __future__ import annotations

import codecs
import itertools
import json
import re
from collections.abc import Iterator

from copilot_exporter.errors import PayloadError
from copilot_exporter.github.client import Body, TooLarge, decode_json


_SEPARATOR = re.compile(r"\s*,?\s*")  # between two elements of a JSON array


def _after_separator(text: str, pos: int) -> int:
    match = _SEPARATOR.match(text, pos)
    return match.end() if match else pos  # it always matches, if only the empty text


def iter_records(response: Body, where: str) -> Iterator[dict]:
    """Every record of a report file; a line that is not a JSON object is a PayloadError."""
    limit = response.max_record_bytes
    stream = iter(response)
    buffer = b""
    blank = line_number = 0  # blank space before the first record is counted, not kept
    for chunk in stream:
        start = chunk.lstrip()[:1]
        if start == b"[":
            yield from _array_records(chunk, stream, where, limit)
            return
        if start:
            buffer = chunk
            break
        blank += len(chunk)
        line_number += chunk.count(b"\n")
        if blank > limit:
            raise TooLarge(
                f"{where}: more than {limit} bytes of blank space before the first record (max_record_bytes)"
            )
    # The line being read, in pieces joined once it ends: a long line costs its length once,
    # not once per chunk it spans.
    partial: list[bytes] = []
    size = 0
    for chunk in itertools.chain([buffer], stream) if buffer else ():
        *ended, rest = chunk.split(b"\n")
        if ended:
            ended[0] = b"".join(partial) + ended[0]
            partial, size = [], 0
        for line in ended:
            line_number += 1
            if len(line) > limit:
                raise _too_long(where, line_number, limit)
            if line.strip():
                yield _record(line, where, line_number)
        partial.append(rest)
        size += len(rest)
        if size > limit:
            raise _too_long(where, line_number + 1, limit)
    last = b"".join(partial)
    if last.strip():
        yield _record(last, where, line_number + 1)


def _too_long(where: str, line_number: int, limit: int) -> TooLarge:
    return TooLarge(f"{where}: line {line_number} is longer than {limit} bytes (max_record_bytes)")


def _record(line: bytes, where: str, line_number: int) -> dict:
    record = decode_json(line, where, f"line {line_number}")
    if not isinstance(record, dict):
        raise PayloadError(f"{where}: line {line_number} is not a JSON object")
    return record


def _array_records(buffer: bytes, stream: Iterator[bytes], where: str, limit: int) -> Iterator[dict]:
    """Records of a file holding one JSON array, decoded one element at a time."""
    decoder = json.JSONDecoder()
    utf8 = codecs.getincrementaldecoder("utf-8")()  # a character split across chunks waits for the rest
    try:
        text = utf8.decode(buffer).lstrip()[1:]
    except UnicodeDecodeError:
        raise PayloadError(f"{where}: the JSON array is not UTF-8 text") from None
    done = False
    pos = 0  # where the next element starts: decoded in place, the text trimmed only to read more
    while True:
        pos = _after_separator(text, pos)
        if text.startswith("]", pos):
            return
        try:
            record, pos_after = decoder.raw_decode(text, pos)
        except RecursionError:
            raise PayloadError(f"{where}: an element of the JSON array is nested too deeply") from None
        except ValueError:
            text, pos = text[pos:], 0
            if len(text) > limit:
                raise TooLarge(
                    f"{where}: an element of the JSON array is longer than {limit} bytes (max_record_bytes)"
                ) from None
            if done:
                raise PayloadError(f"{where}: the JSON array is truncated or malformed") from None
            # Read until what is pending doubles (up to the limit): a long element is decoded
            # again a few times, not once per chunk.
            target = min(2 * len(text), limit + 1)
            while not done and (len(text) < target or not text):
                chunk = next(stream, None)
                if chunk is None:
                    done = True
                    break
                try:
                    text += utf8.decode(chunk)
                except UnicodeDecodeError:
                    raise PayloadError(f"{where}: the JSON array is not UTF-8 text") from None
            continue
        if not isinstance(record, dict):
            raise PayloadError(f"{where}: an element of the JSON array is not an object")
        yield record
        pos = pos_after
