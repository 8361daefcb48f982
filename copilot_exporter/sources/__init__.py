"""What to ask GitHub for each source, and how to turn the answers into metric families."""

from __future__ import annotations

from dataclasses import dataclass, field

from copilot_exporter.github.client import GitHubError
from copilot_exporter.model import ENTERPRISE, ORG, Family, FamilyBuilder, Problem

# The access each endpoint needs, for the hint of a 403 (COPILOT-APIS.md §1, §2, §4).
_OWNER = "the token's user must also be an owner"
FORBIDDEN = {
    "reports": {
        ORG: "the token lacks access to this organization's Copilot usage metrics: a fine-grained token or "
        'GitHub App needs the organization permission "Organization Copilot metrics" (read), a classic '
        "token the read:org scope; " + _OWNER + ' or hold the role "View Organization Copilot Metrics", '
        'and the "Copilot usage metrics" policy must be enabled',
        ENTERPRISE: "the token lacks access to this enterprise's Copilot usage metrics: use a classic token with "
        "manage_billing:copilot or read:enterprise, or a GitHub App installed on the enterprise with "
        '"Enterprise Copilot metrics" (read); fine-grained tokens are not accepted on enterprise '
        'endpoints; the "Copilot usage metrics" policy must be "Enabled everywhere"',
    },
    "seats": {
        ORG: "the token lacks access to this organization's Copilot seats: a fine-grained token or GitHub App "
        'needs the organization permission "GitHub Copilot Business" (read), a classic token the '
        "manage_billing:copilot scope (or read:org); " + _OWNER + " or a billing manager",
        ENTERPRISE: "the token lacks access to this enterprise's Copilot seats: use a classic token with "
        "manage_billing:copilot or read:enterprise (fine-grained tokens and GitHub Apps are not "
        "accepted here), or set seats: false for this enterprise",
    },
    "legacy": {
        ORG: "the token lacks access to this organization's Copilot metrics: a fine-grained token or GitHub "
        'App needs the organization permission "GitHub Copilot Business" (read), a classic token '
        "manage_billing:copilot or read:org; " + _OWNER,
        ENTERPRISE: "the token lacks access to this enterprise's Copilot metrics: use a classic token with "
        "manage_billing:copilot or read:enterprise (fine-grained tokens and GitHub Apps are not "
        "accepted here)",
    },
}


def explain_forbidden(err: GitHubError, source: str, kind: str) -> None:
    """Name the permission a refused (403) endpoint needs; a refusal for SSO keeps its own hint."""
    if err.status == 403 and not err.sso:
        err.hint = FORBIDDEN[source][kind]


@dataclass(frozen=True)
class Result:
    """A successful refresh: the families to serve, the day exported per report, and notes.

    Notes describe a lasting condition worth telling the operator once (e.g. no report yet).
    `problems` are values dropped or repaired while mapping (counted, logged once per refresh);
    `folded` is, per family, how many series a cardinality cap folded away.
    """

    families: tuple[Family, ...]
    days: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    problems: tuple[Problem, ...] = ()
    folded: tuple[tuple[str, int], ...] = ()

    @classmethod
    def built(cls, builder: FamilyBuilder, days: dict[str, str] | None = None, notes: tuple[str, ...] = ()) -> Result:
        """The result of one builder: its families, problems and folded series."""
        return cls(builder.build(), days or {}, notes, builder.problems.frozen(), tuple(sorted(builder.folded.items())))
