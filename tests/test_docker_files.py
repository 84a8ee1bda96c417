"""docker/ checked without a Docker engine.

The compose file is read with PyYAML (anchors and merge keys resolved as Compose does) and compared
with the official Airflow 3.x compose file's services, commands and healthchecks; every path it
mounts and every path the Dockerfile copies must exist; the image's Airflow version must be the
installed one and satisfy ``pyproject.toml``. The connections script the profiles run is exercised
for real: against a running local cluster, and through Airflow's own ``LocalFilesystemBackend``
configured exactly as the compose file configures it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]
DOCKER = REPO / "docker"
COMPOSE_FILE = DOCKER / "docker-compose.yaml"
DOCKERFILE = DOCKER / "Dockerfile"
SCRIPT = DOCKER / "argo_connections.py"
CLI = Path(sys.executable).parent / "airflow-argo-eci"

#: the official file's services (airflow-core/docs/howto/docker-compose/docker-compose.yaml) and their commands
OFFICIAL_COMMANDS = {
    "airflow-apiserver": "api-server",
    "airflow-scheduler": "scheduler",
    "airflow-dag-processor": "dag-processor",
    "airflow-worker": "celery worker",
    "airflow-triggerer": "triggerer",
    "flower": "celery flower",
}
OFFICIAL_SERVICES = {*OFFICIAL_COMMANDS, "postgres", "redis", "airflow-init", "airflow-cli"}
#: what each official healthcheck probes
OFFICIAL_HEALTH = {
    "postgres": "pg_isready",
    "redis": "redis-cli ping",
    "airflow-apiserver": "http://localhost:8080/api/v2/version",
    "airflow-scheduler": "http://localhost:8974/health",
    "airflow-dag-processor": "--job-type DagProcessorJob",
    "airflow-worker": "inspect ping",
    "airflow-triggerer": "--job-type TriggererJob",
    "flower": "http://localhost:5555/",
}
AIRFLOW_SERVICES = [*OFFICIAL_COMMANDS, "airflow-init", "airflow-cli", "argo-local", "argo-cluster-config"]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return data


def _command(service: dict[str, Any]) -> str:
    command = service.get("command", "")
    return command if isinstance(command, str) else " ".join(command)


def _health(service: dict[str, Any]) -> str:
    test = service["healthcheck"]["test"]
    return test if isinstance(test, str) else " ".join(test)


def _dockerfile_args() -> dict[str, str]:
    return dict(re.findall(r"^ARG (\w+)=(\S+)$", DOCKERFILE.read_text(), re.M))


def test_every_official_service_is_there_with_its_command(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert OFFICIAL_SERVICES <= set(services), OFFICIAL_SERVICES - set(services)
    for name, command in OFFICIAL_COMMANDS.items():
        assert _command(services[name]) == command, name
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://:@redis:6379/")
    assert "@postgres/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    assert services["airflow-init"]["environment"]["_AIRFLOW_DB_MIGRATE"] == "true"
    assert services["airflow-worker"]["environment"]["DUMB_INIT_SETSID"] == "0"
    assert services["airflow-cli"]["profiles"] == ["debug"] and services["flower"]["profiles"] == ["flower"]


def test_healthchecks_probe_what_the_official_ones_probe(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name, probe in OFFICIAL_HEALTH.items():
        assert probe in _health(services[name]), (name, _health(services[name]))
    assert "local status" in _health(services["argo-local"])


def test_dependencies_exist_and_have_no_cycle(compose: dict[str, Any]) -> None:
    services = compose["services"]
    graph: dict[str, set[str]] = {}
    for name, service in services.items():
        deps = dict(service.get("depends_on") or {})
        mode = service.get("network_mode", "")
        if mode.startswith("service:"):
            deps[mode.split(":", 1)[1]] = {}
        for dep, spec in deps.items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            if (spec or {}).get("required") is False:
                assert services[dep].get("profiles"), f"{name}: {dep} is optional but not in a profile"
        graph[name] = set(deps)
    done: set[str] = set()

    def visit(name: str, path: tuple[str, ...]) -> None:
        assert name not in path, f"dependency cycle: {' -> '.join((*path, name))}"
        if name not in done:
            for dep in graph[name]:
                visit(dep, (*path, name))
            done.add(name)

    for name in graph:
        visit(name, ())
    for name in ("airflow-apiserver", "airflow-scheduler", "airflow-worker", "airflow-triggerer"):
        deps = services[name]["depends_on"]
        assert deps["airflow-init"]["condition"] == "service_completed_successfully"
        assert deps["argo-local"] == {"condition": "service_healthy", "required": False}
        assert deps["argo-cluster-config"]["required"] is False


def test_airflow_shares_one_loopback_with_the_local_cluster(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in AIRFLOW_SERVICES:
        assert services[name]["network_mode"] == "service:airflow-netns", name
        assert "ports" not in services[name], f"{name}: publish ports on airflow-netns"
    netns = services["airflow-netns"]
    assert "network_mode" not in netns and netns["command"] == ["sleep", "infinity"]
    assert "127.0.0.1:8080:8080" in netns["ports"]
    for name, service in services.items():
        for port in service.get("ports") or []:
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on every interface"
    assert services["airflow-worker"]["environment"]["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == \
        "http://localhost:8080/execution/"


def test_profiles_write_the_connections_the_backend_reads(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = services["airflow-triggerer"]["environment"]
    assert env["AIRFLOW__SECRETS__BACKEND"] == "airflow.secrets.local_filesystem.LocalFilesystemBackend"
    conns = json.loads(env["AIRFLOW__SECRETS__BACKEND_KWARGS"])["connections_file_path"]
    local, cluster = services["argo-local"], services["argo-cluster-config"]
    assert local["profiles"] == ["local"] and cluster["profiles"] == ["cluster"]
    script = _command(local)
    assert "airflow-argo-eci local up" in script and "--port 6443" in script
    assert f'conns={conns}' in script and "argo_connections.py from-local" in script
    assert conns in _command(cluster) and "/run/argo/kubeconfig" in _command(cluster)
    assert any(v.endswith(":/run/argo/kubeconfig:ro") and "KUBECONFIG_FILE" in v for v in cluster["volumes"])
    assert f"argo_connections.py empty {conns}" in _command(services["airflow-init"])
    # the connections file and the local cluster's state are on a volume every Airflow service mounts
    for name in AIRFLOW_SERVICES:
        mounts = {v.split(":")[1]: v.split(":")[0] for v in services[name]["volumes"]}
        assert mounts.get(str(Path(conns).parent)) == "argo-config", name


def test_shell_dollars_are_escaped_for_compose(compose: dict[str, Any]) -> None:
    """A lone ``$x`` in a command is interpolated by Compose (to empty), not by the shell."""
    text = COMPOSE_FILE.read_text()
    for lineno, line in enumerate(text.splitlines(), 1):
        if line.lstrip().startswith("#"):
            continue
        for match in re.finditer(r"\$+", line):
            if len(match.group()) % 2 == 0:
                continue  # $$: a literal dollar for the shell
            assert line[match.end():match.end() + 1] == "{", f"line {lineno}: unescaped ${line[match.end():]!r}"


def test_every_mounted_and_copied_path_exists(compose: dict[str, Any]) -> None:
    named = set(compose["volumes"])
    for name, service in compose["services"].items():
        for volume in service.get("volumes") or []:
            source = volume.split(":")[0]
            if source.startswith("${"):
                assert "KUBECONFIG_FILE" in source, f"{name}: {volume}"  # the user's own file
            elif source.startswith((".", "/")):
                assert (DOCKER / source).exists(), f"{name} mounts missing {source}"
            else:
                assert source in named, f"{name}: volume {source} is not declared"
        build = service.get("build")
        if build:
            assert (DOCKER / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE
    assert (DOCKER / "../dags").resolve() == REPO / "dags" and any((REPO / "dags").glob("*.py"))
    copies = re.findall(r"^COPY (?:--\S+ )*(.+) (\S+)$", DOCKERFILE.read_text(), re.M)
    assert copies
    for sources, _target in copies:
        for source in sources.split():
            assert (REPO / source).exists(), f"Dockerfile copies missing {source}"
    # the build context is the repository root: the ignore file beside the Dockerfile lets in exactly
    # what it copies (and keeps .venv out)
    ignore = [line for line in (DOCKER / "Dockerfile.dockerignore").read_text().splitlines()
              if line and not line.startswith("#")]
    assert ignore[0] == "*"
    allowed = {line[1:] for line in ignore if line.startswith("!")}
    assert allowed == {source for sources, _ in copies for source in sources.split()}
    # every file of the image a compose command runs is copied into it
    for target in set(re.findall(r"/opt/airflow-argo-eci/\S+\.py", COMPOSE_FILE.read_text())):
        assert any(target == dest for _, dest in copies), f"{target} is not copied by the Dockerfile"


def test_image_matches_the_airflow_version() -> None:
    args = _dockerfile_args()
    airflow = args["AIRFLOW_VERSION"]
    assert airflow == version("apache-airflow")
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = next(Requirement(r) for r in project["dependencies"] if Requirement(r).name == "apache-airflow")
    assert declared.specifier.contains(airflow), (declared, airflow)
    assert SpecifierSet(project["requires-python"]).contains(args["PYTHON_VERSION"] + ".0")
    assert "FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}" in DOCKERFILE.read_text()
    assert 'pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}"' in DOCKERFILE.read_text()
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    common = data["x-airflow-common"]
    assert common["image"].endswith(f":{airflow}}}") and common["build"]["args"]["AIRFLOW_VERSION"] == airflow


# --- the connections script the profiles run -----------------------------------------------------

def _script(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=60,
                          env={**os.environ, **(env or {})})


@pytest.fixture(scope="module")
def detached_cluster(tmp_path_factory: pytest.TempPathFactory) -> Any:
    state = tmp_path_factory.mktemp("docker-local")
    up = subprocess.run([str(CLI), "local", "up", "--detach", "--state-dir", str(state), "--sandbox", "none"],
                        capture_output=True, text=True, timeout=120)
    assert up.returncode == 0, up.stderr
    try:
        yield state
    finally:
        subprocess.run([str(CLI), "local", "down", "--state-dir", str(state)], capture_output=True, timeout=60)


def test_local_profile_connections_reach_the_cluster_through_the_backend(
        detached_cluster: Path, tmp_path: Path, compose: dict[str, Any]) -> None:
    out = tmp_path / "argo" / "connections.json"
    result = _script("from-local", str(detached_cluster), str(out), "--cli", str(CLI))
    assert result.returncode == 0, result.stderr
    assert out.stat().st_mode & 0o777 == 0o600
    assert set(json.loads(out.read_text())) == {"argo_default", "argo_server_local", "oss_default"}
    # Airflow configured as the compose file configures it (file path swapped), no AIRFLOW_CONN_* set
    env = compose["x-airflow-common"]["environment"]
    kwargs = json.loads(env["AIRFLOW__SECRETS__BACKEND_KWARGS"]) | {"connections_file_path": str(out)}
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CONN_")}
    child_env |= {"AIRFLOW__SECRETS__BACKEND": env["AIRFLOW__SECRETS__BACKEND"],
                  "AIRFLOW__SECRETS__BACKEND_KWARGS": json.dumps(kwargs)}
    code = ("from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook\n"
            "from airflow_argo_eci.hooks.oss import OSSArtifactHook\n"
            "print(len(ArgoWorkflowsHook().list_workflows()))\n"
            "print(ArgoWorkflowsHook('argo_server_local').test_connection())\n"
            "print(OSSArtifactHook().test_connection())\n")
    probe = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=child_env)
    assert probe.returncode == 0, probe.stderr[-2000:]
    assert probe.stdout.count("(True,") == 2, probe.stdout


def test_local_profile_without_a_cluster_says_how_to_start_it(tmp_path: Path) -> None:
    result = _script("from-local", str(tmp_path / "none"), str(tmp_path / "c.json"), "--cli", str(CLI))
    assert result.returncode == 2 and "local up --state-dir" in result.stderr
    assert not (tmp_path / "c.json").exists()


def _kubeconfig(path: Path, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1", "kind": "Config", "current-context": "ack",
        "clusters": [{"name": "ack", "cluster": {"server": "https://10.0.0.1:6443", **cluster}}],
        "users": [{"name": "admin", "user": user}],
        "contexts": [{"name": "ack", "context": {"cluster": "ack", "user": "admin"}}]}))
    return path


def test_cluster_profile_copies_a_self_contained_kubeconfig(tmp_path: Path) -> None:
    source = _kubeconfig(tmp_path / "ack.yaml", {"certificate-authority-data": "Q0E="}, {"token": "t0ken"})
    out = tmp_path / "argo" / "connections.json"
    result = _script("from-kubeconfig", str(source), str(out), "--namespace", "wf")
    assert result.returncode == 0, result.stderr
    conns = json.loads(out.read_text())
    assert set(conns) == {"argo_default"}
    copy = Path(conns["argo_default"]["extra"]["kube_config_path"])
    assert copy == out.parent / "kubeconfig" and copy.read_text() == source.read_text()
    assert copy.stat().st_mode & 0o777 == 0o600 and conns["argo_default"]["extra"]["namespace"] == "wf"

    oss = {"OSS_ENDPOINT": "https://oss-cn-hangzhou-internal.aliyuncs.com", "OSS_REGION": "cn-hangzhou",
           "OSS_BUCKET": "wf-artifacts", "OSS_ACCESS_KEY_ID": "LTAIxxxx", "OSS_ACCESS_KEY_SECRET": "secret"}
    assert _script("from-kubeconfig", str(source), str(out), env=oss).returncode == 0
    conns = json.loads(out.read_text())
    assert conns["oss_default"]["schema"] == "wf-artifacts"
    assert conns["oss_default"]["extra"]["endpoint"] == oss["OSS_ENDPOINT"]


@pytest.mark.parametrize(("cluster", "user", "env", "message"), [
    ({"certificate-authority": "/home/me/ca.crt"}, {"token": "t"}, {},
     "clusters['ack'].certificate-authority names a host file"),
    ({}, {"client-key": "/home/me/key.pem", "client-certificate-data": "Qw=="}, {}, "users['admin'].client-key"),
    ({}, {"exec": {"command": "ack-ram-authenticator"}}, {}, "users['admin'].exec runs a program"),
    ({}, {"token": "t"}, {"OSS_ENDPOINT": "https://oss", "OSS_BUCKET": "b"},
     "missing: OSS_REGION, OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET"),
    ({}, {"token": "t"}, {"ARGO_NAMESPACE": ""}, "ARGO_NAMESPACE is empty"),
])
def test_cluster_profile_rejects_what_cannot_work_in_the_container(
        tmp_path: Path, cluster: dict[str, Any], user: dict[str, Any], env: dict[str, str], message: str) -> None:
    source = _kubeconfig(tmp_path / "ack.yaml", cluster, user)
    out = tmp_path / "connections.json"
    clean = {name: "" for name in ("OSS_ENDPOINT", "OSS_REGION", "OSS_BUCKET", "OSS_ACCESS_KEY_ID",
                                   "OSS_ACCESS_KEY_SECRET")}
    result = _script("from-kubeconfig", str(source), str(out), env={**clean, **env})
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert not out.exists()


def test_cluster_profile_names_a_missing_kubeconfig(tmp_path: Path) -> None:
    result = _script("from-kubeconfig", str(tmp_path / "absent"), str(tmp_path / "c.json"))
    assert result.returncode == 2 and "set KUBECONFIG_FILE" in result.stderr


def test_empty_never_overwrites(tmp_path: Path) -> None:
    out = tmp_path / "argo" / "connections.json"
    assert _script("empty", str(out)).returncode == 0 and json.loads(out.read_text()) == {}
    out.write_text('{"argo_default": "argo-workflows://x"}')
    assert _script("empty", str(out)).returncode == 0 and "argo_default" in out.read_text()


def _unescape(script: str) -> str:
    """What the container's shell runs: Compose turns ``$$`` into ``$`` (no other ``$`` may be there)."""
    assert not re.search(r"(?<!\$)\$(?!\$)", script.replace("$$", "")), "compose would interpolate this script"
    return script.replace("$$", "$")


def test_argo_local_service_script_starts_the_cluster_and_stops_on_sigterm(
        compose: dict[str, Any], tmp_path: Path) -> None:
    """The argo-local command as the container runs it (paths moved under tmp_path): it writes the
    connections once the cluster answers, its healthcheck passes, and SIGTERM to its process group (what
    dumb-init sends on `docker compose stop`) ends every process it started."""
    service = compose["services"]["argo-local"]
    assert service["command"][:2] == ["bash", "-c"]
    root = tmp_path / "argo"
    root.mkdir()
    with socket.socket() as sock:  # 6443 in the container's own namespace; any free port here
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    def here(text: str) -> str:
        return (text.replace("/opt/airflow/argo", str(root)).replace("--port 6443", f"--port {port}")
                .replace("python /opt/airflow-argo-eci/docker/argo_connections.py", f"{sys.executable} {SCRIPT}"))

    env = {**os.environ, "PATH": f"{CLI.parent}{os.pathsep}{os.environ['PATH']}"}
    env = {k: v for k, v in env.items() if not k.startswith("AIRFLOW_CONN_")}
    proc = subprocess.Popen(["bash", "-c", here(_unescape(service["command"][2]))], env=env,
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    health = here(service["healthcheck"]["test"][1])
    try:
        deadline = time.monotonic() + 120
        while subprocess.run(["bash", "-c", health], env=env, capture_output=True).returncode != 0:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "argo-local never became healthy"
            time.sleep(1)
        conns = json.loads((root / "connections.json").read_text())
        assert set(conns) == {"argo_default", "argo_server_local", "oss_default"}
        assert conns["argo_default"]["extra"]["kube_config_path"] == str(root / "local" / "kubeconfig")
        assert f"https://127.0.0.1:{port}" in (root / "local" / "kubeconfig").read_text()
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        proc.communicate(timeout=60)
    assert proc.returncode == 0, "the service's shell did not exit cleanly on SIGTERM"
    leftovers = subprocess.run(["pgrep", "-g", str(proc.pid)], capture_output=True, text=True).stdout.split()
    assert not leftovers, f"processes left in the service's group after its shell exited: {leftovers}"
