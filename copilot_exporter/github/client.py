"""HTTP to GitHub: one session per set of credentials, retries, rate limits, paging, ETags.

Two rules shape this module:
- the token goes only to the configured API host: redirects and `Link` URLs elsewhere are
  refused, and report downloads use a separate session that never carries credentials;
- retries are bounded per refresh (`RetryBudget`), so a sick GitHub never causes a retry storm.
"""

from __future__ import annotations

import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from urllib3.exceptions import ReadTimeoutError

from copilot_exporter import __version__
from copilot_exporter.errors import PayloadError, RefreshError
from copilot_exporter.telemetry import Telemetry

log = logging.getLogger(__name__)

# The REST API version sent by default (`github.api_version`): GitHub's current one; 2022-11-28
# is still served, but only 2026-03-10 drops `rate` from /rate_limit (nothing here reads it).
API_VERSION = "2026-03-10"
USER_AGENT = f"copilot-exporter/{__version__}"
_LINK_NEXT = re.compile(r'<([^>]+)>\s*;\s*rel="?next"?')


class GitHubError(RefreshError):
    """GitHub answered with an error status."""

    def __init__(self, status: int, route: str, message: str = ""):
        super().__init__(f"GitHub answered {status} on {route}" + (f": {message}" if message else ""))
        self.status = status
        self.route = route
        self.hint = ""  # what the operator can do about it, set by the source that knows
        # A source may name the reason better (422 from billing is `billing_problem`).
        self.reason = {401: "unauthorized", 403: "forbidden", 404: "not_found", 422: "disabled"}.get(
            status, "server_error" if status >= 500 else "client_error"
        )


class RateLimited(RefreshError):
    reason = "rate_limited"


class Timeout(RefreshError):
    reason = "timeout"


class ConnectionFailed(RefreshError):
    reason = "connection_error"


@dataclass
class RetryBudget:
    """Retries left for one refresh of one scope and source (shared by its concurrent requests)."""

    left: int
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self) -> bool:
        with self._lock:
            if self.left <= 0:
                return False
            self.left -= 1
            return True


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: requests.structures.CaseInsensitiveDict

    def json(self, route: str) -> Any:
        try:
            return json.loads(self.body) if self.body else None
        except ValueError as err:
            raise PayloadError(f"{route}: body is not JSON ({err})") from None


class Connection:
    """What the requests of one set of credentials share: session, ETag cache, rate-limit state."""

    def __init__(
        self,
        api_url: str,
        token: Callable[[], str],
        telemetry: Telemetry,
        *,
        ca_bundle: str | None = None,
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        max_retries: int = 3,
        retry_backoff: float = 1.0,
        max_rate_limit_wait: float = 900.0,
        api_version: str = API_VERSION,
        stop: threading.Event | None = None,
    ):
        self.api_url = api_url.rstrip("/")
        self._origin = _origin(self.api_url)
        self._token = token
        self._telemetry = telemetry
        self.timeout = (connect_timeout, read_timeout)
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.max_rate_limit_wait = max_rate_limit_wait
        self.stop = stop or threading.Event()
        self.session = requests.Session()
        self.session.verify = ca_bundle or True
        self.session.headers.update({
            "Accept": "application/vnd.github+json",
            "X-GitHub-Api-Version": api_version,
            "User-Agent": USER_AGENT,
        })
        # Report downloads: no credentials of any kind, not even from ~/.netrc (trust_env off);
        # proxies are still taken from the environment, per request.
        self.downloads = requests.Session()
        self.downloads.trust_env = False
        self.downloads.verify = ca_bundle or True
        self.downloads.headers.update({"User-Agent": USER_AGENT})
        self._etags: dict[str, tuple[str, bytes]] = {}
        self._lock = threading.Lock()
        self._remaining: int | None = None
        self._reset: float = 0.0

    def client(self) -> GitHubClient:
        """A client for one refresh, with its own retry budget."""
        return GitHubClient(self, RetryBudget(self.max_retries * 2))

    # Rate-limit bookkeeping, shared by every refresh using these credentials.
    def note_rate_limit(self, headers: requests.structures.CaseInsensitiveDict) -> None:
        remaining, reset = headers.get("X-RateLimit-Remaining"), headers.get("X-RateLimit-Reset")
        if remaining is None or reset is None:
            return
        try:
            remaining_n, reset_at = int(remaining), float(reset)
        except ValueError:
            return
        with self._lock:
            self._remaining, self._reset = remaining_n, reset_at
        self._telemetry.set_rate_limit(id(self), remaining_n, reset_at)

    def wait_for_budget(self) -> None:
        """Before a request: when the primary budget is spent, wait for its reset instead of calling."""
        with self._lock:
            remaining, reset = self._remaining, self._reset
        wait = reset - time.time()
        if remaining != 0 or wait <= 0:
            return
        self.sleep_or_give_up(wait + 1, "primary rate limit spent")
        with self._lock:
            if self._reset == reset:
                self._remaining = None  # the window has reset; the next answer tells the new budget

    def sleep_or_give_up(self, seconds: float, why: str) -> None:
        if seconds > self.max_rate_limit_wait:
            raise RateLimited(f"{why}: reset in {seconds:.0f}s, longer than max_rate_limit_wait")
        log.warning("GitHub rate limit: %s, waiting %.0fs", why, seconds)
        if self.stop.wait(seconds):
            raise RateLimited(f"{why}: stopped while waiting")

    def check_origin(self, url: str) -> None:
        if _origin(url) != self._origin:
            raise PayloadError(f"refusing to send credentials to {_origin(url)}, not the API host")

    def authorization(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._token()}"}

    def etag_for(self, url: str) -> tuple[str, bytes] | None:
        with self._lock:
            return self._etags.get(url)

    def remember_etag(self, url: str, etag: str, body: bytes) -> None:
        with self._lock:
            self._etags[url] = (etag, body)

    def count(self, route: str, code: str) -> None:
        self._telemetry.count_request(route, code)


class GitHubClient:
    """The requests of one refresh. Methods raise RefreshError subclasses, never requests' own."""

    def __init__(self, connection: Connection, budget: RetryBudget):
        self.connection = connection
        self.budget = budget

    def get(self, path: str, route: str, params: dict[str, Any] | None = None,
            conditional: bool = False, ok: tuple[int, ...] = (200,)) -> Response:
        """GET api_url + path. `route` is the path template used as the metric label."""
        url = requests.Request("GET", self.connection.api_url + path, params=params).prepare().url
        return self._get_url(url, route, conditional, ok)

    def get_pages(self, path: str, route: str, params: dict[str, Any] | None = None,
                  items: Callable[[Any], list] = lambda body: body) -> Iterator[Any]:
        """Every page of a paged list, following `Link: rel="next"` to the end; yields decoded bodies."""
        url = requests.Request("GET", self.connection.api_url + path, params=params).prepare().url
        while url:
            response = self._get_url(url, route, conditional=True, ok=(200,))
            yield response.json(route)
            url = _next_link(response.headers.get("Link", ""), url)

    def _get_url(self, url: str, route: str, conditional: bool, ok: tuple[int, ...]) -> Response:
        conn = self.connection
        conn.check_origin(url)
        attempt = 0
        while True:
            conn.wait_for_budget()
            cached = conn.etag_for(url) if conditional else None
            headers = conn.authorization()
            if cached:
                headers["If-None-Match"] = cached[0]
            try:
                raw = exchange(conn.count, route, lambda: conn.session.get(
                    url, headers=headers, timeout=conn.timeout, allow_redirects=False))
                body = raw.content  # read inside exchange: a stalled or broken body is counted there
            except (Timeout, ConnectionFailed) as failure:
                error: RefreshError = failure
            else:
                conn.note_rate_limit(raw.headers)
                if raw.status_code == 304 and cached:
                    return Response(200, cached[1], raw.headers)
                if raw.status_code in (301, 302, 307, 308) and "Location" in raw.headers:
                    url = urljoin(url, raw.headers["Location"])
                    conn.check_origin(url)
                    continue
                if raw.status_code in ok:
                    if conditional and raw.headers.get("ETag"):
                        conn.remember_etag(url, raw.headers["ETag"], body)
                    return Response(raw.status_code, body, raw.headers)
                error = self._status_error(raw, body, route)
                if isinstance(error, RateLimited):
                    continue  # already waited as GitHub asked, and spent the retry budget
            if not _retryable(error) or attempt >= conn.max_retries or not self.budget.take():
                raise error
            attempt += 1
            delay = min(60.0, conn.retry_backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
            log.info("%s; retrying in %.1fs", error, delay)
            if conn.stop.wait(delay):
                raise error

    def _status_error(self, raw: requests.Response, body: bytes, route: str) -> RefreshError:
        """The error for a non-OK answer; for a rate limit, waits as GitHub asks and returns RateLimited.

        Both limits answer 403 or 429: the secondary one with Retry-After, the primary one with
        X-RateLimit-Remaining: 0 and the reset time.
        """
        message = _error_message(body)
        limited = raw.status_code in (403, 429) and (
            "Retry-After" in raw.headers or raw.headers.get("X-RateLimit-Remaining") == "0"
        )
        if not limited:
            return GitHubError(raw.status_code, route, message)
        try:
            wait = float(raw.headers["Retry-After"])
        except (KeyError, ValueError):
            wait = float(raw.headers.get("X-RateLimit-Reset") or 0) - time.time() + 1
        self._rate_limit_retry(max(wait, 1.0), f"rate limited on {route}")
        return RateLimited(f"{route}: rate limited")

    def _rate_limit_retry(self, wait: float, why: str) -> None:
        # Bounded like other retries: a server answering 429 forever must not loop forever.
        if not self.budget.take():
            raise RateLimited(f"{why}: retry budget spent")
        self.connection.sleep_or_give_up(wait, why)

    def download(self, url: str, route: str) -> requests.Response:
        """Open a signed report link: no credentials, streamed. The caller closes the response."""
        conn = self.connection
        proxies = requests.utils.get_environ_proxies(url)
        raw = exchange(conn.count, route, lambda: conn.downloads.get(
            url, stream=True, timeout=conn.timeout, proxies=proxies), what="the download host")
        if raw.status_code != 200:
            raw.close()
            raise GitHubError(raw.status_code, route, "download refused")
        return raw


def exchange(count: Callable[[str, str], None], route: str, send: Callable[[], requests.Response],
             what: str = "GitHub") -> requests.Response:
    """One HTTP exchange, counted under `route`; requests' own errors become RefreshErrors.

    A body not streamed is read by `send`, so a body that stalls or breaks off counts here too.
    Messages name the route and the error type only: never a signed URL, never a header.
    """
    try:
        raw = send()
    except requests.RequestException as err:
        if timed_out(err):
            count(route, "timeout")
            raise Timeout(f"{route}: {what} did not answer in time") from None
        count(route, "error")
        raise ConnectionFailed(f"{route}: {type(err).__name__}") from None
    count(route, str(raw.status_code))
    return raw


def timed_out(err: requests.RequestException) -> bool:
    """Whether a read timed out: requests raises Timeout when the answer is late, but
    ConnectionError (wrapping urllib3's ReadTimeoutError) when its body stalls."""
    return isinstance(err, requests.Timeout) or any(isinstance(arg, ReadTimeoutError) for arg in err.args)


def _retryable(error: RefreshError) -> bool:
    if isinstance(error, GitHubError):
        return error.status >= 500
    return isinstance(error, (Timeout, ConnectionFailed, RateLimited))


def _error_message(body: bytes) -> str:
    try:
        message = json.loads(body).get("message", "")
    except (ValueError, AttributeError):
        return ""
    return str(message)[:200]


def _next_link(header: str, current: str) -> str | None:
    match = _LINK_NEXT.search(header)
    return urljoin(current, match.group(1)) if match else None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()
