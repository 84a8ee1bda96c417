"""A private PostgreSQL cluster for ``stack up --db postgres``.

Debian's server binaries (``initdb``, ``postgres``; the ``postgresql`` package is installed with
``apt-get`` when missing and running as root) run a cluster of the stack's own: TCP on a free
127.0.0.1 port, no Unix socket, scram-sha-256 with a generated password kept in a 0600 file. As a
normal user it runs as that user with its data under the state directory; as root (PostgreSQL
refuses to run as root) it runs as the ``postgres`` system user with its data under
``/var/lib/airflow-argo-eci/postgres/<hash of the state directory>``, which that user can reach.
Airflow talks to it through psycopg 3 (``postgresql+psycopg``), sync and async.
"""

from __future__ import annotations

import hashlib
import json
import os
import pwd
import secrets
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

from airflow_argo_eci.stack.config import StackPaths, write_private
from airflow_argo_eci.stack.ports import free_port, port_in_use

DB_USER = "airflow"
DB_NAME = "airflow"
ROOT_DATA_BASE = Path("/var/lib/airflow-argo-eci/postgres")


class PostgresError(RuntimeError):
    """PostgreSQL could not be set up or started; the message says what is missing and the fix."""


def _bin_dir() -> Path | None:
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                      key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if versions:
        return versions[-1].parent
    found = shutil.which("initdb")
    return Path(found).resolve().parent if found else None


def server_binaries() -> Path:
    """The directory of ``initdb`` and ``postgres``; installs Debian's package when root and missing."""
    found = _bin_dir()
    if found is None and os.geteuid() == 0 and shutil.which("apt-get"):
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=False, capture_output=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "postgresql"], env=env, check=False, capture_output=True)
        found = _bin_dir()
    if found is None:
        raise PostgresError("--db postgres: PostgreSQL's server binaries (initdb, postgres) are missing; install "
                            "Debian's `postgresql` package (as root `stack up` does it) or use --db sqlite")
    return found


def _driver_check() -> None:
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise PostgresError("--db postgres: the psycopg 3 driver is missing; `pip install "
                            "'airflow-argo-eci[postgres]'` (or 'psycopg[binary]') into Airflow's environment") from exc


def _run_as() -> pwd.struct_passwd | None:
    """The system user the server runs as when we are root (PostgreSQL refuses root), else None."""
    if os.geteuid() != 0:
        return None
    try:
        return pwd.getpwnam("postgres")
    except KeyError:
        subprocess.run(["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
                        "--shell", "/usr/sbin/nologin", "postgres"], check=True, capture_output=True)
        return pwd.getpwnam("postgres")


def data_dir(paths: StackPaths) -> Path:
    if os.geteuid() != 0:
        return paths.postgres_data
    digest = hashlib.sha256(str(paths.root.resolve()).encode()).hexdigest()[:16]
    return ROOT_DATA_BASE / digest


def _prepare(paths: StackPaths, bindir: Path, data: Path, owner: pwd.struct_passwd | None, password: str) -> None:
    """``initdb`` a new cluster in ``data`` (owned by ``owner`` when root)."""
    data.mkdir(parents=True, exist_ok=True, mode=0o700)
    pwfile = data.parent / f".{data.name}.pw"
    pwfile.write_text(password + "\n")
    os.chmod(pwfile, 0o600)
    if owner is not None:
        os.chown(data, owner.pw_uid, owner.pw_gid)
        os.chown(pwfile, owner.pw_uid, owner.pw_gid)
    try:
        done = subprocess.run([str(bindir / "initdb"), "-D", str(data), "-U", DB_USER, "--pwfile", str(pwfile),
                               "--auth", "scram-sha-256", "--encoding", "UTF8", "--no-instructions"],
                              capture_output=True, text=True, timeout=120,
                              user=owner.pw_uid if owner else None, group=owner.pw_gid if owner else None)
    finally:
        pwfile.unlink(missing_ok=True)
    if done.returncode != 0:
        raise PostgresError(f"initdb failed in {data}: {done.stderr.strip()[-2000:]}")


def start_postgres(paths: StackPaths, *, wait: float = 60.0) -> tuple[str, int]:
    """Start (creating on first use) the stack's PostgreSQL; returns (SQLAlchemy URL, server pid).

    The server is its own session (process group) logging to ``logs/postgres.log``.
    """
    _driver_check()
    bindir = server_binaries()
    owner = _run_as()
    data = data_dir(paths)
    settings_file = paths.root / "postgres.json"
    try:
        saved: dict[str, Any] = json.loads(settings_file.read_text())
    except (FileNotFoundError, ValueError):
        saved = {}
    password = str(saved.get("password") or secrets.token_urlsafe(24))
    if not (data / "PG_VERSION").is_file():
        _prepare(paths, bindir, data, owner, password)
    port = int(saved.get("port") or 0)
    if not port or port_in_use(port):
        port = free_port()
    write_private(settings_file, json.dumps({"password": password, "port": port, "data": str(data)}))
    paths.logs.mkdir(parents=True, exist_ok=True)
    log_path = paths.service_log("postgres")
    with open(log_path, "ab") as log:
        if owner is not None:
            os.chown(log_path, owner.pw_uid, owner.pw_gid)
        proc = subprocess.Popen([str(bindir / "postgres"), "-D", str(data), "-p", str(port),
                                 "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories="],
                                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True, cwd=str(data),
                                user=owner.pw_uid if owner else None, group=owner.pw_gid if owner else None,
                                extra_groups=[] if owner else None)
    import psycopg

    deadline = time.monotonic() + wait
    while True:
        if proc.poll() is not None:
            raise PostgresError(f"postgres exited with code {proc.returncode}; see {log_path}")
        try:
            with psycopg.connect(host="127.0.0.1", port=port, user=DB_USER, password=password,
                                 dbname="postgres", autocommit=True, connect_timeout=3) as conn:
                exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DB_NAME,)).fetchone()
                if not exists:
                    conn.execute(f'CREATE DATABASE "{DB_NAME}"')
            break
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                proc.terminate()
                raise PostgresError(f"postgres did not accept connections within {wait:.0f}s; see {log_path}") from None
            time.sleep(0.3)
    return f"postgresql+psycopg://{DB_USER}:{password}@127.0.0.1:{port}/{DB_NAME}", proc.pid


def stop_postgres(paths: StackPaths) -> None:
    """Ask the server for a fast shutdown (SIGINT); the caller then waits on its process group."""
    state = json.loads(paths.state.read_text()) if paths.state.exists() else {}
    pid = int((state.get("pids") or {}).get("postgres") or 0)
    if pid:
        try:
            os.kill(pid, 2)
        except ProcessLookupError:
            pass


def remove_data(paths: StackPaths) -> None:
    """Delete the cluster's data directory (tests; a user keeps it like the SQLite file)."""
    shutil.rmtree(data_dir(paths), ignore_errors=True)
