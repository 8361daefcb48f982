"""The simulated GitHub API, exercised over real HTTP."""

from __future__ import annotations

import datetime
import gzip
import json
import time
from urllib.parse import urlsplit

import pytest
import requests

from copilot_exporter.simulator import AppSpec, EnterpriseSpec, Fault, OrgSpec, Simulator, World

pytestmark = pytest.mark.integration


TODAY = datetime.date(2026, 11, 24)
DAY = datetime.date(2026, 11, 20)
TOKEN = "sim-token"
COUNTERS = (
    "user_initiated_interaction_count",
    "code_generation_activity_count",
    "code_acceptance_activity_count",
    "loc_suggested_to_add_sum",
    "loc_suggested_to_delete_sum",
    "loc_added_sum",
    "loc_deleted_sum",
)


@pytest.fixture
def sim():
    with Simulator(world=World.default(today=TODAY), token=TOKEN, records_per_link=5) as simulator:
        yield simulator


class Api:
    """GET requests to the simulated API with the token."""

    def __init__(self, url: str):
        self.url = url
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Bearer {TOKEN}"

    def __call__(self, path, timeout=10, **kwargs):
        return self.session.get(self.url + path, timeout=timeout, **kwargs)

    def pages(self, path, **params):
        """Every page of a listing, following `Link: rel="next"` (absolute URLs on the API host)."""
        response, pages = self(path, params=params), []
        while True:
            assert response.status_code == 200
            pages.append(response.json())
            link = response.links.get("next")
            if not link:
                return pages
            assert link["url"].startswith(self.url + path)
            response = self.session.get(link["url"], timeout=10)


@pytest.fixture
def api(sim):
    return Api(sim.api_url)


@pytest.fixture
def storage():
    """A session for download links: never carries credentials."""
    session = requests.Session()
    session.trust_env = False
    return session


def download(session, link):
    """The records of one report part, whichever of the three encodings it uses."""
    response = session.get(link, timeout=10)
    assert response.status_code == 200, response.text
    body = response.content  # Content-Encoding: gzip is undone by requests
    if urlsplit(link).path.endswith(".gz"):
        assert response.headers["Content-Type"] == "application/gzip"
        assert "Content-Encoding" not in response.headers
        body = gzip.decompress(body)
    return [json.loads(line) for line in body.splitlines()]


def report(api, storage, path, **params):
    response = api(path, params=params)
    assert response.status_code == 200, response.text
    return [r for link in response.json()["download_links"] for r in download(storage, link)]


# -- authentication, errors, headers ---------------------------------------------------------


def test_bad_or_missing_token_gets_401_with_rate_limit_headers(sim):
    url = sim.api_url + "/orgs/acme/copilot/metrics"
    for headers in ({}, {"Authorization": "Bearer wrong"}):
        response = requests.get(url, headers=headers, timeout=10)
        assert response.status_code == 401
        assert response.json()["message"] == "Bad credentials"
        assert response.headers["X-RateLimit-Resource"] == "core"
    accepted = requests.get(url, headers={"Authorization": f"token {TOKEN}"}, timeout=10)
    assert accepted.status_code == 200
    assert [r.status for r in sim.requests] == [401, 401, 200]


def test_unknown_scopes_and_routes_get_404(api):
    for path in (
        "/orgs/nope/copilot/metrics",
        "/orgs/acme/team/nope/copilot/metrics",
        "/enterprises/nope/copilot/metrics",
        "/orgs/acme/copilot/metrics/reports/bogus-1-day",
        "/orgs/acme/copilot/metrics/reports/enterprise-1-day",
        "/nothing/here",
    ):
        response = api(path, params={"day": DAY.isoformat()})
        assert response.status_code == 404, path
        assert set(response.json()) == {"message", "documentation_url", "status"}


def test_every_response_carries_rate_limit_headers_and_json(api):
    response = api("/orgs/acme/copilot/billing")
    for header in (
        "X-RateLimit-Limit",
        "X-RateLimit-Remaining",
        "X-RateLimit-Used",
        "X-RateLimit-Reset",
        "X-RateLimit-Resource",
    ):
        assert header in response.headers
    assert response.headers["Content-Type"].startswith("application/json")
    assert int(response.headers["X-RateLimit-Reset"]) > time.time()


# -- legacy metrics API ----------------------------------------------------------------------


def test_legacy_paging_follows_links_to_the_same_days(api):
    everything = api("/orgs/acme/copilot/metrics", params={"per_page": 100}).json()
    pages = api.pages("/orgs/acme/copilot/metrics", per_page=7)
    assert len(pages) > 5
    assert [d["date"] for page in pages for d in page] == [d["date"] for d in everything]
    dates = [datetime.date.fromisoformat(d["date"]) for d in everything]
    assert dates == sorted(dates)
    assert dates[-1] <= TODAY - datetime.timedelta(days=1)
    assert dates[0] >= TODAY - datetime.timedelta(days=100)
    assert 70 < len(dates) < 100  # some days are missing


def test_legacy_links_keep_other_parameters(api):
    response = api("/orgs/acme/copilot/metrics", params={"per_page": 3, "since": "2026-11-01T00:00:00Z"})
    assert all(d["date"] >= "2026-11-01" for d in response.json())
    next_url = response.links["next"]["url"]
    assert "since=2026-11-01T00%3A00%3A00Z" in next_url and "page=2" in next_url
    last = requests.get(response.links["last"]["url"], headers={"Authorization": f"Bearer {TOKEN}"})
    assert "prev" in last.links and "first" in last.links and "next" not in last.links


def test_per_page_is_capped_by_the_server():
    with Simulator(world=World.default(today=TODAY), max_per_page=2) as sim:
        response = requests.get(sim.api_url + "/orgs/acme/copilot/metrics", params={"per_page": 100}, timeout=10)
    assert len(response.json()) == 2 and "next" in response.links


def test_legacy_day_is_plausible_and_complete(api):
    day = api("/orgs/acme/copilot/metrics").json()[-1]
    assert day["total_engaged_users"] <= day["total_active_users"]
    completions = day["copilot_ide_code_completions"]
    editors = {e["name"] for e in completions["editors"]}
    assert editors == {"vscode", "jetbrains", "neovim", "visualstudio"}
    models = [m for e in completions["editors"] for m in e["models"]]
    custom = [m for m in models if m["is_custom_model"]]
    assert custom and all(m["custom_model_training_date"] for m in custom)
    for model in models:
        assert model["total_engaged_users"] <= completions["total_engaged_users"]
        for lang in model["languages"]:
            assert lang["total_code_acceptances"] <= lang["total_code_suggestions"]
            assert lang["total_code_lines_accepted"] <= lang["total_code_lines_suggested"]
    assert len({lang["name"] for lang in completions["languages"]}) >= 3
    assert day["copilot_dotcom_chat"]["models"]
    repositories = day["copilot_dotcom_pull_requests"]["repositories"]
    assert repositories and all(r["name"].startswith("acme/") and r["models"] for r in repositories)


def test_legacy_teams_and_enterprises_and_small_scopes(api):
    assert api("/orgs/acme/team/platform/copilot/metrics").json()
    assert api("/enterprises/initech/team/core/copilot/metrics").json()
    assert api("/enterprises/initech/copilot/metrics").json()
    assert api("/orgs/tiny/copilot/metrics").json() == []  # fewer than five licences


def test_legacy_bad_parameters_get_400(api):
    for params in (
        {"since": "yesterday"},
        {"page": "x"},
        {"per_page": "0"},
        {"since": "2026-11-10", "until": "2026-11-01"},
    ):
        assert api("/orgs/acme/copilot/metrics", params=params).status_code == 400, params


def test_etag_answers_304_without_spending_the_rate_limit(sim, api):
    first = api("/orgs/acme/copilot/metrics")
    etag = first.headers["ETag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    again = api("/orgs/acme/copilot/metrics", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    assert again.headers["X-RateLimit-Remaining"] == first.headers["X-RateLimit-Remaining"]
    assert sim.request_count("/orgs/acme/copilot/metrics") == 2
    other = api("/orgs/acme/copilot/metrics", headers={"If-None-Match": '"other"'})
    assert other.status_code == 200


def test_worlds_with_the_same_seed_answer_the_same(sim, api):
    with Simulator(world=World.default(today=TODAY), token=TOKEN) as other:
        theirs = requests.get(
            other.api_url + "/orgs/acme/copilot/metrics", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10
        )
    assert theirs.headers["ETag"] == api("/orgs/acme/copilot/metrics").headers["ETag"]


# -- reports API -----------------------------------------------------------------------------


def test_report_links_point_to_the_other_host_with_all_encodings(sim, api, storage):
    links = api("/orgs/acme/copilot/metrics/reports/users-1-day", params={"day": DAY.isoformat()}).json()
    api_host, download_host = urlsplit(sim.api_url), urlsplit(sim.download_url)
    assert api_host.hostname != download_host.hostname and api_host.port != download_host.port
    assert links["report_day"] == DAY.isoformat()
    assert len(links["download_links"]) >= 4
    assert all(link.startswith(sim.download_url) for link in links["download_links"])
    encodings = set()
    for link in links["download_links"]:
        with storage.get(link, stream=True) as response:
            encodings.add((urlsplit(link).path.endswith(".gz"), response.headers.get("Content-Encoding")))
    assert encodings == {(False, None), (True, None), (False, "gzip")}


def test_users_report_sums_to_the_aggregated_record(api, storage):
    for kind, name, aggregated in (
        ("orgs", "acme", "organization-1-day"),
        ("enterprises", "initech", "enterprise-1-day"),
    ):
        base = f"/{kind}/{name}/copilot/metrics/reports"
        users = report(api, storage, f"{base}/users-1-day", day=DAY.isoformat())
        [day] = report(api, storage, f"{base}/{aggregated}", day=DAY.isoformat())
        assert day["daily_active_users"] == len(users) > 5
        assert len({u["user_id"] for u in users}) == len(users)
        for counter in COUNTERS:  # users seen only server-side carry no counters
            assert day[counter] == sum(u.get(counter, 0) for u in users), counter
        assert day["daily_active_users"] <= day["weekly_active_users"] <= day["monthly_active_users"]


def test_enterprise_counts_shared_users_once(api, storage):
    shared = set()
    for day in (DAY - datetime.timedelta(days=n) for n in range(3)):
        acme, globex, enterprise = (
            {
                u["user_id"]
                for u in report(api, storage, f"{base}/copilot/metrics/reports/users-1-day", day=day.isoformat())
            }
            for base in ("/orgs/acme", "/orgs/globex", "/enterprises/initech")
        )
        assert enterprise == acme | globex
        shared |= acme & globex
    assert shared  # some people belong to both orgs


def test_aggregated_record_has_every_section(api, storage):
    [day] = report(api, storage, "/orgs/acme/copilot/metrics/reports/organization-1-day", day=DAY.isoformat())
    for key in (
        "totals_by_ide",
        "totals_by_feature",
        "totals_by_language_feature",
        "totals_by_language_model",
        "totals_by_model_feature",
        "totals_by_ai_adoption_phase",
    ):
        assert day[key], key
    assert "user_initiated_interaction_count" not in day["totals_by_language_feature"][0]
    features = {f["feature"] for f in day["totals_by_feature"]}
    assert {"code_completion", "chat_panel_agent_mode", "agent_edit"} <= features
    assert day["pull_requests"]["copilot_suggestions_by_comment_type"]
    assert "median_minutes_to_merge" in day["pull_requests"]
    assert day["organization_id"] and day["enterprise_id"]
    for period in ("daily", "weekly", "monthly"):
        assert f"{period}_active_copilot_cloud_agent_users" in day


def test_user_records_have_the_documented_fields(api, storage):
    users = report(api, storage, "/orgs/acme/copilot/metrics/reports/users-1-day", day=DAY.isoformat())
    users = [u for u in users if len(u) > len(ID_FIELDS)]  # server-side only: see below
    for user in users:
        assert {
            "user_id",
            "user_login",
            "day",
            "ai_adoption_phase",
            "totals_by_ide",
            "etl_id",
            "day_partition",
            "entity_id_partition",
            *COUNTERS,
        } <= set(user)
        assert "last_known_ide_version" in user["totals_by_ide"][0]
    assert any("used_copilot_cloud_agent" in u for u in users)
    assert any("used_copilot_coding_agent" in u for u in users)
    assert any("ai_credits_used" not in u for u in users)
    assert any("ai_credits_used" in u for u in users)


ID_FIELDS = {"user_id", "user_login", "day", "organization_id", "enterprise_id"}


def test_user_records_carry_the_2026_fields_and_some_only_ids(api, storage):
    users = report(api, storage, "/enterprises/initech/copilot/metrics/reports/users-1-day", day=DAY.isoformat())
    bare = [u for u in users if set(u) <= ID_FIELDS]
    full = [u for u in users if u not in bare]
    assert bare and full and len(bare) < len(full)
    assert all(set(u) == {"user_id", "user_login", "day", "enterprise_id"} for u in bare)
    for user in full:
        assert isinstance(user["used_copilot_app"], bool) and isinstance(user["used_vscode_agent"], bool)
        phase = user["ai_adoption_phase"]
        assert 0 <= phase["phase_number"] <= 3 and isinstance(phase["phase"], str)
        for flag, totals in (
            ("used_copilot_app", "totals_by_copilot_app"),
            ("used_vscode_agent", "totals_by_vscode_agent"),
            ("used_cli", "totals_by_cli"),
        ):
            assert (user[totals] is not None) == user[flag], (flag, user[totals])
    assert any(u["used_copilot_app"] for u in full) and any(u["used_vscode_agent"] for u in full)
    app = next(u["totals_by_copilot_app"] for u in full if u["used_copilot_app"])
    assert set(app) == {"session_count", "request_count", "prompt_count", "token_usage"}
    agent = next(u["totals_by_vscode_agent"] for u in full if u["used_vscode_agent"])
    assert set(agent) == {"session_count", "total_user_messages"}
    cli = next(u["totals_by_cli"] for u in full if u["used_cli"])
    assert set(cli["last_known_cli_version"]) == {"cli_version", "sampled_at"}
    assert any("ai_credits_used" in u for u in full)
    app_users = [u for u in full if u["used_copilot_app"]]
    assert all(any(f["feature"] == "copilot_app" for f in u["totals_by_feature"]) for u in app_users)


def test_team_rows_name_inactive_members_too(api, storage):
    users = {
        u["user_id"]
        for u in report(api, storage, "/orgs/acme/copilot/metrics/reports/users-1-day", day=DAY.isoformat())
    }
    rows = report(api, storage, "/orgs/acme/copilot/metrics/reports/user-teams-1-day", day=DAY.isoformat())
    assert {"platform", "web", "data"} >= {r["slug"] for r in rows}
    members = {r["user_id"] for r in rows}
    assert members & users and members - users
    fields = {"user_id", "user_login", "day", "organization_id", "team_id", "slug"}
    assert all(set(row) == fields for row in rows)


def test_repos_report(api, storage):
    repos = report(api, storage, "/orgs/acme/copilot/metrics/reports/repos-1-day", day=DAY.isoformat())
    assert 5 <= len(repos) <= 80
    assert all(r["repo_owner_name"] == "acme" for r in repos)
    assert all("total_created" in r["pull_requests"] for r in repos)


def test_28_day_reports(api, storage):
    response = api("/enterprises/initech/copilot/metrics/reports/enterprise-28-day/latest").json()
    [wrapper] = [r for link in response["download_links"] for r in download(storage, link)]
    # yesterday is missing, so the window ends the day before
    assert wrapper["report_end_day"] == response["report_end_day"] == "2026-11-22"
    assert len(wrapper["day_totals"]) == 28
    users = report(api, storage, "/orgs/acme/copilot/metrics/reports/users-28-day/latest")
    assert users and all(u["report_start_day"] == "2026-10-26" for u in users)


def test_reports_for_unavailable_days_answer_204(sim, api):
    path = "/orgs/acme/copilot/metrics/reports/organization-1-day"
    for day in (
        TODAY - datetime.timedelta(days=1),
        TODAY,
        TODAY + datetime.timedelta(days=3),
        TODAY - datetime.timedelta(days=400),
    ):
        response = api(path, params={"day": day.isoformat()})
        assert response.status_code == 204 and response.content == b"", day
    sim.missing_report_days.add(DAY)
    assert api(path, params={"day": DAY.isoformat()}).status_code == 204
    assert api(path).status_code == 400
    assert api(path, params={"day": "2026-13-01"}).status_code == 400


def test_links_are_fresh_but_paths_stable_until_revised(sim, api, storage):
    path = "/orgs/acme/copilot/metrics/reports/organization-1-day"
    first, second = (api(path, params={"day": DAY.isoformat()}).json()["download_links"][0] for _ in range(2))
    assert first != second and urlsplit(first).path == urlsplit(second).path
    sim.revise("org", "acme", DAY)
    revised = api(path, params={"day": DAY.isoformat()}).json()["download_links"][0]
    assert urlsplit(revised).path != urlsplit(first).path
    [old], [new] = download(storage, first), download(storage, revised)
    assert new["code_generation_activity_count"] > old["code_generation_activity_count"]
    other_day = api(path, params={"day": (DAY - datetime.timedelta(days=1)).isoformat()}).json()
    assert "/2026-11-19/" in other_day["download_links"][0]


def test_expired_or_tampered_links_are_refused(sim, api, storage):
    path = "/orgs/acme/copilot/metrics/reports/organization-1-day"
    link = api(path, params={"day": DAY.isoformat()}).json()["download_links"][0]
    assert storage.get(link.replace("sig=", "sig=0")).status_code == 403
    sim.link_ttl = 0
    expired = api(path, params={"day": DAY.isoformat()}).json()["download_links"][0]
    response = storage.get(expired)
    assert response.status_code == 403 and b"Request has expired" in response.content


def test_credentials_sent_to_the_download_host_are_refused_and_counted(sim, api, storage):
    link = api("/orgs/acme/copilot/metrics/reports/organization-1-day", params={"day": DAY.isoformat()}).json()[
        "download_links"
    ][0]
    assert storage.get(link, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 403
    assert storage.get(link, headers={"X-Token": TOKEN}).status_code == 403
    assert sim.download_auth_violations == 2
    assert storage.get(link).status_code == 200
    assert sim.download_auth_violations == 2
    assert sim.request_count(server="download") == 3


# -- seats -----------------------------------------------------------------------------------


def test_seats_page_to_the_end_consistently(api, storage):
    pages = api.pages("/orgs/acme/copilot/billing/seats", per_page=30)
    seats = [s for page in pages for s in page["seats"]]
    total = pages[0]["total_seats"]
    assert len(seats) == total and len(pages) == 3
    breakdown = api("/orgs/acme/copilot/billing").json()["seat_breakdown"]
    assert breakdown["total"] == total
    pending = [s for s in seats if s["pending_cancellation_date"]]
    assert breakdown["pending_cancellation"] == len(pending)
    assert breakdown["active_this_cycle"] + breakdown["inactive_this_cycle"] == total
    assert any(s["last_activity_at"] is None for s in seats)
    assert any((s["last_activity_editor"] or "").startswith("vscode/") for s in seats)
    logins = {s["assignee"]["login"] for s in seats if s["assignee"]}
    users = report(api, storage, "/orgs/acme/copilot/metrics/reports/users-1-day", day=DAY.isoformat())
    assert {u["user_login"] for u in users} <= logins


def test_enterprise_seats_list_a_user_once_per_org(api):
    pages = api.pages("/enterprises/initech/copilot/billing/seats", per_page=100)
    seats = [s for page in pages for s in page["seats"]]
    logins = [s["assignee"]["login"] for s in seats if s["assignee"]]
    assert len(seats) > pages[0]["total_seats"]
    assert len(set(logins)) <= pages[0]["total_seats"] and len(set(logins)) < len(logins)
    assert {s["organization"]["login"] for s in seats} == {"acme", "globex"}


# -- faults ----------------------------------------------------------------------------------


def test_status_faults_count_down_and_carry_headers(sim, api):
    sim.add_fault("/orgs/acme/copilot/metrics", Fault(status=429, headers={"Retry-After": "1"}), times=2)
    first, second, third = (api("/orgs/acme/copilot/metrics") for _ in range(3))
    assert first.status_code == second.status_code == 429
    assert first.headers["Retry-After"] == "1" and "X-RateLimit-Remaining" in first.headers
    assert third.status_code == 200
    sim.add_fault("/orgs/acme/copilot/billing", Fault(status=422))
    assert api("/orgs/acme/copilot/billing").status_code == 422
    assert api("/orgs/globex/copilot/billing").status_code == 200
    sim.clear_faults()
    assert api("/orgs/acme/copilot/billing").status_code == 200


def test_delay_fault_exceeds_a_read_timeout(sim, api):
    sim.add_fault("/orgs", Fault(status=503, delay=1.0), times=1)
    with pytest.raises(requests.ReadTimeout):
        api("/orgs/acme/copilot/billing", timeout=0.2)
    sim.add_fault("/orgs", Fault(status=200, delay=0.3), times=1)  # the normal answer, late
    started = time.monotonic()
    assert api("/orgs/acme/copilot/billing").json()["seat_breakdown"]
    assert time.monotonic() - started >= 0.3


def test_body_delay_fault_sends_the_headers_then_stalls(sim, api, storage):
    sim.add_fault("/orgs", Fault(status=200, body_delay=1.0), times=1)
    started = time.monotonic()
    response = api("/orgs/acme/copilot/billing", timeout=0.3, stream=True)
    assert response.status_code == 200  # headers on time: later than the 0.3 s read timeout would raise
    with pytest.raises(requests.ConnectionError):  # the body is later than the read timeout
        response.content
    sim.add_fault("/orgs", Fault(status=200, body_delay=0.3), times=1)
    started = time.monotonic()
    assert api("/orgs/acme/copilot/billing").json()["seat_breakdown"]  # the normal body, late
    assert time.monotonic() - started >= 0.3
    link = api("/orgs/acme/copilot/metrics/reports/users-1-day", params={"day": DAY.isoformat()}).json()[
        "download_links"
    ][0]
    sim.add_fault("/reports/", Fault(status=200, body_delay=0.3), times=1, server="download")
    started = time.monotonic()
    assert storage.get(link, timeout=10).status_code == 200  # a streamed body stalls too
    assert time.monotonic() - started >= 0.3


def test_latency_delays_every_answer_of_both_servers():
    with Simulator(world=World.default(today=TODAY), token=TOKEN, latency=0.2) as sim:
        api = Api(sim.api_url)
        started = time.monotonic()
        link = api("/orgs/acme/copilot/metrics/reports/users-1-day", params={"day": DAY.isoformat()}).json()[
            "download_links"
        ][0]
        assert time.monotonic() - started >= 0.2
        started = time.monotonic()
        assert requests.get(link, timeout=10).status_code == 200
        assert time.monotonic() - started >= 0.2
        sim.add_fault("/orgs", Fault(status=503, delay=0.2), times=1)  # a fault's delay adds to it
        started = time.monotonic()
        assert api("/orgs/acme/copilot/billing").status_code == 503
        assert time.monotonic() - started >= 0.4


def test_malformed_truncated_and_reset_faults(sim, api):
    sim.add_fault("/orgs/acme", Fault(kind="malformed"), times=1)
    response = api("/orgs/acme/copilot/metrics")
    assert response.status_code == 200
    with pytest.raises(ValueError):
        response.json()
    sim.add_fault("/orgs/acme", Fault(kind="truncated"), times=1)
    with pytest.raises(requests.exceptions.ChunkedEncodingError):
        api("/orgs/acme/copilot/metrics")
    sim.add_fault("/orgs/acme", Fault(kind="reset"), times=1)
    with pytest.raises(requests.ConnectionError) as caught:
        api("/orgs/acme/copilot/metrics")
    assert "reset" in str(caught.value).lower()
    assert api("/orgs/acme/copilot/metrics").status_code == 200


def test_wrong_types_fault_keeps_json_valid(sim, api):
    sim.add_fault("/orgs/acme/copilot/billing/seats", Fault(kind="wrong_types"), times=1)
    body = api("/orgs/acme/copilot/billing/seats").json()
    assert isinstance(body["total_seats"], (str, dict))
    assert isinstance(body["seats"], dict)


def test_download_faults(sim, api, storage):
    link = api("/orgs/acme/copilot/metrics/reports/users-1-day", params={"day": DAY.isoformat()}).json()[
        "download_links"
    ][0]
    sim.add_fault("/reports/", Fault(status=503), times=1, server="download")
    assert storage.get(link).status_code == 503
    sim.add_fault("/reports/", Fault(kind="huge", size=2_000_000), times=1, server="download")
    lines = storage.get(link).content.splitlines()
    assert sum(map(len, lines)) >= 2_000_000
    assert all("user_login" in json.loads(line) for line in lines)
    sim.add_fault("/reports/", Fault(kind="wrong_types"), times=1, server="download")
    assert isinstance(json.loads(storage.get(link).content.splitlines()[0])["user_id"], (str, dict))


def test_unknown_fault_kind_is_refused():
    with pytest.raises(ValueError):
        Fault(kind="explode")


# -- rate limit ------------------------------------------------------------------------------


def test_primary_rate_limit_counts_down_refuses_and_refills(sim, api):
    sim.set_rate_limit(remaining=2, reset_in=0.6)
    remaining = [api("/orgs/acme/copilot/billing").headers["X-RateLimit-Remaining"] for _ in range(2)]
    assert remaining == ["1", "0"]
    refused = api("/orgs/acme/copilot/billing")
    assert refused.status_code == 403
    assert refused.headers["X-RateLimit-Remaining"] == "0"
    assert refused.json()["message"].startswith("API rate limit exceeded")
    time.sleep(0.7)
    refilled = api("/orgs/acme/copilot/billing")
    assert refilled.status_code == 200 and refilled.headers["X-RateLimit-Remaining"] == "4999"


# -- GitHub App ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_keys():
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    def pem(key):
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    key, stranger = (rsa.generate_private_key(public_exponent=65537, key_size=2048) for _ in range(2))
    public = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return pem(key), pem(stranger), public


def test_app_jwt_flow(app_keys):
    import jwt

    private, stranger, public = app_keys
    world = World(
        today=TODAY,
        organizations=(OrgSpec("acme", users=10),),
        app=AppSpec(app_id=12345, public_key_pem=public, token_ttl=1.0),
    )

    def app_jwt(key=private, iss="12345", exp_in=540):
        now = int(time.time())
        claims = {"iat": now - 60, "exp": now + exp_in, "iss": iss}
        return jwt.encode(claims, key, algorithm="RS256")

    with Simulator(world=world, token=TOKEN) as sim:

        def call(method, path, credential):
            return requests.request(
                method, sim.api_url + path, timeout=10, headers={"Authorization": f"Bearer {credential}"}
            )

        installation = call("GET", "/orgs/acme/installation", app_jwt()).json()["id"]
        for bad in (app_jwt(key=stranger), app_jwt(iss="999"), app_jwt(exp_in=-10), TOKEN):
            assert call("GET", "/orgs/acme/installation", bad).status_code == 401
        issued = call("POST", f"/app/installations/{installation}/access_tokens", app_jwt())
        assert issued.status_code == 201
        token = issued.json()["token"]
        assert token.startswith("ghs_") and issued.json()["expires_at"].endswith("Z")
        assert sim.issued_app_tokens == [token]
        assert call("GET", "/orgs/acme/copilot/billing", token).status_code == 200
        assert call("GET", "/orgs/acme/copilot/billing", app_jwt()).status_code == 401
        assert call("POST", "/app/installations/1/access_tokens", app_jwt()).status_code == 404
        time.sleep(1.1)
        assert call("GET", "/orgs/acme/copilot/billing", token).status_code == 401


# -- scale -----------------------------------------------------------------------------------


def test_large_reports_are_split_over_a_bounded_number_of_links(storage):
    world = World(
        today=TODAY,
        organizations=(OrgSpec("big", users=3000, teams=("a",)),),
        enterprises=(EnterpriseSpec("corp", organizations=("big",)),),
    )
    with Simulator(world=world, records_per_link=25, max_links=6) as sim:
        links = requests.get(
            sim.api_url + "/orgs/big/copilot/metrics/reports/users-1-day", params={"day": DAY.isoformat()}, timeout=10
        ).json()["download_links"]
        assert len(links) == 6
        users = [r for link in links for r in download(storage, link)]
        assert len(users) > 1000 and len({u["user_id"] for u in users}) == len(users)


def test_an_org_without_the_reports_api_answers_404_there_but_serves_legacy():
    import requests as http

    from copilot_exporter.simulator import Simulator, World

    with Simulator(world=World.default(), token="t") as sim:
        headers = {"Authorization": "Bearer t"}
        day = (sim.world.today - datetime.timedelta(days=2)).isoformat()
        reports = http.get(
            f"{sim.api_url}/orgs/hooli/copilot/metrics/reports/organization-1-day",
            params={"day": day},
            headers=headers,
            timeout=5,
        )
        legacy = http.get(f"{sim.api_url}/orgs/hooli/copilot/metrics", headers=headers, timeout=5)
        assert reports.status_code == 404 and legacy.status_code == 200 and legacy.json()


@pytest.mark.parametrize(
    "shape,status,body",
    [
        ("204", 204, b""),
        ("empty_string", 200, b'""'),
        ("message", 200, b'"No report available for this day"'),
        ("null", 200, b"null"),
        ("empty_body", 200, b""),
        ("404", 404, None),
        ("502", 502, None),
        ("503", 503, None),
    ],
)
def test_no_report_shapes_are_served_as_github_answers_them(sim, api, shape, status, body):
    path = "/orgs/acme/copilot/metrics/reports/organization-1-day"
    sim.withhold_report(shape, day=DAY, name="ACME", report="organization-1-day")
    response = api(path, params={"day": DAY.isoformat()})
    assert response.status_code == status
    if body is not None:
        assert response.content == body
    else:
        assert "message" in response.json()
    # other days, scopes and reports still answer with links
    for other, day in (
        (path, DAY - datetime.timedelta(days=1)),
        ("/orgs/globex/copilot/metrics/reports/organization-1-day", DAY),
        ("/orgs/acme/copilot/metrics/reports/users-1-day", DAY),
    ):
        assert api(other, params={"day": day.isoformat()}).json()["download_links"]


def test_no_links_shape_and_withheld_28_day_report(sim, api):
    sim.withhold_report("no_links", report="organization-1-day")
    answer = api("/orgs/acme/copilot/metrics/reports/organization-1-day", params={"day": DAY.isoformat()})
    assert answer.status_code == 200 and answer.json() == {"download_links": [], "report_day": DAY.isoformat()}
    sim.withhold_report("message", report="organization-28-day")
    latest = api("/orgs/acme/copilot/metrics/reports/organization-28-day/latest")
    assert latest.status_code == 200 and latest.json() == "No report available for this day"
    sim.clear_withheld_reports()
    assert api("/orgs/acme/copilot/metrics/reports/organization-28-day/latest").json()["download_links"]
    with pytest.raises(ValueError):
        sim.withhold_report("teapot")


def test_aggregated_record_has_the_2026_fields(api, storage):
    for base, aggregated in (("/orgs/acme", "organization-1-day"), ("/enterprises/initech", "enterprise-1-day")):
        [day] = report(api, storage, f"{base}/copilot/metrics/reports/{aggregated}", day=DAY.isoformat())
        for group in ("copilot_app_users", "vscode_agent_users", "cli_users"):
            windows = [day[f"{period}_active_{group}"] for period in ("daily", "weekly", "monthly")]
            assert windows == sorted(windows) and windows[-1] <= day["monthly_active_users"], group
        assert set(day["totals_by_copilot_app"]) == {"session_count", "request_count", "prompt_count", "token_usage"}
        assert set(day["totals_by_copilot_app"]["token_usage"]) == {
            "prompt_tokens_sum",
            "output_tokens_sum",
            "avg_tokens_per_request",
        }
        assert set(day["totals_by_vscode_agent"]) == {"session_count", "total_user_messages"}
        for agent in day["totals_by_3rd_party_agent"]:
            assert set(agent) == {"agent_id", "agent_name", "user_initiated_interaction_count", "session_count"}
        for phase in day["totals_by_ai_adoption_phase"]:
            assert {
                "phase",
                "phase_number",
                "total_engaged_users",
                "users_in_phase_28d",
                "total_pull_requests_merged",
            } <= set(phase)
            assert phase["users_in_phase_28d"] >= phase["total_engaged_users"]
        assert any(
            "avg_pull_requests_minutes_to_review" in p and "avg_pull_requests_review_cycles" in p
            for p in day["totals_by_ai_adoption_phase"]
        )
        assert (
            sum(p["total_pull_requests_merged"] for p in day["totals_by_ai_adoption_phase"])
            == day["pull_requests"]["total_merged"]
        )


def test_cli_customizations_name_their_entries_differently_top_5(api, storage):
    [day] = report(api, storage, "/enterprises/initech/copilot/metrics/reports/enterprise-1-day", day=DAY.isoformat())
    name_fields = set()
    for kind in ("skill", "custom_agent", "mcp", "slash_cmd", "plugin"):
        entries = day[f"totals_by_{kind}"]
        assert len(entries) <= 5 and day[f"distinct_{kind}_use_count"] >= len(entries)
        for entry in entries:
            [name] = [key for key, value in entry.items() if isinstance(value, str)]
            assert set(entry) == {name, "interaction_count"}
            name_fields.add((kind, name))
    assert len({name for _, name in name_fields}) == len({kind for kind, _ in name_fields}) >= 4
    skills = {e["skill_name"]: e["interaction_count"] for e in day["totals_by_skill"]}
    for plugin in day["totals_by_plugin"]:  # plugins are skills: never more than their skill
        assert plugin["interaction_count"] <= skills.get(plugin["plugin"], plugin["interaction_count"])


def test_breakdowns_add_up_and_leave_cli_and_app_out_of_ides_only(api, storage):
    [day] = report(api, storage, "/enterprises/initech/copilot/metrics/reports/enterprise-1-day", day=DAY.isoformat())
    features = {f["feature"]: f for f in day["totals_by_feature"]}
    assert {"copilot_app", "copilot_cli", "code_completion"} <= set(features)
    for counter in COUNTERS:
        assert sum(f[counter] for f in features.values()) == day[counter], counter
        outside = features["copilot_app"][counter] + features["copilot_cli"][counter]
        assert sum(i[counter] for i in day["totals_by_ide"]) == day[counter] - outside, counter
        prompted = day[counter] - features["code_completion"][counter]
        assert sum(m[counter] for m in day["totals_by_model_feature"]) == prompted, counter
        assert sum(m[counter] for m in day["totals_by_language_model"]) == prompted, counter
    for counter in COUNTERS[1:]:
        assert sum(entry[counter] for entry in day["totals_by_language_feature"]) == day[counter]
    assert "code_completion" not in {m["feature"] for m in day["totals_by_model_feature"]}
    assert {"copilot_app", "copilot_cli"} <= {m["feature"] for m in day["totals_by_model_feature"]}
    assert {"copilot_app", "copilot_cli"} <= {m["feature"] for m in day["totals_by_language_feature"]}
    for key, array in (
        ("model", "totals_by_model_feature"),
        ("model", "totals_by_language_model"),
        ("language", "totals_by_language_feature"),
        ("language", "totals_by_language_model"),
    ):
        names = {entry[key] for entry in day[array]}
        assert len(names - {"others"}) <= 10, array
    assert "others" in {m["model"] for m in day["totals_by_model_feature"]}
    assert "auto" not in {m["model"] for m in day["totals_by_model_feature"]}


def test_days_before_github_added_a_field_lack_it(api, storage):
    old = datetime.date(2026, 6, 1)
    [day] = report(api, storage, "/orgs/acme/copilot/metrics/reports/organization-1-day", day=old.isoformat())
    for key in (
        "totals_by_copilot_app",
        "daily_active_copilot_app_users",
        "totals_by_vscode_agent",
        "totals_by_3rd_party_agent",
        "totals_by_skill",
        "distinct_mcp_use_count",
    ):
        assert key not in day, key
    users = report(api, storage, "/orgs/acme/copilot/metrics/reports/users-1-day", day=old.isoformat())
    assert not any("used_copilot_app" in u or "used_vscode_agent" in u for u in users)
    assert all("totals_by_ide" in u for u in users)  # no server-side-only users yet


def test_enterprise_teams_and_business_teams_can_share_a_slug(api, storage):
    rows = report(api, storage, "/enterprises/initech/copilot/metrics/reports/user-teams-1-day", day=DAY.isoformat())
    ids_by_slug: dict[str, set[int]] = {}
    for row in rows:
        assert set(row) == {"user_id", "user_login", "day", "enterprise_id", "team_id", "slug"}
        ids_by_slug.setdefault(row["slug"], set()).add(row["team_id"])
    assert len(ids_by_slug["core"]) == 2 and len(ids_by_slug["security"]) == 1
    members = [{r["user_id"] for r in rows if r["team_id"] == team} for team in ids_by_slug["core"]]
    assert members[0] != members[1]
