"""Configuration: defaults, ${VAR} interpolation, and every problem with its key path."""

from __future__ import annotations

from pathlib import Path

import certifi
import pytest

from copilot_exporter.config import (
    AppAuth,
    Credentials,
    Reports,
    load_config,
    parse_config,
    parse_duration,
)
from copilot_exporter.errors import ConfigError
from copilot_exporter.model import ENTERPRISE, ORG, Scope

EXAMPLE = Path(__file__).resolve().parent.parent / "config.example.yaml"


def minimal(**top) -> dict:
    """The smallest valid configuration, with top-level keys replaced or added."""
    return {"github": {"token": "t0ken"}, "organizations": [{"name": "my-org"}], **top}


def with_org(**keys) -> dict:
    return minimal(organizations=[{"name": "my-org", **keys}])


def with_github(**keys) -> dict:
    return minimal(github={"token": "t0ken", **keys})


def problems(data: object, environ: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, environ or {})
    return info.value.problems


def only_problem(data: object, environ: dict | None = None) -> str:
    found = problems(data, environ)
    assert len(found) == 1, found
    return found[0]


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


# --- valid configurations ---------------------------------------------------------------------


def test_defaults():
    config = parse_config(minimal(), {})
    github = config.github
    assert github.api_url == "https://api.github.com"
    assert github.credentials == Credentials(token="t0ken")
    assert github.ca_bundle is None
    assert (github.connect_timeout, github.read_timeout) == (10.0, 60.0)
    assert github.max_retries == 3
    assert github.max_rate_limit_wait == 900.0
    assert config.source == "auto"
    assert config.refresh_interval == 3600.0
    assert config.seats_refresh_interval == 6 * 3600.0
    assert (config.workers, config.lookback_days) == (4, 3)
    assert config.user_hash_salt is None
    assert config.listen_address == ":9452"
    (entry,) = config.entries
    assert entry.scope == Scope(ORG, "my-org")
    assert entry.teams == ()
    assert entry.reports == Reports(aggregated=True, users=True, teams=True, repositories=False)
    assert (entry.max_repositories, entry.per_user, entry.seats) == (50, "off", True)
    assert entry.credentials is None


def test_every_option_set():
    config = parse_config(
        {
            "github": {
                "api_url": "https://ghes.example.com/api/v3/",
                "token": " t0ken\n",
                "connect_timeout": "5s",
                "read_timeout": "2m",
                "max_retries": 0,
                "max_rate_limit_wait": "0s",
            },
            "source": "reports",
            "refresh_interval": "1h30m",
            "seats_refresh_interval": "1d",
            "workers": 64,
            "lookback_days": 30,
            "user_hash_salt": "pepper",
            "organizations": [
                {
                    "name": "Org-1",
                    "teams": ["platform", "web.ui_2"],
                    "reports": {"aggregated": False, "users": True, "teams": False},
                    "repositories": True,
                    "max_repositories": 7,
                    "per_user": "hashed",
                    "seats": False,
                    "github": {"token": "other"},
                }
            ],
            "enterprises": [{"name": "acme_corp", "teams": ["ent:platform"], "per_user": True}],
            "server": {"listen_address": "[::1]:9100"},
        },
        {},
    )
    assert config.github.api_url == "https://ghes.example.com/api/v3"
    assert config.github.credentials.token == "t0ken"
    assert (config.github.connect_timeout, config.github.read_timeout) == (5.0, 120.0)
    assert (config.github.max_retries, config.github.max_rate_limit_wait) == (0, 0.0)
    assert (config.source, config.refresh_interval, config.seats_refresh_interval) == ("reports", 5400.0, 86400.0)
    assert (config.workers, config.lookback_days, config.user_hash_salt) == (64, 30, "pepper")
    org, enterprise = config.entries
    assert org.scope == Scope(ORG, "Org-1") and org.teams == ("platform", "web.ui_2")
    assert org.reports == Reports(aggregated=False, users=True, teams=False, repositories=True)
    assert (org.max_repositories, org.per_user, org.seats) == (7, "hashed", False)
    assert org.credentials == Credentials(token="other")
    assert enterprise.scope == Scope(ENTERPRISE, "acme_corp") and enterprise.teams == ("ent:platform",)
    assert enterprise.per_user == "login"
    assert config.listen_address == "[::1]:9100"


def test_organizations_come_before_enterprises_in_file_order():
    config = parse_config(
        {
            "github": {"token": "t"},
            "enterprises": [{"name": "ent-b"}, {"name": "ent-a"}],
            "organizations": [{"name": "org-b"}, {"name": "org-a"}],
        },
        {},
    )
    assert [e.scope for e in config.entries] == [
        Scope(ORG, "org-b"),
        Scope(ORG, "org-a"),
        Scope(ENTERPRISE, "ent-b"),
        Scope(ENTERPRISE, "ent-a"),
    ]


def test_enterprises_alone_are_enough():
    config = parse_config({"github": {"token": "t"}, "enterprises": [{"name": "acme"}]}, {})
    assert [e.scope for e in config.entries] == [Scope(ENTERPRISE, "acme")]


def test_null_values_mean_unset():
    config = parse_config(
        minimal(
            source=None,
            server=None,
            organizations=[{"name": "my-org", "teams": None, "reports": None, "per_user": None}],
        ),
        {},
    )
    assert config.source == "auto" and config.entries[0].teams == ()


def test_config_is_frozen():
    config = parse_config(minimal(), {})
    with pytest.raises(AttributeError):
        config.workers = 8  # type: ignore[misc]


@pytest.mark.parametrize(
    "address", [":9452", "0.0.0.0:9452", "localhost:1", "[::1]:9452", "[::]:65535", "exporter.example.com:9452"]
)
def test_listen_address_accepted(address):
    assert parse_config(minimal(server={"listen_address": address}), {}).listen_address == address


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("90s", 90),
        ("15m", 900),
        ("1h", 3600),
        ("1d", 86400),
        ("1w", 604800),
        ("1y", 365 * 86400),
        ("1h30m", 5400),
        ("500ms", 0.5),
        ("1m30s", 90),
        ("2d12h", 216000),
        ("0s", 0),
    ],
)
def test_parse_duration(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "90", "1x", "1.5h", "30m1h", "1h 30m", " 1h", "1H", "-1h", "h", "1h\n"])
def test_parse_duration_rejects(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


def test_bad_duration_message():
    assert only_problem(minimal(refresh_interval="1x")) == (
        'refresh_interval: "1x" is not a duration (use e.g. 90s, 15m, 1h, 1d, 1h30m)'
    )


def test_bare_number_is_not_a_duration():
    assert only_problem(minimal(refresh_interval=90)) == (
        "refresh_interval: must be a duration string like 1h, got integer"
    )


def test_duration_below_minimum():
    assert only_problem(minimal(seats_refresh_interval="500ms")) == (
        'seats_refresh_interval: must be at least 1s, got "500ms"'
    )


def test_github_durations_are_checked():
    assert problems(with_github(connect_timeout="0s", read_timeout="fast", max_rate_limit_wait=1.5)) == [
        'github.connect_timeout: must be at least 1ms, got "0s"',
        'github.read_timeout: "fast" is not a duration (use e.g. 90s, 15m, 1h, 1d, 1h30m)',
        "github.max_rate_limit_wait: must be a duration string like 1h, got number",
    ]


# --- ${VAR} interpolation ---------------------------------------------------------------------


def test_environment_variables_are_interpolated():
    config = parse_config(
        minimal(
            github={"api_url": "https://${HOST}/api/v3", "token": "${TOKEN}"},
            organizations=[{"name": "${ORG}-${SUFFIX}", "teams": ["${TEAM}"]}],
        ),
        {"HOST": "ghes.example.com", "TOKEN": "s3cret", "ORG": "acme", "SUFFIX": "dev", "TEAM": "web"},
    )
    assert config.github.api_url == "https://ghes.example.com/api/v3"
    assert config.github.credentials.token == "s3cret"
    assert config.entries[0].scope.name == "acme-dev" and config.entries[0].teams == ("web",)


def test_interpolation_reads_os_environ_by_default(monkeypatch):
    monkeypatch.setenv("COPILOT_TEST_TOKEN", "from-env")
    config = parse_config(minimal(github={"token": "${COPILOT_TEST_TOKEN}"}))
    assert config.github.credentials.token == "from-env"


def test_integers_and_booleans_from_environment_variables():
    config = parse_config(
        with_org(max_repositories="${MAX}", seats="${SEATS}", per_user="${PER_USER}"),
        {"MAX": "12", "SEATS": "false", "PER_USER": "true"},
    )
    entry = config.entries[0]
    assert (entry.max_repositories, entry.seats, entry.per_user) == (12, False, "login")


def test_numbers_from_environment_variables_where_a_key_takes_any_number():
    config = parse_config(
        minimal(request_budget_share="${SHARE}", included_ai_credits={"business": "${CREDITS}"}),
        {"SHARE": "0.4", "CREDITS": "2500"},
    )
    assert (config.request_budget_share, config.included_ai_credits["business"]) == (0.4, 2500)
    assert only_problem(minimal(request_budget_share="${SHARE}"), {"SHARE": "half"}) == (
        "request_budget_share: must be a number greater than 0 and at most 1, got string"
    )


def test_a_literal_integer_string_is_still_not_an_integer():
    assert only_problem(minimal(workers="8")) == "workers: must be an integer, got string"


def test_unset_variable():
    assert only_problem(minimal(github={"token": "${GITHUB_TOKEN}"})) == (
        "github.token: environment variable GITHUB_TOKEN is not set"
    )


def test_several_unset_variables_in_one_string():
    assert problems(with_org(teams=["ok", "${A}-${B}"]), {}) == [
        "organizations[0].teams[1]: environment variable A is not set",
        "organizations[0].teams[1]: environment variable B is not set",
    ]


def test_dollar_dollar_escapes_a_literal_reference():
    config = parse_config(minimal(user_hash_salt="a$${NOT_A_VAR}b$$c$", source="auto"), {})
    assert config.user_hash_salt == "a${NOT_A_VAR}b$$c$"


def test_escape_next_to_a_real_reference():
    config = parse_config(minimal(user_hash_salt="$${X}${X}"), {"X": "v"})
    assert config.user_hash_salt == "${X}v"


def test_values_from_the_environment_are_not_interpolated_again():
    config = parse_config(minimal(user_hash_salt="${SALT}"), {"SALT": "${OTHER}"})
    assert config.user_hash_salt == "${OTHER}"


@pytest.mark.parametrize("text", ["${}", "${1A}", "${NAME", "${A-B}"])
def test_invalid_reference(text):
    assert "is not a valid reference (write ${NAME}, or $${ for a literal ${)" in only_problem(
        minimal(user_hash_salt=text)
    )


def test_unset_variable_is_reported_once():
    # The unresolved token still counts as the one credential, and the unresolved duration
    # does not also read as a bad duration.
    assert problems(minimal(github={"token": "${T}"}, refresh_interval="${R}")) == [
        "github.token: environment variable T is not set",
        "refresh_interval: environment variable R is not set",
    ]


# --- structure and types ----------------------------------------------------------------------


def test_empty_configuration():
    assert only_problem(None) == "top level: the configuration is empty"


def test_top_level_must_be_a_mapping():
    assert only_problem(["github"]) == "top level: must be a mapping, got list"


def test_github_is_required():
    assert only_problem({"organizations": [{"name": "my-org"}]}) == "github: required"


def test_no_organization_or_enterprise():
    expected = "organizations: at least one organization or enterprise is required"
    assert only_problem({"github": {"token": "t"}}) == expected
    assert only_problem({"github": {"token": "t"}, "organizations": [], "enterprises": []}) == expected


def test_organization_name_is_required():
    assert only_problem(minimal(organizations=[{"name": "a"}, {"teams": ["x"]}])) == ("organizations[1].name: required")


def test_empty_string_is_refused():
    assert only_problem(with_github(ca_bundle=" ")) == "github.ca_bundle: must not be empty"


@pytest.mark.parametrize(
    "data, path",
    [
        (minimal(colour="red"), "colour"),
        (with_github(retries=3), "github.retries"),
        (with_org(colour="red"), "organizations[0].colour"),
        (with_org(reports={"aggregated": True, "repositories": True}), "organizations[0].reports.repositories"),
        (with_org(github={"token": "t", "api_url": "https://x"}), "organizations[0].github.api_url"),
        (minimal(github={"app": {"app_id": 1, "private_key_file": __file__, "key": "x"}}), "github.app.key"),
        (minimal(server={"listen_address": ":1", "port": 1}), "server.port"),
        (minimal(enterprises=[{"name": "acme", "colour": 1}]), "enterprises[0].colour"),
    ],
)
def test_unknown_keys(data, path):
    assert only_problem(data) == f"{path}: unknown key"


@pytest.mark.parametrize(
    "data, message",
    [
        (minimal(github="t0ken"), "github: must be a mapping, got string"),
        (minimal(organizations={"name": "my-org"}), "organizations: must be a list, got mapping"),
        (minimal(organizations=["my-org"]), "organizations[0]: must be a mapping, got string"),
        (with_org(teams="web"), 'organizations[0].teams: must be "all" or a list of team slugs, got "web"'),
        (with_org(teams=7), "organizations[0].teams: must be a list, got integer"),
        (with_org(teams=["web", 7]), "organizations[0].teams[1]: must be a string, got integer"),
        (with_org(name=123), "organizations[0].name: must be a string, got integer"),
        (with_org(reports=[True]), "organizations[0].reports: must be a mapping, got list"),
        (with_org(reports={"users": "yes"}), "organizations[0].reports.users: must be true or false, got string"),
        (with_org(seats=1), "organizations[0].seats: must be true or false, got integer"),
        (with_org(repositories="true"), "organizations[0].repositories: must be true or false, got string"),
        (minimal(workers=True), "workers: must be an integer, got boolean"),
        (minimal(workers=4.0), "workers: must be an integer, got number"),
        (with_github(max_retries=False), "github.max_retries: must be an integer, got boolean"),
        (minimal(github={"token": True}), "github.token: must be a string, got boolean"),
        (minimal(server=":9452"), "server: must be a mapping, got string"),
        (minimal(server={"listen_address": 9452}), "server.listen_address: must be a string, got integer"),
        (minimal(source=["auto"]), "source: must be a string, got list"),
    ],
)
def test_wrong_types(data, message):
    assert only_problem(data) == message


def test_type_problems_never_show_the_token():
    message = only_problem(minimal(github={"token": ["s3cret"]}))
    assert message == "github.token: must be a string, got list" and "s3cret" not in message


# --- credentials ------------------------------------------------------------------------------


def test_no_credentials():
    assert only_problem(minimal(github={"api_url": "https://api.github.com"})) == (
        "github: one of token, token_file or app is required"
    )


def test_token_and_token_file_both_set(tmp_path):
    token_file = write(tmp_path, "token", "t")
    assert only_problem(minimal(github={"token": "t", "token_file": token_file})) == (
        "github: token and token_file are set; use exactly one of token, token_file or app"
    )


def test_per_entry_credentials_follow_the_same_rule(tmp_path):
    token_file = write(tmp_path, "token", "t")
    assert problems(
        minimal(
            organizations=[
                {"name": "a", "github": {}},
                {"name": "b", "github": {"token": "t", "token_file": token_file}},
            ]
        )
    ) == [
        "organizations[0].github: one of token, token_file or app is required",
        "organizations[1].github: token and token_file are set; use exactly one of token, token_file or app",
    ]


def test_token_file_is_read_and_stripped(tmp_path):
    token_file = write(tmp_path, "token", "\n  ghp_abc123  \n")
    credentials = parse_config(minimal(github={"token_file": token_file}), {}).github.credentials
    assert credentials == Credentials(token="ghp_abc123", token_file=token_file)


def test_token_file_unreadable(tmp_path):
    missing = str(tmp_path / "missing")
    assert only_problem(minimal(github={"token_file": missing})) == (
        f"github.token_file: cannot read {missing}: No such file or directory"
    )


def test_token_file_is_a_directory(tmp_path):
    assert only_problem(minimal(github={"token_file": str(tmp_path)})).startswith(
        f"github.token_file: cannot read {tmp_path}: "
    )


def test_token_file_empty(tmp_path):
    token_file = write(tmp_path, "token", " \n")
    assert only_problem(minimal(github={"token_file": token_file})) == f"github.token_file: {token_file} is empty"


def test_token_file_with_more_than_a_token(tmp_path):
    token_file = write(tmp_path, "token", "GITHUB_TOKEN=a\nOTHER=b\n")
    assert "must hold only the token" in only_problem(minimal(github={"token_file": token_file}))


def test_token_with_whitespace_inside():
    message = only_problem(minimal(github={"token": "abc def"}))
    assert message == "github.token: must not contain whitespace" and "abc" not in message


def test_github_app(tmp_path):
    key = write(tmp_path, "app.pem", "-----BEGIN PRIVATE KEY-----\n")
    config = parse_config(
        minimal(github={"app": {"app_id": 123, "private_key_file": key, "installation_id": "${INSTALLATION}"}}),
        {"INSTALLATION": "456"},
    )
    assert config.github.credentials == Credentials(app=AppAuth("123", key, 456))


def test_github_app_id_may_be_a_client_id(tmp_path):
    key = write(tmp_path, "app.pem", "key")
    config = parse_config(minimal(github={"app": {"app_id": "Iv1.abc", "private_key_file": key}}), {})
    assert config.github.credentials.app == AppAuth("Iv1.abc", key, None)


def test_github_app_problems(tmp_path):
    missing = str(tmp_path / "missing.pem")
    assert problems(minimal(github={"app": {"private_key_file": missing, "installation_id": 0}})) == [
        "github.app.app_id: required",
        f"github.app.private_key_file: cannot read {missing}: No such file or directory",
        "github.app.installation_id: must be at least 1, got 0",
    ]
    assert problems(minimal(github={"app": {"app_id": True}})) == [
        "github.app.app_id: must be an integer or a string, got boolean",
        "github.app.private_key_file: required",
    ]


def test_github_app_installation_id_is_required_for_enterprises(tmp_path):
    key = write(tmp_path, "app.pem", "key")
    app = {"app_id": 1, "private_key_file": key}
    token = {"token": "t0ken"}
    # Organizations may leave the installation to be looked up.
    parse_config(minimal(github={"app": app}, organizations=[{"name": "my-org", "github": {"app": app}}]), {})
    assert problems(minimal(github={"app": app}, organizations=[], enterprises=[{"name": "ent"}])) == [
        "github.app.installation_id: required for an enterprise"
    ]
    assert problems(
        minimal(
            organizations=[],
            enterprises=[{"name": "ent", "github": {"app": app}}, {"name": "ent2", "github": {"app": app}}],
        )
    ) == [
        "enterprises[0].github.app.installation_id: required for an enterprise",
        "enterprises[1].github.app.installation_id: required for an enterprise",
    ]
    # Only credentials an enterprise actually uses are concerned.
    parse_config(minimal(github={"app": app}, enterprises=[{"name": "ent", "github": token}]), {})
    parse_config(
        minimal(organizations=[], enterprises=[{"name": "ent", "github": {"app": {**app, "installation_id": 7}}}]), {}
    )
    # An installation_id that is set but wrong is reported once, as wrong.
    assert problems(
        minimal(organizations=[], enterprises=[{"name": "ent", "github": {"app": {**app, "installation_id": 0}}}])
    ) == ["enterprises[0].github.app.installation_id: must be at least 1, got 0"]


def test_repr_hides_the_token(tmp_path):
    token_file = write(tmp_path, "token", "s3cret-from-file")
    for github in ({"token": "s3cret"}, {"token_file": token_file}):
        config = parse_config(minimal(github=github), {})
        for text in (repr(config), str(config), repr(config.github.credentials)):
            assert "s3cret" not in text
            assert "token=<redacted>" in text
    assert repr(Credentials()) == "Credentials(token=None, token_file=None, app=None)"


def test_repr_hides_the_hash_salt():
    config = parse_config(minimal(user_hash_salt="pepper-123"), {})
    assert "pepper-123" not in repr(config)


# --- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["a", "my-org", "Org-1-2", "a" * 39, "123"])
def test_organization_login_accepted(name):
    assert parse_config(with_org(name=name), {}).entries[0].scope.name == name


@pytest.mark.parametrize(
    "name",
    [
        "-org",
        "org-",
        "my--org",
        "my_org",
        "my.org",
        "a" * 40,
        "org/../x",
        "org%2F",
        "org?x",
        "org#x",
        "my org",
        "org\n",
    ],
)
def test_organization_login_refused(name):
    message = only_problem(with_org(name=name))
    assert message.startswith("organizations[0].name: ") and "is not a valid organization login" in message


@pytest.mark.parametrize("slug", ["acme", "acme_corp", "acme-corp", "a.b", "A1", "a" * 100])
def test_enterprise_slug_accepted(slug):
    data = {"github": {"token": "t"}, "enterprises": [{"name": slug}]}
    assert parse_config(data, {}).entries[0].scope.name == slug


@pytest.mark.parametrize(
    "slug", ["-acme", "acme.", "a..b", "a/b", "a%2fb", "a?b", "a#b", "a b", "a\tb", "a" * 101, "ent:acme"]
)
def test_enterprise_slug_refused(slug):
    data = {"github": {"token": "t"}, "enterprises": [{"name": slug}]}
    assert "is not a valid enterprise slug" in only_problem(data)


def test_teams_all_selects_every_team_like_an_unset_teams():
    config = parse_config(
        minimal(
            organizations=[{"name": "a", "teams": "all"}, {"name": "b"}, {"name": "c", "teams": ["all", "web"]}],
            enterprises=[{"name": "e", "teams": "${TEAMS}"}],
        ),
        {"TEAMS": "all"},
    )
    assert [entry.teams for entry in config.entries] == [(), (), ("all", "web"), ()]


def test_team_slug_messages():
    assert problems(with_org(teams=["ok", "../admin", "a/b", "ent:web"])) == [
        "organizations[0].teams[1]: \"../admin\" is not a valid team slug (letters, digits, '.', '_' "
        "and '-', starting and ending with a letter or digit, at most 100 characters)",
        "organizations[0].teams[2]: \"a/b\" is not a valid team slug (letters, digits, '.', '_' "
        "and '-', starting and ending with a letter or digit, at most 100 characters)",
        "organizations[0].teams[3]: \"ent:web\" is not a valid team slug (letters, digits, '.', '_' "
        "and '-', starting and ending with a letter or digit, at most 100 characters)",
    ]


def test_enterprise_team_slugs_may_carry_the_ent_prefix():
    data = {"github": {"token": "t"}, "enterprises": [{"name": "acme", "teams": ["ent:web", "ops", "ent:a/b"]}]}
    assert only_problem(data).startswith('enterprises[0].teams[2]: "ent:a/b" is not a valid team slug')


def test_organization_login_message():
    assert only_problem(with_org(name="my--org")) == (
        'organizations[0].name: "my--org" is not a valid organization login (letters, digits and '
        "single hyphens, not starting or ending with a hyphen, at most 39 characters)"
    )


def test_duplicate_organizations_ignore_case():
    assert only_problem(minimal(organizations=[{"name": "My-Org"}, {"name": "other"}, {"name": "my-org"}])) == (
        'organizations[2].name: duplicate organization "my-org" (also at organizations[0])'
    )


def test_duplicate_enterprises():
    data = {"github": {"token": "t"}, "enterprises": [{"name": "acme"}, {"name": "ACME"}]}
    assert only_problem(data) == 'enterprises[1].name: duplicate enterprise "ACME" (also at enterprises[0])'


def test_same_name_as_organization_and_enterprise_is_fine():
    config = parse_config(minimal(enterprises=[{"name": "my-org"}]), {})
    assert len(config.entries) == 2


def test_duplicate_team():
    assert only_problem(with_org(teams=["web", "ops", "Web"])) == ('organizations[0].teams[2]: duplicate team "Web"')


# --- choices and ranges -----------------------------------------------------------------------


def test_source_must_be_known():
    assert only_problem(minimal(source="metrics")) == ('source: "metrics" is not one of legacy, reports, auto')


@pytest.mark.parametrize("value, mode", [(False, "off"), (True, "login"), ("hashed", "hashed")])
def test_per_user(value, mode):
    config = parse_config(minimal(user_hash_salt="s", organizations=[{"name": "o", "per_user": value}]), {})
    assert config.entries[0].per_user == mode


@pytest.mark.parametrize("value, got", [("login", '"login"'), ("yes", '"yes"'), (1, "integer")])
def test_per_user_refused(value, got):
    assert only_problem(with_org(per_user=value)) == (
        f'organizations[0].per_user: must be false, true or "hashed", got {got}'
    )


def test_hashed_needs_a_salt():
    data = minimal(enterprises=[{"name": "acme", "per_user": "hashed"}])
    assert only_problem(data) == "user_hash_salt: required when an entry sets per_user: hashed"


def test_hashed_with_an_unset_salt_variable_is_reported_once():
    data = minimal(user_hash_salt="${SALT}", organizations=[{"name": "o", "per_user": "hashed"}])
    assert only_problem(data) == "user_hash_salt: environment variable SALT is not set"


@pytest.mark.parametrize(
    "data, message",
    [
        (minimal(workers=0), "workers: must be between 1 and 64, got 0"),
        (minimal(workers=65), "workers: must be between 1 and 64, got 65"),
        (minimal(lookback_days=0), "lookback_days: must be between 1 and 30, got 0"),
        (minimal(lookback_days=31), "lookback_days: must be between 1 and 30, got 31"),
        (with_github(max_retries=-1), "github.max_retries: must be at least 0, got -1"),
        (with_org(max_repositories=0), "organizations[0].max_repositories: must be at least 1, got 0"),
    ],
)
def test_numbers_out_of_range(data, message):
    assert only_problem(data) == message


@pytest.mark.parametrize(
    "url",
    [
        "ftp://api.github.com",
        "api.github.com",
        "https://",
        "https:///api/v3",
        "https://api.github.com?x=1",
        "https://api.github.com/#x",
        "https://api.github.com:99999",
        "https://api github.com",
    ],
)
def test_bad_api_url(url):
    assert only_problem(with_github(api_url=url)) == (
        f'github.api_url: "{url}" must be an http(s) URL with a host, e.g. https://api.github.com'
    )


@pytest.mark.parametrize(
    "url, meant",
    [
        ("https://github.com", "https://api.github.com"),
        ("https://www.github.com/", "https://api.github.com"),
        ("https://api.github.com/api/v3", "https://api.github.com"),
        ("https://octocorp.ghe.com", "https://api.octocorp.ghe.com"),
    ],
)
def test_api_url_of_a_web_host_names_the_api_url(url, meant):
    assert only_problem(with_github(api_url=url)) == (
        f'github.api_url: "{url}" is not GitHub\'s API: use {meant} (GitHub Enterprise Server: https://HOST/api/v3)'
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://api.github.com",
        "https://api.octocorp.ghe.com",
        "https://github.example.com/api/v3",
        "http://127.0.0.1:8080",
    ],
)
def test_api_urls_accepted(url):
    assert parse_config(with_github(api_url=url), {}).github.api_url == url


def test_api_url_accepts_http_and_drops_trailing_slashes():
    config = parse_config(with_github(api_url="http://localhost:8080//"), {})
    assert config.github.api_url == "http://localhost:8080"


@pytest.mark.parametrize(
    "address, message",
    [
        ("9452", '"9452" has no colon: write ":9452" for every interface, or "127.0.0.1:9452"'),
        ("::1:9452", '"::1:9452" must be [host]:port, e.g. ":9452", "127.0.0.1:9452" or "[::1]:9452"'),
        ("localhost:", '"localhost:" must be [host]:port, e.g. ":9452", "127.0.0.1:9452" or "[::1]:9452"'),
        (":0", "port 0 is not between 1 and 65535"),
        (":65536", "port 65536 is not between 1 and 65535"),
        ("[::g]:9452", '"::g" is not an IPv6 address'),
        ("bad_host:9452", '"bad_host" is not a host name or IPv4 address'),
    ],
)
def test_bad_listen_address(address, message):
    assert only_problem(minimal(server={"listen_address": address})) == f"server.listen_address: {message}"


def test_ca_bundle_must_be_a_file_of_pem_certificates(tmp_path):
    bundle = certifi.where()
    assert parse_config(with_github(ca_bundle=bundle), {}).github.ca_bundle == bundle
    assert only_problem(with_github(ca_bundle=str(tmp_path))) == f"github.ca_bundle: {tmp_path} is not a file"
    for text in ("-----BEGIN CERTIFICATE-----\n", "not a certificate\n"):
        fake = write(tmp_path, "ca.pem", text)
        assert only_problem(with_github(ca_bundle=fake)) == (
            f"github.ca_bundle: {fake} holds no PEM certificate (expected -----BEGIN CERTIFICATE----- blocks)"
        )


# --- many problems at once --------------------------------------------------------------------


def test_every_problem_is_reported_at_once():
    found = problems(
        {
            "github": {
                "api_url": "ftp://x",
                "token": "t",
                "token_file": "/nonexistent/token",
                "max_retries": -1,
                "colour": 1,
            },
            "source": "both",
            "refresh_interval": 60,
            "workers": 0,
            "organizations": [
                {"name": "-bad-", "teams": ["a/b", "ok", "ok"], "per_user": "hashed", "colour": 1},
                {"teams": []},
                {"name": "dup"},
                {"name": "DUP", "max_repositories": 0},
            ],
            "enterprises": [{"name": "a..b", "seats": "yes"}],
            "server": {"listen_address": ":0"},
        }
    )
    assert found == [
        "github.colour: unknown key",
        "github: token and token_file are set; use exactly one of token, token_file or app",
        "github.token_file: cannot read /nonexistent/token: No such file or directory",
        'github.api_url: "ftp://x" must be an http(s) URL with a host, e.g. https://api.github.com',
        "github.max_retries: must be at least 0, got -1",
        'source: "both" is not one of legacy, reports, auto',
        "refresh_interval: must be a duration string like 1h, got integer",
        "workers: must be between 1 and 64, got 0",
        "organizations[0].colour: unknown key",
        'organizations[0].name: "-bad-" is not a valid organization login (letters, digits and single '
        "hyphens, not starting or ending with a hyphen, at most 39 characters)",
        "organizations[0].teams[0]: \"a/b\" is not a valid team slug (letters, digits, '.', '_' and "
        "'-', starting and ending with a letter or digit, at most 100 characters)",
        'organizations[0].teams[2]: duplicate team "ok"',
        "organizations[1].name: required",
        "organizations[3].max_repositories: must be at least 1, got 0",
        'organizations[3].name: duplicate organization "DUP" (also at organizations[2])',
        "enterprises[0].name: \"a..b\" is not a valid enterprise slug (letters, digits, '.', '_' and "
        "'-', starting and ending with a letter or digit, at most 100 characters)",
        "enterprises[0].seats: must be true or false, got string",
        "user_hash_salt: required when an entry sets per_user: hashed",
        "server.listen_address: port 0 is not between 1 and 65535",
    ]
    assert len(found) == 19


def test_config_error_message_lists_every_problem():
    with pytest.raises(ConfigError) as info:
        parse_config(minimal(workers=0, source="x"), {})
    assert str(info.value) == (
        "invalid configuration:\n"
        '  source: "x" is not one of legacy, reports, auto\n'
        "  workers: must be between 1 and 64, got 0"
    )


# --- files ------------------------------------------------------------------------------------


def test_load_config(tmp_path):
    path = write(tmp_path, "config.yaml", "github:\n  token: ${T}\norganizations:\n  - name: my-org\n")
    config = load_config(Path(path), {"T": "t0ken"})
    assert config.github.credentials.token == "t0ken"


def test_load_config_unset_variable(tmp_path):
    path = write(tmp_path, "config.yaml", "github:\n  token: ${T}\norganizations:\n  - name: my-org\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert info.value.problems == ["github.token: environment variable T is not set"]


def test_load_config_empty_file(tmp_path):
    path = write(tmp_path, "config.yaml", "# nothing here\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert info.value.problems == ["top level: the configuration is empty"]


def test_load_config_missing_file(tmp_path):
    path = tmp_path / "missing.yaml"
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert info.value.problems == [f"{path}: cannot read: No such file or directory"]


def test_load_config_bad_yaml(tmp_path):
    path = write(tmp_path, "config.yaml", "github:\n  token: [unclosed\norganizations: []\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    (problem,) = info.value.problems
    assert problem.startswith(f"{path}: not valid YAML at line ")


def test_load_config_duplicate_yaml_key(tmp_path):
    path = write(tmp_path, "config.yaml", "github:\n  token: a\n  token: b\norganizations: [{name: o}]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert info.value.problems == [f"{path}: not valid YAML at line 3, column 3: duplicate key 'token'"]


def test_load_config_yaml_merge_keys_are_not_duplicates(tmp_path):
    text = "github: {token: t}\norganizations:\n  - &base {name: a, seats: false}\n  - <<: *base\n    name: b\n"
    path = write(tmp_path, "config.yaml", text)
    config = load_config(path, {})
    assert [(e.scope.name, e.seats) for e in config.entries] == [("a", False), ("b", False)]


def test_example_file_loads():
    config = load_config(EXAMPLE, {"GITHUB_TOKEN": "ghp_example"})
    assert config.github.credentials.token == "ghp_example"
    assert [e.scope for e in config.entries] == [Scope(ORG, "my-org"), Scope(ENTERPRISE, "my-enterprise")]
    assert config.entries[0].teams == ("platform", "web")
    assert config.listen_address == ":9452"


def test_example_file_needs_the_token_variable():
    with pytest.raises(ConfigError) as info:
        load_config(EXAMPLE, {})
    assert info.value.problems == ["github.token: environment variable GITHUB_TOKEN is not set"]


# --- hostile or mistaken values -----------------------------------------------------------------


@pytest.mark.parametrize(
    "url, message",
    [
        (
            "https://user:hunter2@api.github.com",
            "must not contain a user name or password (give the token with token, token_file or app)",
        ),
        (
            "https://ghp_secret@ghes.example.com/api/v3",
            "must not contain a user name or password (give the token with token, token_file or app)",
        ),
        (
            "https://github.com",
            '"https://github.com" is not GitHub\'s API: use https://api.github.com'
            " (GitHub Enterprise Server: https://HOST/api/v3)",
        ),
        (
            "https://www.GitHub.com/",
            '"https://www.GitHub.com/" is not GitHub\'s API: use https://api.github.com'
            " (GitHub Enterprise Server: https://HOST/api/v3)",
        ),
        (
            "https://api.github.com/orgs/acme",
            '"https://api.github.com/orgs/acme" is not GitHub\'s API: use '
            "https://api.github.com (GitHub Enterprise Server: https://HOST/api/v3)",
        ),
        (
            "https://ghes.example.com/api/v4",
            '"https://ghes.example.com/api/v4" cannot be a GitHub API: its path must be empty '
            "(api.github.com, GHE.com) or end in /api/v3 (GitHub Enterprise Server)",
        ),
    ],
)
def test_api_url_that_cannot_be_the_api_is_refused(url, message):
    problem = only_problem(with_github(api_url=url))
    assert problem == f"github.api_url: {message}"
    assert "hunter2" not in problem and "ghp_secret" not in problem


@pytest.mark.parametrize(
    "url",
    [
        "https://api.github.com/",
        "https://ghes.example.com/api/v3",
        "https://ghes.example.com/github/api/v3/",
        "https://api.acme.ghe.com",
        "http://127.0.0.1:8080",
    ],
)
def test_api_urls_of_github_and_ghes_are_accepted(url):
    assert parse_config(with_github(api_url=url), {}).github.api_url == url.rstrip("/")


def test_every_report_off_is_refused():
    off = {"aggregated": False, "users": False, "teams": False}
    for source in ("reports", "auto"):
        assert only_problem(minimal(source=source, organizations=[{"name": "my-org", "reports": off}])) == (
            "organizations[0].reports: every report is off (aggregated, users, teams and repositories), so the "
            "reports API has nothing to export for this entry; turn one on, or use source: legacy"
        )
    assert parse_config(
        minimal(source="reports", organizations=[{"name": "my-org", "reports": off, "repositories": True}]), {}
    )
    assert parse_config(minimal(source="legacy", organizations=[{"name": "my-org", "reports": off}]), {})


def test_limits_of_series_and_server_have_defaults_and_keys():
    from copilot_exporter.config import ServerLimits
    from copilot_exporter.model import MAX_SERIES_PER_FAMILY

    config = parse_config(minimal(), {})
    assert config.max_series_per_family == MAX_SERIES_PER_FAMILY == 5000
    assert config.server_limits == ServerLimits(max_connections=512, idle_timeout=30.0, read_header_timeout=10.0)
    config = parse_config(
        minimal(
            max_series_per_family=50, server={"max_connections": 10, "idle_timeout": "2m", "read_header_timeout": "5s"}
        ),
        {},
    )
    assert config.max_series_per_family == 50
    assert config.server_limits == ServerLimits(max_connections=10, idle_timeout=120.0, read_header_timeout=5.0)


@pytest.mark.parametrize(
    "data, message",
    [
        (minimal(max_series_per_family=0), "max_series_per_family: must be at least 1, got 0"),
        (minimal(max_series_per_family="many"), "max_series_per_family: must be an integer, got string"),
        (minimal(server={"max_connections": 0}), "server.max_connections: must be between 1 and 100000, got 0"),
        (minimal(server={"idle_timeout": "0s"}), 'server.idle_timeout: must be at least 100ms, got "0s"'),
        (
            minimal(server={"read_header_timeout": 10}),
            "server.read_header_timeout: must be a duration string like 1h, got integer",
        ),
    ],
)
def test_bad_limits(data, message):
    assert only_problem(data) == message


BILLION_LAUGHS = "".join(
    f"{name}: &{name} [{', '.join([f'*{previous}'] * 9) if previous else ', '.join(['lol'] * 9)}]\n"
    for previous, name in zip([None, *"abcdefgh"], "abcdefghi")
)


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path):
    import time

    path = write(tmp_path, "bomb.yaml", BILLION_LAUGHS + "github: {token: t}\norganizations: [{name: a}]\n")
    started = time.monotonic()
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert time.monotonic() - started < 10  # expanding it would take hours and gigabytes
    [problem] = info.value.problems
    assert problem.startswith(f"{path}: not valid YAML at line ")
    assert problem.endswith("its anchors and aliases expand to more than 100,000 values")


def test_a_yaml_alias_inside_its_own_anchor_is_refused(tmp_path):
    path = write(tmp_path, "loop.yaml", "github: &g {token: t, self: *g}\norganizations: [{name: a}]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert info.value.problems == [
        f"{path}: not valid YAML at line 1, column 9: an alias refers to a value that contains it"
    ]


def test_yaml_aliases_of_modest_size_still_work(tmp_path):
    path = write(tmp_path, "shared.yaml", "creds: &creds {token: t}\ngithub: *creds\norganizations: [{name: a}]\n")
    with pytest.raises(ConfigError) as info:  # `creds` is not a key, but the alias itself was read
        load_config(path, {})
    assert info.value.problems == ["creds: unknown key"]


def test_deeply_nested_yaml_is_a_config_error(tmp_path):
    path = write(tmp_path, "deep.yaml", "a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, {})
    assert info.value.problems == [f"{path}: not valid YAML: nested too deeply"]


def test_state_dir_and_fill_days_have_defaults_and_keys():
    config = parse_config(minimal(), {})
    assert (config.state_dir, config.fill_days_per_refresh) == ("copilot-exporter-state", 7)
    config = parse_config(minimal(state_dir="/var/lib/copilot-exporter", fill_days_per_refresh=28), {})
    assert (config.state_dir, config.fill_days_per_refresh) == ("/var/lib/copilot-exporter", 28)


@pytest.mark.parametrize(
    "data, message",
    [
        (minimal(state_dir=""), "state_dir: must not be empty"),
        (minimal(state_dir=3), "state_dir: must be a string, got integer"),
        (minimal(fill_days_per_refresh=0), "fill_days_per_refresh: must be between 1 and 28, got 0"),
        (minimal(fill_days_per_refresh=29), "fill_days_per_refresh: must be between 1 and 28, got 29"),
    ],
)
def test_bad_state_settings(data, message):
    assert only_problem(data) == message
