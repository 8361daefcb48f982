"""Report files as a stream of records: NDJSON or a JSON array, plain or gzip, memory bounded.

A report can be hundreds of megabytes, so it is never held whole: bytes are decompressed and
split as they arrive, and each record is handed on before the next is read.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Iterator

import requests

from copilot_exporter.errors import PayloadError
from copilot_exporter.github.client import Timeout, timed_out

CHUNK = 256 * 1024
MAX_RECORD = 64 * 1024 * 1024  # a single record larger than this is not a report record


def _gunzip(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Decompress concatenated gzip members as they stream."""
    decompressor = zlib.decompressobj(wbits=31)
    for chunk in chunks:
        while chunk:
            yield decompressor.decompress(chunk)
            if decompressor.eof:
                chunk = decompressor.unused_data
                decompressor = zlib.decompressobj(wbits=31)
            else:
                chunk = b""
    yield decompressor.flush()


def _bytes(response: requests.Response, where: str) -> Iterator[bytes]:
    """The body's bytes, Content-Encoding undone by requests, a gzip file body undone here."""
    try:
        chunks = response.iter_content(CHUNK)
        first = next(chunks, b"")
        rest = (c for part in ([first], chunks) for c in part)
        yield from (_gunzip(rest) if first[:2] == b"\x1f\x8b" else rest)
    except zlib.error as err:
        raise PayloadError(f"{where}: corrupt gzip data ({err})") from None
    except requests.RequestException as err:
        if timed_out(err):
            raise Timeout(f"{where}: the download stalled for longer than the read timeout") from None
        raise PayloadError(f"{where}: the download broke off ({type(err).__name__})") from None


def iter_records(response: requests.Response, where: str) -> Iterator[dict]:
    """Every record of a report file; a line that is not a JSON object is a PayloadError."""
    stream = _bytes(response, where)
    buffer = b""
    for chunk in stream:
        buffer += chunk
        if buffer.lstrip()[:1] == b"[":
            yield from _array_records(buffer, stream, where)
            return
        if buffer.strip():
            break
    line_number = 0
    for chunk in stream if buffer else ():
        buffer += chunk
        *lines, buffer = buffer.split(b"\n")
        for line in lines:
            line_number += 1
            if line.strip():
                yield _record(line, where, line_number)
        if len(buffer) > MAX_RECORD:
            raise PayloadError(f"{where}: line {line_number + 1} is longer than {MAX_RECORD} bytes")
    for line in buffer.split(b"\n"):
        line_number += 1
        if line.strip():
            yield _record(line, where, line_number)


def _record(line: bytes, where: str, line_number: int) -> dict:
    try:
        record = json.loads(line)
    except ValueError:
        raise PayloadError(f"{where}: line {line_number} is not JSON (truncated or malformed)") from None
    if not isinstance(record, dict):
        raise PayloadError(f"{where}: line {line_number} is not a JSON object")
    return record


def _array_records(buffer: bytes, stream: Iterator[bytes], where: str) -> Iterator[dict]:
    """Records of a file holding one JSON array, decoded one element at a time."""
    decoder = json.JSONDecoder()
    text = buffer.decode("utf-8", errors="strict").lstrip()[1:]
    pending = b""
    done = False
    while True:
        text = text.lstrip().removeprefix(",").lstrip()
        if text.startswith("]"):
            return
        try:
            record, end = decoder.raw_decode(text)
        except ValueError:
            if done or len(text) > MAX_RECORD:
                raise PayloadError(f"{where}: the JSON array is truncated or malformed") from None
            chunk = next(stream, None)
            if chunk is None:
                done = True
                continue
            pending += chunk
            try:
                text += pending.decode("utf-8")
                pending = b""
            except UnicodeDecodeError:  # a character split across chunks: wait for the rest
                pass
            continue
        if not isinstance(record, dict):
            raise PayloadError(f"{where}: an element of the JSON array is not an object")
        yield record
        text = text[end:]
