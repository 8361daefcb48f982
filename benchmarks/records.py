"""Reading report files: records of NDJSON and of a JSON array, long and short, from a body
that arrives in pieces (16 KiB for the long records, 256 KiB for the short ones), as
`github.records.iter_records` reads a download.

    python benchmarks/records.py
"""

from __future__ import annotations

import json
import time

from common import machine, median

from copilot_exporter.github.records import iter_records


class Pieces:
    """A body as `iter_records` reads it: its bytes in pieces, and the record limit."""

    max_record_bytes = 64 * 1024 * 1024

    def __init__(self, data: bytes, piece: int):
        self.data, self.piece = data, piece

    def __iter__(self):
        for start in range(0, len(self.data), self.piece):
            yield self.data[start : start + self.piece]


def main() -> None:
    print(f"machine: {machine()}\n")
    long = json.dumps({"text": "a" * 15_000_000}).encode()
    short = [json.dumps({"user_id": index, "text": "b" * 180}) for index in range(300_000)]
    cases = {
        "NDJSON, one 15 MB record": (long + b"\n", 16 * 1024),
        "array, one 15 MB record": (b"[" + long + b"]", 16 * 1024),
        "NDJSON, 300,000 records of 200 B": ("\n".join(short).encode(), 256 * 1024),
        "array, 300,000 records of 200 B": (("[" + ",".join(short) + "]").encode(), 256 * 1024),
    }
    for name, (data, piece) in cases.items():
        times = []
        for _run in range(3):
            started = time.perf_counter()
            count = sum(1 for _record in iter_records(Pieces(data, piece), "bench"))  # type: ignore[arg-type]  # Pieces stands in for client.Body
            times.append(time.perf_counter() - started)
        print(f"{name:36} {median(times):6.2f} s (median of 3; {count:,} records)")


if __name__ == "__main__":
    main()
