"""Start, inspect and stop the stack's processes (local cluster + Airflow services).

Every process is started in its own session (``start_new_session``), so its pid is also its
process group: ``stack down`` signals the groups it recorded in ``stack.json``, never a process
found by name, and then checks that no process of those groups is left.
"""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from airflow_argo_eci.local.processes import process_running
from airflow_argo_eci.stack.config import (
    ADMIN_USER,
    AIRFLOW_SERVICES,
    StackPaths,
    StackSettings,
    admin_password,
    airflow_config,
    service_env,
    write_private,
)
from airflow_argo_eci.stack.ports import free_port, port_in_use


class StackError(RuntimeError):
    """The stack could not start or stop; the message says which service and where its log is."""


def read_state(paths: StackPaths) -> dict[str, Any] | None:
    try:
        state: dict[str, Any] = json.loads(paths.state.read_text())
    except (FileNotFoundError, ValueError):
        return None
    return state


def group_members(pgids: set[int]) -> list[int]:
    """Live (non-zombie) processes whose process group is one of ``pgids``, from ``/proc``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 2 and fields[0] not in ("Z", "X") and int(fields[2]) in pgids:
            found.append(int(entry.name))
    return sorted(found)


def start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22), or None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
        return int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def owned_groups(state: dict[str, Any]) -> set[int]:
    """The recorded process groups that are still this stack's: a group whose leader pid now
    belongs to a process started at another time (the pid was reused, e.g. after a reboot) is
    left out, so ``stack down`` never signals a stranger."""
    recorded = state.get("start_times") or {}
    groups = set()
    for pid in {int(p) for p in (state.get("pids") or {}).values()}:
        now, then = start_time(pid), recorded.get(str(pid))
        if now is not None and then is not None and now != int(then):
            continue
        groups.add(pid)
    return groups


def running_services(state: dict[str, Any]) -> dict[str, bool]:
    """Each recorded service -> whether its process is alive."""
    return {name: process_running(int(pid)) for name, pid in (state.get("pids") or {}).items()}


def is_running(paths: StackPaths) -> dict[str, Any] | None:
    """The recorded state when any process of this stack is still alive, else None."""
    state = read_state(paths)
    if state and group_members(owned_groups(state)):
        return state
    return None


def _spawn(paths: StackPaths, name: str, cmd: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    paths.logs.mkdir(parents=True, exist_ok=True)
    with open(paths.service_log(name), "ab") as log:
        return subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                env=env, cwd=str(paths.root), start_new_session=True)


def _log_tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _start_cluster(paths: StackPaths, wait: float) -> dict[str, Any]:
    """``local up --detach`` into ``cluster/``; its server.json (pid, url, OSS endpoint)."""
    cmd = [sys.executable, "-m", "airflow_argo_eci.cli", "local", "up", "--detach",
           "--state-dir", str(paths.cluster), "--wait", str(wait)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=wait + 30)
    if done.returncode != 0:
        raise StackError(f"the local cluster did not start: {done.stderr.strip() or done.stdout.strip()}")
    info: dict[str, Any] = json.loads((paths.cluster / "server.json").read_text())
    return info


def _connections(paths: StackPaths, info: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from airflow_argo_eci.local.connections import argo_kubernetes_connection, argo_server_connection, oss_connection
    from airflow_argo_eci.local.paths import StatePaths

    cluster = StatePaths(paths.cluster)
    conns = {"argo_default": argo_kubernetes_connection(cluster),
             "argo_server_local": argo_server_connection(cluster, info["url"])}
    if info.get("oss_endpoint"):
        conns["oss_default"] = oss_connection(cluster, info["oss_endpoint"], region=info.get("oss_region", ""))
    return conns


#: a JSON file {conn_id: connection} that replaces the local cluster's connections (e.g. a kind cluster's)
CONNECTIONS_ENV = "AIRFLOW_ARGO_ECI_STACK_CONNECTIONS"


def external_connections(environ: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    """The connections named by ``$AIRFLOW_ARGO_ECI_STACK_CONNECTIONS`` (none when unset).

    They override the local cluster's of the same id, so the stack's Airflow drives another cluster
    (``tests/e2e/kind/run.sh``) while everything else stays the same.
    """
    source = (os.environ if environ is None else environ).get(CONNECTIONS_ENV)
    if not source:
        return {}
    try:
        conns = json.loads(Path(source).read_text())
    except (OSError, ValueError) as exc:
        raise StackError(f"${CONNECTIONS_ENV}={source}: cannot read a JSON file of connections ({exc}); "
                         "point it at a file like {\"argo_default\": {\"conn_type\": ...}} or unset it") from exc
    if not isinstance(conns, dict) or not all(isinstance(v, dict) and v.get("conn_type") for v in conns.values()):
        raise StackError(f"${CONNECTIONS_ENV}={source}: must map connection ids to objects with a conn_type")
    return conns


def _sql_alchemy_conn(paths: StackPaths, settings: StackSettings, pids: dict[str, int]) -> str:
    if settings.db == "sqlite":
        return f"sqlite:///{paths.sqlite_db}"
    from airflow_argo_eci.stack.postgres import start_postgres

    url, pid = start_postgres(paths)
    pids["postgres"] = pid
    return url


def _wait_healthy(paths: StackPaths, state: dict[str, Any], procs: dict[str, subprocess.Popen[bytes]],
                  wait: float) -> None:
    """Until the api-server answers and reports the scheduler, triggerer and dag-processor healthy."""
    import httpx

    url = f"{state['api_url']}/api/v2/monitor/health"
    deadline = time.monotonic() + wait
    last: Any = None
    while time.monotonic() < deadline:
        for name, proc in procs.items():
            if proc.poll() is not None:
                log = paths.service_log(name)
                raise StackError(f"{name} exited with code {proc.returncode}; see {log}:\n{_log_tail(log)}")
        try:
            last = httpx.get(url, timeout=3).json()
            if all((last.get(part) or {}).get("status") == "healthy"
                   for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")):
                return
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(1)
    raise StackError(f"the stack did not become healthy within {wait:.0f}s (last health: {last}); "
                     f"logs in {paths.logs}")


def start(paths: StackPaths, settings: StackSettings, *, wait: float = 180.0) -> dict[str, Any]:
    """Start the cluster and the Airflow services; returns the recorded state (``stack.json``).

    Raises :class:`StackError` when a service does not come up; whatever was started is stopped.
    """
    if port_in_use(settings.port):
        raise StackError(f"--port {settings.port}: 127.0.0.1:{settings.port} is already in use; "
                         "pass a free port (e.g. --port 8081)")
    paths.root.mkdir(parents=True, exist_ok=True)
    paths.airflow_home.mkdir(parents=True, exist_ok=True)
    pids: dict[str, int] = {}
    state: dict[str, Any] = {"pids": pids, "db": settings.db, "dags_folder": str(settings.dags_folder),
                             "port": settings.port, "api_url": f"http://127.0.0.1:{settings.port}",
                             "airflow_home": str(paths.airflow_home), "user": ADMIN_USER}
    try:
        info = _start_cluster(paths, wait=60)
        pids["cluster"] = int(info["pid"])
        state["cluster_url"] = info["url"]
        _write_state(paths, state)
        external = external_connections()
        connections = {**_connections(paths, info), **external}
        argo = (external.get("argo_default") or {}).get("extra") or {}
        if isinstance(argo, dict) and argo.get("kube_config_path"):  # workflows live on that cluster
            state["argo_kubeconfig"] = str(argo["kube_config_path"])
            state["argo_namespace"] = str(argo.get("namespace") or "argo")
        env = service_env(paths, connections)
        password = admin_password(paths)
        log_port = free_port()
        try:
            conn = _sql_alchemy_conn(paths, settings, pids)
        except RuntimeError as exc:  # PostgresError: what is missing and the fix
            raise StackError(str(exc)) from exc
        _write_state(paths, state)
        cfg = airflow_config(paths, settings, sql_alchemy_conn=conn, log_server_port=log_port)
        text = io.StringIO()
        cfg.write(text)
        write_private(paths.airflow_cfg, text.getvalue())  # it holds the database password and secrets
        state["log_server_port"] = log_port
        migrate = subprocess.run([sys.executable, "-m", "airflow", "db", "migrate"], env=env,
                                 capture_output=True, text=True, timeout=600)
        if migrate.returncode != 0:
            raise StackError(f"airflow db migrate failed:\n{migrate.stderr[-3000:]}")
        procs: dict[str, subprocess.Popen[bytes]] = {}
        commands = {
            "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(settings.port)],
            "scheduler": ["scheduler", "--skip-serve-logs"],
            "dag-processor": ["dag-processor"],
            "triggerer": ["triggerer", "--skip-serve-logs"],
        }
        for name in AIRFLOW_SERVICES:
            procs[name] = _spawn(paths, name, [sys.executable, "-m", "airflow", *commands[name]], env)
            pids[name] = procs[name].pid
        procs["log-server"] = _spawn(paths, "log-server",
                                     [sys.executable, "-m", "airflow_argo_eci.stack.logserver", str(log_port)], env)
        pids["log-server"] = procs["log-server"].pid
        _write_state(paths, state)
        _wait_healthy(paths, state, procs, wait)
        state["password"] = password
        return state
    except BaseException:
        stop(paths)
        raise


def restart_service(paths: StackPaths, name: str) -> int:
    """Start one Airflow service of a running stack again (after it died); returns its pid."""
    state = read_state(paths)
    if not state or name not in AIRFLOW_SERVICES:
        raise StackError(f"no running stack in {paths.root} or unknown service {name!r}")
    info = json.loads((paths.cluster / "server.json").read_text())
    env = service_env(paths, {**_connections(paths, info), **external_connections()})
    extra = {"scheduler": ["--skip-serve-logs"], "triggerer": ["--skip-serve-logs"],
             "api-server": ["--host", "127.0.0.1", "--port", str(state["port"])]}.get(name, [])
    proc = _spawn(paths, name, [sys.executable, "-m", "airflow", name, *extra], env)
    state["pids"][name] = proc.pid
    _write_state(paths, state)
    return proc.pid


def _write_state(paths: StackPaths, state: dict[str, Any]) -> None:
    starts = state.setdefault("start_times", {})
    for pid in (state.get("pids") or {}).values():
        if str(pid) not in starts and (began := start_time(int(pid))) is not None:
            starts[str(pid)] = began
    tmp = paths.state.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, indent=2))
    tmp.replace(paths.state)


def stop(paths: StackPaths, *, wait: float = 30.0) -> list[int]:
    """Stop every process group the stack recorded: SIGTERM, then SIGKILL after ``wait``.

    Airflow services first, the database and the cluster last. Returns the pids still alive
    afterwards (empty when everything is gone).
    """
    state = read_state(paths)
    if not state:
        return []
    owned = owned_groups(state)
    pids = {name: int(pid) for name, pid in (state.get("pids") or {}).items() if int(pid) in owned}
    last = ("postgres", "cluster")
    batches = [[n for n in pids if n not in last], [n for n in last if n in pids]]
    for batch in batches:
        groups = {pids[n] for n in batch}
        if "postgres" in batch:
            from airflow_argo_eci.stack.postgres import stop_postgres

            stop_postgres(paths)
        for pgid in groups:
            try:
                os.killpg(pgid, signal.SIGTERM)
            except (ProcessLookupError, PermissionError):
                pass
        deadline = time.monotonic() + wait
        while group_members(groups) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in group_members(groups):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    time.sleep(0.2)
    left = group_members(set(pids.values()))
    if not left:
        paths.state.unlink(missing_ok=True)
    return left


# -- listening sockets --------------------------------------------------------------------------

def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    try:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                target = os.readlink(fd)
            except OSError:
                continue
            if target.startswith("socket:["):
                inodes.add(int(target[8:-1]))
    except OSError:
        pass
    return inodes


def _decode_address(hex_addr: str) -> str:
    host, port = hex_addr.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        return f"{socket.inet_ntop(socket.AF_INET, raw[::-1])}:{int(port, 16)}"
    words = b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4))
    return f"[{socket.inet_ntop(socket.AF_INET6, words)}]:{int(port, 16)}"


def listening_sockets(pids: list[int]) -> list[tuple[int, str]]:
    """(pid, "address:port") of every listening TCP socket held by ``pids`` (``/proc/net/tcp{,6}``
    joined with ``/proc/<pid>/fd``)."""
    listening: dict[int, str] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            cols = row.split()
            if len(cols) > 9 and cols[3] == "0A":  # TCP_LISTEN
                listening[int(cols[9])] = _decode_address(cols[1])
    found = []
    for pid in pids:
        for inode in sorted(_socket_inodes(pid)):
            if inode in listening:
                found.append((pid, listening[inode]))
    return found


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0].strip("[]")
    return host.startswith("127.") or host == "::1" or host.startswith("::ffff:127.")
