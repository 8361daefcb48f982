"""GitHub App authentication: installation tokens made from the App's private key, kept fresh.

The App signs a short JSON Web Token (JWT) with its private key, exchanges it for an
installation access token (valid one hour), and that token authenticates the API requests.
`AppTokens` is the token source `Connection` asks before each request: it caches the
installation token and renews it ahead of its expiry.

Like the rest of the client, it talks only to the configured API host, and neither the JWT, the
key nor a token ever appears in a log line, an error or a metric.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import requests

from copilot_exporter.config import AppAuth
from copilot_exporter.errors import PayloadError, RefreshError
from copilot_exporter.limits import Limits
from copilot_exporter.secret_file import SecretFileError, read_secret_file
from copilot_exporter.github.client import (
    ACCEPT_ENCODING,
    API_VERSION,
    USER_AGENT,
    GitHubError,
    RateLimited,
    _error_message,
    _origin,
    decode_json,
    exchange,
)

log = logging.getLogger(__name__)

JWT_BACKDATE = 60.0  # `iat` this far in the past: GitHub's clock may be behind ours
JWT_LIFETIME = 9 * 60.0  # `exp` after now; GitHub refuses more than 10 minutes
RENEW_BEFORE = 5 * 60.0  # renew an installation token this long before it expires
MIN_VALIDITY = 10.0  # a failed renewal falls back on the current token only with more than this left
SKEWED_RETRY = 60.0  # a token that looks expired on arrival (clock skew) is kept this long anyway
INSTALLATION_ROUTE = "/orgs/{org}/installation"
ACCESS_TOKEN_ROUTE = "/app/installations/{installation_id}/access_tokens"
INSTALL_EXTRA = "pip install copilot-exporter[app]"


class MissingDependency(RefreshError):
    """PyJWT (with cryptography) is needed for GitHub App credentials and is not installed."""

    reason = "missing_dependency"


class AppKeyError(RefreshError):
    """The App's private key file cannot be read or is not an RSA private key: nothing can be signed."""

    reason = "unauthorized"


class AppTokenError(RefreshError):
    """GitHub refused to look up the installation or to issue its token.

    Not a GitHubError on purpose: sources read a GitHubError as GitHub's answer about their own
    endpoint (a 404 there means "no report that day" or "legacy API gone"), which this is not.
    """

    def __init__(self, status: int, route: str, message: str = "", hint: str = ""):
        super().__init__(f"GitHub answered {status} on {route}" + (f": {message}" if message else ""))
        self.status = status
        self.route = route
        self.hint = hint
        self.reason = GitHubError(status, route).reason  # the same reasons as any other answer


class AppTokens:
    """Installation access tokens of one GitHub App installation, as a thread-safe callable.

    The installation is `app.installation_id`, or, when that is not set, the App's installation
    on `organization`, looked up once (and again when GitHub no longer knows it).
    """

    def __init__(
        self,
        app: AppAuth,
        api_url: str,
        *,
        organization: str | None = None,
        ca_bundle: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        count: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.time,
        limits: Limits = Limits(),
        api_version: str = API_VERSION,
    ):
        if app.installation_id is None and not organization:
            raise ValueError("a GitHub App needs an installation_id, or an organization to look it up for")
        self.app_id = str(app.app_id)
        self.private_key_file = app.private_key_file
        self.organization = organization
        self.api_url = api_url.rstrip("/")
        self._origin = _origin(self.api_url)
        self._configured_installation = app.installation_id
        self._installation_id = app.installation_id
        self._timeout = (connect_timeout, read_timeout)
        self._count = count or (lambda route, code: None)
        self._limits = limits  # the configured max_response_bytes and refresh_timeout bound each exchange
        self._clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._expires_at = 0.0
        self._renew_at = 0.0
        # Its own session: never a ~/.netrc entry (trust_env off; proxies are passed per request).
        self.session = requests.Session()
        self.session.trust_env = False
        self.session.verify = ca_bundle or True
        self.session.headers.update(
            {
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": api_version,
                "Accept-Encoding": ACCEPT_ENCODING,  # what Body undoes, whatever else is installed
                "User-Agent": USER_AGENT,
            }
        )

    def __repr__(self) -> str:
        where = (
            f"installation_id={self._configured_installation}"
            if self._configured_installation
            else f"organization={self.organization!r}"
        )
        return f"AppTokens(app_id={self.app_id!r}, {where})"

    def __call__(self) -> str:
        with self._lock:
            now = self._clock()
            if self._token is not None and now < self._renew_at:
                return self._token
            try:
                self._renew()
            except RefreshError as err:
                # Renewal starts well before expiry: a failed attempt need not fail this refresh.
                if self._token is not None and now < self._expires_at - MIN_VALIDITY:
                    log.warning(
                        "GitHub App %s: renewing the installation token failed (%s: %s); "
                        "the current one is still valid for %.0fs",
                        self.app_id,
                        err.reason,
                        err,
                        self._expires_at - now,
                    )
                    return self._token
                raise
            return self._token  # type: ignore[return-value]  # set by _renew

    # Steps -------------------------------------------------------------------------------------

    def _renew(self) -> None:
        jwt = self._jwt()
        if self._installation_id is None:
            self._installation_id = self._look_up_installation(jwt)
        installation_id = self._installation_id
        route = ACCESS_TOKEN_ROUTE
        try:
            body = self._request(
                "POST", f"/app/installations/{installation_id}/access_tokens", route, jwt, ok=(200, 201)
            )
        except AppTokenError as err:
            if err.status == 404 and self._configured_installation is None:
                self._installation_id = None  # uninstalled or reinstalled: look it up again next time
            if err.status in (401, 404):
                err.hint = self._hint(err.status)
            raise
        token, expires_at = _installation_token(body, route)
        now = self._clock()
        self._token, self._expires_at = token, expires_at
        if expires_at <= now:
            # GitHub's expiry is in our past: this clock is wrong. Use the token (GitHub decides
            # whether it is valid) and ask again later rather than before every request.
            log.warning(
                "GitHub App %s: the new installation token expires %.0fs in the past by this "
                "host's clock; check the clock (NTP)",
                self.app_id,
                now - expires_at,
            )
            self._expires_at = now + SKEWED_RETRY
            self._renew_at = now + SKEWED_RETRY
            return
        # Five minutes before expiry; for a token that lives shorter than ten, at half its life.
        self._renew_at = expires_at - min(RENEW_BEFORE, (expires_at - now) / 2)
        log.debug(
            "GitHub App %s: new installation token for installation %s, expires in %.0fs",
            self.app_id,
            installation_id,
            expires_at - now,
        )

    def _look_up_installation(self, jwt: str) -> int:
        route = INSTALLATION_ROUTE
        try:
            body = self._request(
                "GET", f"/orgs/{quote(self.organization or '', safe='')}/installation", route, jwt, ok=(200,)
            )
        except AppTokenError as err:
            if err.status == 404:
                err.hint = (
                    f"the GitHub App {self.app_id} is not installed on organization "
                    f"{self.organization}: install it, or set app.installation_id"
                )
            elif err.status == 401:
                err.hint = self._hint(401)
            raise
        installation_id = body.get("id") if isinstance(body, dict) else None
        if not isinstance(installation_id, int) or isinstance(installation_id, bool):
            raise PayloadError(f"{route}: no installation id in the answer")
        log.info(
            "GitHub App %s: installation on organization %s is %d", self.app_id, self.organization, installation_id
        )
        return installation_id

    def _hint(self, status: int) -> str:
        if status == 401:
            return (
                f"GitHub refused the App's JSON Web Token: check that app_id {self.app_id} is the "
                f"App's ID or client ID and that {self.private_key_file} holds its current private key"
            )
        return "the installation does not exist (any more): check app.installation_id or reinstall the App"

    def _jwt(self) -> str:
        """A fresh JWT signed with the key as it is in the file now (so a rotated key is picked up)."""
        jwt = _crypto()[0]
        key = _load_key(self.private_key_file)
        now = int(self._clock())
        claims = {"iat": now - int(JWT_BACKDATE), "exp": now + int(JWT_LIFETIME), "iss": self.app_id}
        return jwt.encode(claims, key, algorithm="RS256")

    def _request(self, method: str, path: str, route: str, jwt: str, ok: tuple[int, ...]) -> Any:
        url = self.api_url + path
        if _origin(url) != self._origin:  # cannot happen with a checked api_url; kept as a guard
            raise PayloadError(f"refusing to send credentials to {_origin(url)}, not the API host")
        answer = exchange(
            self._count,
            route,
            lambda: self.session.request(
                method,
                url,
                headers={"Authorization": f"Bearer {jwt}"},
                timeout=self._timeout,
                allow_redirects=False,
                proxies=requests.utils.get_environ_proxies(url),
                stream=True,
            ),
            limit=self._limits.max_response_bytes,
            deadline=time.monotonic() + self._limits.refresh_timeout,
        )
        if answer.status in ok:
            return decode_json(answer.body, route, "body")
        if answer.status in (403, 429) and (
            "Retry-After" in answer.headers or answer.headers.get("X-RateLimit-Remaining") == "0"
        ):
            raise RateLimited(f"{route}: rate limited")
        raise AppTokenError(answer.status, route, _error_message(answer.body))


def _installation_token(body: Any, route: str) -> tuple[str, float]:
    """(token, expiry as a timestamp) from the access token answer."""
    token = body.get("token") if isinstance(body, dict) else None
    expires = body.get("expires_at") if isinstance(body, dict) else None
    if not isinstance(token, str) or not token or any(c.isspace() for c in token):
        raise PayloadError(f"{route}: no token in the answer")
    try:
        moment = dt.datetime.fromisoformat(expires) if isinstance(expires, str) else None
    except ValueError:
        moment = None
    if moment is None:
        raise PayloadError(f"{route}: expires_at is not a timestamp")
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.timezone.utc)
    return token, moment.timestamp()


def _crypto() -> tuple[Any, Any, Any]:
    """PyJWT and cryptography, imported when first needed: they are the optional extra `app`."""
    try:
        import jwt
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa
    except ImportError as err:
        raise MissingDependency(
            f"GitHub App credentials need PyJWT and cryptography ({err.name} is not installed): {INSTALL_EXTRA}"
        ) from None
    return jwt, serialization, rsa


def _load_key(path: str) -> Any:
    """The RSA private key in the file; AppKeyError saying why it cannot sign, never echoing its text."""
    _jwt, serialization, rsa = _crypto()
    try:
        pem = read_secret_file(path)  # a FIFO or a device is refused, not waited on
    except SecretFileError as err:
        raise AppKeyError(f"GitHub App private key: {err}") from None
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except Exception:  # noqa: BLE001 - any parse failure; its text is never echoed
        raise AppKeyError(
            f"GitHub App private key {path}: not a PEM private key without a passphrase "
            "(download a new one from the App's settings)"
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise AppKeyError(f"GitHub App private key {path}: not an RSA key")
    return key


def private_key_problem(path: str) -> str | None:
    """Why the file cannot sign the App's tokens (unreadable, not an RSA private key in PEM, or the
    `app` extra not installed), checked at start-up; None when it can."""
    try:
        _load_key(path)
    except (AppKeyError, MissingDependency) as err:
        return str(err).removeprefix("GitHub App private key ")
    return None
