"""The main job: the flagship example DAG on real Airflow services and the local cluster.

Starts the stack (``airflow-argo-eci stack up``: local cluster, api-server, scheduler,
dag-processor, triggerer, LocalExecutor on SQLite), triggers ``argo_eci_fanout`` through the REST
API as the UI's trigger button does (no logical date), and prints a compact live view: task
states as they change (the deferred task waits in the triggerer), each workflow's phase and pods
done/total. Then the result: workflows, phases, durations, artifacts, the report line, and the
UI URL with its login. Airflow's own logs go to files under the state directory.

By default the stack stays up until Ctrl-C so the run can be opened in the UI; ``--once`` stops
it after the run and exits with the run's outcome (0 when it succeeded).
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from airflow_argo_eci.conventions import NODE_COMPLETED_PHASES

DEFAULT_DAG = "argo_eci_fanout"
REPO_DAGS = Path(__file__).resolve().parents[2] / "dags"
TERMINAL_RUN_STATES = ("success", "failed")
#: Argo node phases after which a pod node is done


def _elapsed(start: float) -> str:
    return f"{time.monotonic() - start:6.1f}s"


def _seconds(begin: str | None, end: str | None) -> str:
    if not begin or not end:
        return "-"
    fmt = "%Y-%m-%dT%H:%M:%SZ"
    try:
        return f"{(datetime.strptime(end, fmt) - datetime.strptime(begin, fmt)).total_seconds():.0f}s"
    except ValueError:
        return "-"


def workflow_progress(workflow: dict[str, Any]) -> tuple[str, int, int]:
    """(phase, pods done, pods total) of a workflow from its status nodes."""
    status = workflow.get("status") or {}
    pods = [n for n in (status.get("nodes") or {}).values() if n.get("type") == "Pod"]
    done = sum(1 for n in pods if n.get("phase") in NODE_COMPLETED_PHASES)
    return status.get("phase") or "Pending", done, len(pods)


def watch_run(client: Any, dag_id: str, run_id: str, *, timeout: float, out: Any = sys.stdout) -> str:
    """Print task states and workflow progress as they change until the run ends; its state."""
    start = time.monotonic()
    seen_ti: dict[str, tuple[str, int]] = {}
    seen_wf: dict[str, tuple[str, int, int]] = {}
    state = "queued"
    while time.monotonic() - start < timeout:
        state = client.dag_run(dag_id, run_id)["state"]
        for ti in sorted(client.task_instances(dag_id, run_id), key=lambda t: t.get("start_date") or "~"):
            key = (ti.get("state") or "none", int(ti.get("try_number") or 0))
            if seen_ti.get(ti["task_id"]) != key and key[0] != "none":
                seen_ti[ti["task_id"]] = key
                note = "  (waiting in the triggerer, no worker slot held)" if key[0] == "deferred" else ""
                attempt = f" try {key[1]}" if key[1] > 1 else ""
                print(f"{_elapsed(start)}  task {ti['task_id']:<24} {key[0]}{attempt}{note}", file=out, flush=True)
        for wf in client.workflows(dag_id, run_id):
            name = wf["metadata"]["name"]
            progress = workflow_progress(wf)
            if seen_wf.get(name) != progress:
                seen_wf[name] = progress
                task = (wf["metadata"].get("labels") or {}).get("airflow.apache.org/task-id", "?")
                print(f"{_elapsed(start)}  workflow {name} ({task}): {progress[0]}, pods {progress[1]}/{progress[2]}",
                      file=out, flush=True)
        if state in TERMINAL_RUN_STATES:
            return str(state)
        time.sleep(1.0)
    return str(state)


def result_lines(client: Any, dag_id: str, run_id: str) -> list[str]:
    """Workflows (phase, duration, pods, artifacts) and the report line of a finished run."""
    lines = []
    for wf in client.workflows(dag_id, run_id):
        status = wf.get("status") or {}
        phase, done, total = workflow_progress(wf)
        task = (wf["metadata"].get("labels") or {}).get("airflow.apache.org/task-id", "?")
        by_name: dict[str, set[str]] = {}  # a parent node re-exports its child's artifact: count keys once
        for node in (status.get("nodes") or {}).values():
            for art in (node.get("outputs") or {}).get("artifacts") or []:
                key = (art.get("oss") or art.get("s3") or {}).get("key", "?")
                by_name.setdefault(art["name"], set()).add(key)
        lines.append(f"  workflow {wf['metadata']['name']} ({task}): {phase} in "
                     f"{_seconds(status.get('startedAt'), status.get('finishedAt'))}, {done}/{total} pods")
        for name, keys in sorted(by_name.items()):
            more = f" (+{len(keys) - 1} more)" if len(keys) > 1 else ""
            lines.append(f"    artifact {name}: oss://{sorted(keys)[0]}{more}")
    report = client.xcom(dag_id, run_id, "report")
    if report:
        lines.append(f"  report: {report}")
    return lines


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dag", default=DEFAULT_DAG, help="the example DAG to run (default: %(default)s)")
    parser.add_argument("--dags-folder", type=Path, default=REPO_DAGS, help="where the example DAGs are")
    parser.add_argument("--once", action="store_true",
                        help="stop the stack after the run and exit with its outcome (CI, tests)")
    parser.add_argument("--port", type=int, default=8080,
                        help="api-server port on 127.0.0.1; a free one when it is taken (default: %(default)s)")
    parser.add_argument("--state-dir", type=Path, default=None,
                        help="keep the stack's state here (default: a temporary directory, removed at the end)")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds to wait for the run")
    args = parser.parse_args(argv)
    dags_folder = args.dags_folder.resolve()
    if not (dags_folder / f"{args.dag}.py").is_file():
        print(f"--dag/--dags-folder: no DAG file {args.dag}.py in {dags_folder}; pass --dags-folder",
              file=sys.stderr)
        return 2

    from airflow_argo_eci.stack import services
    from airflow_argo_eci.stack.cli import summary_lines
    from airflow_argo_eci.stack.client import StackClient
    from airflow_argo_eci.stack.config import StackConfigError, StackPaths, StackSettings
    from airflow_argo_eci.stack.ports import free_port, port_in_use

    root = args.state_dir.resolve() if args.state_dir else Path(tempfile.mkdtemp(prefix="argo-eci-demo-"))
    paths = StackPaths(root)
    if services.is_running(paths):
        print(f"--state-dir {root}: a stack is already running there; stop it with "
              f"`airflow-argo-eci stack down --state-dir {root}` or pass another directory", file=sys.stderr)
        return 2
    port = args.port if not port_in_use(args.port) else free_port()
    signal.signal(signal.SIGTERM, _interrupt)  # `kill <pid>` cleans up like Ctrl-C
    print(f"starting the stack in {root} (local cluster + api-server, scheduler, dag-processor, triggerer; "
          f"Airflow's logs go to {paths.logs})...", flush=True)
    try:
        state = services.start(paths, StackSettings(dags_folder=dags_folder, port=port, schedules=False))
    except (services.StackError, StackConfigError) as exc:
        print(f"the stack did not start: {exc}", file=sys.stderr)
        return 1
    outcome = "failed"
    try:
        with StackClient(paths, state) as client:
            deadline = time.monotonic() + 120
            while args.dag not in client.dag_ids():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the dag-processor did not parse {args.dag} within 120s; see "
                                       f"{paths.service_log('dag-processor')}")
                time.sleep(1)
            client.unpause(args.dag)
            run_id = client.trigger(args.dag)
            print(f"triggered {args.dag} through the REST API (no logical date): run {run_id}", flush=True)
            outcome = watch_run(client, args.dag, run_id, timeout=args.timeout)
            print("", f"run {run_id}: {outcome.upper()}", *result_lines(client, args.dag, run_id),
                  f"  in the UI: {state['api_url']}/dags/{args.dag}/runs/{quote(run_id, safe='')}", "",
                  *summary_lines(paths, state), sep="\n", flush=True)
        if not args.once:
            print("the stack stays up so you can open the run in the UI; Ctrl-C stops it", flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
    finally:
        print("stopping the stack...", flush=True)
        left = services.stop(paths)
        if left:
            print(f"processes of the stack still alive: {left}", file=sys.stderr)
        elif args.state_dir is None:
            shutil.rmtree(root, ignore_errors=True)
    return 0 if outcome == "success" else 1


if __name__ == "__main__":
    sys.exit(main())
