"""The configuration file: YAML with `${VAR}` references, checked whole, read into frozen dataclasses.

Validation never stops at the first mistake: every check records a `key.path: what is wrong`
string and reading goes on with a default, so one run of the exporter lists everything to fix.
Only the public entry points raise, with a ConfigError holding all the problems.

Names that end up in URL paths (organizations, enterprises, teams) are checked against GitHub's
own rules, so no configured value can change which endpoint is called.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import json
import os
import re
import ssl
from collections.abc import Collection, Container, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, NamedTuple, TypeVar, overload
from urllib.parse import urlsplit

import yaml

from copilot_exporter.errors import ConfigError
from copilot_exporter.github.client import API_VERSION
from copilot_exporter.limits import Limits, parse_size
from copilot_exporter.model import ENTERPRISE, MAX_SERIES_PER_FAMILY, ORG, Scope
from copilot_exporter.secret_file import SecretFileError, read_secret_file
from copilot_exporter.shards import Shard, parse_shard

DEFAULT_API_URL = "https://api.github.com"
DEFAULT_LISTEN_ADDRESS = ":9452"
SOURCES = ("legacy", "reports", "auto")
PER_USER_MODES = ("off", "login", "hashed")
# The state directory (SQLite database, lock): relative paths are under the working directory.
DEFAULT_STATE_DIR = "copilot-exporter-state"
# Past days of the users and user-teams reports fetched per refresh to fill the 28-day windows:
# a first start asks for at most this many days each refresh, so it never exhausts the rate limit.
FILL_DAYS_PER_REFRESH = 7
SEAT_PLANS = ("business", "enterprise")
# AI credits included per licence and month (GitHub's standard pools, COPILOT-APIS.md §7).
DEFAULT_INCLUDED_AI_CREDITS = {"business": 1900.0, "enterprise": 3900.0}
# How often one of a report's last three days is asked again, in turn: GitHub can change a day
# until it is final, within three full UTC days; unchanged reports are not downloaded again.
REREAD_INTERVAL = 6 * 3600.0
# The share of each credential's hourly GitHub budget the exporter spends at most: the rest is
# left to other tools using the same token.
REQUEST_BUDGET_SHARE = 0.5
_CURRENCY = re.compile(r"[A-Z]{3}")  # an ISO 4217 code

# HTTP server limits (`server:`). A scrape is one short request on a fresh connection, sent at
# once; these bound what clients that never finish one can hold.
# Threads, one per open connection: a few Prometheus servers need a handful, so 512 leaves room
# for many while keeping a flood of connections from exhausting memory and thread limits.
MAX_CONNECTIONS = 512
# A connection that neither sends nor takes a byte for this long is closed (TLS ones too); it is
# also the longest one answer may take to send.
IDLE_TIMEOUT = 30.0  # seconds
# From accepting a connection to the end of its request headers, TLS handshake included: a client
# trickling a byte at a time cannot keep its connection beyond this.
READ_HEADER_TIMEOUT = 10.0  # seconds


@dataclass(frozen=True)
class ServerLimits:
    max_connections: int = MAX_CONNECTIONS
    idle_timeout: float = IDLE_TIMEOUT
    read_header_timeout: float = READ_HEADER_TIMEOUT


@dataclass(frozen=True)
class AppAuth:
    app_id: str
    private_key_file: str
    installation_id: int | None


@dataclass(frozen=True, repr=False)
class Credentials:
    token: str | None = None  # the secret itself: `token`, or the stripped contents of token_file
    token_file: str | None = None  # kept so the auth layer can re-read it when the token rotates
    app: AppAuth | None = None

    def __repr__(self) -> str:
        token = "None" if self.token is None else "<redacted>"
        return f"Credentials(token={token}, token_file={self.token_file!r}, app={self.app!r})"


@dataclass(frozen=True)
class GitHubConfig:
    api_url: str
    credentials: Credentials
    ca_bundle: str | None
    connect_timeout: float
    read_timeout: float
    max_retries: int
    retry_backoff: float
    max_rate_limit_wait: float
    api_version: str = API_VERSION


@dataclass(frozen=True)
class Reports:
    aggregated: bool = True
    users: bool = True
    teams: bool = True
    repositories: bool = False


@dataclass(frozen=True)
class Entry:
    scope: Scope
    teams: tuple[str, ...]
    reports: Reports
    max_repositories: int
    per_user: str  # one of PER_USER_MODES
    seats: bool
    credentials: Credentials | None  # None: use the global github credentials
    billing: bool = False
    billing_credentials: Credentials | None = None  # None: the entry's credentials


class SeatPrice(NamedTuple):
    """The operator's monthly price of one seat: exported as configured, never converted."""

    amount: float
    currency: str


@dataclass(frozen=True)
class Config:
    github: GitHubConfig
    source: str
    refresh_interval: float
    seats_refresh_interval: float
    workers: int
    lookback_days: int
    user_hash_salt: str | None = field(repr=False)  # protects hashed logins: keep it out of logs
    entries: tuple[Entry, ...]
    listen_address: str
    billing_refresh_interval: float = 6 * 3600.0
    seat_prices: Mapping[str, SeatPrice] = field(default_factory=dict)  # plan -> price
    included_ai_credits: Mapping[str, float] = field(
        default_factory=lambda: dict(DEFAULT_INCLUDED_AI_CREDITS)
    )  # plan -> credits per licence
    max_series_per_family: int = MAX_SERIES_PER_FAMILY
    server_limits: ServerLimits = ServerLimits()
    limits: Limits = Limits()  # what GitHub and the network can make a refresh cost
    state_dir: str = DEFAULT_STATE_DIR
    fill_days_per_refresh: int = FILL_DAYS_PER_REFRESH
    reread_interval: float = REREAD_INTERVAL
    shard: Shard | None = None  # None: every entry; else only the entries of this shard
    request_budget_share: float = REQUEST_BUDGET_SHARE

    def own_entries(self) -> tuple[Entry, ...]:
        """The entries this exporter refreshes: all, or those of its shard."""
        return tuple(e for e in self.entries if self.shard is None or self.shard.owns(e.scope))


def mapping_fingerprint(entry: Entry, config: Config) -> str:
    """The settings that shape the families mapped from a scope's reports, as a short hash:
    families kept under another fingerprint are not what this configuration would build."""
    salt = hashlib.sha256((config.user_hash_salt or "").encode()).hexdigest()
    data = [
        str(entry.scope),
        list(entry.teams),
        entry.max_repositories,
        entry.per_user,
        salt,
        config.max_series_per_family,
    ]
    return hashlib.sha256(json.dumps(data).encode()).hexdigest()[:16]


# --- public entry points ----------------------------------------------------------------------


def load_config(path: str | os.PathLike, environ: Mapping[str, str] | None = None) -> Config:
    """Read, interpolate and check a configuration file; raises ConfigError listing every problem."""
    return parse_config(read_yaml(path), environ)


def read_yaml(path: str | os.PathLike) -> Any:
    """A YAML file's data; an unreadable file or bad YAML is a ConfigError naming the file."""
    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as err:
        raise ConfigError([f"{path}: cannot read: {error_reason(err)}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: cannot read: not UTF-8 text"]) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise ConfigError([_yaml_problem(path, err)]) from None
    except RecursionError:
        raise ConfigError([f"{path}: not valid YAML: nested too deeply"]) from None
    return data


def parse_config(data: object, environ: Mapping[str, str] | None = None) -> Config:
    """Check already-parsed YAML data; raises ConfigError listing every problem."""
    problems: list[str] = []
    data = _interpolate(data, "", os.environ if environ is None else environ, problems)
    config = _config(data, problems)
    if problems or config is None:
        raise ConfigError(problems)
    return config


_DURATION = re.compile(
    r"(?:([0-9]+)y)?(?:([0-9]+)w)?(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?(?:([0-9]+)ms)?"
)
_DURATION_UNITS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus-style duration: units y w d h m s ms, largest first, e.g. 1h30m."""
    match = _DURATION.fullmatch(text) if isinstance(text, str) and text else None
    if match is None:
        raise ValueError(f"{_quote(text)} is not a duration (use e.g. 90s, 15m, 1h, 1d, 1h30m)")
    return float(sum(int(n) * unit for n, unit in zip(match.groups(), _DURATION_UNITS) if n))


# --- YAML -------------------------------------------------------------------------------------


# Values a YAML document may stand for once its aliases are expanded. A configuration with a
# thousand organizations is some ten thousand; an alias bomb ("billion laughs") is billions, in
# a few hundred bytes.
MAX_YAML_VALUES = 100_000


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses a key repeated in one mapping (YAML would silently keep the last),
    aliases that expand to more than MAX_YAML_VALUES values, and an alias inside its own anchor."""

    def get_single_node(self) -> yaml.Node | None:
        node = super().get_single_node()
        if node is not None:
            _expanded_size(node, {}, set())
        return node

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: set[tuple[str, str]] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            key = (key_node.tag, key_node.value)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key_node.value!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep)


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int]) -> int:
    """How many values the node stands for with every alias expanded; counted once per node."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    if key in open_nodes:
        raise yaml.composer.ComposerError(None, None, "an alias refers to a value that contains it", node.start_mark)
    size = 1
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        open_nodes.add(key)
        children = (n for pair in node.value for n in pair) if isinstance(node, yaml.MappingNode) else node.value
        for child in children:
            size += _expanded_size(child, sizes, open_nodes)
            if size > MAX_YAML_VALUES:
                raise yaml.composer.ComposerError(
                    None,
                    None,
                    f"its anchors and aliases expand to more than {MAX_YAML_VALUES:,} values",
                    node.start_mark,
                )
        open_nodes.discard(key)
    sizes[key] = size
    return size


def _yaml_problem(path: str | os.PathLike, err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
    return f"{path}: not valid YAML{where}: {getattr(err, 'problem', None) or err}"


# --- ${VAR} interpolation ---------------------------------------------------------------------


class _Unresolved:
    """Stands for a value whose `${VAR}` could not be resolved: already reported, so checks skip it."""

    def __repr__(self) -> str:
        return "<unresolved>"


_UNRESOLVED = _Unresolved()


class _FromEnv(str):
    """Text that came (partly) from the environment, where only strings exist: an integer or
    boolean key may read it as one."""


_REFERENCE = re.compile(r"\$(\$)?\{([^}]*)(\})?")
_VAR_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _interpolate(value: Any, path: str, environ: Mapping[str, str], problems: list[str]) -> Any:
    """The data with `${VAR}` replaced in every string value (never in keys)."""
    if isinstance(value, dict):
        return {k: _interpolate(v, _join(path, str(k)), environ, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_interpolate(v, f"{path}[{i}]", environ, problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "$" not in value:
        return value
    text, errors, substituted = _substitute(value, environ)
    problems.extend(f"{_label(path)}: {error}" for error in errors)
    if errors:
        return _UNRESOLVED
    return _FromEnv(text) if substituted else text


def _substitute(text: str, environ: Mapping[str, str]) -> tuple[str, list[str], bool]:
    """(text with references replaced, what went wrong, whether any variable was used)."""
    errors: list[str] = []
    used = False

    def replace(match: re.Match) -> str:
        nonlocal used
        escaped, name, closed = match.groups()
        if escaped:  # `$${` is a literal `${`; the rest of the match is literal text too
            return match.group(0)[1:]
        if closed is None or not _VAR_NAME.fullmatch(name):
            errors.append(
                f"{_quote(match.group(0))} is not a valid reference (write ${{NAME}}, or $${{ for a literal ${{)"
            )
            return ""
        if name not in environ:
            errors.append(f"environment variable {name} is not set")
            return ""
        used = True
        return environ[name]

    return _REFERENCE.sub(replace, text), errors, used


def _from_env(value: Any, kind: type | tuple[type, ...]) -> Any:
    """A number or boolean spelled `${VAR}` arrives as text: read it as the type the key wants."""
    if not isinstance(value, _FromEnv):
        return value
    kinds = kind if isinstance(kind, tuple) else (kind,)
    text = value.strip()
    if int in kinds and re.fullmatch(r"[+-]?[0-9]+", text):
        return int(text)
    if float in kinds and re.fullmatch(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?", text):
        return float(text)
    if bool in kinds and text.lower() in ("true", "false"):
        return text.lower() == "true"
    return value


# --- typed reading of one mapping -------------------------------------------------------------


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _label(path: str) -> str:
    return path or "top level"


def _quote(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def _type_name(value: object) -> str:
    # bool before int: YAML booleans are Python ints, but never a valid integer setting.
    for kind, name in (
        (bool, "boolean"),
        (int, "integer"),
        (float, "number"),
        (str, "string"),
        (list, "list"),
        (dict, "mapping"),
    ):
        if isinstance(value, kind):
            return name
    return type(value).__name__


def _type_problem(value: object, kind: type | tuple[type, ...], what: str) -> str | None:
    if isinstance(value, kind) and not (isinstance(value, bool) and kind is not bool):
        return None
    return f"must be {what}, got {_type_name(value)}"


def error_reason(err: OSError) -> str:
    return err.strerror or str(err)


_Default = TypeVar("_Default")  # a reader's default: what it returns without a valid value


class Section:
    """One mapping of the configuration. Its readers return a value or the default, recording
    any problem under the mapping's key path; an unresolved `${VAR}` reads as the default
    without a second problem."""

    def __init__(self, data: Mapping[Any, Any], path: str, problems: list[str], allowed: Container[str]):
        self.data, self.path, self.problems = data, path, problems
        for key in data:
            if key not in allowed:
                problems.append(f"{_join(path, str(key))}: unknown key")

    @classmethod
    def of(cls, value: Any, path: str, problems: list[str], allowed: Container[str]) -> Section | None:
        """The mapping as a section; None, recording the problem, when it is not a mapping."""
        if isinstance(value, dict):
            return cls(value, path, problems, allowed)
        if value is not _UNRESOLVED:
            problems.append(f"{_label(path)}: must be a mapping, got {_type_name(value)}")
        return None

    def at(self, key: str) -> str:
        return _join(self.path, key)

    def problem(self, key: str, message: str) -> None:
        self.problems.append(f"{self.at(key)}: {message}")

    def report(self, message: str) -> None:
        """A problem with the section as a whole."""
        self.problems.append(f"{_label(self.path)}: {message}")

    def has(self, key: str) -> bool:
        """Whether the key is set (to anything, even an unresolved `${VAR}`); null counts as unset."""
        return self.data.get(key) is not None

    def blank(self, key: str) -> Section:
        """An empty section at key, so defaults can be read where the mapping is missing."""
        return Section({}, self.at(key), self.problems, ())

    def child(self, key: str, allowed: Container[str]) -> Section | None:
        """The mapping at key; None when unset or not a mapping (recorded)."""
        return Section.of(self.data[key], self.at(key), self.problems, allowed) if self.has(key) else None

    def typed(self, key: str, kind: type | tuple[type, ...], what: str) -> Any:
        """The value at key when set and of the given type, else None (a wrong type is recorded)."""
        value = _from_env(self.data.get(key), kind)
        if value is None or value is _UNRESOLVED:
            return None
        problem = _type_problem(value, kind, what)
        if problem:
            self.problem(key, problem)
            return None
        return value

    @overload
    def text(self, key: str, default: str, *, required: Literal[False] = False) -> str: ...
    @overload
    def text(self, key: str, default: None = None, *, required: bool = False) -> str | None: ...

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        if required and not self.has(key):
            self.problem(key, "required")
            return None
        value = self.typed(key, str, "a string")
        if value is None:
            return default
        if not value.strip():
            self.problem(key, "must not be empty")
            return default
        return str(value)

    def flag(self, key: str, default: bool) -> bool:
        value = self.typed(key, bool, "true or false")
        return default if value is None else value

    def integer(self, key: str, default: _Default, minimum: int, maximum: int | None = None) -> int | _Default:
        value = self.typed(key, int, "an integer")
        if value is None:
            return default
        if value < minimum or (maximum is not None and value > maximum):
            bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
            self.problem(key, f"must be {bounds}, got {value}")
            return default
        return value

    def duration(self, key: str, default: str, minimum: str) -> float:
        # A bare YAML number has no unit: 90 could mean seconds or minutes, so it is refused.
        text = self.typed(key, str, "a duration string like 1h")
        if text is None:
            return parse_duration(default)
        try:
            seconds = parse_duration(text)
        except ValueError as err:
            self.problem(key, str(err))
            return parse_duration(default)
        if seconds < parse_duration(minimum):
            self.problem(key, f"must be at least {minimum}, got {_quote(text)}")
            return parse_duration(default)
        return seconds

    def choice(self, key: str, default: str, allowed: Collection[str]) -> str:
        value = self.text(key)
        if value is None:
            return default
        if value not in allowed:
            self.problem(key, f"{_quote(value)} is not one of {', '.join(allowed)}")
            return default
        return value

    def items(self, key: str) -> list[tuple[str, Any]]:
        """(path, value) of each element of the list at key; none when unset or not a list."""
        values = self.typed(key, list, "a list") or []
        return [(f"{self.at(key)}[{i}]", value) for i, value in enumerate(values)]


# --- checks on single values (pure) -----------------------------------------------------------

_ORG_LOGIN = re.compile(r"[A-Za-z0-9](?:-?[A-Za-z0-9])*")
_SLUG = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]{0,98}[A-Za-z0-9])?")
# GitHub names enterprise teams `ent:<slug>`; a colon is plain text inside a URL path segment.
_ENTERPRISE_TEAM_PREFIX = "ent:"
_HOST_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"{_HOST_LABEL}(?:\.{_HOST_LABEL})*")  # a DNS name or a dotted IPv4 address
_LISTEN = re.compile(r"(?:\[(?P<ipv6>[^\]]*)\]|(?P<host>[^:\[\]]*)):(?P<port>[0-9]{1,5})")


def _org_login_problem(name: str) -> str | None:
    if len(name) <= 39 and _ORG_LOGIN.fullmatch(name):
        return None
    return (
        f"{_quote(name)} is not a valid organization login (letters, digits and single "
        "hyphens, not starting or ending with a hyphen, at most 39 characters)"
    )


def _slug_problem(name: str, what: str, prefix: str = "") -> str | None:
    slug = name[len(prefix) :] if prefix and name.startswith(prefix) else name
    if _SLUG.fullmatch(slug) and ".." not in slug:
        return None
    return (
        f"{_quote(name)} is not a valid {what} (letters, digits, '.', '_' and '-', starting "
        "and ending with a letter or digit, at most 100 characters)"
    )


def _api_url_problem(url: str) -> str | None:
    parts = urlsplit(url)
    if parts.username is not None or parts.password is not None:
        # Never echoed: the user part may hold a password or a token.
        return "must not contain a user name or password (give the token with token, token_file or app)"
    try:
        parts.port  # raises on a port that is not a number in range
    except ValueError:
        parts = parts._replace(netloc="")
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.query
        or parts.fragment
        or any(c.isspace() for c in url)
    ):
        return f"{_quote(url)} must be an http(s) URL with a host, e.g. {DEFAULT_API_URL}"
    path = parts.path.rstrip("/")
    web_host = _web_host_problem(url, parts.hostname.lower(), path)
    if web_host:
        return web_host
    if path and not path.endswith("/api/v3"):
        return (
            f"{_quote(url)} cannot be a GitHub API: its path must be empty (api.github.com, "
            "GHE.com) or end in /api/v3 (GitHub Enterprise Server)"
        )
    return None


def _web_host_problem(url: str, host: str, path: str) -> str | None:
    """GitHub's web hosts answer API paths with HTML: name the API URL meant."""
    if host in ("github.com", "www.github.com"):
        meant = DEFAULT_API_URL
    elif host.endswith(".ghe.com") and not host.startswith("api."):
        meant = f"https://api.{host}"
    elif host == "api.github.com" and path:
        meant = DEFAULT_API_URL
    else:
        return None
    return f"{_quote(url)} is not GitHub's API: use {meant} (GitHub Enterprise Server: https://HOST/api/v3)"


def _listen_address_problem(address: str) -> str | None:
    usage = f'{_quote(address)} must be [host]:port, e.g. ":9452", "127.0.0.1:9452" or "[::1]:9452"'
    if address.isdigit():  # a bare port would listen on every interface: say what was meant
        return f'{_quote(address)} has no colon: write ":{address}" for every interface, or "127.0.0.1:{address}"'
    match = _LISTEN.fullmatch(address)
    if match is None:
        return usage
    port = int(match["port"])
    if not 1 <= port <= 65535:
        return f"port {port} is not between 1 and 65535"
    if match["ipv6"] is not None:
        try:
            ipaddress.IPv6Address(match["ipv6"])
        except ValueError:
            return f"{_quote(match['ipv6'])} is not an IPv6 address"
    elif match["host"] and not _HOST.fullmatch(match["host"]):
        return f"{_quote(match['host'])} is not a host name or IPv4 address"
    return None


def _ca_bundle_problem(path: str) -> str | None:
    """Why the file cannot serve as the CA bundle: not a file, or no PEM certificate in it."""
    if not os.path.isfile(path):
        return f"{path} is not a file"
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(cafile=path)
    except OSError as err:  # ssl.SSLError included
        if isinstance(err, ssl.SSLError):
            return f"{path} holds no PEM certificate (expected -----BEGIN CERTIFICATE----- blocks)"
        return f"cannot read {path}: {error_reason(err)}"
    return None


def _file_problem(path: str) -> str | None:
    """Why the file cannot serve as a secret: unreadable, not a regular file, too large or empty."""
    try:
        if not read_secret_file(path).strip():
            return f"{path} is empty"
    except SecretFileError as err:
        return str(err)
    return None


# --- sections ---------------------------------------------------------------------------------

_TOP_KEYS = (
    "github",
    "source",
    "refresh_interval",
    "seats_refresh_interval",
    "workers",
    "lookback_days",
    "user_hash_salt",
    "organizations",
    "enterprises",
    "server",
    "billing_refresh_interval",
    "seat_prices",
    "included_ai_credits",
    "max_series_per_family",
    "state_dir",
    "fill_days_per_refresh",
    "reread_interval",
    "shard",
    "request_budget_share",
)
_LIMIT_KEYS = (
    "refresh_timeout",
    "max_report_bytes",
    "max_record_bytes",
    "max_response_bytes",
    "max_redirects",
    "max_pages",
    "max_etag_entries",
    "max_etag_bytes",
)
_CREDENTIAL_KEYS = ("token", "token_file", "app")
_GITHUB_KEYS = (
    "api_url",
    *_CREDENTIAL_KEYS,
    "ca_bundle",
    "connect_timeout",
    "read_timeout",
    "max_retries",
    "retry_backoff",
    "max_rate_limit_wait",
    "api_version",
)
_APP_KEYS = ("app_id", "private_key_file", "installation_id")
_ENTRY_KEYS = (
    "name",
    "teams",
    "reports",
    "repositories",
    "max_repositories",
    "per_user",
    "seats",
    "github",
    "billing",
    "billing_github",
)
_REPORT_KEYS = ("aggregated", "users", "teams")
_SERVER_KEYS = ("listen_address", "max_connections", "idle_timeout", "read_header_timeout")


def _config(data: Any, problems: list[str]) -> Config | None:
    if data is None:
        problems.append("top level: the configuration is empty")
        return None
    root = Section.of(data, "", problems, _TOP_KEYS + _LIMIT_KEYS)
    if root is None:
        return None
    # Read in the order of the example file, so problems come out in a familiar order.
    github = _github(root)
    source = root.choice("source", "auto", SOURCES)
    refresh_interval = root.duration("refresh_interval", "1h", minimum="1s")
    seats_refresh_interval = root.duration("seats_refresh_interval", "6h", minimum="1s")
    billing_refresh_interval = root.duration("billing_refresh_interval", "6h", minimum="1s")
    workers = root.integer("workers", 4, minimum=1, maximum=64)
    lookback_days = root.integer("lookback_days", 3, minimum=1, maximum=30)
    salt = root.text("user_hash_salt")
    entries = _all_entries(root, source)
    if not root.has("user_hash_salt") and any(e.per_user == "hashed" for e in entries):
        root.problem("user_hash_salt", "required when an entry sets per_user: hashed")
    if any(e.scope.kind == ENTERPRISE and e.credentials is None for e in entries):
        _require_installation_id(root.data.get("github"), "github", github.credentials, root.problems)
    _require_classic_billing_tokens(root, github.credentials)
    server = root.child("server", _SERVER_KEYS) or root.blank("server")
    return Config(
        github=github,
        source=source,
        refresh_interval=refresh_interval,
        seats_refresh_interval=seats_refresh_interval,
        workers=workers,
        lookback_days=lookback_days,
        user_hash_salt=salt,
        entries=entries,
        listen_address=_listen_address(server),
        billing_refresh_interval=billing_refresh_interval,
        seat_prices=_seat_prices(root),
        included_ai_credits=_included_ai_credits(root),
        max_series_per_family=root.integer("max_series_per_family", MAX_SERIES_PER_FAMILY, minimum=1),
        server_limits=_server_limits(server),
        limits=_limits(root),
        state_dir=root.text("state_dir", DEFAULT_STATE_DIR),
        fill_days_per_refresh=root.integer("fill_days_per_refresh", FILL_DAYS_PER_REFRESH, minimum=1, maximum=28),
        reread_interval=root.duration("reread_interval", "6h", minimum="0s"),
        shard=_shard(root),
        request_budget_share=_share(root, "request_budget_share", REQUEST_BUDGET_SHARE),
    )


def _share(root: Section, key: str, default: float) -> float:
    value = root.typed(key, (int, float), "a number greater than 0 and at most 1")
    if value is None:
        return default
    if not 0 < value <= 1:
        root.problem(key, f"must be greater than 0 and at most 1, got {value}")
        return default
    return float(value)


def _shard(root: Section) -> Shard | None:
    text = root.text("shard")
    if text is None:
        return None
    try:
        return parse_shard(text)
    except ValueError as err:
        root.problem("shard", str(err))
        return None


def _limits(root: Section) -> Limits:
    """The limits on what GitHub and the network can make a refresh cost (see limits.py)."""
    default = Limits()
    return Limits(
        refresh_timeout=root.duration("refresh_timeout", f"{default.refresh_timeout:g}s", minimum="1s"),
        max_report_bytes=_size(root, "max_report_bytes", default.max_report_bytes),
        max_record_bytes=_size(root, "max_record_bytes", default.max_record_bytes),
        max_response_bytes=_size(root, "max_response_bytes", default.max_response_bytes),
        max_redirects=root.integer("max_redirects", default.max_redirects, minimum=0, maximum=100),
        max_pages=root.integer("max_pages", default.max_pages, minimum=1),
        max_etag_entries=root.integer("max_etag_entries", default.max_etag_entries, minimum=0),
        max_etag_bytes=_size(root, "max_etag_bytes", default.max_etag_bytes, minimum=0),
    )


def _size(section: Section, key: str, default: int, minimum: int = 1024) -> int:
    """A number of bytes: an integer, or a string with a unit (16MiB, 8GiB, 100MB)."""
    value = section.typed(key, (int, str), "a size like 16MiB or a number of bytes")
    if value is None:
        return default
    try:
        size = parse_size(value)
    except ValueError as err:
        section.problem(key, str(err))
        return default
    if size < minimum:
        section.problem(key, f"must be at least {minimum} bytes, got {_quote(value)}")
        return default
    return size


def _github(root: Section) -> GitHubConfig:
    github = root.child("github", _GITHUB_KEYS)
    if github is None:
        if not root.has("github"):
            root.problem("github", "required")
        github, credentials = root.blank("github"), Credentials()
    else:
        credentials = _credentials(github)
    ca_bundle = github.text("ca_bundle")
    problem = _ca_bundle_problem(ca_bundle) if ca_bundle is not None else None
    if problem:
        github.problem("ca_bundle", problem)
    return GitHubConfig(
        api_url=_api_url(github),
        credentials=credentials,
        ca_bundle=ca_bundle,
        connect_timeout=github.duration("connect_timeout", "10s", minimum="1ms"),
        read_timeout=github.duration("read_timeout", "60s", minimum="1ms"),
        max_retries=github.integer("max_retries", 3, minimum=0),
        retry_backoff=github.duration("retry_backoff", "1s", minimum="0s"),
        max_rate_limit_wait=github.duration("max_rate_limit_wait", "15m", minimum="0s"),
        api_version=_api_version(github),
    )


def _api_version(github: Section) -> str:
    # Unquoted in YAML, a date arrives as a date: both spellings are accepted.
    value = github.typed("api_version", (str, dt.date), f"a date like {API_VERSION}")
    if value is None:
        return API_VERSION
    text = value.isoformat() if isinstance(value, dt.date) else value.strip()
    problem = _api_version_problem(text)
    if problem:
        github.problem("api_version", problem)
        return API_VERSION
    return text


def _api_version_problem(text: str) -> str | None:
    """Why a value is not a REST API version: GitHub names its versions by date."""
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        try:
            dt.date.fromisoformat(text)
            return None
        except ValueError:
            pass
    return f"{_quote(text)} is not a YYYY-MM-DD date (GitHub names its REST API versions by date, e.g. {API_VERSION})"


def _api_url(github: Section) -> str:
    url = github.text("api_url", DEFAULT_API_URL)
    problem = _api_url_problem(url)
    if problem:
        github.problem("api_url", problem)
    return url.rstrip("/")


def _credentials(section: Section) -> Credentials:
    """Exactly one of token, token_file or app, each checked even when more than one is set."""
    present = [key for key in _CREDENTIAL_KEYS if section.has(key)]
    if not present:
        section.report("one of token, token_file or app is required")
    elif len(present) > 1:
        section.report(f"{' and '.join(present)} are set; use exactly one of token, token_file or app")
    token = _token(section)
    token_file = section.text("token_file")
    if token_file is not None:
        token = _token_from_file(section, token_file)
    return Credentials(token=token, token_file=token_file, app=_app(section))


def _token(section: Section) -> str | None:
    token = section.text("token")
    if token is None:
        return None
    token = token.strip()
    if any(c.isspace() or not c.isprintable() for c in token):
        section.problem("token", "must not contain whitespace")  # never echo the secret itself
    return token


def _token_from_file(section: Section, path: str) -> str | None:
    try:
        token = read_secret_file(path).decode("utf-8").strip()
    except SecretFileError as err:
        section.problem("token_file", str(err))
        return None
    except UnicodeDecodeError:
        section.problem("token_file", f"cannot read {path}: not UTF-8 text")
        return None
    if not token:
        section.problem("token_file", f"{path} is empty")
        return None
    if any(c.isspace() or not c.isprintable() for c in token):
        section.problem("token_file", f"{path} must hold only the token (found whitespace inside)")
    return token


def _app(section: Section) -> AppAuth | None:
    app = section.child("app", _APP_KEYS)
    if app is None:
        return None
    if not app.has("app_id"):
        app.problem("app_id", "required")
    app_id = app.typed("app_id", (int, str), "an integer or a string")
    if isinstance(app_id, str) and not app_id.strip():
        app.problem("app_id", "must not be empty")
    key_file = app.text("private_key_file", required=True)
    problem = _file_problem(key_file) if key_file is not None else None
    if problem:
        app.problem("private_key_file", problem)
    return AppAuth(
        app_id=str(app_id or ""),
        private_key_file=key_file or "",
        installation_id=app.integer("installation_id", None, minimum=1),
    )


def _require_installation_id(github: Any, path: str, credentials: Credentials | None, problems: list[str]) -> None:
    """GitHub can look up an App's installation on an organization, not on an enterprise: App
    credentials an enterprise uses must name their installation."""
    app = github.get("app") if isinstance(github, dict) else None
    if (
        credentials is not None
        and credentials.app is not None
        and isinstance(app, dict)
        and app.get("installation_id") is None
    ):
        problems.append(f"{path}.app.installation_id: required for an enterprise")


def _server_limits(server: Section) -> ServerLimits:
    return ServerLimits(
        max_connections=server.integer("max_connections", MAX_CONNECTIONS, minimum=1, maximum=100_000),
        idle_timeout=server.duration("idle_timeout", f"{IDLE_TIMEOUT:g}s", minimum="100ms"),
        read_header_timeout=server.duration("read_header_timeout", f"{READ_HEADER_TIMEOUT:g}s", minimum="100ms"),
    )


def _listen_address(server: Section) -> str:
    address = server.text("listen_address", DEFAULT_LISTEN_ADDRESS)
    problem = _listen_address_problem(address)
    if problem:
        server.problem("listen_address", problem)
    return address


# --- organizations and enterprises ------------------------------------------------------------


def _all_entries(root: Section, source: str) -> tuple[Entry, ...]:
    # Only when neither is set at all: a wrong type is reported on its own, without a second problem.
    if all(root.data.get(key) in (None, []) for key in ("organizations", "enterprises")):
        root.problem("organizations", "at least one organization or enterprise is required")
    return _entries(root.items("organizations"), ORG, root.problems, source) + _entries(
        root.items("enterprises"), ENTERPRISE, root.problems, source
    )


def _entries(items: list[tuple[str, Any]], kind: str, problems: list[str], source: str) -> tuple[Entry, ...]:
    what = "organization" if kind == ORG else "enterprise"
    entries: list[Entry] = []
    seen: dict[str, str] = {}  # lower-cased name -> path of its first entry; GitHub ignores case
    for path, value in items:
        section = Section.of(value, path, problems, _ENTRY_KEYS)
        if section is None:
            continue
        entry = _entry(section, kind, source)
        name = entry.scope.name.lower()
        if name in seen:
            section.problem("name", f"duplicate {what} {_quote(entry.scope.name)} (also at {seen[name]})")
        elif name:
            seen[name] = path
        entries.append(entry)
    return tuple(entries)


def _entry(section: Section, kind: str, source: str) -> Entry:
    name = section.text("name", required=True)
    if name is not None:
        problem = _org_login_problem(name) if kind == ORG else _slug_problem(name, "enterprise slug")
        if problem:
            section.problem("name", problem)
    github = section.child("github", _CREDENTIAL_KEYS)
    entry = Entry(
        scope=Scope(kind, name or ""),
        teams=_teams(section, kind),
        reports=_reports(section, source),
        max_repositories=section.integer("max_repositories", 50, minimum=1),
        per_user=_per_user(section),
        seats=section.flag("seats", True),
        credentials=_credentials(github) if github is not None else None,
        billing=section.flag("billing", False),
        billing_credentials=_billing_credentials(section),
    )
    if kind == ENTERPRISE and github is not None:
        _require_installation_id(github.data, github.path, entry.credentials, section.problems)
    return entry


# `teams: all` (what an unset `teams` means too): every team the user-teams report lists.
ALL_TEAMS = "all"


def _teams(entry: Section, kind: str) -> tuple[str, ...]:
    """The team slugs an entry lists; () for every team of the reports (`all` or unset)."""
    value = entry.data.get("teams")
    if isinstance(value, str):  # a string may only say `all`; a slug goes in a list
        if value != ALL_TEAMS:
            entry.problem("teams", f'must be "{ALL_TEAMS}" or a list of team slugs, got {_quote(value)}')
        return ()
    prefix = _ENTERPRISE_TEAM_PREFIX if kind == ENTERPRISE else ""
    teams: list[str] = []
    seen: set[str] = set()
    for path, value in entry.items("teams"):
        if value is _UNRESOLVED:
            continue
        problem = _type_problem(value, str, "a string") or _slug_problem(value, "team slug", prefix)
        if problem is None and value.lower() in seen:
            problem = f"duplicate team {_quote(value)}"
        if problem:
            entry.problems.append(f"{path}: {problem}")
            continue
        seen.add(value.lower())
        teams.append(str(value))
    return tuple(teams)


def _reports(entry: Section, source: str) -> Reports:
    reports = entry.child("reports", _REPORT_KEYS) or entry.blank("reports")
    selection = Reports(
        aggregated=reports.flag("aggregated", True),
        users=reports.flag("users", True),
        teams=reports.flag("teams", True),
        repositories=entry.flag("repositories", False),
    )
    if source != "legacy" and not any(vars(selection).values()):
        entry.problem(
            "reports",
            "every report is off (aggregated, users, teams and repositories), so the "
            "reports API has nothing to export for this entry; turn one on, or use "
            "source: legacy",
        )
    return selection


def _per_user(entry: Section) -> str:
    value = _from_env(entry.data.get("per_user"), bool)
    if value is None or value is _UNRESOLVED:
        return "off"
    if isinstance(value, bool):
        return "login" if value else "off"
    if value == "hashed":
        return "hashed"
    got = _quote(value) if isinstance(value, str) else _type_name(value)
    entry.problem("per_user", f'must be false, true or "hashed", got {got}')
    return "off"


# --- cost -------------------------------------------------------------------------------------


def _billing_credentials(entry: Section) -> Credentials | None:
    billing = entry.child("billing_github", _CREDENTIAL_KEYS)
    return _credentials(billing) if billing is not None else None


def _require_classic_billing_tokens(root: Section, global_credentials: Credentials) -> None:
    """GitHub's enterprise billing endpoints take classic personal access tokens only: an
    enterprise with billing on must not reach them with GitHub App credentials."""
    listed = root.data.get("enterprises")
    for index, value in enumerate(listed if isinstance(listed, list) else ()):  # a wrong type is reported elsewhere
        path = f"enterprises[{index}]"
        if not isinstance(value, dict) or _from_env(value.get("billing"), bool) is not True:
            continue
        billing, own = value.get("billing_github"), value.get("github")
        if isinstance(billing, dict):
            if billing.get("app") is not None:
                root.problems.append(
                    f"{path}.billing_github.app: enterprise billing endpoints "
                    "accept classic personal access tokens only"
                )
        elif (isinstance(own, dict) and own.get("app") is not None) or (
            not isinstance(own, dict) and global_credentials.app is not None
        ):
            root.problems.append(
                f"{path}.billing_github: required: enterprise billing endpoints "
                "accept classic personal access tokens only, not GitHub App tokens"
            )


def _seat_prices(root: Section) -> dict[str, SeatPrice]:
    prices = root.child("seat_prices", SEAT_PLANS)
    if prices is None:
        return {}
    result = {}
    for plan in SEAT_PLANS:
        price = prices.child(plan, ("amount", "currency"))
        if price is None:
            continue
        amount = price.typed("amount", (int, float), "a number")
        if not price.has("amount"):
            price.problem("amount", "required")
        elif amount is not None and amount < 0:
            price.problem("amount", f"must not be negative, got {amount}")
            amount = None
        currency = price.text("currency", required=True)
        if currency is not None and not _CURRENCY.fullmatch(currency):
            price.problem("currency", f"{_quote(currency)} is not a three-letter currency code like USD or EUR")
            currency = None
        if amount is not None and currency is not None:
            result[plan] = SeatPrice(float(amount), currency)
    return result


def _included_ai_credits(root: Section) -> dict[str, float]:
    credits = root.child("included_ai_credits", SEAT_PLANS) or root.blank("included_ai_credits")
    result = {}
    for plan in SEAT_PLANS:
        value = credits.typed(plan, (int, float), "a number")
        if value is not None and value < 0:
            credits.problem(plan, f"must not be negative, got {value}")
            value = None
        result[plan] = float(DEFAULT_INCLUDED_AI_CREDITS[plan] if value is None else value)
    return result
