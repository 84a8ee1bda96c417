"""The stack's configuration, state files and process/socket helpers, without starting services."""

from __future__ import annotations

import configparser
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_argo_eci.stack import services
from airflow_argo_eci.stack.config import (
    StackConfigError,
    StackPaths,
    StackSettings,
    admin_password,
    airflow_config,
    service_env,
)


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "airflow_argo_eci.cli", "stack", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"db": "mysql"}, "--db 'mysql'"),
    ({"port": 0}, "--port 0"),
    ({"port": 70000}, "--port 70000"),
])
def test_bad_settings_name_the_field(tmp_path: Path, kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(StackConfigError, match=f"^{field}"):
        StackSettings(dags_folder=tmp_path, **kwargs)  # type: ignore[arg-type]


def test_missing_dags_folder_is_refused_by_the_cli(tmp_path: Path) -> None:
    done = _cli("up", "--dags-folder", str(tmp_path / "nope"), "--state-dir", str(tmp_path / "state"))
    assert done.returncode == 2
    assert "--dags-folder" in done.stderr and "no such directory" in done.stderr
    assert not (tmp_path / "state" / "stack.json").exists()


def test_admin_password_is_generated_once_and_private(tmp_path: Path) -> None:
    paths = StackPaths(tmp_path)
    first = admin_password(paths)
    assert len(first) >= 20 and admin_password(paths) == first
    for path in (paths.admin_password, paths.passwords_json):
        assert os.stat(path).st_mode & 0o777 == 0o600
    assert first in paths.passwords_json.read_text()


def test_airflow_config_binds_everything_to_loopback(tmp_path: Path) -> None:
    paths = StackPaths(tmp_path)
    settings = StackSettings(dags_folder=tmp_path, port=8123, schedules=False)
    cfg = airflow_config(paths, settings, sql_alchemy_conn="sqlite:///x.db", log_server_port=40001)
    assert cfg["core"]["executor"] == "LocalExecutor"
    assert cfg["core"]["execution_api_server_url"] == "http://127.0.0.1:8123/execution/"
    assert cfg["api"]["host"] == "127.0.0.1" and cfg["api"]["port"] == "8123"
    assert cfg["logging"]["worker_log_server_port"] == cfg["logging"]["trigger_log_server_port"] == "40001"
    assert cfg["scheduler"]["use_job_schedule"] == "False"
    assert cfg["scheduler"]["enable_health_check"] == "False"
    # the secrets are stable for one state directory and differ between state directories
    again = airflow_config(paths, settings, sql_alchemy_conn="sqlite:///x.db", log_server_port=40001)
    other = airflow_config(StackPaths(tmp_path / "b"), settings, sql_alchemy_conn="sqlite:///x.db",
                           log_server_port=40001)
    assert again["api"]["secret_key"] == cfg["api"]["secret_key"] != other["api"]["secret_key"]
    assert isinstance(cfg, configparser.ConfigParser)


def test_service_env_drops_the_callers_airflow_settings(tmp_path: Path) -> None:
    base = {"PATH": "/usr/bin", "AIRFLOW_HOME": "/elsewhere", "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
            "AIRFLOW_CONN_STALE": "x"}
    env = service_env(StackPaths(tmp_path), {"argo_default": {"conn_type": "argo_workflows"}}, base)
    assert env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    assert "AIRFLOW__CORE__UNIT_TEST_MODE" not in env and "AIRFLOW_CONN_STALE" not in env
    assert env["AIRFLOW_CONN_ARGO_DEFAULT"] == '{"conn_type": "argo_workflows"}'
    assert env["PATH"] == "/usr/bin"


def test_listening_sockets_sees_a_wildcard_and_a_loopback_listener() -> None:
    with socket.socket() as loop, socket.socket() as anyaddr:
        loop.bind(("127.0.0.1", 0))
        loop.listen()
        anyaddr.bind(("0.0.0.0", 0))
        anyaddr.listen()
        found = dict((address, pid) for pid, address in services.listening_sockets([os.getpid()]))
        loop_addr = f"127.0.0.1:{loop.getsockname()[1]}"
        any_addr = f"0.0.0.0:{anyaddr.getsockname()[1]}"
    assert found.get(loop_addr) == os.getpid() and found.get(any_addr) == os.getpid()
    assert services.is_loopback(loop_addr) and not services.is_loopback(any_addr)
    assert services.is_loopback("[::1]:80") and not services.is_loopback("[::]:80")


def test_status_and_down_without_a_stack(tmp_path: Path) -> None:
    status = _cli("status", "--state-dir", str(tmp_path))
    assert status.returncode == 3 and "not running" in status.stdout
    down = _cli("down", "--state-dir", str(tmp_path))
    assert down.returncode == 0 and "not running" in down.stdout


def test_stop_signals_recorded_process_groups_only(tmp_path: Path) -> None:
    paths = StackPaths(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    bystander = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        paths.state.write_text(f'{{"pids": {{"scheduler": {child.pid}}}}}')
        assert services.is_running(paths)
        assert services.stop(paths, wait=10) == []
        assert child.wait(timeout=10) is not None
        assert bystander.poll() is None
        assert not paths.state.exists() and services.is_running(paths) is None
    finally:
        for proc in (child, bystander):
            proc.kill()
            proc.wait()


def test_external_connections_file(tmp_path: Path) -> None:
    assert services.external_connections({}) == {}
    good = tmp_path / "connections.json"
    good.write_text('{"argo_default": {"conn_type": "argo_workflows", "extra": {"kube_config_path": "/k"}}}')
    assert services.external_connections({services.CONNECTIONS_ENV: str(good)})["argo_default"]["extra"] == {
        "kube_config_path": "/k"}
    with pytest.raises(services.StackError, match=r"^\$AIRFLOW_ARGO_ECI_STACK_CONNECTIONS=.*cannot read"):
        services.external_connections({services.CONNECTIONS_ENV: str(tmp_path / "missing.json")})
    bad = tmp_path / "bad.json"
    bad.write_text('{"argo_default": {"host": "x"}}')
    with pytest.raises(services.StackError, match="conn_type"):
        services.external_connections({services.CONNECTIONS_ENV: str(bad)})


def test_a_reused_pid_is_not_this_stacks(tmp_path: Path) -> None:
    paths = StackPaths(tmp_path)
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        began = services.start_time(stranger.pid)
        assert began is not None
        # recorded with another start time: the pid now belongs to someone else
        paths.state.write_text(json.dumps({"pids": {"scheduler": stranger.pid},
                                           "start_times": {str(stranger.pid): began - 1}}))
        assert services.is_running(paths) is None
        assert services.stop(paths, wait=5) == []
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()
