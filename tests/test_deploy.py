"""Deployment files: the Dockerfile, the docker compose stack and the Helm chart.

Each is checked for its wiring to the rest of the repository: the compose stack mounts the
repository's rule files, Grafana provisioning and dashboards, and scrapes the exporter where it
listens; the chart (rendered with a real `helm`) selects its own pods, probes /healthz, runs
unprivileged and carries every rule group and dashboard of the repository.

`helm` is taken from $HELM_BIN, else PATH, else the virtual environment's bin folder, where
`scripts/setup --with-prometheus` puts it; without helm the chart tests fail. Each documented
values file of the chart (examples/) is rendered and its configuration passed to the exporter's
own `check-config`, as the pod would run it.
"""

from __future__ import annotations

import base64
import datetime
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import tomllib
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import pytest
import yaml

from copilot_exporter.shards import Shard, parse_shard

pytestmark = pytest.mark.e2e


ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "docker-compose.yaml"
CHART = DEPLOY / "helm" / "copilot-exporter"
RULES_DIR = ROOT / "prometheus"
DASHBOARDS_DIR = ROOT / "grafana" / "dashboards"
PROVISIONING_DIR = ROOT / "grafana" / "provisioning"
PORT = 9452
JOB = "copilot-exporter"
EXAMPLES = CHART / "examples"
STATE_DIR = "/var/lib/copilot-exporter"


def project_version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def rule_groups() -> list[dict]:
    """Every rule group of the repository's prometheus/*.yaml, in file order."""
    groups = []
    for path in sorted(RULES_DIR.glob("*.yaml")):
        doc = yaml.safe_load(path.read_text()) or {}
        groups.extend(doc.get("groups") or [])
    return groups


def rule_files() -> list[Path]:
    """The repository's Prometheus rule files: those of prometheus/*.yaml that hold groups."""
    return [path for path in sorted(RULES_DIR.glob("*.yaml")) if "groups" in (yaml.safe_load(path.read_text()) or {})]


def dashboard_files() -> list[Path]:
    return sorted(DASHBOARDS_DIR.glob("*.json"))


def subset(small: dict, big: dict) -> bool:
    return all(big.get(key) == value for key, value in small.items())


# Dockerfile ---------------------------------------------------------------------------------


def dockerfile_stages() -> list[list[tuple[str, str]]]:
    """[[(INSTRUCTION, arguments), ...] per stage], comments and line continuations resolved."""
    instructions, buffer = [], ""
    for raw in (ROOT / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not buffer):
            continue
        if line.endswith("\\"):
            buffer += line[:-1] + " "
            continue
        buffer += line
        keyword, _, args = buffer.partition(" ")
        instructions.append((keyword.upper(), args.strip()))
        buffer = ""
    stages: list[list[tuple[str, str]]] = []
    for keyword, args in instructions:
        if keyword == "FROM":
            stages.append([])
        if stages:
            stages[-1].append((keyword, args))
    return stages


def final_stage() -> list[tuple[str, str]]:
    return dockerfile_stages()[-1]


def instruction(stage: list[tuple[str, str]], keyword: str) -> list[str]:
    return [args for kw, args in stage if kw == keyword]


def env_of(stage: list[tuple[str, str]]) -> dict[str, str]:
    env = {}
    for args in instruction(stage, "ENV"):
        for match in re.finditer(r'(\w+)=("[^"]*"|\S+)', args):
            env[match.group(1)] = match.group(2).strip('"')
    return env


def image_uid() -> int:
    (user,) = instruction(final_stage(), "USER")
    return int(user.split(":")[0])


def test_dockerfile_is_multi_stage_and_the_final_stage_holds_only_the_venv():
    stages = dockerfile_stages()
    assert len(stages) >= 2
    builder = stages[0]
    assert re.search(r"\bAS\s+builder$", builder[0][1], re.IGNORECASE)
    build_commands = " ".join(instruction(builder, "RUN"))
    extras = "[app,web,remote-write]"  # every extra: backfill --remote-write works in the image too
    assert f".{extras}" in build_commands and f"copilot-exporter{extras}" in build_commands
    final = final_stage()
    copies = instruction(final, "COPY")
    assert copies == ["--from=builder /opt/venv /opt/venv"], "the final stage copies the venv and nothing else"
    assert env_of(final)["PATH"].startswith("/opt/venv/bin:")
    assert "python" in instruction(final, "FROM")[0].lower() or "PYTHON_IMAGE" in instruction(final, "FROM")[0]


def test_dockerfile_runs_as_a_numeric_non_root_user():
    (user,) = instruction(final_stage(), "USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0
    assert not gid or (gid.isdigit() and int(gid) != 0)


def test_dockerfile_defaults_suit_a_read_only_container():
    final = final_stage()
    env = env_of(final)
    assert env["PYTHONDONTWRITEBYTECODE"] == "1"
    assert env["COPILOT_EXPORTER_CONFIG"] == "/etc/copilot-exporter/config.yaml"
    assert env["COPILOT_EXPORTER_LISTEN_ADDRESS"] == f":{PORT}"
    assert env["COPILOT_EXPORTER_STATE_DIR"] == STATE_DIR  # the volume below
    assert instruction(final, "EXPOSE") == [str(PORT)]
    assert [json.loads(args) for args in instruction(final, "ENTRYPOINT")] == [["copilot-exporter"]]
    assert [json.loads(args) for args in instruction(final, "CMD")] == [["serve"]]


def test_dockerfile_gives_the_state_directory_a_volume_the_user_owns():
    final = final_stage()
    assert [json.loads(args) for args in instruction(final, "VOLUME")] == [[STATE_DIR]]
    commands = " ".join(instruction(final, "RUN"))
    assert re.search(rf"mkdir -p .*{STATE_DIR}", commands)
    assert re.search(rf"chown {image_uid()}:\d+ {STATE_DIR}", commands)


def test_dockerfile_keeps_secrets_out_of_the_image():
    secretish = re.compile(r"TOKEN|SECRET|PASSW|CREDENTIAL|PRIVATE|API_?KEY", re.IGNORECASE)
    for stage in dockerfile_stages():
        for keyword, args in stage:
            if keyword == "ARG":
                assert not secretish.search(args.split("=")[0]), args
            if keyword == "ENV":
                assert not any(secretish.search(name) for name in env_of([(keyword, args)])), args


def test_dockerfile_labels_and_version():
    final = final_stage()
    labels = " ".join(instruction(final, "LABEL"))
    for key in ("title", "description", "version", "revision", "licenses"):
        assert f"org.opencontainers.image.{key}=" in labels
    assert f"VERSION={project_version()}" in instruction(final, "ARG")


def healthcheck_argv() -> list[str]:
    (args,) = instruction(final_stage(), "HEALTHCHECK")
    argv = json.loads(args[args.index("CMD") + len("CMD") :].strip())
    assert argv[:2] == ["python", "-c"]
    return argv


def test_dockerfile_healthcheck_asks_healthz_with_python():
    argv = healthcheck_argv()
    assert "/healthz" in argv[2] and "urllib" in argv[2]
    assert not any(tool in argv[2] for tool in ("curl", "wget"))


def test_dockerignore_keeps_the_build_inputs_and_drops_the_rest():
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for excluded in (".git", ".venv", ".pytest_cache", "tests"):
        assert excluded in patterns
    copied = [
        part
        for args in instruction(dockerfile_stages()[0], "COPY")
        for part in args.split()[:-1]
        if not part.startswith("--")
    ]
    assert copied
    for source in copied:
        assert (ROOT / source).exists(), source
        assert not any(PurePosixPath(source).match(pattern.rstrip("/")) for pattern in patterns), source


class _Served:
    """The exporter's HTTP server on a free loopback port, optionally with a web config."""

    def __init__(self, web=None):
        from copilot_exporter.server import App, serve
        from copilot_exporter.store import Store
        from copilot_exporter.telemetry import Telemetry

        self.server = serve(App(Store(), Telemetry()), "127.0.0.1:0", web=web)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def run_healthcheck(env: dict[str, str]) -> int:
    argv = [sys.executable, *healthcheck_argv()[1:]]
    clean = {key: value for key, value in os.environ.items() if not key.startswith("COPILOT_EXPORTER_")}
    return subprocess.run(argv, env={**clean, **env}, capture_output=True, timeout=30).returncode


def test_dockerfile_healthcheck_command_works():
    served = _Served()
    try:
        assert run_healthcheck({"COPILOT_EXPORTER_LISTEN_ADDRESS": f":{served.port}"}) == 0
    finally:
        served.close()
    assert run_healthcheck({"COPILOT_EXPORTER_LISTEN_ADDRESS": f":{served.port}"}) != 0


def write_self_signed_certificate(cert_file: Path, key_file: Path) -> None:
    """A self-signed certificate for localhost and its unencrypted PEM key."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )


def test_dockerfile_healthcheck_command_works_over_tls(tmp_path):
    from copilot_exporter.webconfig import load_web_config

    write_self_signed_certificate(tmp_path / "tls.crt", tmp_path / "tls.key")
    web_file = tmp_path / "web-config.yaml"
    web_file.write_text("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n")
    served = _Served(load_web_config(str(web_file)))
    try:
        assert (
            run_healthcheck(
                {
                    "COPILOT_EXPORTER_LISTEN_ADDRESS": f":{served.port}",
                    "COPILOT_EXPORTER_WEB_CONFIG_FILE": str(web_file),
                }
            )
            == 0
        )
    finally:
        served.close()


# docker compose -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def bind_mounts(service: dict) -> dict[str, Path]:
    """{container path: host path} of a service's bind mounts (relative to the compose file)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = (COMPOSE_FILE.parent / source).resolve()
    return mounts


def host_path(service: dict, container_path: str) -> Path:
    """The host file or folder a container path of a service comes from, through its mounts."""
    for target, source in sorted(bind_mounts(service).items(), key=lambda item: -len(item[0])):
        relative = os.path.relpath(container_path, target)
        if relative == "." or not relative.startswith(".."):
            return (source / relative).resolve()
    raise AssertionError(f"{container_path} is not mounted from the repository")


def listen_port(command: list[str]) -> int:
    address = command[command.index("--web.listen-address") + 1]
    host, _, port = address.rpartition(":")
    assert host in ("", "0.0.0.0", "[::]"), f"{address} does not listen on every interface"
    return int(port)


def test_compose_exporter_runs_the_demo_read_only(compose):
    exporter = compose["services"]["exporter"]
    assert exporter["read_only"] is True
    assert exporter["command"][0] == "demo"
    assert listen_port(exporter["command"]) == PORT
    assert f"{PORT}:{PORT}" in exporter["ports"]
    build = exporter["build"]
    assert (COMPOSE_FILE.parent / build["context"]).resolve() == ROOT
    assert (ROOT / build.get("dockerfile", "Dockerfile")).is_file()
    assert int(str(exporter["user"]).split(":")[0]) == image_uid()
    assert exporter.get("cap_drop") == ["ALL"]


def test_compose_exporter_keeps_its_state_on_a_named_volume(compose):
    exporter = compose["services"]["exporter"]
    (state,) = [volume for volume in exporter.get("volumes", []) if volume.split(":")[1] == STATE_DIR]
    assert state.split(":")[0] in compose["volumes"]


def test_compose_ports(compose):
    services = compose["services"]
    assert "9090:9090" in services["prometheus"]["ports"]
    assert "3000:3000" in services["grafana"]["ports"]


def test_compose_bind_mounts_exist(compose):
    for name, service in compose["services"].items():
        for target, source in bind_mounts(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"


def prometheus_config(compose) -> tuple[dict, Path]:
    prometheus = compose["services"]["prometheus"]
    flags = dict(arg.split("=", 1) for arg in prometheus["command"] if "=" in arg)
    path = host_path(prometheus, flags["--config.file"])
    assert path == DEPLOY / "prometheus" / "prometheus.yml"
    return yaml.safe_load(path.read_text()), path


def test_compose_prometheus_scrapes_the_exporter(compose):
    config, _ = prometheus_config(compose)
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == JOB]
    assert job.get("scrape_interval", config["global"]["scrape_interval"]) == "15s"
    targets = [target for static in job["static_configs"] for target in static["targets"]]
    exporter_port = listen_port(compose["services"]["exporter"]["command"])
    assert targets == [f"exporter:{exporter_port}"]
    assert "exporter" in compose["services"]


def test_compose_prometheus_loads_every_rule_file_of_the_repository(compose):
    config, _ = prometheus_config(compose)
    prometheus = compose["services"]["prometheus"]
    loaded = [host_path(prometheus, path) for path in config["rule_files"]]
    for path in loaded:
        assert path.is_file(), f"rule file {path} does not exist"
    assert {path.name for path in loaded} >= {"rules.yaml", "alerts.yaml"}
    assert set(loaded) == {path.resolve() for path in rule_files()}


def test_compose_prometheus_config_passes_promtool(compose, tmp_path):
    promtool = shutil.which("promtool")
    assert promtool, "promtool is required (Debian package prometheus); scripts/test installs it"
    config, _ = prometheus_config(compose)
    prometheus = compose["services"]["prometheus"]
    config["rule_files"] = [str(host_path(prometheus, path)) for path in config["rule_files"]]
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [promtool, "check", "config", str(tmp_path / "prometheus.yml")], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_grafana_provisions_the_repository_dashboards(compose):
    grafana = compose["services"]["grafana"]
    assert host_path(grafana, "/etc/grafana/provisioning") == PROVISIONING_DIR
    env = grafana["environment"]
    assert str(env["GF_AUTH_ANONYMOUS_ENABLED"]).lower() == "true"
    assert env["GF_AUTH_ANONYMOUS_ORG_ROLE"] == "Viewer"
    providers = [
        provider
        for path in sorted((PROVISIONING_DIR / "dashboards").glob("*.y*ml"))
        for provider in (yaml.safe_load(path.read_text()) or {}).get("providers", [])
    ]
    assert providers, "grafana/provisioning/dashboards/*.yaml defines no dashboard provider"
    for provider in providers:
        folder = host_path(grafana, provider["options"]["path"])
        assert folder == DASHBOARDS_DIR.resolve(), f"provider {provider.get('name')} reads {folder}"
    assert dashboard_files(), "grafana/dashboards holds no dashboard"
    home = env.get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        assert host_path(grafana, home).parent == DASHBOARDS_DIR.resolve()
        assert host_path(grafana, home).is_file(), f"home dashboard {home} does not exist"


def test_compose_grafana_datasource_is_the_compose_prometheus(compose):
    grafana = compose["services"]["grafana"]
    env = {key: str(value) for key, value in (grafana.get("environment") or {}).items()}
    datasources = [
        source
        for path in sorted((PROVISIONING_DIR / "datasources").glob("*.y*ml"))
        for source in (yaml.safe_load(path.read_text()) or {}).get("datasources", [])
        if source.get("type") == "prometheus"
    ]
    assert datasources, "grafana/provisioning/datasources/*.yaml defines no Prometheus datasource"
    for source in datasources:
        url = re.sub(r"\$\{?(\w+)\}?", lambda match: env.get(match.group(1), match.group(0)), source["url"])
        parts = urlsplit(url)
        assert parts.hostname == "prometheus" and (parts.port or 80) == 9090, url
    assert "prometheus" in compose["services"]


# Helm chart: files and values ---------------------------------------------------------------


@pytest.mark.parametrize(
    "link, target",
    [
        ("files/prometheus", RULES_DIR),
        ("files/dashboards", DASHBOARDS_DIR),
    ],
)
def test_chart_files_link_to_the_repository(link, target):
    path = CHART / link
    assert path.is_symlink(), f"{path} should be a symbolic link to {target}"
    assert not os.path.isabs(os.readlink(path)), "the link must be relative to survive a clone"
    assert path.resolve() == target.resolve()
    assert target.is_dir(), f"{target} does not exist"
    assert sorted(p.name for p in path.iterdir()) == sorted(p.name for p in target.iterdir())


def test_chart_metadata_matches_the_project():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2"
    assert chart["name"] == "copilot-exporter"
    assert chart["appVersion"] == project_version()


def test_chart_values_defaults():
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["replicaCount"] == 1
    assert values["serviceMonitor"]["enabled"] is False
    assert values["prometheusRule"]["enabled"] is False
    assert values["dashboards"]["enabled"] is False
    assert values["podSecurityContext"]["runAsUser"] == image_uid()
    assert values["containerPort"] == PORT
    # No example configuration: Helm would merge it into the user's (a token beside their
    # token_file, a placeholder organization beside their enterprise).
    assert values["config"] == {}
    assert values["state"]["persistence"]["enabled"] is False


# Helm chart: rendered with helm -------------------------------------------------------------


@pytest.fixture(scope="session")
def helm() -> str:
    venv_helm = Path(sys.executable).parent / "helm"
    found = (
        os.environ.get("HELM_BIN")
        or shutil.which("helm")
        or (str(venv_helm) if os.access(venv_helm, os.X_OK) else None)
    )
    if not found:
        pytest.fail("no helm binary: run scripts/setup --with-prometheus, or put helm on PATH, or set HELM_BIN")
    return found


@pytest.fixture(scope="session")
def helm_env(tmp_path_factory) -> dict[str, str]:
    home = tmp_path_factory.mktemp("helm-home")
    return {
        **os.environ,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }


def run_helm(helm: str, env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([helm, *args], capture_output=True, text=True, env=env, timeout=120)


# A minimal configuration for the tests that are not about the configuration.
ORG = (
    "--set-json",
    "config=" + json.dumps({"github": {"token": "${GITHUB_TOKEN}"}, "organizations": [{"name": "my-org"}]}),
)
ALL_ON = ORG + (
    "--set",
    "serviceMonitor.enabled=true",
    "--set",
    "prometheusRule.enabled=true",
    "--set",
    "dashboards.enabled=true",
)
# The documented setups, one values file each in the chart's examples/ folder.
DOCUMENTED_SETUPS = {"token-secret", "token-file", "github-app", "enterprise", "org-and-enterprise", "web-config"}


def example(name: str) -> tuple[str, str]:
    return ("-f", str(EXAMPLES / f"{name}.yaml"))


@pytest.fixture(scope="session")
def render(helm, helm_env):
    cache: dict[tuple[str, ...], dict[tuple[str, str], dict]] = {}

    def render(*args: str) -> dict[tuple[str, str], dict]:
        """{(kind, name): object} of `helm template` with these arguments."""
        if args not in cache:
            result = run_helm(helm, helm_env, "template", "copilot", str(CHART), "--namespace", "monitoring", *args)
            assert result.returncode == 0, result.stderr
            objects = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
            cache[args] = {(obj["kind"], obj["metadata"]["name"]): obj for obj in objects}
            assert len(cache[args]) == len(objects), "two objects of one kind share a name"
        return cache[args]

    return render


def one(objects: dict, kind: str) -> dict:
    (found,) = [obj for (k, _), obj in objects.items() if k == kind]
    return found


def kinds(objects: dict) -> list[str]:
    return sorted(kind for kind, _ in objects)


def container(objects: dict) -> dict:
    (found,) = one(objects, "Deployment")["spec"]["template"]["spec"]["containers"]
    return found


def env_var(objects: dict, name: str) -> dict | None:
    return next((var for var in container(objects).get("env", []) if var["name"] == name), None)


def examples() -> list[str]:
    return sorted(path.stem for path in EXAMPLES.glob("*.yaml"))


def test_every_documented_setup_has_an_example_values_file():
    assert set(examples()) == DOCUMENTED_SETUPS
    readme = (CHART / "README.md").read_text()
    for name in examples():
        assert f"examples/{name}.yaml" in readme, f"the chart README does not mention examples/{name}.yaml"


@pytest.mark.parametrize(
    "args",
    [ORG, ALL_ON + ("--set", "github.token=t0ken"), *(example(name) for name in sorted(DOCUMENTED_SETUPS))],
    ids=["minimal", "all-on", *sorted(DOCUMENTED_SETUPS)],
)
def test_helm_lint(helm, helm_env, args):
    result = run_helm(helm, helm_env, "lint", "--strict", str(CHART), *args)
    assert result.returncode == 0, result.stdout + result.stderr


def test_helm_refuses_to_render_without_a_config(helm, helm_env):
    result = run_helm(helm, helm_env, "template", "copilot", str(CHART))
    assert result.returncode != 0
    assert "config: the exporter's configuration is required" in result.stderr


def test_helm_defaults_create_no_operator_objects(render):
    objects = render(*ORG)
    assert kinds(objects) == ["ConfigMap", "Deployment", "Service"]
    assert env_var(objects, "GITHUB_TOKEN") is None


def volume(objects: dict, name: str) -> dict:
    (found,) = [v for v in one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"] if v["name"] == name]
    return found


def volume_mount(objects: dict, name: str) -> dict:
    (found,) = [m for m in container(objects)["volumeMounts"] if m["name"] == name]
    return found


def test_helm_state_directory_is_a_writable_empty_dir_by_default(render):
    objects = render(*ORG)
    mount = volume_mount(objects, "state")
    assert mount["mountPath"] == STATE_DIR and not mount.get("readOnly")
    assert pod_environment(objects)["COPILOT_EXPORTER_STATE_DIR"] == STATE_DIR  # the exporter uses it
    assert "emptyDir" in volume(objects, "state")
    assert "PersistentVolumeClaim" not in kinds(objects)


def test_helm_state_directory_on_a_persistent_volume_claim(render):
    objects = render(*ORG, "--set", "state.persistence.enabled=true", "--set", "state.persistence.size=5Gi")
    claim = one(objects, "PersistentVolumeClaim")
    assert claim["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert volume(objects, "state") == {
        "name": "state",
        "persistentVolumeClaim": {"claimName": claim["metadata"]["name"]},
    }
    mine = render(*ORG, "--set", "state.persistence.enabled=true", "--set", "state.persistence.existingClaim=mine")
    assert "PersistentVolumeClaim" not in kinds(mine)
    assert volume(mine, "state")["persistentVolumeClaim"] == {"claimName": "mine"}


def config_of(objects: dict) -> str:
    return objects[("ConfigMap", "copilot-copilot-exporter")]["data"]["config.yaml"]


@pytest.mark.parametrize("name", sorted(DOCUMENTED_SETUPS))
def test_helm_example_config_is_exactly_the_users(render, name):
    """The rendered configuration is the values file's `config` and nothing else of the chart's."""
    values = yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text())
    assert yaml.safe_load(config_of(render(*example(name)))) == values["config"]


def pod_environment(objects: dict) -> dict[str, str]:
    """The container's environment; a value from a Secret becomes a made-up token."""
    env = {}
    for var in container(objects).get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
        else:
            ref = var["valueFrom"]["secretKeyRef"]
            env[var["name"]] = f"secret-{ref['name']}-{ref['key']}"
    return env


def mounted(root: Path, mount_paths: list[str], text: str) -> str:
    """`text` with every path under one of the pod's mounts moved under `root`."""
    for mount in sorted(mount_paths, key=len, reverse=True):
        text = re.sub(re.escape(mount.rstrip("/")) + r"(?=/)", lambda _: str(root) + mount.rstrip("/"), text)
    return text


def leaves(node, key=None):
    """(key, value) of every scalar in a YAML document."""
    if isinstance(node, dict):
        for name, child in node.items():
            yield from leaves(child, name)
    elif isinstance(node, list):
        for child in node:
            yield from leaves(child, key)
    else:
        yield key, node


def private_key_pem() -> bytes:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    return rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def run_check_config_as_the_pod(objects: dict, root: Path) -> subprocess.CompletedProcess:
    """`copilot-exporter check-config` on the rendered configuration, with the pod's environment,
    arguments and mounts: each mount is a folder under `root`, and the files the configuration
    or the web config name there are created (a token, a key, a certificate). A file outside
    every mount stays where the configuration says, and is missing."""
    spec = container(objects)
    mounts = [m["mountPath"] for m in spec["volumeMounts"]]
    config_path = Path(mounted(root, mounts, pod_environment(objects)["COPILOT_EXPORTER_CONFIG"]))
    config_path.parent.mkdir(parents=True)
    config_path.write_text(mounted(root, mounts, config_of(objects)))
    for key, value in leaves(yaml.safe_load(config_path.read_text())):
        if isinstance(value, str) and value.startswith(str(root)):
            Path(value).parent.mkdir(parents=True, exist_ok=True)
            Path(value).write_bytes(private_key_pem() if key == "private_key_file" else b"ghp_madeUpToken")
    args = [mounted(root, mounts, arg) for arg in spec["args"]]
    web_flag = next((arg for arg in args if arg.startswith("--web.config.file=")), None)
    if web_flag:
        web_path = Path(web_flag.partition("=")[2])
        secret = objects[("Secret", "copilot-copilot-exporter-web-config")]
        web_path.parent.mkdir(parents=True)
        web_path.write_text(mounted(root, mounts, base64.b64decode(secret["data"]["web-config.yaml"]).decode()))
        tls = yaml.safe_load(web_path.read_text()).get("tls_server_config")
        if tls:
            Path(tls["cert_file"]).parent.mkdir(parents=True, exist_ok=True)
            write_self_signed_certificate(Path(tls["cert_file"]), Path(tls["key_file"]))
    assert args[0] == "serve"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("COPILOT_EXPORTER_", "GITHUB_"))},
        **pod_environment(objects),
        "COPILOT_EXPORTER_CONFIG": str(config_path),
    }
    return subprocess.run(
        [sys.executable, "-m", "copilot_exporter", "check-config", *args[1:]],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize("name", sorted(DOCUMENTED_SETUPS))
def test_helm_example_passes_check_config_as_the_pod_runs_it(render, tmp_path, name):
    from copilot_exporter.webconfig import load_web_config

    objects = render(*example(name))
    result = run_check_config_as_the_pod(objects, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "configuration is valid" in result.stdout
    web_files = list(tmp_path.rglob("web-config.yaml"))
    assert len(web_files) == (1 if name == "web-config" else 0)
    for path in web_files:
        load_web_config(path)  # certificate and key found where the mounts put them


def test_check_config_as_the_pod_catches_a_file_outside_the_mounts(render, tmp_path):
    objects = render(*example("token-file"), "--set", "extraVolumeMounts=null", "--set", "extraVolumes=null")
    result = run_check_config_as_the_pod(objects, tmp_path)
    assert result.returncode == 2
    assert "github.token_file: cannot read /etc/copilot-exporter-github/token" in result.stderr


def test_check_config_as_the_pod_catches_a_token_without_its_secret(render, tmp_path):
    objects = render(*example("token-secret"), "--set", "github.existingSecret=")
    result = run_check_config_as_the_pod(objects, tmp_path)
    assert result.returncode == 2
    assert "GITHUB_TOKEN" in result.stderr


def test_helm_selectors_match_labels(render):
    objects = render(*ALL_ON)
    deployment, service = one(objects, "Deployment"), one(objects, "Service")
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert subset(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    assert subset(service["spec"]["selector"], pod_labels)
    monitor = one(objects, "ServiceMonitor")
    assert subset(monitor["spec"]["selector"]["matchLabels"], service["metadata"]["labels"])
    assert service["metadata"]["namespace"] in monitor["spec"]["namespaceSelector"]["matchNames"]
    # the job label is the same as the compose stack's job, whatever the release is called
    assert service["metadata"]["labels"][monitor["spec"]["jobLabel"]] == JOB


def test_helm_port_names_agree(render):
    objects = render(*ALL_ON)
    (port,) = container(objects)["ports"]
    assert port == {"name": "http-metrics", "containerPort": PORT, "protocol": "TCP"}
    (service_port,) = one(objects, "Service")["spec"]["ports"]
    assert service_port["name"] == "http-metrics" and service_port["targetPort"] == port["name"]
    (endpoint,) = one(objects, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["port"] == service_port["name"] and endpoint["path"] == "/metrics"
    assert env_var(objects, "COPILOT_EXPORTER_LISTEN_ADDRESS")["value"] == f":{PORT}"


def test_helm_probes_ask_healthz(render):
    spec = container(render(*ORG))
    for probe in ("livenessProbe", "readinessProbe"):
        get = spec[probe]["httpGet"]
        assert (get["path"], get["port"], get["scheme"]) == ("/healthz", "http-metrics", "HTTP")


def test_helm_pod_is_unprivileged_and_read_only(render):
    objects = render(*ORG)
    pod = one(objects, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == image_uid()
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    context = container(objects)["securityContext"]
    assert context["readOnlyRootFilesystem"] is True
    assert context["allowPrivilegeEscalation"] is False
    assert context["capabilities"] == {"drop": ["ALL"]}


def test_helm_config_is_mounted_and_valid(render, tmp_path):
    from copilot_exporter.config import load_config

    objects = render(*ORG)
    configmap = one(objects, "ConfigMap")
    assert yaml.safe_load(configmap["data"]["config.yaml"]) == json.loads(ORG[1].partition("=")[2])
    mount = volume_mount(objects, "config")
    assert volume(objects, "config")["configMap"]["name"] == configmap["metadata"]["name"]
    assert env_var(objects, "COPILOT_EXPORTER_CONFIG")["value"] == mount["mountPath"] + "/config.yaml"
    assert mount["readOnly"] is True
    path = tmp_path / "config.yaml"
    path.write_text(configmap["data"]["config.yaml"])
    config = load_config(path, environ={"GITHUB_TOKEN": "t0ken"})
    assert config.entries


def test_helm_token_from_a_chart_secret(render):
    objects = render(*ORG, "--set", "github.token=t0ken")
    secret = objects[("Secret", "copilot-copilot-exporter-github")]
    assert base64.b64decode(secret["data"]["token"]).decode() == "t0ken"
    ref = env_var(objects, "GITHUB_TOKEN")["valueFrom"]["secretKeyRef"]
    assert ref == {"name": secret["metadata"]["name"], "key": "token"}


def test_helm_token_from_an_existing_secret(render):
    objects = render(
        *ORG,
        "--set",
        "github.existingSecret=copilot-github",
        "--set",
        "github.existingSecretKey=pat",
        "--set",
        "github.token=ignored",
    )
    assert "Secret" not in kinds(objects)
    ref = env_var(objects, "GITHUB_TOKEN")["valueFrom"]["secretKeyRef"]
    assert ref == {"name": "copilot-github", "key": "pat"}


def test_helm_checksums_follow_config_and_token(render):
    def annotations(*args):
        return one(render(*args), "Deployment")["spec"]["template"]["metadata"]["annotations"]

    base = annotations(*ORG, "--set", "github.token=a")
    assert (
        annotations(*ORG, "--set", "github.token=a", "--set", "config.refresh_interval=2h")["checksum/config"]
        != base["checksum/config"]
    )
    assert annotations(*ORG, "--set", "github.token=b")["checksum/secret"] != base["checksum/secret"]
    assert annotations(*ORG, "--set", "github.token=b")["checksum/config"] == base["checksum/config"]


def test_helm_web_config(render):
    web = {
        "tls_server_config": {"cert_file": "/tls/tls.crt", "key_file": "/tls/tls.key"},
        "basic_auth_users": {"prometheus": "$2b$12$" + "a" * 53},
    }
    objects = render("--set-json", f"webConfig={json.dumps(web)}", *ALL_ON)
    secret = objects[("Secret", "copilot-copilot-exporter-web-config")]
    assert yaml.safe_load(base64.b64decode(secret["data"]["web-config.yaml"])) == web
    spec = container(objects)
    (mount,) = [m for m in spec["volumeMounts"] if m["name"] == "web-config"]
    (volume,) = [
        v for v in one(objects, "Deployment")["spec"]["template"]["spec"]["volumes"] if v["name"] == "web-config"
    ]
    assert volume["secret"]["secretName"] == secret["metadata"]["name"]
    assert f"--web.config.file={mount['mountPath']}/web-config.yaml" in spec["args"]
    assert spec["livenessProbe"]["httpGet"]["scheme"] == "HTTPS"
    assert spec["readinessProbe"]["httpGet"]["scheme"] == "HTTPS"
    (endpoint,) = one(objects, "ServiceMonitor")["spec"]["endpoints"]
    assert endpoint["scheme"] == "https"


def test_helm_probes_use_tcp_when_client_certificates_are_required(render):
    web = {
        "tls_server_config": {
            "cert_file": "/tls/tls.crt",
            "key_file": "/tls/tls.key",
            "client_auth_type": "RequireAndVerifyClientCert",
            "client_ca_file": "/tls/ca.crt",
        }
    }
    spec = container(render(*ORG, "--set-json", f"webConfig={json.dumps(web)}"))
    for probe in ("livenessProbe", "readinessProbe"):
        assert "httpGet" not in spec[probe]
        assert spec[probe]["tcpSocket"] == {"port": "http-metrics"}


def test_helm_demo_mode(render):
    assert container(render("--set", "demo=true"))["args"] == ["demo"]
    assert container(render(*ORG))["args"] == ["serve"]


def test_helm_prometheus_rules_hold_every_rule_group_of_every_rule_file(render):
    files = rule_files()
    assert {path.name for path in files} >= {"rules.yaml", "alerts.yaml"}
    objects = render(*ALL_ON)
    rules = {
        obj["metadata"]["annotations"]["copilot-exporter/source"]: obj
        for (kind, _), obj in objects.items()
        if kind == "PrometheusRule"
    }
    assert sorted(rules) == [f"prometheus/{path.name}" for path in files]
    for path in files:
        rule = rules[f"prometheus/{path.name}"]
        assert rule["metadata"]["name"] == f"copilot-copilot-exporter-{path.stem}"
        assert subset({"app.kubernetes.io/name": JOB}, rule["metadata"]["labels"])
        groups = rule["spec"]["groups"]
        assert groups == yaml.safe_load(path.read_text())["groups"]
        names = [group["name"] for group in groups]
        assert len(names) == len(set(names)), f"{path.name}: rule group names repeat"
    rendered = [group for rule in rules.values() for group in rule["spec"]["groups"]]
    assert sorted(json.dumps(group, sort_keys=True) for group in rendered) == sorted(
        json.dumps(group, sort_keys=True) for group in rule_groups()
    )


def test_helm_dashboards_configmap_holds_every_dashboard(render):
    files = dashboard_files()
    assert files, "grafana/dashboards holds no dashboard"
    configmap = render(*ALL_ON)[("ConfigMap", "copilot-copilot-exporter-dashboards")]
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert sorted(configmap["data"]) == [path.name for path in files]
    for path in files:
        assert json.loads(configmap["data"][path.name]) == json.loads(path.read_text())
    size = sum(len(text.encode()) for text in configmap["data"].values())
    assert size < 1024 * 1024, f"dashboards ConfigMap is {size} bytes, over Kubernetes' 1 MiB"


def test_helm_scheduling_values_reach_the_pod(render):
    pod = one(
        render(
            *ORG,
            "--set",
            "nodeSelector.disk=ssd",
            "--set",
            "tolerations[0].operator=Exists",
            "--set",
            "resources.limits.memory=1Gi",
        ),
        "Deployment",
    )["spec"]["template"]["spec"]
    assert pod["nodeSelector"] == {"disk": "ssd"}
    assert pod["tolerations"] == [{"operator": "Exists"}]
    assert pod["containers"][0]["resources"]["limits"]["memory"] == "1Gi"


def test_helm_statefulset_mode_gives_each_of_3_pods_its_shard(render):
    objects = render(*ALL_ON, "--set", "shards=3")
    assert "Deployment" not in kinds(objects)
    stateful = one(objects, "StatefulSet")
    assert stateful["spec"]["replicas"] == 3
    assert stateful["spec"]["serviceName"] == one(objects, "Service")["metadata"]["name"]
    (pod,) = stateful["spec"]["template"]["spec"]["containers"]
    env = {var["name"]: var for var in pod["env"]}
    names = [var["name"] for var in pod["env"]]
    assert env["POD_NAME"]["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert names.index("POD_NAME") < names.index("COPILOT_EXPORTER_SHARD")  # $(POD_NAME) is defined first
    # Kubernetes expands $(POD_NAME); a StatefulSet's pods are named <name>-<ordinal>.
    shards = {
        parse_shard(
            env["COPILOT_EXPORTER_SHARD"]["value"].replace("$(POD_NAME)", f"{stateful['metadata']['name']}-{ordinal}")
        )
        for ordinal in range(3)
    }
    assert shards == {Shard(0, 3), Shard(1, 3), Shard(2, 3)}
    # One ServiceMonitor, through the Service, selects every pod of the StatefulSet.
    monitor = one(objects, "ServiceMonitor")
    pod_labels = stateful["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= one(objects, "Service")["metadata"]["labels"].items()
    assert one(objects, "Service")["spec"]["selector"].items() <= pod_labels.items()
    assert stateful["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_helm_statefulset_mode_gives_each_shard_its_own_claim(render):
    objects = render(
        *ORG, "--set", "shards=3", "--set", "state.persistence.enabled=true", "--set", "state.persistence.size=2Gi"
    )
    assert "PersistentVolumeClaim" not in kinds(objects)
    stateful = one(objects, "StatefulSet")
    (claim,) = stateful["spec"]["volumeClaimTemplates"]
    assert claim["metadata"]["name"] == "state" and claim["spec"]["resources"]["requests"]["storage"] == "2Gi"
    assert not [v for v in stateful["spec"]["template"]["spec"]["volumes"] if v["name"] == "state"]
    assert one(render(*ORG, "--set", "shards=1"), "Deployment")["spec"]["replicas"] == 1


def test_helm_lint_statefulset_mode(helm, helm_env):
    result = run_helm(helm, helm_env, "lint", "--strict", str(CHART), *ALL_ON, "--set", "shards=3")
    assert result.returncode == 0, result.stdout + result.stderr
