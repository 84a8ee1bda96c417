"""``airflow-argo-eci stack up|status|down``: the local cluster plus real Airflow services."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from airflow_argo_eci.stack.config import (
    AIRFLOW_SERVICES,
    DATABASES,
    StackConfigError,
    StackPaths,
    StackSettings,
    default_stack_dir,
)

#: the repository's example DAGs, the default ``--dags-folder`` when run from a checkout
REPO_DAGS = Path(__file__).resolve().parents[2] / "dags"


def summary_lines(paths: StackPaths, state: dict[str, Any]) -> list[str]:
    """What a user needs to reach the stack: UI, login, REST API, AIRFLOW_HOME, logs."""
    password = paths.admin_password.read_text().strip() if paths.admin_password.exists() else "?"
    return [
        f"Airflow UI:   {state['api_url']}/",
        f"login:        {state.get('user', 'admin')} / {password}   (password file {paths.admin_password}, mode 0600)",
        f"REST API:     {state['api_url']}/api/v2  (token: POST {state['api_url']}/auth/token)",
        f"AIRFLOW_HOME: {state['airflow_home']}  (database: {state['db']}; DAGs: {state['dags_folder']})",
        f"cluster:      {state.get('cluster_url')}  (state {paths.cluster})",
        f"logs:         {paths.logs}/{{{','.join((*AIRFLOW_SERVICES, 'log-server'))}}}.log; "
        f"task logs {paths.task_logs}",
    ]


def _paths(args: argparse.Namespace) -> StackPaths:
    return StackPaths(Path(args.state_dir).expanduser().resolve())


def cmd_up(args: argparse.Namespace) -> int:
    from airflow_argo_eci.stack import services

    paths = _paths(args)
    running = services.is_running(paths)
    if running:
        print(f"stack already running in {paths.root} (UI {running['api_url']}/); "
              f"`airflow-argo-eci stack down --state-dir {paths.root}` stops it")
        return 0
    try:
        settings = StackSettings(dags_folder=Path(args.dags_folder).expanduser().resolve(), db=args.db,
                                 port=args.port, schedules=not args.no_schedules)
    except StackConfigError as exc:
        print(f"stack up: {exc}", file=sys.stderr)
        return 2
    print(f"starting the stack in {paths.root} (local cluster, api-server, scheduler, dag-processor, "
          f"triggerer; {settings.db})...", flush=True)
    try:
        state = services.start(paths, settings, wait=args.wait)
    except (services.StackError, StackConfigError) as exc:
        print(f"stack up failed: {exc}", file=sys.stderr)
        return 1
    print("\n".join(summary_lines(paths, state)), flush=True)
    if args.detach:
        return 0
    print("running in the foreground: Ctrl-C stops everything", flush=True)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    left = services.stop(paths)
    print("stack stopped" if not left else f"processes left: {left}")
    return 0 if not left else 1


def cmd_status(args: argparse.Namespace) -> int:
    from airflow_argo_eci.stack import services

    paths = _paths(args)
    state = services.is_running(paths)
    if not state:
        print(f"stack is not running (state dir {paths.root})")
        return 3
    alive = services.running_services(state)
    print("\n".join(summary_lines(paths, state)))
    for name, pid in state["pids"].items():
        print(f"  {name:<14} pid {pid:<8} {'running' if alive[name] else 'NOT RUNNING'}")
    return 0 if all(alive.values()) else 1


def cmd_down(args: argparse.Namespace) -> int:
    from airflow_argo_eci.stack import services

    paths = _paths(args)
    if not services.read_state(paths):
        print(f"stack is not running (state dir {paths.root})")
        return 0
    left = services.stop(paths, wait=args.wait)
    if left:
        print(f"processes of the stack still alive: {left}", file=sys.stderr)
        return 1
    print("stack stopped; nothing left running")
    return 0


def add_stack_parser(top: Any) -> None:
    """Add the ``stack`` command group to the ``airflow-argo-eci`` parser's subparsers."""
    stack = top.add_parser("stack", help="the local cluster plus real Airflow services (api-server, scheduler, "
                                         "dag-processor, triggerer) on 127.0.0.1")
    sub = stack.add_subparsers(dest="command", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", default=str(default_stack_dir()),
                       help="AIRFLOW_HOME, logs, database and cluster state (default: %(default)s)")

    up = sub.add_parser("up", help="start the stack (foreground until Ctrl-C unless --detach)")
    common(up)
    up.add_argument("--dags-folder", default=str(REPO_DAGS), help="DAG files to serve (default: %(default)s)")
    up.add_argument("--db", choices=DATABASES, default="sqlite",
                    help="metadata database: sqlite (embedded, the default; LocalExecutor works on it in "
                         "Airflow 3) or postgres (a private PostgreSQL cluster under the state directory)")
    up.add_argument("--port", type=int, default=8080, help="api-server port on 127.0.0.1 (default: %(default)s)")
    up.add_argument("--no-schedules", action="store_true",
                    help="the scheduler creates no runs from DAG schedules; only triggered runs happen")
    up.add_argument("--detach", "-d", action="store_true", help="return once the stack is healthy")
    up.add_argument("--wait", type=float, default=240.0, help="seconds to wait for the stack to become healthy")
    up.set_defaults(func=cmd_up)

    status = sub.add_parser("status", help="is the stack running, where, which services are alive")
    common(status)
    status.set_defaults(func=cmd_status)

    down = sub.add_parser("down", help="stop every process the stack started (by pid)")
    common(down)
    down.add_argument("--wait", type=float, default=30.0, help="seconds before SIGKILL")
    down.set_defaults(func=cmd_down)
