"""How far a hostile or broken GitHub, download host or network can make one refresh go.

Each limit is checked in one place: bytes, redirects and pages in the HTTP exchange
(`github/client.py`), records in the record reader (`github/records.py`), time in the refresher
(`refresher.py`, which passes its deadline down to the client). A limit that trips fails that
refresh of that scope and source with its own `reason`; the last good data stays served.

The defaults are far above anything GitHub sends, so only an attack or a fault reaches them.
Each is a top-level config key of the same name.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

KiB, MiB, GiB = 1024, 1024**2, 1024**3

# A report file (one download link), decompressed. The users file of a 300,000-user
# organization is about 1-2 GB of NDJSON; 8 GiB leaves four times that. Memory does not depend
# on it (files are streamed record by record): it bounds the CPU a decompression bomb can spend.
MAX_REPORT_BYTES = 8 * GiB
# One record (NDJSON line or JSON array element). A user's day is a few kilobytes and an
# enterprise's aggregated day, every breakdown included, well under a megabyte. Decoded, a record
# can take some 20 times its size in Python objects, so this also bounds a record's memory.
MAX_RECORD_BYTES = 16 * MiB
# One API answer, decompressed and held whole. The largest, a legacy metrics page of 28 days with
# every editor, model and language of an enterprise, is around a megabyte; seat pages hold 100 seats.
MAX_RESPONSE_BYTES = 16 * MiB
# Redirects followed by one request. Browsers stop at 20, requests at 30; GitHub and its storage
# hosts redirect once, if at all.
MAX_REDIRECTS = 10
# Pages of one paged list. Seats come 100 to a page: 10,000 pages are a million seats.
MAX_PAGES = 10_000
# One refresh of one scope and source, every request, retry and wait included. A refresh reads a
# few API answers and at most a few gigabytes of report files.
REFRESH_TIMEOUT = 600.0
# The ETag cache keeps bodies of answers that may be asked for again. Legacy metrics URLs change
# every day (their `since` moves), so without a bound it would grow by a day's bodies every day.
MAX_ETAG_ENTRIES = 4096
MAX_ETAG_BYTES = 64 * MiB


@dataclass(frozen=True)
class Limits:
    max_report_bytes: int = MAX_REPORT_BYTES
    max_record_bytes: int = MAX_RECORD_BYTES
    max_response_bytes: int = MAX_RESPONSE_BYTES
    max_redirects: int = MAX_REDIRECTS
    max_pages: int = MAX_PAGES
    refresh_timeout: float = REFRESH_TIMEOUT
    max_etag_entries: int = MAX_ETAG_ENTRIES
    max_etag_bytes: int = MAX_ETAG_BYTES


_SIZE = re.compile(r"([0-9]+)\s*(B|KB|MB|GB|KiB|MiB|GiB)?")
_SIZE_UNITS = {None: 1, "B": 1, "KB": 1000, "MB": 1000**2, "GB": 1000**3, "KiB": KiB, "MiB": MiB, "GiB": GiB}


def parse_size(value: int | str) -> int:
    """Bytes in a size: an integer, or a string such as 512KiB, 16MiB, 8GiB, 100MB."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.fullmatch(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(f"{value!r} is not a size (use e.g. 16MiB, 8GiB or a number of bytes)")
    return int(match[1]) * _SIZE_UNITS[match[2]]
