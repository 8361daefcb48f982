"""Reading a secret (a token, a private key) from a file that may not be what it seems.

A mounted secret is a small regular file. A FIFO would block the reader until someone writes to
it, and a device or a huge file would be read without end, so both are refused before reading:
the file is opened without blocking, checked with fstat, and read up to MAX_SECRET_BYTES.
"""

from __future__ import annotations

import os
import stat

# A GitHub token is under 300 bytes and an RSA private key PEM under 4 KiB: 64 KiB is far more
# than any secret file holds.
MAX_SECRET_BYTES = 64 * 1024


class SecretFileError(Exception):
    """The file cannot serve as a secret; the message names the file and why, never its content."""


def read_secret_file(path: str, limit: int = MAX_SECRET_BYTES) -> bytes:
    """The file's bytes; SecretFileError if it is unreadable, not a regular file, or over `limit`."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except OSError as err:
        raise SecretFileError(f"cannot read {path}: {err.strerror or type(err).__name__}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise SecretFileError(f"cannot read {path}: not a regular file ({_kind(mode)})")
        data = b""
        while len(data) <= limit:
            piece = os.read(fd, limit + 1 - len(data))
            if not piece:
                break
            data += piece
        if len(data) > limit:
            raise SecretFileError(f"cannot read {path}: larger than {limit} bytes, too large for a secret")
        return data
    except OSError as err:
        raise SecretFileError(f"cannot read {path}: {err.strerror or type(err).__name__}") from None
    finally:
        os.close(fd)


def _kind(mode: int) -> str:
    for check, name in (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    ):
        if check(mode):
            return name
    return "of an unknown kind"
