"""``airflow-argo-eci local up|down|status|env``: run the local cluster on this machine."""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from airflow_argo_eci.conventions import API_VERSION, WORKFLOWS
from airflow_argo_eci.local.paths import StatePaths, default_state_dir
from airflow_argo_eci.local.processes import process_running


def _listening(url: str, timeout: float = 1.0) -> bool:
    """Whether something accepts connections where ``url`` points (the server's loopback port)."""
    import socket
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if not parts.hostname or not parts.port:
        return False
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=timeout):
            return True
    except OSError:
        return False


def server_info(paths: StatePaths) -> dict[str, Any] | None:
    """The running server's info, or None when no live server owns this state directory (no
    ``server.json``, its process gone or a zombie, or nothing listening on its port)."""
    try:
        info: dict[str, Any] = json.loads(paths.server_info.read_text())
        pid = int(info.get("pid", 0))
    except (FileNotFoundError, ValueError, TypeError, AttributeError):
        return None
    if not process_running(pid) or not _listening(str(info.get("url", ""))):
        return None
    return info


def _probe(paths: StatePaths, url: str, path: str = "/version") -> dict[str, Any]:
    import httpx

    token = paths.token.read_text().strip()
    response = httpx.get(url + path, headers={"Authorization": f"Bearer {token}"}, timeout=5,
                         verify=str(paths.tls_cert))
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


def _sandbox_lines(info: dict[str, Any]) -> list[str]:
    """What the running cluster's pod sandbox holds and lacks, from ``server.json``."""
    from airflow_argo_eci.local.runtime.isolation import SandboxReport

    report = SandboxReport.from_dict(info.get("sandbox"))
    limits = f"resource limits: {info.get('limits') or 'not recorded (restart the server)'}"
    if report is None:
        return ["sandbox: not recorded (the server predates the sandbox report; restart it)", limits]
    return [*report.lines(), limits]


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _bandwidth(text: str) -> int:
    """``--oss-bandwidth``: a rate such as ``200MiB`` in bytes per second."""
    from airflow_argo_eci.local.oss.bandwidth import parse_rate

    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def cmd_up(args: argparse.Namespace) -> int:
    paths = StatePaths(Path(args.state_dir).expanduser().resolve())
    running = server_info(paths)
    if running:
        print(f"local cluster already running at {running['url']} (pid {running['pid']})")
        return 0
    if args.detach:
        paths.root.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "airflow_argo_eci.local.cli", "local", "up",
               "--state-dir", str(paths.root), "--port", str(args.port),
               "--capacity", str(args.capacity), "--sandbox", args.sandbox, "--pids-limit", str(args.pids_limit)]
        if args.sandbox_uid is not None:
            cmd += ["--sandbox-uid", str(args.sandbox_uid)]
        if args.oss_bandwidth is not None:
            cmd += ["--oss-bandwidth", str(args.oss_bandwidth)]
        if args.one_process:
            cmd.append("--one-process")
        with open(paths.server_log, "ab") as logf:
            proc = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)
        deadline = time.monotonic() + args.wait
        while time.monotonic() < deadline:
            info = server_info(paths)
            if info and info.get("pid") == proc.pid:
                print(f"local cluster running at {info['url']} (pid {proc.pid}); logs: {paths.server_log}")
                print("\n".join(_sandbox_lines(info)))
                print(f"export KUBECONFIG={shlex.quote(str(paths.kubeconfig))}")
                return 0
            if proc.poll() is not None:
                print(f"local cluster exited with code {proc.returncode}; see {paths.server_log}",
                      file=sys.stderr)
                print(_log_tail(paths.server_log), file=sys.stderr)
                return 1
            time.sleep(0.1)
        proc.terminate()
        print(f"local cluster did not start within {args.wait}s; see {paths.server_log}", file=sys.stderr)
        return 1

    from airflow_argo_eci.local.server import LocalCluster, LocalClusterError

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("airflow_argo_eci").setLevel(logging.INFO)
    cluster = LocalCluster(paths.root, port=args.port, capacity_vcpu=args.capacity, sandbox=args.sandbox,
                           pids_limit=args.pids_limit or None, sandbox_uid=args.sandbox_uid,
                           oss_bandwidth=args.oss_bandwidth, node_process=not args.one_process)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        cluster.start()
    except LocalClusterError as exc:
        print(f"local cluster did not start: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"local cluster listening on {cluster.url}; state in {paths.root}", flush=True)
    print("\n".join(_sandbox_lines({"sandbox": cluster.sandbox_report, "limits": cluster.limits_method})), flush=True)
    print(f"export KUBECONFIG={shlex.quote(str(cluster.kubeconfig_path))}", flush=True)
    try:
        stop.wait()
    finally:
        cluster.stop()
    return 0


def cmd_down(args: argparse.Namespace) -> int:
    paths = StatePaths(Path(args.state_dir).expanduser().resolve())
    info = server_info(paths)
    if not info:
        print("local cluster is not running")
        return 0
    pid = int(info["pid"])
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            print(f"local cluster (pid {pid}) stopped")
            return 0
        time.sleep(0.1)
    print(f"local cluster (pid {pid}) did not stop within {args.wait}s", file=sys.stderr)
    return 1


def cmd_status(args: argparse.Namespace) -> int:
    paths = StatePaths(Path(args.state_dir).expanduser().resolve())
    info = server_info(paths)
    if not info:
        print(f"local cluster is not running (state dir {paths.root})")
        return 3
    version = _probe(paths, info["url"])
    wfs = _probe(paths, info["url"], f"/apis/{API_VERSION}/{WORKFLOWS}")
    phases: dict[str, int] = {}
    for wf in wfs.get("items", []):
        phase = (wf.get("status") or {}).get("phase") or "Pending"
        phases[phase] = phases.get(phase, 0) + 1
    summary = ", ".join(f"{k}: {v}" for k, v in sorted(phases.items())) or "none"
    print(f"local cluster running at {info['url']} (pid {info['pid']}, {version.get('gitVersion')})")
    print(f"state dir: {paths.root}")
    if info.get("node_pid"):
        print(f"node process (controllers and pods): pid {info['node_pid']}")
    else:
        print("controllers and pods run in the server's process (--one-process)")
    if info.get("oss_endpoint"):
        print(f"OSS store: {info['oss_endpoint']} (credentials in {paths.oss_credentials})")
    print(f"workflows: {summary}")
    print("\n".join(_sandbox_lines(info)))
    return 0


def cmd_env(args: argparse.Namespace) -> int:
    paths = StatePaths(Path(args.state_dir).expanduser().resolve())
    info = server_info(paths)
    if not info:
        print("# local cluster is not running: start it with `airflow-argo-eci local up --detach`",
              file=sys.stderr)
        return 3
    from airflow_argo_eci.local.connections import argo_kubernetes_connection, argo_server_connection, oss_connection
    from airflow_argo_eci.local.oss.app import DEFAULT_REGION

    print(f"export KUBECONFIG={shlex.quote(str(paths.kubeconfig))}")
    print(f"export AIRFLOW_CONN_ARGO_DEFAULT={shlex.quote(json.dumps(argo_kubernetes_connection(paths)))}")
    server_conn = argo_server_connection(paths, info["url"])
    print(f"export AIRFLOW_CONN_ARGO_SERVER_LOCAL={shlex.quote(json.dumps(server_conn))}")
    if info.get("oss_endpoint"):
        oss_conn = oss_connection(paths, info["oss_endpoint"], region=info.get("oss_region", DEFAULT_REGION))
        print(f"export AIRFLOW_CONN_OSS_DEFAULT={shlex.quote(json.dumps(oss_conn))}")
        print(f"export AIRFLOW_ARGO_ECI_OSS_ENDPOINT={shlex.quote(info['oss_endpoint'])}")
        print(f"export AIRFLOW_ARGO_ECI_OSS_CREDENTIALS={shlex.quote(str(paths.oss_credentials))}")
    return 0


def add_local_parser(top: Any) -> None:
    """Add ``local up|down|status|env`` to the top-level command's subparsers ``top``."""
    local = top.add_parser("local", help="the local cluster (Kubernetes API + Argo executor on this machine)")
    sub = local.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", default=str(default_state_dir()),
                       help="where objects, logs and the kubeconfig live (default: %(default)s)")

    up = sub.add_parser("up", help="start the local cluster (foreground unless --detach)")
    common(up)
    up.add_argument("--detach", "-d", action="store_true", help="run in the background")
    up.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    up.add_argument("--capacity", type=float, default=float(os.cpu_count() or 2) * 4,
                    help="vCPUs that running pods may request in total (default: %(default)s)")
    up.add_argument("--sandbox", choices=["auto", "bwrap", "none"], default="auto",
                    help="per-pod isolation: auto/bwrap run pods in the full sandbox (bubblewrap, user "
                         "namespace, no capabilities, seccomp) and refuse to start when a piece is missing; "
                         "none runs pods WITHOUT isolation (default: %(default)s)")
    up.add_argument("--sandbox-uid", type=int, default=None,
                    help="unprivileged host uid pods run as when the cluster runs as root (default: 65534)")
    up.add_argument("--pids-limit", type=int, default=1024,
                    help="processes and threads per pod, like the kubelet's podPidsLimit; 0: no limit "
                         "(default: %(default)s)")
    up.add_argument("--oss-bandwidth", type=_bandwidth, default=None, metavar="RATE",
                    help="cap the OSS store's bandwidth for all clients together, e.g. 200MiB (per second; "
                         "MiB = 1024^2, MB = 1000^2), to reproduce a bucket's bandwidth limit (default: no cap)")
    up.add_argument("--one-process", action="store_true",
                    help="run the controllers and pods in the API server's process instead of a node process "
                         "of their own (the API then competes with a fan-out for the interpreter lock)")
    up.add_argument("--wait", type=float, default=30.0, help="seconds to wait for a detached start")
    up.set_defaults(func=cmd_up)

    down = sub.add_parser("down", help="stop a detached local cluster")
    common(down)
    down.add_argument("--wait", type=float, default=30.0)
    down.set_defaults(func=cmd_down)

    status = sub.add_parser("status", help="is it running, where, and what workflows it holds")
    common(status)
    status.set_defaults(func=cmd_status)

    env = sub.add_parser("env", help="print KUBECONFIG and AIRFLOW_CONN_* settings for a shell")
    common(env)
    env.set_defaults(func=cmd_env)



def build_parser(*groups: Callable[[Any], None], description: str | None = __doc__) -> argparse.ArgumentParser:
    """The ``airflow-argo-eci`` parser with the ``local`` group and any further ``groups`` (functions
    that add their subparsers). Alone, it is ``python -m airflow_argo_eci.local.cli local ...``, what
    a detached cluster runs (no stack, no Airflow); the full command is :mod:`airflow_argo_eci.cli`."""
    parser = argparse.ArgumentParser(prog="airflow-argo-eci", description=description)
    top = parser.add_subparsers(dest="group", required=True)
    for add in (add_local_parser, *groups):
        add(top)
    return parser


def main(argv: list[str] | None = None, *groups: Callable[[Any], None], description: str | None = __doc__) -> int:
    """Parse ``argv`` with :func:`build_parser` and run the command; returns its exit code."""
    args = build_parser(*groups, description=description).parse_args(argv)
    rc: int = args.func(args)
    return rc


if __name__ == "__main__":
    sys.exit(main())
