"""The stack's state directory and the Airflow configuration generated into it.

Layout under the state directory (``--state-dir``):

- ``cluster/``            the local cluster's own state directory (``local up --state-dir``)
- ``airflow/``            ``AIRFLOW_HOME``: ``airflow.cfg``, ``airflow.db`` (SQLite), task logs
- ``logs/<service>.log``  one log file per service (api-server, scheduler, dag-processor,
                          triggerer, log-server, postgres)
- ``admin-password``      the generated admin password (mode 0600)
- ``stack.json``          what ``stack up`` started: pids, ports, database, DAGs folder
"""

from __future__ import annotations

import configparser
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: the services ``stack up`` starts, in start order (the api-server first: the workers need it)
AIRFLOW_SERVICES = ("api-server", "scheduler", "dag-processor", "triggerer")
#: the users of the simple auth manager: the admin (printed by ``stack up``) and a read-only viewer
#: (its password only in the passwords file), which the e2e browser test uses for the 403 of Stop
ADMIN_USER = "admin"
VIEWER_USER = "viewer"
DATABASES = ("sqlite", "postgres")


class StackConfigError(ValueError):
    """A bad ``stack up`` argument, with the field and the fix in the message."""


def default_stack_dir() -> Path:
    """``$AIRFLOW_ARGO_ECI_STACK_DIR`` or ``~/.local/state/airflow-argo-eci-stack``."""
    env = os.environ.get("AIRFLOW_ARGO_ECI_STACK_DIR")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "airflow-argo-eci-stack"


@dataclass(frozen=True)
class StackPaths:
    """Where everything of one stack lives."""

    root: Path

    @property
    def cluster(self) -> Path:
        return self.root / "cluster"

    @property
    def airflow_home(self) -> Path:
        return self.root / "airflow"

    @property
    def airflow_cfg(self) -> Path:
        return self.airflow_home / "airflow.cfg"

    @property
    def sqlite_db(self) -> Path:
        return self.airflow_home / "airflow.db"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    def service_log(self, service: str) -> Path:
        return self.logs / f"{service}.log"

    @property
    def task_logs(self) -> Path:
        return self.airflow_home / "logs"

    @property
    def admin_password(self) -> Path:
        return self.root / "admin-password"

    @property
    def passwords_json(self) -> Path:
        """The simple auth manager's passwords file (mode 0600), ``{"admin": "<password>"}``."""
        return self.airflow_home / "simple_auth_manager_passwords.json"

    @property
    def state(self) -> Path:
        return self.root / "stack.json"

    @property
    def postgres_data(self) -> Path:
        return self.root / "postgres"


@dataclass(frozen=True)
class StackSettings:
    """What ``stack up`` was asked for, validated."""

    dags_folder: Path
    db: str = "sqlite"
    port: int = 8080
    #: False sets ``[scheduler] use_job_schedule = False``: only triggered runs (the demo, the tests)
    schedules: bool = True

    def __post_init__(self) -> None:
        if self.db not in DATABASES:
            raise StackConfigError(f"--db {self.db!r}: must be one of {', '.join(DATABASES)}")
        if not 1 <= self.port <= 65535:
            raise StackConfigError(f"--port {self.port}: must be a TCP port between 1 and 65535")
        if not self.dags_folder.is_dir():
            raise StackConfigError(f"--dags-folder {self.dags_folder}: no such directory; pass the folder "
                                   "holding your DAG files (default: the repository's dags/)")


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` readable by its owner only (created 0600, never wider)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(path, 0o600)


def admin_password(paths: StackPaths) -> str:
    """The admin password: generated once per state directory, kept in two 0600 files."""
    try:
        password = paths.admin_password.read_text().strip()
    except FileNotFoundError:
        password = ""
    if not password:
        password = secrets.token_urlsafe(18)
        write_private(paths.admin_password, password + "\n")
    write_private(paths.passwords_json, json.dumps({ADMIN_USER: password,
                                                    VIEWER_USER: _secret(paths, "viewer-password")}))
    return password


def _secret(paths: StackPaths, name: str) -> str:
    """A random secret kept under the state directory (stable across restarts of one stack)."""
    path = paths.root / f".{name}"
    try:
        value = path.read_text().strip()
    except FileNotFoundError:
        value = ""
    if not value:
        value = secrets.token_urlsafe(32)
        write_private(path, value)
    return value


def airflow_config(paths: StackPaths, settings: StackSettings, *, sql_alchemy_conn: str,
                   log_server_port: int) -> configparser.ConfigParser:
    """The ``airflow.cfg`` of the stack: LocalExecutor, simple auth, everything on 127.0.0.1."""
    api_url = f"http://127.0.0.1:{settings.port}"
    cfg = configparser.ConfigParser(interpolation=None)
    cfg["core"] = {
        "dags_folder": str(settings.dags_folder),
        "executor": "LocalExecutor",
        "parallelism": "8",
        "load_examples": "False",
        # Airflow 3.3 loads provider plugins (the Argo view) only without lazy provider discovery
        "lazy_discover_providers": "False",
        "auth_manager": "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "simple_auth_manager_users": f"{ADMIN_USER}:admin,{VIEWER_USER}:viewer",
        "simple_auth_manager_passwords_file": str(paths.passwords_json),
        "hostname_callable": "airflow_argo_eci.stack.hostname.loopback_hostname",
        "execution_api_server_url": f"{api_url}/execution/",
        "fernet_key": "",
    }
    cfg["database"] = {"sql_alchemy_conn": sql_alchemy_conn}
    if sql_alchemy_conn.startswith("postgresql+psycopg:"):  # psycopg 3 is sync and async in one
        cfg["database"]["sql_alchemy_conn_async"] = sql_alchemy_conn
    cfg["api"] = {"host": "127.0.0.1", "port": str(settings.port), "base_url": api_url,
                  "secret_key": _secret(paths, "secret-key"), "workers": "1", "expose_config": "False"}
    cfg["api_auth"] = {"jwt_secret": _secret(paths, "jwt-secret")}
    cfg["logging"] = {"base_log_folder": str(paths.task_logs),
                      "worker_log_server_port": str(log_server_port),
                      "trigger_log_server_port": str(log_server_port)}
    cfg["scheduler"] = {"enable_health_check": "False", "catchup_by_default": "False",
                        "use_job_schedule": str(settings.schedules)}
    cfg["dag_processor"] = {"refresh_interval": "10", "min_file_process_interval": "30"}
    return cfg


def service_env(paths: StackPaths, connections: dict[str, dict[str, Any]],
                base: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of every Airflow process of the stack.

    Starts from ``base`` (the caller's environment) without any ``AIRFLOW__*``/``AIRFLOW_CONN_*``
    setting, so what a caller's shell (or a test session) sets never leaks into the stack; the
    connections to the local cluster come in as ``AIRFLOW_CONN_*``.
    """
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_")) and k != "AIRFLOW_HOME"}
    env["AIRFLOW_HOME"] = str(paths.airflow_home)
    env["PYTHONUNBUFFERED"] = "1"
    for conn_id, conn in connections.items():
        env[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(conn)
    return env
