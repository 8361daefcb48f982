"""Report files read as a stream over real HTTP: NDJSON, JSON arrays, gzip, broken bodies."""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from copilot_exporter.limits import Limits

from copilot_exporter.errors import PayloadError
from copilot_exporter.github.client import Connection
from copilot_exporter.github.records import iter_records
from copilot_exporter.telemetry import Telemetry

pytestmark = pytest.mark.integration


RECORDS = [{"user_id": i, "user_login": f"user{i}", "note": "é" * (i % 3)} for i in range(500)]
NDJSON = "".join(json.dumps(r) + "\n" for r in RECORDS).encode()


class Files(BaseHTTPRequestHandler):
    bodies: dict[str, tuple[bytes, dict[str, str], int | None]] = {}

    def do_GET(self):  # noqa: N802
        body, headers, length = self.bodies[self.path]
        self.send_response(200)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(length if length is not None else len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


class QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that stops reading a bad body early resets the connection: expected here


@pytest.fixture(scope="module")
def serve():
    server = QuietServer(("127.0.0.1", 0), Files)
    threading.Thread(target=server.serve_forever, daemon=True).start()

    def put(
        path: str, body: bytes, headers: dict | None = None, length: int | None = None, limits: Limits = Limits()
    ) -> list[dict]:
        """The records of `body` served at `path`, downloaded as the exporter downloads a report."""
        Files.bodies[path] = (body, headers or {}, length)
        connection = Connection(
            "http://api.invalid", lambda: "unused", Telemetry(), limits=limits, connect_timeout=5, read_timeout=5
        )
        response = connection.client().download(f"http://127.0.0.1:{server.server_address[1]}{path}", "test")
        try:
            return list(iter_records(response, "test-report"))
        finally:
            response.close()

    yield put
    server.shutdown()


def test_ndjson(serve):
    assert serve("/plain", NDJSON) == RECORDS


def test_ndjson_without_final_newline_and_blank_lines(serve):
    assert serve("/ragged", b"\n" + NDJSON.rstrip(b"\n").replace(b"}\n{", b"}\n\n{", 3)) == RECORDS


def test_content_encoding_gzip(serve):
    assert serve("/encoded", gzip.compress(NDJSON), {"Content-Encoding": "gzip"}) == RECORDS


def test_gzip_file_with_several_members(serve):
    half = len(NDJSON) // 2
    cut = NDJSON.index(b"\n", half) + 1
    body = gzip.compress(NDJSON[:cut]) + gzip.compress(NDJSON[cut:])
    assert serve("/file.ndjson.gz", body, {"Content-Type": "application/gzip"}) == RECORDS


def test_json_array(serve):
    assert serve("/array", json.dumps(RECORDS, indent=2).encode()) == RECORDS


def test_empty_body_has_no_records(serve):
    assert serve("/empty", b"") == [] and serve("/blank", b"\n \n") == []


@pytest.mark.parametrize("body", [NDJSON[:-40], b'{"a": 1}\nnot json\n', b"[1, 2]\n", b'[{"a": 1}, {"b"'])
def test_malformed_or_truncated_bodies_are_payload_errors(serve, body):
    with pytest.raises(PayloadError):
        serve(f"/bad{hash(body)}", body)


def test_body_shorter_than_announced_is_a_payload_error(serve):
    with pytest.raises(PayloadError, match="broke off|not JSON"):
        serve("/short", NDJSON[:1000], length=len(NDJSON))


# A 1-day aggregated file is one flat record on one line, which can be hundreds of kB.
BIG = {
    "day": "2026-11-20",
    "totals_by_language_model": [
        {"language": f"lang{i}", "model": f"model-{i % 40}", "code_generation_activity_count": i} for i in range(7000)
    ],
}
BIG_LINE = json.dumps(BIG, separators=(",", ":")).encode()


@pytest.mark.parametrize(
    "path,body,headers",
    [
        ("/one-day.ndjson", BIG_LINE, {}),
        ("/one-day-final-newline.ndjson", BIG_LINE + b"\n", {}),
        ("/one-day.ndjson.gz", gzip.compress(BIG_LINE + b"\n"), {"Content-Type": "application/gzip"}),
        ("/one-day-encoded.ndjson", gzip.compress(BIG_LINE + b"\n"), {"Content-Encoding": "gzip"}),
    ],
)
def test_a_single_line_of_about_500_kb_is_one_record(serve, path, body, headers):
    assert 400_000 < len(BIG_LINE) < 600_000
    assert serve(path, body, headers) == [BIG]
