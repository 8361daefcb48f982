"""Where the token of a request comes from: the config, a file (re-read on rotation), a GitHub App."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable

from copilot_exporter.config import Credentials
from copilot_exporter.errors import RefreshError
from copilot_exporter.github.client import API_VERSION
from copilot_exporter.limits import Limits
from copilot_exporter.model import ORG, Scope
from copilot_exporter.secret_file import SecretFileError, read_secret_file


class CredentialsError(RefreshError):
    """The token cannot be had: its file is gone, unreadable, or not a token file."""

    reason = "credentials"


class TokenFile:
    """A token kept in a file (a mounted secret): re-read when the file changes, so rotation needs no restart.

    Read as the config check reads it (`read_secret_file`): a FIFO, a device or a file too large
    for a token is refused, never waited on nor read without end.
    """

    def __init__(self, path: str):
        self._path = path
        self._lock = threading.Lock()
        self._stamp: tuple[float, int] | None = None
        self._token = ""

    def __call__(self) -> str:
        try:
            stat = os.stat(self._path)
        except OSError as err:
            raise CredentialsError(
                f"token_file {self._path}: cannot read: {err.strerror or type(err).__name__}"
            ) from None
        stamp = (stat.st_mtime, stat.st_size)
        with self._lock:
            if stamp != self._stamp:
                self._token = self._read()
                self._stamp = stamp
            return self._token

    def _read(self) -> str:
        try:
            token = read_secret_file(self._path).decode("utf-8").strip()
        except SecretFileError as err:
            raise CredentialsError(f"token_file: {err}") from None
        except UnicodeDecodeError:
            raise CredentialsError(f"token_file {self._path}: not UTF-8 text") from None
        if not token or any(c.isspace() or not c.isprintable() for c in token):
            raise CredentialsError(f"token_file {self._path}: must hold only the token")
        return token


def token_provider(
    credentials: Credentials,
    *,
    api_url: str,
    scope: Scope | None = None,
    ca_bundle: str | None = None,
    connect_timeout: float = 10.0,
    read_timeout: float = 60.0,
    count: Callable[[str, str], None] | None = None,
    limits: Limits = Limits(),
    api_version: str = API_VERSION,
) -> Callable[[], str]:
    """The token source for credentials: the configured token, a token file, or a GitHub App.

    A GitHub App without an installation_id gets the installation of `scope`'s organization,
    so its token source serves that organization only: callers keep one per organization.
    """
    if credentials.app is not None:
        from copilot_exporter.github.app import AppTokens

        app = credentials.app
        organization = scope.name if scope is not None and scope.kind == ORG else None
        return AppTokens(
            app,
            api_url,
            organization=organization if app.installation_id is None else None,
            ca_bundle=ca_bundle,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            count=count,
            limits=limits,
            api_version=api_version,
        )
    if credentials.token_file:
        return TokenFile(credentials.token_file)
    if credentials.token:
        token = credentials.token
        return lambda: token
    raise ValueError("no credentials")
