"""The CLI as a user runs it: up --detach, status, env, down, in a fresh state directory."""

from __future__ import annotations

import json
import os
import re
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml

from airflow_argo_eci.hooks.oss import OSSArtifactHook
from airflow_argo_eci.local.processes import process_running


def cli(state: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "airflow_argo_eci.local.cli", "local", *args, "--state-dir", str(state)],
        capture_output=True, text=True, timeout=60, check=check,
    )


def test_up_status_env_down(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    state = tmp_path / "state"
    assert cli(state, "status", check=False).returncode == 3

    up = cli(state, "up", "--detach", "--capacity", "2")
    assert "local cluster running at https://127.0.0.1:" in up.stdout
    try:
        kubeconfig = state / "kubeconfig"
        assert stat.S_IMODE(kubeconfig.stat().st_mode) == 0o600
        config = yaml.safe_load(kubeconfig.read_text())
        server = config["clusters"][0]["cluster"]["server"]
        token = config["users"][0]["user"]["token"]
        assert server.startswith("https://127.0.0.1:")
        ca = str(state / "tls.crt")

        # TLS is verified against the pinned certificate; plain clients without it are refused
        with pytest.raises(httpx.ConnectError):
            httpx.get(server + "/version")
        # the token is demanded: it executes commands
        assert httpx.get(server + "/version", verify=ca).status_code == 401
        assert httpx.get(server + "/version", verify=ca,
                         headers={"Authorization": "Bearer wrong"}).status_code == 401
        version = httpx.get(server + "/version", verify=ca, headers={"Authorization": f"Bearer {token}"})
        assert version.status_code == 200 and version.json()["gitVersion"]

        # a second up is a no-op that says where the running one is
        again = cli(state, "up", "--detach")
        assert "already running" in again.stdout

        status = cli(state, "status")
        assert server in status.stdout and "workflows: none" in status.stdout
        node_pid = json.loads((state / "server.json").read_text())["node_pid"]
        assert f"node process (controllers and pods): pid {node_pid}" in status.stdout
        assert process_running(node_pid)
        # how resource limits are enforced here is reported (cgroups as root on this kind of machine, else rlimits)
        assert re.search(r"resource limits: (cgroup v[12]|rlimits) \(", status.stdout), status.stdout

        env = cli(state, "env").stdout.splitlines()
        exports = dict(line.removeprefix("export ").split("=", 1) for line in env)
        assert shlex.split(exports["KUBECONFIG"]) == [str(kubeconfig)]
        conn = json.loads(shlex.split(exports["AIRFLOW_CONN_ARGO_DEFAULT"])[0])
        assert conn["conn_type"] == "argo_workflows"
        assert conn["extra"]["kube_config_path"] == str(kubeconfig)
        assert shlex.split(exports["AIRFLOW_ARGO_ECI_OSS_ENDPOINT"])[0].startswith("https://127.0.0.1:")
        assert shlex.split(exports["AIRFLOW_ARGO_ECI_OSS_CREDENTIALS"]) == [str(state / "oss-credentials.json")]
        # the printed connections work as they are: the OSS one reaches the artifact bucket
        oss_conn = shlex.split(exports["AIRFLOW_CONN_OSS_DEFAULT"])[0]
        assert json.loads(oss_conn)["schema"] == "argo-artifacts"
        monkeypatch.setenv("AIRFLOW_CONN_OSS_DEFAULT", oss_conn)
        ok, message = OSSArtifactHook().test_connection()
        assert ok, message
    finally:
        down = cli(state, "down")
    assert "stopped" in down.stdout
    assert cli(state, "status", check=False).returncode == 3
    assert not (state / "server.json").exists()


def test_state_dir_is_private(tmp_path: Path) -> None:
    state = tmp_path / "private"
    cli(state, "up", "--detach")
    try:
        assert stat.S_IMODE(os.stat(state).st_mode) == 0o700
        for secret in ("token", "tls.key", "kubeconfig", "oss-credentials.json"):
            assert stat.S_IMODE((state / secret).stat().st_mode) == 0o600, secret
    finally:
        cli(state, "down")


def test_up_after_kill_9_starts_anew_even_while_the_dead_server_is_a_zombie(tmp_path: Path) -> None:
    """A server killed with SIGKILL whose parent has not reaped it (a zombie answers ``kill(pid, 0)``)
    and whose port is closed is not "already running": ``local up`` starts a new one."""
    import signal
    import time

    state = tmp_path / "state"
    server = subprocess.Popen(  # our child: it stays a zombie until we wait() for it
        [sys.executable, "-m", "airflow_argo_eci.local.cli", "local", "up", "--state-dir", str(state),
         "--capacity", "1"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not (state / "server.json").exists():
            assert time.monotonic() < deadline and server.poll() is None, "the server did not start"
            time.sleep(0.1)
        old = json.loads((state / "server.json").read_text())
        os.kill(server.pid, signal.SIGKILL)
        while Path(f"/proc/{server.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
            assert time.monotonic() < deadline
            time.sleep(0.05)
        os.kill(server.pid, 0)  # the zombie still "exists"
        assert cli(state, "status", check=False).returncode == 3
        up = cli(state, "up", "--detach", "--capacity", "1")
        assert "already running" not in up.stdout and "local cluster running at" in up.stdout
        new = json.loads((state / "server.json").read_text())
        assert new["pid"] != old["pid"]
        assert cli(state, "status").returncode == 0
    finally:
        server.kill()
        server.wait()
        cli(state, "down", check=False)
