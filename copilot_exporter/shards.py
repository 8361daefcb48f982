"""Sharding: several exporters share the configured scopes, each refreshing its own part.

An exporter with `shard: "i/n"` (or `--shard i/n`) refreshes only the organizations and
enterprises whose scope falls in shard i of n (0-based): the first 8 bytes of the SHA-256 of
`kind:name` lower-cased (`org:acme`, `enterprise:initech`), read as a big-endian integer, modulo
n. The hash depends on nothing but the scope, so n exporters given the same configuration
cover every scope exactly once, whatever their order or host, and a scope moves only when n
changes. Everything an exporter exports, cross-organization figures included, is over its own
scopes: sums and counts aggregate across shards in PromQL (`sum without (instance) (...)`), but
distinct users across organizations (`copilot_organizations_active_users`) do not: a person
active in organizations of two shards is in both, so their sum is only an upper bound.

In a Kubernetes StatefulSet the index may be given as the pod's name: `copilot-exporter-2/3`
reads as shard 2 of 3 (the ordinal is the number after the name's last hyphen).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from copilot_exporter.model import Scope

MAX_SHARDS = 1024
_SHARD = re.compile(r"(?:(?P<index>[0-9]+)|(?P<pod>.+-(?P<ordinal>[0-9]+)))/(?P<count>[0-9]+)")


@dataclass(frozen=True, order=True)
class Shard:
    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, scope: Scope) -> bool:
        """Whether this shard refreshes the scope (an organization or enterprise)."""
        return shard_of(scope.kind, scope.name, self.count) == self.index


def shard_of(kind: str, name: str, count: int) -> int:
    """The shard, 0 to count - 1, of the scope `kind:name`."""
    digest = hashlib.sha256(f"{kind}:{name}".lower().encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count


def shard_problem(text: str) -> str | None:
    """Why `text` is not a shard "i/n" (or "<pod name>-<ordinal>/n"), or None."""
    match = _SHARD.fullmatch(text.strip())
    if match is None:
        return (
            f'{text!r} must be i/n: this exporter\'s shard i (0-based) of n, e.g. "0/3" '
            '(or a StatefulSet pod\'s name ending in its ordinal, e.g. "copilot-exporter-2/3")'
        )
    index, count = int(match["index"] or match["ordinal"]), int(match["count"])
    if not 1 <= count <= MAX_SHARDS:
        return f"the number of shards must be between 1 and {MAX_SHARDS}, got {count}"
    if index >= count:
        return f"shard {index} does not exist: shards of {count} are numbered 0 to {count - 1}"
    return None


def parse_shard(text: str) -> Shard:
    """The shard "i/n" names; ValueError (with `shard_problem`'s message) when it names none."""
    problem = shard_problem(text)
    if problem:
        raise ValueError(problem)
    match = _SHARD.fullmatch(text.strip())
    assert match is not None
    return Shard(int(match["index"] or match["ordinal"]), int(match["count"]))
