"""The command line, run as a real process: collect, check-config, version; promtool on the output."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from conftest import TOKEN

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def run_cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    environment = {**os.environ, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "copilot_exporter", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=environment,
    )


def write_config(tmp_path, api_url: str, source: str, **extra) -> str:
    config = {
        "github": {"api_url": api_url, "token": "${SIM_TOKEN}", "retry_backoff": "100ms", "max_retries": 1},
        "source": source,
        "organizations": [
            {"name": "acme", "teams": ["platform", "web"], "repositories": True},
            {"name": "globex", "teams": ["mobile"]},
        ],
        "enterprises": [{"name": "initech", "teams": ["core"]}],
        **extra,
    }
    path = tmp_path / f"config-{source}.yaml"
    path.write_text(yaml.safe_dump(config))
    return str(path)


def promtool() -> str:
    path = shutil.which("promtool")
    assert path, "promtool is required (Debian package prometheus); scripts/test installs it"
    return path


@pytest.mark.parametrize("source", ["legacy", "reports", "auto"])
def test_collect_prints_an_exposition_that_promtool_accepts(simulator, tmp_path, source):
    result = run_cli("collect", "--config", write_config(tmp_path, simulator.api_url, source), env={"SIM_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr
    families = {family.name: family for family in text_string_to_metric_families(result.stdout)}
    assert "copilot_daily_active_users" in families and "copilot_seats" in families
    if source == "legacy":
        assert "copilot_ide_code_suggestions" in families
    else:
        assert "copilot_code_generation_activities_by_language_model" in families
    check = subprocess.run([promtool(), "check", "metrics"], input=result.stdout, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    assert TOKEN not in result.stdout + result.stderr


def test_collect_values_match_the_simulator(simulator, tmp_path):
    from test_legacy_integration import newest_day

    result = run_cli(
        "collect", "--config", write_config(tmp_path, simulator.api_url, "legacy"), env={"SIM_TOKEN": TOKEN}
    )
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(result.stdout)
        for s in family.samples
    }
    day = newest_day(simulator, "/orgs/acme/team/web/copilot/metrics")
    assert samples[("copilot_daily_active_users", (("org", "acme"), ("team", "web")))] == day["total_active_users"]
    chat = day["copilot_dotcom_chat"]["models"][0]
    assert (
        samples[("copilot_dotcom_chats", (("model", chat["name"]), ("org", "acme"), ("team", "web")))]
        == chat["total_chats"]
    )


def test_collect_exits_1_when_a_scope_fails(simulator, tmp_path):
    config = write_config(tmp_path, simulator.api_url, "legacy")
    result = run_cli("collect", "--config", config, env={"SIM_TOKEN": "wrong-token"})
    assert result.returncode == 1
    assert 'reason="unauthorized"' in result.stdout and "wrong-token" not in result.stdout + result.stderr


def test_check_config_lists_every_problem_with_its_key_path(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(
        "github:\n  token: ${UNSET_FOR_TEST}\nrefresh_interval: soon\n"
        "organizations:\n  - name: ok-org\n  - teams: [x]\n  - name: bad/org\n"
    )
    result = run_cli("check-config", "--config", str(path))
    assert result.returncode == 2
    for expected in (
        "github.token: environment variable UNSET_FOR_TEST is not set",
        "refresh_interval:",
        "organizations[1].name: required",
        "organizations[2].name:",
    ):
        assert expected in result.stderr


def test_serve_refuses_to_start_on_a_bad_config(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("github: {token: x}\n")
    result = run_cli("--config.file", str(path), timeout=20)
    assert result.returncode == 2 and "at least one organization or enterprise" in result.stderr


def test_flags_can_come_from_the_environment(tmp_path):
    path = tmp_path / "ok.yaml"
    path.write_text("github: {token: x}\norganizations: [{name: octo}]\n")
    result = run_cli("check-config", env={"COPILOT_EXPORTER_CONFIG": str(path)})
    assert result.returncode == 0, result.stderr


def test_version_and_help():
    assert run_cli("--version").stdout.startswith("copilot-exporter ")
    help_text = run_cli("--help").stdout
    for command in ("serve", "collect", "check-config", "demo", "--web.listen-address", "COPILOT_EXPORTER_CONFIG"):
        assert command in help_text


# --- global flags on either side of the sub-command ---------------------------------------------


def valid_config(tmp_path, **github) -> str:
    path = tmp_path / "valid.yaml"
    path.write_text(yaml.safe_dump({"github": {"token": "x", **github}, "organizations": [{"name": "octo"}]}))
    return str(path)


def before_or_after(command: str, flags: list[str], where: str) -> list[str]:
    return [*flags, command] if where == "before" else [command, *flags]


@pytest.mark.parametrize("where", ["before", "after"])
@pytest.mark.parametrize("flag", ["--config", "--config.file"])
def test_config_flag_on_either_side(tmp_path, where, flag):
    # ./config.yaml in the working directory is not the file named by the flag
    (tmp_path / "config.yaml").write_text("github: {token: x}\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "copilot_exporter",
            *before_or_after("check-config", [flag, valid_config(tmp_path)], where),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{valid_config(tmp_path)}: configuration is valid")


@pytest.mark.parametrize("where", ["before", "after"])
def test_web_config_flag_on_either_side(tmp_path, where):
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users: {alice: plaintext}\n")
    flags = ["--config", valid_config(tmp_path), "--web.config.file", str(web)]
    result = run_cli(*before_or_after("check-config", flags, where))
    assert result.returncode == 2
    assert f"{web}: basic_auth_users.alice: not a bcrypt hash" in result.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_listen_address_flag_on_either_side(tmp_path, where):
    flags = ["--config", valid_config(tmp_path), "--web.listen-address", "9467"]
    result = run_cli(*before_or_after("check-config", flags, where))
    assert result.returncode == 2
    assert '--web.listen-address: "9467" has no colon: write ":9467"' in result.stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_log_flags_on_either_side(simulator, tmp_path, where):
    config = write_config(tmp_path, simulator.api_url, "legacy")
    env = {"SIM_TOKEN": "wrong-token"}  # every scope fails: warnings are logged
    json_lines = run_cli(*before_or_after("collect", ["--config", config, "--log.format", "json"], where), env=env)
    logged = [json.loads(line) for line in json_lines.stderr.splitlines()]
    assert logged and {line["level"] for line in logged} >= {"warning"}
    quiet = run_cli(*before_or_after("collect", ["--config", config, "--log.level", "error"], where), env=env)
    assert quiet.returncode == 1 and "level=warning" not in quiet.stderr
    assert "level=warning" in run_cli("collect", "--config", config, env=env).stderr  # the default logs them


def test_a_flag_after_the_sub_command_wins_over_the_environment(tmp_path):
    result = run_cli(
        "check-config",
        "--config",
        valid_config(tmp_path),
        env={"COPILOT_EXPORTER_CONFIG": str(tmp_path / "missing.yaml")},
    )
    assert result.returncode == 0, result.stderr


# --- check-config runs the checks serve runs ------------------------------------------------------


def rsa_key_file(tmp_path) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "app.pem"
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(path)


def app_config(tmp_path, key_file: str) -> str:
    path = tmp_path / "app.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "github": {"app": {"app_id": 1, "private_key_file": key_file}},
                "organizations": [
                    {"name": "octo"},
                    {"name": "other", "github": {"app": {"app_id": 2, "private_key_file": key_file}}},
                ],
            }
        )
    )
    return str(path)


def test_a_github_app_key_that_is_a_key_passes(tmp_path):
    result = run_cli("check-config", "--config", app_config(tmp_path, rsa_key_file(tmp_path)))
    assert result.returncode == 0, result.stderr


BAD_STARTS = {
    "app key": lambda tmp: (
        ["--config", app_config(tmp, str(write_text(tmp, "key.pem", "not a key\n")))],
        [
            f"app.yaml: github.app.private_key_file: {tmp / 'key.pem'}: not a PEM private key without a passphrase",
            f"app.yaml: organizations[1].github.app.private_key_file: {tmp / 'key.pem'}: not a PEM private key",
        ],
    ),
    "ca bundle": lambda tmp: (
        ["--config", valid_config(tmp, ca_bundle=str(write_text(tmp, "ca.pem", "x\n")))],
        [f"valid.yaml: github.ca_bundle: {tmp / 'ca.pem'} holds no PEM certificate"],
    ),
    "web host": lambda tmp: (
        ["--config", valid_config(tmp, api_url="https://github.com")],
        ['valid.yaml: github.api_url: "https://github.com" is not GitHub\'s API: use https://api.github.com'],
    ),
    "web config": lambda tmp: (
        [
            "--config",
            valid_config(tmp),
            "--web.config.file",
            str(write_text(tmp, "web.yml", "tls_server_config: {cert_file: a.crt}\n")),
        ],
        ["web.yml: tls_server_config.cert_file: cannot read", "web.yml: tls_server_config.key_file: required"],
    ),
    "bare port": lambda tmp: (
        ["--config", valid_config(tmp), "--web.listen-address", "9467"],
        ['--web.listen-address: "9467" has no colon: write ":9467" for every interface, or "127.0.0.1:9467"'],
    ),
    "port out of range": lambda tmp: (
        ["--config", valid_config(tmp), "--web.listen-address", ":99999"],
        ["--web.listen-address: port 99999 is not between 1 and 65535"],
    ),
}


def write_text(directory, name: str, text: str):
    path = directory / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("case", BAD_STARTS)
def test_check_config_refuses_what_serve_refuses(tmp_path, case):
    flags, expected = BAD_STARTS[case](tmp_path)
    checked = run_cli("check-config", *flags)
    served = run_cli("serve", *flags, timeout=30)
    for result in (checked, served):
        assert result.returncode == 2, result.stdout + result.stderr
        for line in expected:
            assert line in result.stderr, result.stderr
        assert "Traceback" not in result.stderr
    assert checked.stderr == served.stderr


# --- listening ----------------------------------------------------------------------------------


def one_line(result: subprocess.CompletedProcess) -> str:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_an_address_in_use_is_one_line_and_exit_2(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        result = run_cli("--config", valid_config(tmp_path), "--web.listen-address", address, timeout=30)
    assert result.returncode == 2
    assert one_line(result) == (
        f"cannot listen on {address}: the address is already in use "
        "(another process listens there: stop it, or choose another port)"
    )


def test_an_address_the_machine_does_not_have_is_one_line_and_exit_2(tmp_path):
    address = "192.0.2.7:9452"  # TEST-NET-1: documentation only, never a local address
    result = run_cli("--config", valid_config(tmp_path), "--web.listen-address", address, timeout=30)
    assert result.returncode == 2
    assert one_line(result).startswith(f"cannot listen on {address}: this machine has no address 192.0.2.7")


def test_a_listen_host_that_does_not_resolve_is_one_line_and_exit_2(tmp_path):
    address = "copilot-exporter-test.invalid:9452"
    result = run_cli("--config", valid_config(tmp_path), "--web.listen-address", address, timeout=30)
    assert result.returncode == 2
    assert one_line(result).startswith(f"cannot listen on {address}: cannot resolve copilot-exporter-test.invalid")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_the_demo_prints_its_url_once_it_listens():
    import requests

    demo = subprocess.Popen(
        [sys.executable, "-m", "copilot_exporter", "demo", "--web.listen-address", f"127.0.0.1:{free_port()}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        line = demo.stdout.readline()
        url = line.split("open ", 1)[1].split(" ", 1)[0]
        assert requests.get(url + "healthz", timeout=5).status_code == 200  # listening when printed
    finally:
        demo.terminate()
        demo.wait(timeout=20)


def test_the_demo_prints_no_url_when_it_cannot_listen():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = run_cli("demo", "--web.listen-address", f"127.0.0.1:{busy.getsockname()[1]}", timeout=60)
    assert result.returncode == 2 and result.stdout == ""
    assert "the address is already in use" in result.stderr and "Traceback" not in result.stderr


# --- the state directory ---------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["before", "after"])
def test_state_dir_flag_on_either_side(simulator, tmp_path, where):
    config = write_config(tmp_path, simulator.api_url, "reports")
    state = tmp_path / "flagged"
    result = run_cli(
        *before_or_after("collect", ["--config", config, "--state.dir", str(state)], where),
        env={"SIM_TOKEN": TOKEN, "COPILOT_EXPORTER_STATE_DIR": str(tmp_path / "from-env")},
    )
    assert result.returncode == 0, result.stderr
    assert (state / "state.sqlite3").is_file() and not (tmp_path / "from-env").exists()


def test_state_dir_from_the_config_and_from_the_environment(simulator, tmp_path):
    configured = tmp_path / "configured"
    config = write_config(tmp_path, simulator.api_url, "reports", state_dir=str(configured))
    env = {"SIM_TOKEN": TOKEN, "COPILOT_EXPORTER_STATE_DIR": ""}  # empty: unset
    assert run_cli("collect", "--config", config, env=env).returncode == 0
    assert (configured / "state.sqlite3").is_file()
    from_env = tmp_path / "from-env"
    assert (
        run_cli("collect", "--config", config, env={**env, "COPILOT_EXPORTER_STATE_DIR": str(from_env)}).returncode == 0
    )
    assert (from_env / "state.sqlite3").is_file()


def test_an_unusable_state_dir_is_one_line_and_exit_2(simulator, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    result = run_cli(
        "collect",
        "--config",
        write_config(tmp_path, simulator.api_url, "reports"),
        "--state.dir",
        str(blocker / "state"),
        env={"SIM_TOKEN": TOKEN},
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"copilot-exporter: state_dir {blocker / 'state'}: cannot be used (Not a directory)"
    ]
