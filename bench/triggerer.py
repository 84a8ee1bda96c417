"""Benchmark: 1,000 deferred tasks waiting in one triggerer process on the local cluster.

Two ways of waiting are measured side by side in one run, each in its own process (one event
loop, like a triggerer), against the same local-cluster API server (the store and HTTP app of
``airflow_argo_eci.local``, in a third process, with a middleware counting every request):

- ``watch``: N ``ArgoWorkflowTrigger(get_logs=True)`` instances, sharing the process-wide watch
  hub (one LIST + one WATCH per connection and namespace); pod logs are read only for workflows
  whose pods changed, through the hub's rate limit;
- ``poll``:  N waiters that each GET their workflow every 2 seconds (the usual deferrable
  pattern) and read the log of each of its pods on every poll (what a sync-mode task does),
  through one shared ``ArgoWorkflowsHook`` (generous to the baseline: one client).

Each workflow has two pod steps with log lines: step ``a`` runs from the start; half way through
the wait ``a`` succeeds and ``b`` starts (one pod change per workflow); then the workflow ends.

The workflows wait ``--wait`` seconds, then the server writes their terminal phase into the store,
spread over ``--spread`` seconds, recording the commit time of each. Printed per mode and as ratios:

- peak RSS of the waiting process and memory per waiting trigger (peak RSS minus RSS before the
  triggers were created, divided by N);
- API requests issued per waited workflow-minute, and among them the pod log reads (the extra
  requests of streaming logs while deferred);
- event-to-resume latency: terminal phase committed in the store -> the trigger yields its event
  (p50 / p95 / max).

    .venv/bin/python bench/triggerer.py [--triggers 1000] [--wait 20] [--spread 5] [--log-interval 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path
from typing import Any

NAMESPACE = "argo"
CONN_ID = "argo_bench"
POLL_INTERVAL = 2.0


# ============================================================================ server process


def serve(state_dir: Path) -> None:
    """Run the counting API server until stdin closes; print its URL, token and kubeconfig first."""
    import secrets

    from fastapi import APIRouter, Body

    from airflow_argo_eci.local.api.app import create_app
    from airflow_argo_eci.local.api.argo_server import build_argo_server_router
    from airflow_argo_eci.local.api.resources import WORKFLOWS
    from airflow_argo_eci.local.api.store import Store
    from airflow_argo_eci.local.kubeconfig import write_kubeconfig
    from airflow_argo_eci.local.paths import StatePaths
    from airflow_argo_eci.local.server import serve_in_thread
    from airflow_argo_eci.local.tls import ensure_certificate

    paths = StatePaths(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    cert, key = ensure_certificate(paths.tls_cert, paths.tls_key)
    token = secrets.token_urlsafe(24)
    store = Store(paths.db)
    app = create_app(store, token=token, paths=paths)
    app.include_router(build_argo_server_router(store, paths))
    counts: dict[str, int] = {}
    lock = threading.Lock()
    control = APIRouter()

    from airflow_argo_eci.conventions import workflow_pod_name as pod_name
    from airflow_argo_eci.local.api.resources import PODS

    def nodes(name: str, phase_a: str, phase_b: str) -> dict[str, Any]:
        out: dict[str, Any] = {name: {"id": name, "name": name, "displayName": name, "type": "Steps",
                                      "phase": "Running", "children": []}}
        for step, phase in (("a", phase_a), ("b", phase_b)):
            if phase:
                node_id = f"{name}-{step}"
                out[node_id] = {"id": node_id, "name": f"{name}[0].{step}", "displayName": step,
                                "templateName": step, "type": "Pod", "phase": phase}
                out[name]["children"].append(node_id)
        return out

    def pod_of(name: str, step: str) -> str:
        meta = {"metadata": {"name": name}}
        return pod_name(meta, f"{name}-{step}", {"name": f"{name}[0].{step}", "templateName": step})

    def log_lines(name: str, step: str, *lines: str) -> None:
        path = paths.log_file(NAMESPACE, pod_of(name, step), "main")
        path.parent.mkdir(parents=True, exist_ok=True)
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1e9):09d}Z"
        with path.open("a") as fh:
            fh.writelines(f"{stamp} {line}\n" for line in lines)

    def set_status(name: str, status: dict[str, Any]) -> None:
        store.update(WORKFLOWS, NAMESPACE, name, lambda o: o.__setitem__("status", status))

    @control.post("/bench/create")
    def create(body: dict[str, Any] = Body(...)) -> list[dict[str, str]]:  # noqa: B008 - FastAPI idiom
        out = []
        for i in range(int(body["n"])):
            obj = store.create(WORKFLOWS, NAMESPACE, {
                "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                "metadata": {"name": f"{body['prefix']}-{i:05d}", "namespace": NAMESPACE},
                "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "alpine"}}]},
            })
            name = obj["metadata"]["name"]
            for step in ("a", "b"):
                store.create(PODS, NAMESPACE, {
                    "apiVersion": "v1", "kind": "Pod",
                    "metadata": {"name": pod_of(name, step), "namespace": NAMESPACE,
                                 "labels": {"workflows.argoproj.io/workflow": name}},
                    "spec": {"containers": [{"name": "main", "image": "alpine"}]}, "status": {"phase": "Running"},
                })
            log_lines(name, "a", "step a started", "step a working")
            set_status(name, {"phase": "Running", "nodes": nodes(name, "Running", "")})
            out.append({"name": name, "uid": obj["metadata"]["uid"]})
        return out

    def spread_over(names: list[str], spread: float, change: Any) -> dict[str, float]:
        committed: dict[str, float] = {}
        start = time.monotonic()
        for i, name in enumerate(names):
            pause = start + spread * i / max(len(names), 1) - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            change(name)
            committed[name] = time.time()
        return committed

    @control.post("/bench/advance")
    def advance(body: dict[str, Any] = Body(...)) -> dict[str, float]:  # noqa: B008
        """Half way: step a succeeds (its last line written first), step b starts."""
        def change(name: str) -> None:
            log_lines(name, "a", "step a done")
            log_lines(name, "b", "step b started")
            set_status(name, {"phase": "Running", "nodes": nodes(name, "Succeeded", "Running")})

        return spread_over(body["names"], float(body["spread"]), change)

    @control.post("/bench/finish")
    def finish(body: dict[str, Any] = Body(...)) -> dict[str, float]:  # noqa: B008
        def change(name: str) -> None:
            log_lines(name, "b", "step b done")
            set_status(name, {"phase": "Succeeded", "nodes": nodes(name, "Succeeded", "Succeeded")})

        return spread_over(body["names"], float(body["spread"]), change)

    @control.get("/bench/counts")
    def get_counts() -> dict[str, int]:
        with lock:
            return dict(counts)

    @control.post("/bench/reset")
    def reset() -> dict[str, int]:
        with lock:
            counts.clear()
        return {}

    app.include_router(control)

    async def counting(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and not scope["path"].startswith("/bench/"):
            query = scope.get("query_string", b"").decode().lower()
            if "watch=true" in query or "watch=1" in query:
                kind = "watch"
            elif scope["path"].endswith("/log"):
                kind = "log"
            elif scope["method"] == "GET":
                kind = "list" if scope["path"].rstrip("/").endswith("/workflows") else "get"
            else:
                kind = scope["method"].lower()
            with lock:
                counts[kind] = counts.get(kind, 0) + 1
        await app(scope, receive, send)

    server, thread, port = serve_in_thread(counting, ssl_certfile=str(cert), ssl_keyfile=str(key),
                                           graceful_seconds=0.5)
    url = f"https://127.0.0.1:{port}"
    kubeconfig = write_kubeconfig(paths.kubeconfig, url, token, ca_pem=cert.read_bytes())
    print(json.dumps({"url": url, "token": token, "kubeconfig": str(kubeconfig), "ca": str(cert)}), flush=True)
    sys.stdin.read()  # until the parent closes our stdin
    server.should_exit = True
    thread.join(timeout=10)
    store.close()


# ============================================================================ waiting process


def rss_bytes() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


class Control:
    """The server's /bench endpoints (not counted as API requests)."""

    def __init__(self, info: dict[str, str]) -> None:
        import httpx

        self.client = httpx.Client(base_url=info["url"], verify=info["ca"], timeout=120,
                                   headers={"Authorization": f"Bearer {info['token']}"})

    def post(self, path: str, body: dict[str, Any]) -> Any:
        response = self.client.post(path, json=body)
        response.raise_for_status()
        return response.json()

    def counts(self) -> dict[str, int]:
        response = self.client.get("/bench/counts")
        response.raise_for_status()
        return dict(response.json())


async def wait_all(
    mode: str, n: int, wait: float, spread: float, info: dict[str, str], log_interval: float
) -> dict[str, Any]:
    from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook
    from airflow_argo_eci.lifecycle import LogCursor
    from airflow_argo_eci.triggers.argo import ArgoWorkflowTrigger
    from airflow_argo_eci.triggers.watch_hub import get_hub
    from airflow_argo_eci.workflows import phase_outcome

    control = Control(info)
    workflows = await asyncio.to_thread(control.post, "/bench/create", {"prefix": f"bench-{mode}", "n": n})
    # warm up the client stack so its import cost is not counted as per-trigger memory
    warm = ArgoWorkflowsHook(CONN_ID)
    await warm.alist_workflows(NAMESPACE, label_selector="bench=none")
    try:  # and the sync client the log reads use
        await asyncio.to_thread(warm.read_pod_log, "bench-none", NAMESPACE, workflow="bench-none")
    except Exception:  # a 404 is the expected answer
        pass
    await warm.aclose()
    warm.close()
    await asyncio.to_thread(control.post, "/bench/reset", {})
    rss_before = rss_bytes()
    started: dict[str, float] = {}
    resumed: dict[str, float] = {}
    statuses: dict[str, str] = {}

    async def trigger_waiter(wf: dict[str, str]) -> None:
        trigger = ArgoWorkflowTrigger(name=wf["name"], namespace=NAMESPACE, uid=wf["uid"], argo_conn_id=CONN_ID,
                                      poll_interval=POLL_INTERVAL, get_logs=True, log_interval=log_interval)
        started[wf["name"]] = time.time()
        async for event in trigger.run():
            resumed[wf["name"]] = time.time()
            statuses[wf["name"]] = event.payload["status"]

    shared_hook = ArgoWorkflowsHook(CONN_ID)
    await shared_hook.asettings()
    log_reads = 0

    async def poll_waiter(wf: dict[str, str]) -> None:
        nonlocal log_reads
        started[wf["name"]] = time.time()
        cursor = LogCursor()
        await asyncio.sleep(random.uniform(0, POLL_INTERVAL))
        while True:
            obj = await shared_hook.aget_workflow(wf["name"], NAMESPACE)
            for _, pod in shared_hook.pods_of(obj):  # what a sync-mode task does on every poll
                log_reads += 1
                lines = await asyncio.to_thread(shared_hook.read_pod_log, pod, NAMESPACE,
                                                since_time=cursor.since_time(pod), workflow=wf["name"])
                cursor.new_lines(pod, lines)
            outcome = phase_outcome((obj.get("status") or {}).get("phase"))
            if outcome != "wait":
                resumed[wf["name"]] = time.time()
                statuses[wf["name"]] = outcome
                return
            await asyncio.sleep(POLL_INTERVAL)

    waiter = trigger_waiter if mode == "watch" else poll_waiter
    # Python heap held by the waiting triggers (tasks, generators, subscriptions, the hub's cache,
    # client buffers): traced only while they settle, so tracing does not slow the measured part
    tracemalloc.start()
    tasks = [asyncio.create_task(waiter(wf)) for wf in workflows]
    peak = rss_before
    if mode == "watch":
        while get_hub().subscriber_count() < n:
            await asyncio.sleep(0.01)
    await asyncio.sleep(POLL_INTERVAL + 0.5)  # every poller has polled at least once
    heap_waiting = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    names = [wf["name"] for wf in workflows]
    half = time.monotonic() + wait / 2
    while time.monotonic() < half:
        peak = max(peak, rss_bytes())
        await asyncio.sleep(0.25)
    advancing = asyncio.create_task(asyncio.to_thread(
        control.post, "/bench/advance", {"names": names, "spread": spread}))
    wait_end = time.monotonic() + wait / 2
    while time.monotonic() < wait_end or not advancing.done():
        peak = max(peak, rss_bytes())
        await asyncio.sleep(0.25)
    await advancing
    finishing = asyncio.create_task(asyncio.to_thread(
        control.post, "/bench/finish", {"names": names, "spread": spread}))
    while not all(t.done() for t in tasks):
        peak = max(peak, rss_bytes())
        await asyncio.sleep(0.1)
    committed: dict[str, float] = await finishing
    await asyncio.gather(*tasks)
    counts = await asyncio.to_thread(control.counts)
    await shared_hook.aclose()
    shared_hook.close()
    latencies = sorted(resumed[name] - committed[name] for name in committed)
    waited_minutes = sum(resumed[name] - started[name] for name in resumed) / 60.0
    return {
        "mode": mode, "n": n, "rss_before": rss_before, "rss_peak": peak, "heap_waiting": heap_waiting,
        "counts": counts,
        "requests": sum(counts.values()), "waited_minutes": waited_minutes,
        "latency_p50": statistics.median(latencies),
        "latency_p95": latencies[max(0, int(len(latencies) * 0.95) - 1)],
        "latency_max": latencies[-1],
        "non_success": sum(1 for s in statuses.values() if s != "success"),
        "log_reads": get_hub().log_read_count() if mode == "watch" else log_reads,
    }


def worker(mode: str, n: int, wait: float, spread: float, log_interval: float) -> None:
    info = json.loads(os.environ["ARGO_BENCH_SERVER"])
    os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps({
        "conn_type": "argo_workflows",
        "extra": {"kube_config_path": info["kubeconfig"], "namespace": NAMESPACE},
    })
    import logging

    logging.disable(logging.WARNING)  # the hooks' per-request INFO/secret-masker chatter is not measured
    result = asyncio.run(wait_all(mode, n, wait, spread, info, log_interval))
    print("RESULT " + json.dumps(result), flush=True)


# ============================================================================ orchestration


def _mib(value: float) -> str:
    return f"{value / 2**20:.1f} MiB"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--triggers", type=int, default=1000, help="concurrently waiting tasks (default 1000)")
    parser.add_argument("--wait", type=float, default=20.0, help="seconds every workflow keeps running (default 20)")
    parser.add_argument("--spread", type=float, default=5.0, help="seconds over which they finish (default 5)")
    parser.add_argument("--log-interval", type=float, default=30.0,
                        help="the triggers' log_interval: re-read a pod that keeps running (default 30)")
    parser.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--worker", choices=["watch", "poll"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.triggers < 1 or args.wait <= 0 or args.spread < 0 or args.log_interval < 0:
        parser.error("--triggers must be >= 1, --wait > 0, --spread >= 0 and --log-interval >= 0")
    if args.serve:
        serve(args.serve)
        return
    if args.worker:
        worker(args.worker, args.triggers, args.wait, args.spread, args.log_interval)
        return

    me = str(Path(__file__).resolve())
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    with tempfile.TemporaryDirectory(prefix="bench-triggerer-") as state:
        server = subprocess.Popen([sys.executable, me, "--serve", state], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, env=env)
        try:
            assert server.stdout is not None
            line = server.stdout.readline()
            if not line:
                raise SystemExit("the local-cluster server did not start")
            env["ARGO_BENCH_SERVER"] = line.strip()
            results: dict[str, dict[str, Any]] = {}
            for mode in ("watch", "poll"):
                print(f"[{mode}] {args.triggers} waiting tasks, {args.wait:.0f}s running + {args.spread:.0f}s "
                      "finishing ...", flush=True)
                began = time.monotonic()
                out = subprocess.run(
                    [sys.executable, me, "--worker", mode, "--triggers", str(args.triggers),
                     "--wait", str(args.wait), "--spread", str(args.spread),
                     "--log-interval", str(args.log_interval)],
                    env=env, capture_output=True, text=True, check=False,
                )
                found = [ln for ln in out.stdout.splitlines() if ln.startswith("RESULT ")]
                if out.returncode or not found:
                    raise SystemExit(f"[{mode}] worker failed ({out.returncode}):\n{out.stderr[-4000:]}")
                results[mode] = json.loads(found[-1][len("RESULT "):])
                print(f"[{mode}] done in {time.monotonic() - began:.1f}s", flush=True)
        finally:
            if server.stdin is not None:
                server.stdin.close()
            server.wait(timeout=30)
    report(results, args.triggers, args.log_interval)


def report(results: dict[str, dict[str, Any]], n: int, log_interval: float) -> None:
    from airflow_argo_eci.triggers.pod_logs import DEFAULT_LOG_RATE
    watch, poll = results["watch"], results["poll"]

    def per_trigger(r: dict[str, Any]) -> float:
        return float(r["rss_peak"] - r["rss_before"]) / r["n"]

    def heap(r: dict[str, Any]) -> float:
        return float(r["heap_waiting"]) / r["n"]

    def logs_per_minute(r: dict[str, Any]) -> float:
        return float(r["counts"].get("log", 0)) / max(r["waited_minutes"], 1e-9)

    def per_minute(r: dict[str, Any]) -> float:
        return float(r["requests"]) / max(r["waited_minutes"], 1e-9)

    rows = [
        ("peak RSS of the waiting process", _mib(watch["rss_peak"]), _mib(poll["rss_peak"]),
         f"{poll['rss_peak'] / watch['rss_peak']:.2f}x"),
        ("RSS growth while waiting, per trigger", f"{per_trigger(watch) / 1024:.1f} KiB",
         f"{per_trigger(poll) / 1024:.1f} KiB", ""),
        ("Python heap per waiting trigger", f"{heap(watch) / 1024:.1f} KiB", f"{heap(poll) / 1024:.1f} KiB",
         f"{heap(poll) / max(heap(watch), 1):.2f}x"),
        ("API requests (total)", str(watch["requests"]), str(poll["requests"]),
         f"{poll['requests'] / max(watch['requests'], 1):.0f}x"),
        ("  by kind", json.dumps(watch["counts"]), json.dumps(poll["counts"]), ""),
        ("pod log reads (logs while waiting)", str(watch["counts"].get("log", 0)), str(poll["counts"].get("log", 0)),
         f"{poll['counts'].get('log', 0) / max(watch['counts'].get('log', 0), 1):.0f}x"),
        ("log reads per waited workflow-minute", f"{logs_per_minute(watch):.2f}", f"{logs_per_minute(poll):.2f}",
         f"{logs_per_minute(poll) / max(logs_per_minute(watch), 1e-9):.0f}x"),
        ("waited workflow-minutes", f"{watch['waited_minutes']:.1f}", f"{poll['waited_minutes']:.1f}", ""),
        ("requests per waited workflow-minute", f"{per_minute(watch):.4f}", f"{per_minute(poll):.2f}",
         f"{per_minute(poll) / max(per_minute(watch), 1e-9):.0f}x"),
        ("event-to-resume latency p50", f"{watch['latency_p50'] * 1000:.1f} ms", f"{poll['latency_p50'] * 1000:.0f} ms",
         f"{poll['latency_p50'] / max(watch['latency_p50'], 1e-9):.1f}x"),
        ("event-to-resume latency p95", f"{watch['latency_p95'] * 1000:.1f} ms", f"{poll['latency_p95'] * 1000:.0f} ms",
         f"{poll['latency_p95'] / max(watch['latency_p95'], 1e-9):.1f}x"),
        ("event-to-resume latency max", f"{watch['latency_max'] * 1000:.1f} ms", f"{poll['latency_max'] * 1000:.0f} ms",
         ""),
        ("events other than success", str(watch["non_success"]), str(poll["non_success"]), ""),
    ]
    print(f"\n{n} concurrently waiting tasks, one process / one event loop each mode "
          "(a LIST of more than 500 workflows comes in 500-item pages); logs streamed while waiting, "
          f"watch: log_interval {log_interval:g}s, hub limit {DEFAULT_LOG_RATE:g} log reads/s")
    print(f"{'':40} {'shared watch':>22} {'poll every 2s':>22} {'poll/watch':>11}")
    for label, a, b, ratio in rows:
        print(f"{label:40} {a:>22} {b:>22} {ratio:>11}")


if __name__ == "__main__":
    main()
