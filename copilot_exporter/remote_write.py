"""Prometheus remote-write 1.0: samples with timestamps sent to Prometheus, Mimir, Thanos Receive,
VictoriaMetrics and other receivers.

Encoding: a protobuf `prometheus.WriteRequest` (`timeseries` of sorted `labels` and `samples` in
time order), snappy block compression, POSTed with `Content-Type: application/x-protobuf`,
`Content-Encoding: snappy` and `X-Prometheus-Remote-Write-Version: 0.1.0`. The message types are
built at import from descriptors (the `.proto` text is in `PROTO` below) with the `protobuf`
library, and snappy comes from `cramjam`: both are well-kept libraries, in the optional
`remote-write` extra because only this module needs them.

Sending: samples are buffered and sent in batches of `batch_size`, one at a time, so the order
they were given in (each series in time order) is the order the receiver sees. A batch is retried
with doubling backoff on 429 (honouring `Retry-After`), on 5xx and on connection errors, at most
`max_retries` times. A 4xx other than 429 is never retried, nor a failed TLS handshake. A refusal whose message says the
samples are too old, out of bounds or out of order (Prometheus answers 500 "too old sample" past
its out-of-order window, 400 "out of bounds" without one) is permanent too, but the caller goes
on with the later batches: the refused days are collected and reported together.

Secrets: the session carries only the credentials given for the receiver; none of them, nor any
extra header's value, appears in a message or a `repr`.
"""

from __future__ import annotations

import argparse
import os
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import requests
import urllib3

from copilot_exporter import __version__
from copilot_exporter.config import parse_duration
from copilot_exporter.secret_file import SecretFileError, read_secret_file

try:
    import cramjam
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory  # type: ignore[import-untyped]

    INSTALLED = True
except ImportError:  # pragma: no cover - exercised only without the extra
    INSTALLED = False

EXTRA = "install the remote-write extra (in the clone: pip install -c constraints.txt '.[remote-write]')"
DEFAULT_BATCH_SIZE = 2000  # samples per request, Prometheus' own max_samples_per_send
DEFAULT_TIMEOUT = 30.0  # seconds per request, Prometheus' remote_timeout
DEFAULT_RETRIES = 5  # retries of one batch on 429, 5xx and connection errors
DEFAULT_BACKOFF = 1.0  # first retry delay in seconds, doubled each retry
MAX_BACKOFF = 60.0  # longest wait between two tries, Retry-After included
MESSAGE_LIMIT = 300  # characters of a receiver's answer quoted in an error
MAX_ANSWER_BYTES = 64 * 1024  # read of a receiver's answer: more than any error message needs
USER_AGENT = f"copilot-exporter/{__version__}"
HEADERS = {
    "Content-Type": "application/x-protobuf",
    "Content-Encoding": "snappy",
    "X-Prometheus-Remote-Write-Version": "0.1.0",
    "User-Agent": USER_AGENT,
}
# Headers the protocol or the auth options own: a --remote-write.header cannot replace them.
RESERVED = frozenset(name.lower() for name in HEADERS) | {"authorization", "content-length", "host"}

PROTO = """\
syntax = "proto3";
package prometheus;
message WriteRequest { repeated TimeSeries timeseries = 1; }  // 3: metadata, not sent
message TimeSeries { repeated Label labels = 1; repeated Sample samples = 2; }
message Label { string name = 1; string value = 2; }
message Sample { double value = 1; int64 timestamp = 2; }  // timestamp in milliseconds
"""


def _message_types():
    """WriteRequest, built from the descriptors of PROTO in a private pool."""
    types = descriptor_pb2.FieldDescriptorProto
    file = descriptor_pb2.FileDescriptorProto(
        name="copilot_exporter/remote_write.proto", package="prometheus", syntax="proto3"
    )

    def message(name: str, *fields: tuple[str, int, int, str | None]) -> None:
        proto = file.message_type.add(name=name)
        for field_name, number, kind, type_name in fields:
            label = types.LABEL_REPEATED if type_name else types.LABEL_OPTIONAL
            proto.field.add(
                name=field_name,
                number=number,
                type=kind,
                label=label,
                **({"type_name": type_name} if type_name else {}),
            )

    message("WriteRequest", ("timeseries", 1, types.TYPE_MESSAGE, ".prometheus.TimeSeries"))
    message(
        "TimeSeries",
        ("labels", 1, types.TYPE_MESSAGE, ".prometheus.Label"),
        ("samples", 2, types.TYPE_MESSAGE, ".prometheus.Sample"),
    )
    message("Label", ("name", 1, types.TYPE_STRING, None), ("value", 2, types.TYPE_STRING, None))
    message("Sample", ("value", 1, types.TYPE_DOUBLE, None), ("timestamp", 2, types.TYPE_INT64, None))
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(file.SerializeToString())
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("prometheus.WriteRequest"))


WriteRequest: Any = _message_types() if INSTALLED else None

Labels = tuple[tuple[str, str], ...]


def available() -> str | None:
    """None when the libraries are installed, else how to install them."""
    return None if INSTALLED else f"remote-write needs protobuf and cramjam: {EXTRA}"


def encode(series: Iterable[tuple[Labels, list[tuple[int, float]]]]) -> bytes:
    """The snappy-compressed WriteRequest of (labels, [(timestamp ms, value)]) pairs."""
    request = WriteRequest()
    for labels, samples in series:
        timeseries = request.timeseries.add()
        for name, text in labels:
            timeseries.labels.add(name=name, value=text)
        for timestamp, value in samples:
            timeseries.samples.add(value=value, timestamp=timestamp)
    return bytes(cramjam.snappy.compress_raw(request.SerializeToString()))


def decode(body: bytes):
    """The WriteRequest of a compressed body (the inverse of `encode`)."""
    request = WriteRequest()
    request.ParseFromString(bytes(cramjam.snappy.decompress_raw(body)))
    return request


# What a refusal means -----------------------------------------------------------------------
OK, RETRY, TOO_OLD, REFUSED = "ok", "retry", "too old", "refused"
# Prometheus: "too old sample", "out of bounds", "out of order sample"; Mimir: "...-out-of-order",
# "...-too-old", "...-too-far-in-past".
_TOO_OLD = re.compile(r"too.old|out.of.bounds|out.of.order|too.far.in.(the.)?past", re.IGNORECASE)


def classify(status: int, message: str) -> str:
    """What to do with an answer: OK, RETRY (429, 5xx), TOO_OLD (samples older than the receiver
    accepts, never retried) or REFUSED (any other 4xx, never retried)."""
    if 200 <= status < 300:
        return OK
    if status != 429 and status >= 400 and _TOO_OLD.search(message):
        return TOO_OLD
    if status == 429 or status >= 500:
        return RETRY
    return REFUSED


def series_name(labels: Labels) -> str:
    """`name{a="b"}`: a series as an error names it."""
    name = dict(labels).get("__name__", "")
    inner = ",".join(f'{key}="{value}"' for key, value in labels if key != "__name__")
    return f"{name}{{{inner}}}" if inner else name


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT] + "..."


class RemoteWriteError(Exception):
    """A batch the receiver did not accept: `status` (None for a connection failure), its first series."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


# Sending ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Options:
    """Where and how to send: everything `--remote-write.*` sets."""

    url: str
    headers: tuple[tuple[str, str], ...] = field(default=(), repr=False)  # may hold credentials
    bearer_token: str | None = field(default=None, repr=False)
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    ca_file: str | None = None
    batch_size: int = DEFAULT_BATCH_SIZE
    timeout: float = DEFAULT_TIMEOUT
    max_retries: int = DEFAULT_RETRIES
    retry_backoff: float = DEFAULT_BACKOFF


@dataclass
class Refused:
    """Batches refused as older than the receiver accepts."""

    samples: int = 0
    days: set[str] = field(default_factory=set)
    oldest: int | None = None  # milliseconds
    message: str = ""


class RemoteWriter:
    """Buffers samples and sends them in batches, in the order given."""

    def __init__(self, options: Options, sleep: Callable[[float], None] = time.sleep):
        self.options = options
        self.sleep = sleep
        self.session = requests.Session()
        self.session.trust_env = False  # no netrc or proxy credentials from the environment
        self.proxies = requests.utils.get_environ_proxies(options.url)  # HTTPS_PROXY, NO_PROXY honoured
        self.session.headers.update(dict(options.headers))
        self.session.headers.update(HEADERS)
        if options.bearer_token is not None:
            self.session.headers["Authorization"] = f"Bearer {options.bearer_token}"
        if options.basic_auth is not None:
            self.session.auth = options.basic_auth
        self.session.verify = options.ca_file or True
        self.sent = 0  # samples accepted
        self.refused = Refused()
        self._series: dict[Labels, list[tuple[int, float]]] = {}
        self._days: set[str] = set()
        self._count = 0

    def add(self, labels: Labels, timestamp_ms: int, value: float, day: str) -> None:
        """Queue one sample of `day`; a full batch is sent before this returns."""
        self._series.setdefault(labels, []).append((timestamp_ms, value))
        self._days.add(day)
        self._count += 1
        if self._count >= self.options.batch_size:
            self.flush()

    def flush(self) -> None:
        """Send what is queued; raises RemoteWriteError unless accepted or refused as too old."""
        if not self._count:
            return
        series, days, count = list(self._series.items()), self._days, self._count
        self._series, self._days, self._count = {}, set(), 0
        outcome, message = self._post(encode(series), series[0][0])
        if outcome == OK:
            self.sent += count
            return
        self.refused.samples += count
        self.refused.days |= days
        oldest = min(samples[0][0] for _, samples in series)
        self.refused.oldest = oldest if self.refused.oldest is None else min(self.refused.oldest, oldest)
        self.refused.message = self.refused.message or message

    def _post(self, body: bytes, first: Labels) -> tuple[str, str]:
        """(OK or TOO_OLD, the receiver's message) for one batch, after the retries it deserves."""
        delay = min(self.options.retry_backoff, MAX_BACKOFF)
        for attempt in range(self.options.max_retries + 1):
            last = attempt == self.options.max_retries
            try:
                deadline = time.monotonic() + self.options.timeout
                answer = self.session.post(
                    self.options.url, data=body, timeout=self.options.timeout, stream=True, proxies=self.proxies
                )
                message = _message(answer, deadline)
            except requests.exceptions.SSLError:
                raise RemoteWriteError(
                    f"batch starting with {series_name(first)}: TLS handshake failed (is the "
                    "certificate signed by a CA in --remote-write.ca-file or the system's?)"
                ) from None
            except requests.RequestException as error:
                if last:
                    raise RemoteWriteError(
                        f"batch starting with {series_name(first)}: {type(error).__name__} after {attempt + 1} tries"
                    ) from None
                self.sleep(delay)
                delay = min(delay * 2, MAX_BACKOFF)
                continue
            outcome = classify(answer.status_code, message)
            if outcome in (OK, TOO_OLD):
                return outcome, message
            if outcome == REFUSED or last:
                tries = "" if outcome == REFUSED else f" after {attempt + 1} tries"
                raise RemoteWriteError(
                    f"batch starting with {series_name(first)}: HTTP {answer.status_code}"
                    f"{tries}: {message or '(no message)'}",
                    answer.status_code,
                )
            self.sleep(min(max(delay, _retry_after(answer)), MAX_BACKOFF))
            delay = min(delay * 2, MAX_BACKOFF)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self.session.close()


def _message(answer: requests.Response, deadline: float) -> str:
    """The start of the receiver's answer, read up to MAX_ANSWER_BYTES and until `deadline` (a
    monotonic time: the request's timeout is for the whole request, not each read), whatever it sends."""
    read = b""
    try:
        while len(read) < MAX_ANSWER_BYTES and time.monotonic() < deadline:
            piece = answer.raw.read(min(4096, MAX_ANSWER_BYTES - len(read)), decode_content=True)
            if not piece:
                break
            read += piece
    except (OSError, urllib3.exceptions.HTTPError):
        pass  # what came before, if anything: the status says enough
    finally:
        answer.close()
    return _quote(read.decode("utf-8", "replace"))


def _retry_after(answer: requests.Response) -> float:
    try:
        return max(0.0, float(answer.headers.get("Retry-After", 0)))
    except ValueError:
        return 0.0  # an HTTP date: the backoff decides


# Command-line flags -------------------------------------------------------------------------
def add_flags(parser) -> None:
    """The `--remote-write*` flags of `backfill`."""
    parser.add_argument(
        "--remote-write",
        dest="remote_write",
        metavar="URL",
        help="send the history to this remote-write endpoint (e.g. http://prometheus:9090/api/v1/write)",
    )
    parser.add_argument(
        "--remote-write.bearer-token-file",
        dest="rw_bearer_token_file",
        metavar="FILE",
        help="file holding a bearer token for the remote-write endpoint",
    )
    parser.add_argument(
        "--remote-write.basic-auth-user",
        dest="rw_basic_auth_user",
        metavar="USER",
        help="basic auth user for the remote-write endpoint",
    )
    parser.add_argument(
        "--remote-write.basic-auth-password-file",
        dest="rw_basic_auth_password_file",
        metavar="FILE",
        help="file holding the basic auth password",
    )
    parser.add_argument(
        "--remote-write.header",
        dest="rw_headers",
        action="append",
        default=[],
        type=parse_header,
        metavar="NAME=VALUE",
        help="HTTP header sent with every request, repeatable (e.g. X-Scope-OrgID=tenant)",
    )
    parser.add_argument(
        "--remote-write.batch-size",
        dest="rw_batch_size",
        type=_positive,
        default=DEFAULT_BATCH_SIZE,
        metavar="N",
        help=f"samples per request (default {DEFAULT_BATCH_SIZE})",
    )
    parser.add_argument(
        "--remote-write.timeout",
        dest="rw_timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="DURATION",
        help=f"timeout of one request, its answer read included (default {DEFAULT_TIMEOUT:g}s)",
    )
    parser.add_argument(
        "--remote-write.retries",
        dest="rw_retries",
        type=_count,
        default=DEFAULT_RETRIES,
        metavar="N",
        help=f"retries of a batch on 429, 5xx and connection errors (default {DEFAULT_RETRIES})",
    )
    parser.add_argument(
        "--remote-write.retry-backoff",
        dest="rw_backoff",
        type=_seconds,
        default=DEFAULT_BACKOFF,
        metavar="DURATION",
        help=f"first retry delay, doubled each retry (default {DEFAULT_BACKOFF:g}s)",
    )
    parser.add_argument(
        "--remote-write.ca-file",
        dest="rw_ca_file",
        metavar="FILE",
        help="PEM CA bundle to verify the endpoint's certificate (default: the system's)",
    )


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def parse_header(text: str) -> tuple[str, str]:
    """NAME=VALUE, an extra header for the receiver (its value is never printed)."""
    name, equals, value = text.partition("=")
    if not equals or not _HEADER_NAME.fullmatch(name) or "\n" in value or "\r" in value:
        raise argparse.ArgumentTypeError(f"{name or text[:20]!r}: expected NAME=VALUE with an HTTP header name")
    if name.lower() in RESERVED:
        raise argparse.ArgumentTypeError(f"{name}: set by the protocol or the auth flags, not by a header flag")
    return name, value


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number of at least 1")
    return int(text)


def _count(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number")
    return int(text)


def _seconds(text: str) -> float:
    try:
        seconds = parse_duration(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a duration above zero")
    return seconds


def _secret(path: str, what: str) -> str:
    try:
        value = read_secret_file(path).decode("utf-8").strip()
    except (SecretFileError, UnicodeDecodeError) as error:
        raise ValueError(
            f"{what}: {error}" if isinstance(error, SecretFileError) else f"{what} {path}: not UTF-8 text"
        ) from None
    if not value:
        raise ValueError(f"{what} {path} is empty")
    return value


def options_from(args) -> Options | None:
    """The Options the flags ask for, None without --remote-write; ValueError names a bad flag."""
    if not args.remote_write:
        given = [
            flag
            for flag, value in (
                ("--remote-write.bearer-token-file", args.rw_bearer_token_file),
                ("--remote-write.basic-auth-user", args.rw_basic_auth_user),
                ("--remote-write.basic-auth-password-file", args.rw_basic_auth_password_file),
                ("--remote-write.header", args.rw_headers),
                ("--remote-write.ca-file", args.rw_ca_file),
            )
            if value
        ]
        if given:
            raise ValueError(f"{', '.join(given)} need --remote-write URL")
        return None
    if not re.match(r"https?://[^/]", args.remote_write):
        raise ValueError(f"--remote-write {args.remote_write!r}: expected an http:// or https:// URL")
    if args.rw_bearer_token_file and args.rw_basic_auth_user:
        raise ValueError("--remote-write.bearer-token-file and --remote-write.basic-auth-user exclude each other")
    if bool(args.rw_basic_auth_user) != bool(args.rw_basic_auth_password_file):
        raise ValueError("--remote-write.basic-auth-user and --remote-write.basic-auth-password-file go together")
    names = [name.lower() for name, _ in args.rw_headers]
    if len(set(names)) != len(names):
        raise ValueError("a --remote-write.header name is given twice")
    if args.rw_ca_file and not os.path.isfile(args.rw_ca_file):
        raise ValueError(f"--remote-write.ca-file {args.rw_ca_file}: no such file")
    token = (
        _secret(args.rw_bearer_token_file, "--remote-write.bearer-token-file") if args.rw_bearer_token_file else None
    )
    auth = (
        (args.rw_basic_auth_user, _secret(args.rw_basic_auth_password_file, "--remote-write.basic-auth-password-file"))
        if args.rw_basic_auth_user
        else None
    )
    return Options(
        args.remote_write,
        tuple(args.rw_headers),
        token,
        auth,
        args.rw_ca_file,
        args.rw_batch_size,
        float(args.rw_timeout),
        args.rw_retries,
        args.rw_backoff,
    )
