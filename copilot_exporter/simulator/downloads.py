"""Signed report links and the storage host that serves them (think S3 presigned URLs).

A link's path names the report content (scope, report, day, content id) and so stays the same
while the content does; its query carries a fresh expiry, nonce and signature on every call.
Parts alternate between three encodings clients must all handle: plain NDJSON, a `.gz` file
(`Content-Type: application/gzip`) and NDJSON sent with `Content-Encoding: gzip`.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import math
import re
import time
import zlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from xml.sax.saxutils import escape

from copilot_exporter.simulator.reports import ReportFile, ndjson_chunks
from copilot_exporter.simulator.transport import NDJSON, Handler, Reply

_PATH = re.compile(
    r"/reports/(?:org|enterprise)/[^/]+/[a-z0-9-]+/[0-9-]+/(?P<content>[0-9a-f]+)"
    r"/part-(?P<part>\d+)\.ndjson(?P<gz>\.gz)?"
)
_nonces = itertools.count(1)


def _suffix(part: int) -> str:
    return ".ndjson.gz" if part % 4 == 1 else ".ndjson"


def _content_encoded(part: int) -> bool:
    return part % 4 == 3


def _signature(secret: bytes, path: str, expires: str, nonce: str) -> str:
    return hmac.new(secret, f"{path}\n{expires}\n{nonce}".encode(), hashlib.sha256).hexdigest()


def signed_links(sim: Any, file: ReportFile) -> list[str]:
    """Fresh signed links to every part of `file`, valid for `sim.link_ttl` seconds."""
    parts = max(1, min(sim.max_links, math.ceil(file.count() / sim.records_per_link)))
    content = sim._register_report(file, parts)
    expires = str(int(time.time() + sim.link_ttl))
    s = file.scope
    links = []
    for part in range(parts):
        path = f"/reports/{s.kind}/{s.name}/{file.report}/{file.day.isoformat()}/{content}/part-{part}{_suffix(part)}"
        nonce = str(next(_nonces))
        signature = _signature(sim._secret, path, expires, nonce)
        links.append(f"{sim.download_url}{path}?expires={expires}&nonce={nonce}&sig={signature}")
    return links


def _s3_error(status: int, code: str, message: str) -> Reply:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message></Error>"
    )
    return Reply(status, body.encode(), {"Content-Type": "application/xml"})


def _gzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    # Level 1: these files can be hundreds of megabytes, and speed matters more than size here.
    compressor = zlib.compressobj(1, zlib.DEFLATED, 31)
    for chunk in chunks:
        if out := compressor.compress(chunk):
            yield out
    yield compressor.flush()


class DownloadHandler(Handler):
    kind = "download"
    server_version = "AmazonS3"

    def respond(self, method: str, path: str, query: dict[str, str], transform: Callable[[Any], Any]) -> Reply:
        sim = self.server.sim
        if self._carries_credentials():
            sim._count_violation()
            return _s3_error(403, "AccessDenied", "Credentials must not be sent to this host")
        if method != "GET":
            return _s3_error(405, "MethodNotAllowed", "The specified method is not allowed")
        match = _PATH.fullmatch(path)
        entry = match and sim._report(match["content"])
        if not entry or match is None:
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        expires, nonce = query.get("expires", ""), query.get("nonce", "")
        expected = _signature(sim._secret, path, expires, nonce)
        if not hmac.compare_digest(expected, query.get("sig", "")) or not expires.isdigit():
            return _s3_error(
                403,
                "SignatureDoesNotMatch",
                "The request signature we calculated does not match the signature you provided.",
            )
        if time.time() >= int(expires):
            return _s3_error(403, "AccessDenied", "Request has expired")
        file, parts = entry
        part = int(match["part"])
        if part >= parts or path.endswith(".gz") != _suffix(part).endswith(".gz"):
            return _s3_error(404, "NoSuchKey", "The specified key does not exist.")
        per_part = math.ceil(file.count() / parts)
        chunks = ndjson_chunks(map(transform, file.records(part * per_part, (part + 1) * per_part)))
        if match["gz"]:
            return Reply(200, _gzip(chunks), {"Content-Type": "application/gzip"})
        if _content_encoded(part):
            return Reply(200, _gzip(chunks), {"Content-Type": NDJSON, "Content-Encoding": "gzip"})
        return Reply(200, chunks, {"Content-Type": NDJSON})

    def _carries_credentials(self) -> bool:
        """Any Authorization or Cookie header, or a GitHub token in any header at all."""
        # Whole-word matches: a short test token must not be found inside "gzip, deflate".
        tokens = [re.compile(rf"(?<![\w-]){re.escape(token)}(?![\w-])") for token in self.server.sim._tokens()]
        return any(
            name.lower() in ("authorization", "proxy-authorization", "cookie")
            or any(token.search(value) for token in tokens)
            for name, value in self.headers.items()
        )
