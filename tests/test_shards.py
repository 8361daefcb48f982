"""Sharding: n exporters with the same configuration cover every scope exactly once."""

from __future__ import annotations

import hashlib
import random
import string

import pytest

from copilot_exporter.config import parse_config
from copilot_exporter.errors import ConfigError
from copilot_exporter.model import ENTERPRISE, ORG, Scope
from copilot_exporter.refresher import Refresher
from copilot_exporter.shards import Shard, parse_shard, shard_of, shard_problem
from copilot_exporter.store import Store
from copilot_exporter.telemetry import Telemetry
from conftest import TOKEN, exporter_config
from test_cli import run_cli


def random_names(count: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    alphabet = string.ascii_letters + string.digits + "-"
    names = set()
    while len(names) < count:
        name = rng.choice(string.ascii_letters) + "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
        names.add((rng.choice((ORG, ENTERPRISE)), name))
    return sorted(names)


@pytest.mark.parametrize("count", [1, 2, 3, 7, 16])
def test_shards_are_disjoint_and_complete_over_thousands_of_names(count):
    scopes = [Scope(kind, name) for kind, name in random_names(5000, seed=count)]
    owners = {scope: [i for i in range(count) if Shard(i, count).owns(scope)] for scope in scopes}
    assert all(len(shards) == 1 for shards in owners.values())  # exactly one shard each
    sizes = [sum(1 for shards in owners.values() if shards == [i]) for i in range(count)]
    assert sum(sizes) == len(scopes)
    assert min(sizes) > len(scopes) / count * 0.8  # and none is starved


def test_the_shard_is_sha256_of_kind_and_name_lower_cased_mod_n():
    for kind, name in random_names(200, seed=99):
        digest = hashlib.sha256(f"{kind}:{name.lower()}".encode()).digest()
        assert shard_of(kind, name, 5) == int.from_bytes(digest[:8], "big") % 5
        assert shard_of(kind, name.upper(), 5) == shard_of(kind, name.lower(), 5)


@pytest.mark.parametrize(
    "text,shard",
    [
        ("0/1", Shard(0, 1)),
        ("2/3", Shard(2, 3)),
        (" 1/2 ", Shard(1, 2)),
        ("copilot-exporter-2/3", Shard(2, 3)),
        ("copilot-0/1024", Shard(0, 1024)),
    ],
)
def test_a_shard_is_read_as_index_of_count_or_pod_name_of_count(text, shard):
    assert parse_shard(text) == shard


@pytest.mark.parametrize(
    "text,message",
    [
        ("3/3", "shard 3 does not exist: shards of 3 are numbered 0 to 2"),
        ("0/0", "the number of shards must be between 1 and 1024, got 0"),
        ("0/1025", "the number of shards must be between 1 and 1024, got 1025"),
        ("copilot-exporter/3", "'copilot-exporter/3' must be i/n"),
        ("1", "'1' must be i/n"),
        ("-1/3", "'-1/3' must be i/n"),
    ],
)
def test_a_wrong_shard_says_why(text, message):
    assert shard_problem(text).startswith(message)


def test_the_shard_key_is_checked_with_its_key_path():
    base = {"github": {"token": TOKEN}, "organizations": [{"name": "acme"}]}
    assert parse_config({**base, "shard": "1/2"}).shard == Shard(1, 2)
    assert parse_config(base).shard is None
    with pytest.raises(ConfigError) as err:
        parse_config({**base, "shard": "2/2"})
    assert err.value.problems == ["shard: shard 2 does not exist: shards of 2 are numbered 0 to 1"]
    with pytest.raises(ConfigError) as err:
        parse_config({**base, "shard": 1})
    assert err.value.problems == ["shard: must be a string, got integer"]


def test_each_refresher_runs_the_jobs_of_its_own_scopes_only():
    organizations = [{"name": f"org-{i}", "seats": i % 2 == 0} for i in range(60)]
    enterprises = [{"name": f"ent-{i}", "seats": False} for i in range(10)]
    everything = exporter_config("http://127.0.0.1:9", organizations, enterprises, source="reports")
    all_jobs = {(job.entry.scope, job.kind) for job in Refresher(everything, Store(), Telemetry()).jobs}
    seen = []
    for index in range(3):
        config = exporter_config("http://127.0.0.1:9", organizations, enterprises, source="reports", shard=f"{index}/3")
        refresher = Refresher(config, Store(), Telemetry())
        jobs = {(job.entry.scope, job.kind) for job in refresher.jobs}
        refresher.stop()
        assert jobs and all(Shard(index, 3).owns(scope) for scope, _ in jobs)
        seen.append(jobs)
    assert set().union(*seen) == all_jobs
    assert sum(len(jobs) for jobs in seen) == len(all_jobs)


@pytest.mark.integration
def test_two_shards_ask_github_for_disjoint_scopes_that_together_are_all(simulator, make_exporter):
    organizations = [{"name": name, "seats": False} for name in ("acme", "globex", "umbrella")]
    enterprises = [{"name": "initech", "seats": False}]
    asked = []
    for index in range(2):
        simulator.reset_log()
        exporter = make_exporter(
            exporter_config(simulator.api_url, organizations, enterprises, source="reports", shard=f"{index}/2")
        )
        exporter.refresh()
        asked.append({tuple(r.path.split("/")[1:3]) for r in simulator.requests if r.server == "api"})
    assert not asked[0] & asked[1]
    assert asked[0] | asked[1] == {
        ("orgs", "acme"),
        ("orgs", "globex"),
        ("orgs", "umbrella"),
        ("enterprises", "initech"),
    }


@pytest.mark.integration
def test_the_shard_flag_overrides_the_config_and_is_checked(tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text("github: {token: t}\norganizations: [{name: a}, {name: b}, {name: c}, {name: d}]\nshard: 0/2\n")
    own = sum(1 for name in "abcd" if Shard(1, 4).owns(Scope(ORG, name)))
    done = run_cli("check-config", "--config", str(config), "--shard", "1/4")
    assert done.returncode == 0 and f"(4 scopes; shard 1/4: {own} of them)" in done.stdout
    done = run_cli("check-config", "--config", str(config), "--shard", "4/4")
    assert done.returncode == 2
    assert "--shard: shard 4 does not exist: shards of 4 are numbered 0 to 3" in done.stderr
    done = run_cli("check-config", "--config", str(config), env={"COPILOT_EXPORTER_SHARD": "x-1/2"})
    own = sum(1 for name in "abcd" if Shard(1, 2).owns(Scope(ORG, name)))
    assert done.returncode == 0 and f"shard 1/2: {own} of them" in done.stdout
