"""Where the token of a request comes from: the config, a file (re-read on rotation), a GitHub App."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from copilot_exporter.config import Credentials


class TokenFile:
    """A token kept in a file (a mounted secret): re-read when the file changes, so rotation needs no restart."""

    def __init__(self, path: str):
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._token = ""

    def __call__(self) -> str:
        stat = os.stat(self._path)
        stamp = (stat.st_mtime, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                with open(self._path, encoding="utf-8") as handle:
                    self._token = handle.read().strip()
                self._stamp = stamp
            return self._token


def token_provider(credentials: Credentials) -> Callable[[], str]:
    if credentials.token_file:
        return TokenFile(credentials.token_file)
    if credentials.token:
        token = credentials.token
        return lambda: token
    raise ValueError("no credentials")
