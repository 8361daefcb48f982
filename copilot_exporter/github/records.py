"""Report files as a stream of records: NDJSON or a JSON array, plain or gzip, memory bounded.

A report can be gigabytes, so it is never held whole: the download's bytes (decompressed and
bounded by `client.Body`) are split as they arrive, and each record is handed on before the next
is read. No record, and no run of blank space before the first, may be longer than the body's
`max_record_bytes`: past it, TooLarge.
"""

from __future__ import annotations

import codecs
import json
from collections.abc import Iterator

from copilot_exporter.errors import PayloadError
from copilot_exporter.github.client import Body, TooLarge, decode_json


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
    for chunk in stream if buffer else ():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            line_number += 1
            if len(line) > limit:
                raise _too_long(where, line_number, limit)
            if line.strip():
                yield _record(line, where, line_number)
        if len(buffer) > limit:
            raise _too_long(where, line_number + 1, limit)
    for line in buffer.split(b"\n"):
        line_number += 1
        if line.strip():
            yield _record(line, where, line_number)


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
    while True:
        text = text.lstrip().removeprefix(",").lstrip()
        if text.startswith("]"):
            return
        try:
            record, end = decoder.raw_decode(text)
        except RecursionError:
            raise PayloadError(f"{where}: an element of the JSON array is nested too deeply") from None
        except ValueError:
            if len(text) > limit:
                raise TooLarge(
                    f"{where}: an element of the JSON array is longer than {limit} bytes (max_record_bytes)"
                ) from None
            if done:
                raise PayloadError(f"{where}: the JSON array is truncated or malformed") from None
            chunk = next(stream, None)
            if chunk is None:
                done = True
                continue
            try:
                text += utf8.decode(chunk)
            except UnicodeDecodeError:
                raise PayloadError(f"{where}: the JSON array is not UTF-8 text") from None
            continue
        if not isinstance(record, dict):
            raise PayloadError(f"{where}: an element of the JSON array is not an object")
        yield record
        text = text[end:]
