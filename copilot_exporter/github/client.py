"""HTTP to GitHub: one session per set of credentials, retries, rate limits, paging, ETags.

Three rules shape this module:
- the token goes only to the configured API host: every redirect hop and `Link` URL elsewhere
  is refused, and report downloads use a separate session that never carries credentials;
- retries are bounded per refresh (`RetryBudget`), so a sick GitHub never causes a retry storm;
- nothing a server sends can make a request grow or wait without end (`limits.py`): every body
  is read here, by `Body`, which undoes Content-Encoding and gzip files itself, a bounded piece
  at a time, and stops past a byte limit or the refresh's deadline; redirects and pages are
  counted, and a page seen twice ends a listing.
"""

from __future__ import annotations

import json
import logging
import math
import random
import re
import socket
import ssl
import threading
import time
import zlib
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from urllib3 import exceptions as urllib3_exceptions
from urllib3.exceptions import ReadTimeoutError

from copilot_exporter import __version__
from copilot_exporter.errors import PayloadError, RefreshError
from copilot_exporter.limits import MAX_RECORD_BYTES, MAX_RESPONSE_BYTES, REFRESH_TIMEOUT, Limits
from copilot_exporter.telemetry import Telemetry

log = logging.getLogger(__name__)

# The REST API version sent by default (`github.api_version`): GitHub's current one; 2022-11-28
# is still served, but only 2026-03-10 drops `rate` from /rate_limit (nothing here reads it).
API_VERSION = "2026-03-10"
USER_AGENT = f"copilot-exporter/{__version__}"
# `[^<>]`, not `[^>]`: a run of `<` must not make the search backtrack (a Link header is up to MBs).
_LINK_NEXT = re.compile(r'<([^<>]*)>\s*;\s*rel="?next"?')
_REDIRECTS = (301, 302, 303, 307, 308)
CHUNK = 256 * 1024  # bytes read, or inflated, at a time: what one piece of a body can cost
MAX_ENCODINGS = 5  # Content-Encodings undone on one answer, as urllib3 allows
# The encodings `Body` undoes. Set explicitly: requests would also offer br and zstd when their
# packages happen to be installed, and decode them unboundedly.
ACCEPT_ENCODING = "gzip, deflate"
_GZIP, _ZLIB, _RAW_DEFLATE = 31, 15, -15  # zlib wbits


UNAUTHORIZED_HINT = (
    "GitHub does not accept the token: it has expired, been revoked or is mistyped; "
    "create a new one and update the configured token"
)


class GitHubError(RefreshError):
    """GitHub answered with an error status."""

    def __init__(self, status: int, route: str, message: str = ""):
        super().__init__(f"GitHub answered {status} on {route}" + (f": {message}" if message else ""))
        self.status = status
        self.route = route
        self.hint = UNAUTHORIZED_HINT if status == 401 else ""  # what to do, refined by the source that knows
        self.sso = False  # a 403 asking for the token to be authorised for SAML single sign-on
        # A source may name the reason better (422 from billing is `billing_problem`).
        self.reason = {401: "unauthorized", 403: "forbidden", 404: "not_found", 422: "disabled"}.get(
            status, "server_error" if status >= 500 else "client_error"
        )


class RateLimited(RefreshError):
    reason = "rate_limited"


class Timeout(RefreshError):
    reason = "timeout"

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


class ConnectionFailed(RefreshError):
    reason = "connection_error"

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


class TooLarge(PayloadError):
    """A body, once decoded, or one record is larger than its limit (max_*_bytes)."""

    reason = "too_large"


class TooManyRedirects(PayloadError):
    reason = "too_many_redirects"


class TooManyPages(PayloadError):
    reason = "too_many_pages"


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
        return decode_json(self.body, route, "body") if self.body else None


def decode_json(data: bytes | str, where: str, what: str) -> Any:
    """Decoded JSON; not JSON, or nested deeper than the decoder can go, is a PayloadError."""
    try:
        return json.loads(data)
    except ValueError as err:
        raise PayloadError(f"{where}: {what} is not JSON ({err})") from None
    except RecursionError:
        raise PayloadError(f"{where}: {what} is JSON nested too deeply") from None


class _ApiSession(requests.Session):
    """A session whose own CA bundle (github.ca_bundle) wins: requests would let REQUESTS_CA_BUNDLE
    or CURL_CA_BUNDLE replace it on every request, while still reading proxies from the environment."""

    def merge_environment_settings(self, url, proxies, stream, verify, cert):
        settings = super().merge_environment_settings(url, proxies, stream, verify, cert)
        if verify is None and self.verify is not True:
            settings["verify"] = self.verify
        return settings


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
        limits: Limits = Limits(),
        budget_share: float = 1.0,
        credential: str = "token",
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
        self.limits = limits
        self.session = _ApiSession()
        self.session.verify = ca_bundle or True
        self.session.headers.update(
            {
                "Accept": "application/vnd.github+json",
                "Accept-Encoding": ACCEPT_ENCODING,
                "X-GitHub-Api-Version": api_version,
                "User-Agent": USER_AGENT,
            }
        )
        # Report downloads: no credentials of any kind, not even from ~/.netrc (trust_env off);
        # proxies are still taken from the environment, per request.
        self.downloads = requests.Session()
        self.downloads.trust_env = False
        self.downloads.verify = ca_bundle or True
        self.downloads.headers.update({"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING})
        # Oldest first; bounded by limits.max_etag_entries and max_etag_bytes.
        self._etags: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._etag_bytes = 0
        self._lock = threading.Lock()
        self._remaining: int | None = None
        self._reset: float = 0.0
        # The share of GitHub's hourly budget (X-RateLimit-Limit) this exporter may spend, and
        # when it spent each request of the last hour (a 304 costs nothing).
        self.budget_share = budget_share
        self.credential = credential  # a name for metrics that reveals no secret
        self._limit: int | None = None
        self._spent: deque[float] = deque()
        self._share_changed = threading.Condition(self._lock)
        self._probing = False  # a request is out to learn the limit
        self._told = False  # an answer came: from then on, no limit told means none to keep within

    def client(self, timeout: float | None = None) -> GitHubClient:
        """A client for one refresh, with its own retry budget, ending `timeout` seconds from now
        (default: limits.refresh_timeout)."""
        timeout = self.limits.refresh_timeout if timeout is None else timeout
        return GitHubClient(self, RetryBudget(self.max_retries * 2), time.monotonic() + timeout)

    # Rate-limit bookkeeping, shared by every refresh using these credentials.
    # GitHub's largest primary budget is 15,000 requests an hour; a reset is a Unix time.
    MAX_RATE_LIMIT = 1_000_000
    MAX_RESET_TIMESTAMP = 2**36  # about the year 4147

    def note_rate_limit(self, headers: requests.structures.CaseInsensitiveDict) -> None:
        limit = headers.get("X-RateLimit-Limit")
        if limit is not None and limit.isdigit() and 0 < int(limit) <= self.MAX_RATE_LIMIT:
            with self._share_changed:
                self._limit = int(limit)
                self._share_changed.notify_all()
        remaining, reset = headers.get("X-RateLimit-Remaining"), headers.get("X-RateLimit-Reset")
        if remaining is None or reset is None:
            return
        try:
            remaining_n, reset_at = int(remaining), float(reset)
        except ValueError:
            return
        # Absurd values (a 400-digit budget, a reset at infinity) are not GitHub's: ignored,
        # never exported nor waited for.
        if not (0 <= remaining_n <= self.MAX_RATE_LIMIT and 0 <= reset_at <= self.MAX_RESET_TIMESTAMP):
            return
        with self._lock:
            self._remaining, self._reset = remaining_n, reset_at
        self._telemetry.set_rate_limit(id(self), remaining_n, reset_at)

    def wait_for_budget(self, deadline: float = float("inf")) -> None:
        """Before a request: when the primary budget is spent, wait for its reset instead of calling."""
        with self._lock:
            remaining, reset = self._remaining, self._reset
        wait = reset - time.time()
        if remaining != 0 or wait <= 0:
            return
        self.sleep_or_give_up(wait + 1, "primary rate limit spent", deadline)
        with self._lock:
            if self._reset == reset:
                self._remaining = None  # the window has reset; the next answer tells the new budget

    # The request budget: at most budget_share of the hourly limit in any hour. A request takes
    # its place in the hour before it is sent (so concurrent refreshes cannot overshoot), and
    # gives it back when answered 304. Until an answer has told the limit, one request at a time.
    def take_share(self, deadline: float = float("inf")) -> float | None:
        """Before a request: wait until the hour's share has room, and take a place in it; the
        place (a Unix time) to give back with `settle_share`, None while the limit is unknown."""
        while True:
            now = time.time()
            with self._share_changed:
                if self._limit is None:
                    if self._told:
                        return None  # answers carry no limit (rate limiting off): nothing to keep within
                    if not self._probing:
                        self._probing = True
                        return None
                    self._share_changed.wait(min(1.0, max(0.0, deadline - time.monotonic())))
                    if time.monotonic() >= deadline:
                        raise RateLimited("no answer has told GitHub's rate limit before the refresh's deadline")
                    continue
                spent, allowance = self._budget(now)
                if allowance is not None and spent < allowance:
                    self._spent.append(now)
                    return now
                oldest = self._spent[0] if self._spent else now
            self.sleep_or_give_up(
                oldest + 3600 - now + 0.01, "request_budget_share of the hourly limit spent", deadline
            )

    def settle_share(self, place: float | None, status: int | None) -> None:
        """After a request: `status` None when no answer came. A 304 costs nothing: its place is
        given back; the first request (no place taken) is counted once answered."""
        with self._share_changed:
            if place is None:
                self._probing = False
                self._told = self._told or status is not None
                if status is not None and status != 304:
                    self._spent.append(time.time())
            elif status == 304 or status is None:
                try:
                    self._spent.remove(place)
                except ValueError:
                    pass  # already out of the hour's window
            self._share_changed.notify_all()
        self.publish_budget()

    def publish_budget(self, now: float | None = None) -> None:
        """Tell telemetry the requests spent in the last hour and the hourly allowance."""
        with self._lock:
            spent, allowance = self._budget(time.time() if now is None else now)
        self._telemetry.set_request_budget(self.credential, spent, allowance)

    def _budget(self, now: float) -> tuple[int, int | None]:
        """(requests spent in the hour before `now`, the hourly allowance or None while unknown);
        under the lock."""
        while self._spent and self._spent[0] <= now - 3600:
            self._spent.popleft()
        allowance = None if self._limit is None else max(1, int(self._limit * self.budget_share))
        return len(self._spent), allowance

    def budget_left(self, now: float | None = None) -> int | None:
        """Requests this exporter may still send within the hour; None while GitHub has not said
        its limit."""
        with self._lock:
            spent, allowance = self._budget(time.time() if now is None else now)
        return None if allowance is None else allowance - spent

    def sleep_or_give_up(self, seconds: float, why: str, deadline: float = float("inf")) -> None:
        if seconds > self.max_rate_limit_wait:
            raise RateLimited(f"{why}: reset in {seconds:.0f}s, longer than max_rate_limit_wait")
        if time.monotonic() + seconds > deadline:
            raise RateLimited(f"{why}: reset in {seconds:.0f}s, after the refresh's deadline (refresh_timeout)")
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
        """Keeps the body for a conditional request; the oldest entries go past the cache's bounds."""
        limits = self.limits
        with self._lock:
            old = self._etags.pop(url, None)
            if old:
                self._etag_bytes -= len(old[1])
            if len(body) > limits.max_etag_bytes or limits.max_etag_entries < 1:
                return
            self._etags[url] = (etag, body)
            self._etag_bytes += len(body)
            while len(self._etags) > limits.max_etag_entries or self._etag_bytes > limits.max_etag_bytes:
                _, (_, evicted) = self._etags.popitem(last=False)
                self._etag_bytes -= len(evicted)

    def count(self, route: str, code: str) -> None:
        self._telemetry.count_request(route, code)


class GitHubClient:
    """The requests of one refresh, all ending by its deadline (a `time.monotonic()` value).
    Methods raise RefreshError subclasses, never requests' own."""

    def __init__(self, connection: Connection, budget: RetryBudget, deadline: float | None = None):
        self.connection = connection
        self.budget = budget
        self.deadline = time.monotonic() + REFRESH_TIMEOUT if deadline is None else deadline

    def until(self, deadline: float) -> GitHubClient:
        """The same client (connection and retry budget) with another deadline."""
        return GitHubClient(self.connection, self.budget, deadline)

    def _timeout(self) -> tuple[float, float]:
        """(connect, read) timeouts of the next request, none of them past the deadline."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise Timeout("the refresh did not end within its deadline (refresh_timeout)")
        connect, read = self.connection.timeout
        return min(connect, left), min(read, left)

    def get(
        self,
        path: str,
        route: str,
        params: dict[str, Any] | None = None,
        conditional: bool = False,
        ok: tuple[int, ...] = (200,),
    ) -> Response:
        """GET api_url + path. `route` is the path template used as the metric label."""
        url = requests.Request("GET", self.connection.api_url + path, params=params).prepare().url
        assert url is not None  # a prepared request always has its URL
        return self._get_url(url, route, conditional, ok)

    def get_pages(
        self,
        path: str,
        route: str,
        params: dict[str, Any] | None = None,
        items: Callable[[Any], Any] = lambda body: body,
    ) -> Iterator[Any]:
        """Every page of a paged list, following `Link: rel="next"` to the end; yields decoded bodies.

        `items` finds a page's list in its body: a page listing more than the `per_page` asked is
        refused, so records are bounded by max_pages x per_page whatever the server sends."""
        url = requests.Request("GET", self.connection.api_url + path, params=params).prepare().url
        max_pages = self.connection.limits.max_pages
        seen: set[str] = set()
        while url:
            if url in seen:
                raise PayloadError(f"{route}: the Link header leads back to a page already read")
            if len(seen) >= max_pages:
                raise TooManyPages(f"{route}: more than {max_pages} pages (max_pages)")
            seen.add(url)
            response = self._get_url(url, route, conditional=True, ok=(200,))
            body = response.json(route)
            listed, per_page = items(body), (params or {}).get("per_page")
            if per_page and isinstance(listed, list) and len(listed) > per_page:
                raise PayloadError(f"{route}: {len(listed)} items on a page, {per_page} asked for (per_page)")
            yield body
            url = _next_link(response.headers.get("Link", ""), url)

    def _get_url(self, url: str, route: str, conditional: bool, ok: tuple[int, ...]) -> Response:
        conn = self.connection
        attempt = hops = 0
        while True:
            conn.check_origin(url)  # on every hop: the token goes to the API host only
            conn.wait_for_budget(self.deadline)
            cached = conn.etag_for(url) if conditional else None
            headers = conn.authorization()
            if cached:
                headers["If-None-Match"] = cached[0]
            place, answer = conn.take_share(self.deadline), None
            try:
                timeout = self._timeout()
                answer = exchange(
                    conn.count,
                    route,
                    lambda: conn.session.get(url, headers=headers, timeout=timeout, allow_redirects=False, stream=True),
                    limit=conn.limits.max_response_bytes,
                    deadline=self.deadline,
                )
            except (Timeout, ConnectionFailed) as failure:
                error: RefreshError = failure
            finally:  # whatever happened, the place taken in the hour's share is settled
                if answer is not None:
                    conn.note_rate_limit(answer.headers)
                conn.settle_share(place, None if answer is None else answer.status)
            if answer is not None:
                if answer.status == 304 and cached:
                    return Response(200, cached[1], answer.headers)
                if location := self._redirect(answer.status, answer.headers, url, hops, route):
                    url, hops = location, hops + 1
                    continue
                if answer.status in ok:
                    if conditional and answer.headers.get("ETag"):
                        conn.remember_etag(url, answer.headers["ETag"], answer.body)
                    return answer
                error = self._status_error(answer, route)
                if isinstance(error, RateLimited):
                    continue  # already waited as GitHub asked, and spent the retry budget
            if not _retryable(error) or attempt >= conn.max_retries or not self.budget.take():
                raise error
            attempt += 1
            delay = min(60.0, conn.retry_backoff * 2 ** (attempt - 1)) * random.uniform(0.5, 1.5)
            if time.monotonic() + delay >= self.deadline:
                raise error  # no time left for another try
            log.info("%s; retrying in %.1fs", error, delay)
            if conn.stop.wait(delay):
                raise error

    def _redirect(self, status: int, headers: Any, url: str, hops: int, route: str) -> str | None:
        """Where a redirect answer points, or None for any other answer; past max_redirects hops,
        TooManyRedirects. The one place redirects are followed, for API calls and downloads."""
        if status not in _REDIRECTS or "Location" not in headers:
            return None
        max_redirects = self.connection.limits.max_redirects
        if hops >= max_redirects:
            raise TooManyRedirects(f"{route}: more than {max_redirects} redirects (max_redirects)")
        return urljoin(url, headers["Location"])

    def _status_error(self, answer: Response, route: str) -> RefreshError:
        """The error for a non-OK answer; for a rate limit, waits as GitHub asks and returns RateLimited.

        Both limits answer 403 or 429: the secondary one with Retry-After, the primary one with
        X-RateLimit-Remaining: 0 and the reset time.
        """
        message = _error_message(answer.body)
        limited = answer.status in (403, 429) and (
            "Retry-After" in answer.headers or answer.headers.get("X-RateLimit-Remaining") == "0"
        )
        if not limited:
            error = GitHubError(answer.status, route, message)
            sso_hint = _sso_hint(answer.headers.get("X-GitHub-SSO", "")) if answer.status == 403 else None
            if sso_hint:
                error.hint, error.sso = sso_hint, True
            return error
        try:
            wait = float(answer.headers["Retry-After"])
        except (KeyError, ValueError):
            try:
                wait = float(answer.headers.get("X-RateLimit-Reset") or 0) - time.time() + 1
            except ValueError:
                wait = 0.0  # not a time: the shortest wait below, then the retry budget decides
        if not math.isfinite(wait):
            wait = 0.0
        self._rate_limit_retry(max(wait, 1.0), f"rate limited on {route}")
        return RateLimited(f"{route}: rate limited")

    def _rate_limit_retry(self, wait: float, why: str) -> None:
        # Bounded like other retries: a server answering 429 forever must not loop forever.
        if not self.budget.take():
            raise RateLimited(f"{why}: retry budget spent")
        self.connection.sleep_or_give_up(wait, why, self.deadline)

    def download(self, url: str, route: str) -> Body:
        """Open a signed report link: no credentials, streamed, redirects followed up to
        max_redirects. The caller iterates the file's bytes and closes it."""
        conn = self.connection
        hops = 0
        while True:
            proxies = requests.utils.get_environ_proxies(url)
            timeout = self._timeout()
            raw = open_exchange(
                conn.count,
                route,
                lambda: conn.downloads.get(url, stream=True, timeout=timeout, proxies=proxies, allow_redirects=False),
                what="the download host",
            )
            conn.count(route, str(raw.status_code))
            if raw.status_code == 200:
                return Body(
                    raw,
                    route,
                    limit=conn.limits.max_report_bytes,
                    limit_name="max_report_bytes",
                    deadline=self.deadline,
                    gzip_file=True,
                    broken=PayloadError,
                    max_record_bytes=conn.limits.max_record_bytes,
                )
            raw.close()
            if location := self._redirect(raw.status_code, raw.headers, url, hops, route):
                url, hops = location, hops + 1
                continue
            raise GitHubError(raw.status_code, route, "download refused")


class Body:
    """The bytes of a streamed answer, read and decoded here and nowhere else.

    Content-Encoding (gzip, deflate) and, when `gzip_file`, a gzip file body are inflated at most
    CHUNK bytes at a time: a decompression bomb costs CHUNK bytes of memory, not its size. More
    than `limit` bytes, read or at any stage of decoding, is TooLarge; still reading at
    `deadline` (a `time.monotonic()` value) is Timeout, checked between pieces, so a peer that
    sends a byte at a time cannot keep a request alive. A connection that breaks off mid-body
    raises `broken`. `max_record_bytes` is the limit on one record of the body (`records.py`).
    """

    def __init__(
        self,
        raw: requests.Response,
        route: str,
        *,
        limit: int,
        deadline: float,
        limit_name: str = "max_response_bytes",
        gzip_file: bool = False,
        broken: type[RefreshError] = ConnectionFailed,
        max_record_bytes: int = MAX_RECORD_BYTES,
    ):
        self._raw = raw
        self.route = route
        self.limit = limit
        self.limit_name = limit_name
        self.deadline = deadline
        self.gzip_file = gzip_file
        self.broken = broken
        self.max_record_bytes = max_record_bytes

    def __iter__(self) -> Iterator[bytes]:
        """The decoded bytes, in pieces of at most CHUNK bytes (never empty)."""
        try:
            chunks = self._bounded(self._read())
            for wbits in self._encodings():
                chunks = self._bounded(_inflate(chunks, wbits))
            if self.gzip_file:
                head, chunks = _peek(chunks, 2)
                if head[:2] == b"\x1f\x8b":
                    chunks = self._bounded(_inflate(chunks, _GZIP))
            yield from chunks
        except zlib.error as err:
            raise PayloadError(f"{self.route}: corrupt compressed data ({err})") from None

    def read(self) -> bytes:
        """The whole decoded body (at most `limit` bytes)."""
        return b"".join(self)

    def close(self) -> None:
        self._raw.close()

    def _encodings(self) -> list[int]:
        """The zlib wbits undoing each Content-Encoding, last applied first."""
        header = self._raw.headers.get("Content-Encoding", "")
        names = [name.strip().lower() for name in header.split(",") if name.strip()]
        known = {"gzip": _GZIP, "x-gzip": _GZIP, "deflate": _ZLIB}
        unknown = [name for name in names if name not in known and name != "identity"]
        if unknown:
            raise PayloadError(f"{self.route}: unsupported Content-Encoding {unknown[0][:20]!r}")
        if len(names) > MAX_ENCODINGS:  # each layer holds a decompressor and a piece: bounded
            raise PayloadError(f"{self.route}: {len(names)} Content-Encodings, at most {MAX_ENCODINGS} are undone")
        return [known[name] for name in reversed(names) if name in known]

    def _read(self) -> Iterator[bytes]:
        """The raw bytes as they arrive (read1: whatever is there, not waiting to fill a piece)."""
        stream = self._raw.raw
        try:
            while True:
                self._check_deadline()
                chunk = stream.read1(CHUNK, decode_content=False)
                if not chunk:
                    return
                yield chunk
        except (urllib3_exceptions.HTTPError, requests.RequestException, OSError) as err:
            if isinstance(err, (ReadTimeoutError, TimeoutError)):
                raise Timeout(f"{self.route}: the body stalled for longer than the read timeout") from None
            raise self.broken(f"{self.route}: the body broke off ({type(err).__name__})") from None

    def _bounded(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        total = 0
        for chunk in chunks:
            total += len(chunk)
            if total > self.limit:
                raise TooLarge(f"{self.route}: larger than {self.limit} bytes ({self.limit_name})")
            self._check_deadline()
            yield chunk

    def _check_deadline(self) -> None:
        if time.monotonic() >= self.deadline:
            raise Timeout(f"{self.route}: still reading at the refresh's deadline (refresh_timeout)")


def _inflate(chunks: Iterable[bytes], wbits: int) -> Iterator[bytes]:
    """Decompressed bytes, at most CHUNK at a time; gzip may hold several members in a row.
    `_ZLIB` also reads raw deflate, which some servers send as `deflate`."""
    if wbits == _ZLIB:
        head, chunks = _peek(chunks, 2)
        if not _zlib_header(head):
            wbits = _RAW_DEFLATE
    decompressor = None
    for data in chunks:
        while data:
            if decompressor is None:
                decompressor = zlib.decompressobj(wbits)
            out = decompressor.decompress(data, CHUNK)
            if out:
                yield out
            if decompressor.eof:
                data, decompressor = decompressor.unused_data, None
                if wbits != _GZIP:
                    return  # what follows a deflate stream is not part of the body
            elif len(out) == CHUNK:
                data = decompressor.unconsumed_tail  # more output may wait, even for no more input
                if not data:
                    while out := decompressor.decompress(b"", CHUNK):
                        yield out
            else:
                data = b""
    if decompressor is not None and (rest := decompressor.flush(CHUNK)):
        yield rest


def _zlib_header(data: bytes) -> bool:
    return len(data) >= 2 and data[0] & 0x0F == 8 and ((data[0] << 8) | data[1]) % 31 == 0


def _peek(chunks: Iterable[bytes], size: int) -> tuple[bytes, Iterator[bytes]]:
    """The first `size` bytes (fewer if the stream is shorter), and the whole stream still to read."""
    chunks = iter(chunks)
    head = b""
    for chunk in chunks:
        head += chunk
        if len(head) >= size:
            break

    def whole() -> Iterator[bytes]:
        if head:
            yield head
        yield from chunks

    return head[:size], whole()


def open_exchange(
    count: Callable[[str, str], None], route: str, send: Callable[[], requests.Response], what: str = "GitHub"
) -> requests.Response:
    """Send a request whose answer is streamed (`stream=True`), counted under `route`; requests'
    own errors become RefreshErrors. The caller reads the body through `Body` and closes it.
    Messages name the route and the error type only: never a signed URL, never a header."""
    try:
        raw = send()
    except requests.RequestException as err:
        if timed_out(err):
            count(route, "timeout")
            if isinstance(err, requests.ConnectTimeout):
                raise Timeout(
                    f"{route}: no connection to {_where(err)} within connect_timeout",
                    "a firewall may be dropping the traffic: allow the host, or set HTTPS_PROXY to the proxy to use",
                ) from None
            raise Timeout(f"{route}: {what} did not answer in time") from None
        count(route, "error")
        cause, hint = network_cause(err)
        raise ConnectionFailed(f"{route}: {cause}", hint) from None
    return raw


def exchange(
    count: Callable[[str, str], None],
    route: str,
    send: Callable[[], requests.Response],
    what: str = "GitHub",
    *,
    limit: int = MAX_RESPONSE_BYTES,
    deadline: float | None = None,
) -> Response:
    """One HTTP exchange, its body read whole through `Body` (at most `limit` bytes, by
    `deadline`), counted under `route`; requests' own errors become RefreshErrors. `send` asks for
    a streamed answer (`stream=True`), so a body that stalls or breaks off counts here too."""
    deadline = time.monotonic() + REFRESH_TIMEOUT if deadline is None else deadline
    raw = open_exchange(count, route, send, what)
    try:
        body = Body(raw, route, limit=limit, deadline=deadline).read()
    except Timeout:
        count(route, "timeout")
        raise
    except ConnectionFailed:
        count(route, "error")
        raise
    except RefreshError:
        count(route, str(raw.status_code))
        raise
    finally:
        raw.close()
    count(route, str(raw.status_code))
    return Response(raw.status_code, body, raw.headers)


def network_cause(err: requests.RequestException) -> tuple[str, str]:
    """(what failed, naming the host; what to do) for a request that got no answer.

    Built from the exception types only: their texts can hold the URL, whose query string may
    sign a download link.
    """
    url = err.request.url if err.request is not None and err.request.url else ""
    host, where = urlsplit(url).hostname or "the host", _where(err)
    chain = _causes(err)
    if any(isinstance(e, (requests.exceptions.ProxyError, urllib3_exceptions.ProxyError)) for e in chain):
        proxy = urlsplit(requests.utils.select_proxy(url, requests.utils.get_environ_proxies(url)) or "")
        name = f"{proxy.hostname}:{proxy.port}" if proxy.port else (proxy.hostname or "the proxy")
        inner = next(
            (
                e
                for e in chain
                if isinstance(e, OSError) and e.args and not isinstance(e, (ssl.SSLError, requests.RequestException))
            ),
            None,
        )
        why = _os_reason(inner) if inner is not None else "failed"
        return (
            f"the proxy {name} failed on the way to {where}: {why}",
            "check HTTPS_PROXY / HTTP_PROXY, and NO_PROXY for hosts to reach directly",
        )
    verify = next((e for e in chain if isinstance(e, ssl.SSLCertVerificationError)), None)
    if verify is not None or any(isinstance(e, requests.exceptions.SSLError) for e in chain):
        detail = verify.verify_message if verify is not None and verify.verify_message else "TLS error"
        return (
            f"TLS verification of {where} failed ({detail})",
            "if a proxy or a private CA signs this host's certificate, set github.ca_bundle to a PEM "
            "file of that CA's certificates",
        )
    if any(isinstance(e, (urllib3_exceptions.NameResolutionError, socket.gaierror)) for e in chain):
        return (
            f"cannot resolve {host}",
            "check the host name (github.api_url) and this machine's DNS; behind a proxy, set HTTPS_PROXY",
        )
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return f"connection to {where} refused", "nothing listens there: check github.api_url and any proxy"
    if any(isinstance(e, ConnectionResetError) for e in chain):
        return f"connection to {where} reset", "a proxy or firewall may cut the connection; GitHub may be failing"
    innermost = chain[-1]
    return f"no answer from {where} ({type(innermost).__name__})", ""


def _where(err: requests.RequestException) -> str:
    """host[:port] the failed request was for; never its path or query."""
    parts = urlsplit(err.request.url if err.request is not None and err.request.url else "")
    host = parts.hostname or "the host"
    return f"{host}:{parts.port}" if parts.port else host


def _causes(err: BaseException) -> list[BaseException]:
    """The exception and what it wraps (urllib3's `reason`, arguments, causes), outermost first."""
    found: list[BaseException] = []
    todo: list[object] = [err]
    while todo:
        current = todo.pop(0)
        if not isinstance(current, BaseException) or any(current is seen for seen in found):
            continue
        found.append(current)
        todo += [getattr(current, "reason", None), *current.args, current.__cause__, current.__context__]
    return found


def _os_reason(err: OSError) -> str:
    if isinstance(err, ConnectionRefusedError):
        return "connection refused"
    if isinstance(err, socket.gaierror):
        return "cannot resolve its name"
    text = err.strerror or str(err.args[0] if err.args else type(err).__name__)
    return text if "://" not in text else type(err).__name__


def _sso_hint(header: str) -> str | None:
    """What to do about `X-GitHub-SSO: required; url=...`; the URL only when it carries no query
    (GitHub's holds an authorisation request)."""
    if not header.strip().lower().startswith("required"):
        return None
    url = next((part.strip()[4:] for part in header.split(";") if part.strip().startswith("url=")), "")
    parts = urlsplit(url)
    where = f" at {url}" if parts.scheme == "https" and parts.hostname and not parts.query else ""
    return (
        "the organization uses SAML single sign-on and the token is not authorised for it: "
        f"authorise it{where} (GitHub: Settings, Personal access tokens, Configure SSO)"
    )


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
    except (ValueError, AttributeError, RecursionError):
        return ""
    return str(message)[:200]


def _next_link(header: str, current: str) -> str | None:
    match = _LINK_NEXT.search(header)
    return urljoin(current, match.group(1)) if match else None


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()
