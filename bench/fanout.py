"""Benchmark: ``withSequence`` fan-outs (100 / 1,000 / 5,000 pods) and a 1,000-wide DAG layer on
the local cluster, optionally with many concurrent watchers on the API server.

The seed documents' ``parallelism-limit1`` example (ECI labels, multi-spec, VSwitchRandom,
fail-fast, retryStrategy) with the ``sleep 30`` removed, so what is measured is the executor's
own cost. Printed side by side in one run, per size:

- wall time of the workflow (submit -> the controller commits the terminal phase),
- wall time of running the same commands as plain subprocesses with the same concurrency,
- the per-pod overhead of the local cluster over a bare process, and the ratio of the two,
- the growth of this process's RSS over the run (the cluster runs in-process) and its peak,
- the size of the finished Workflow as served (bytes of the JSON a GET returns) and whether its
  ``status.nodes`` were packed into ``status.compressedNodes``.

``--watchers N`` opens N concurrent pod WATCH streams (``bench/watchers.py``, a subprocess) during
each run and reports the event latency (commit in the store -> line read by the watcher): p50,
p95, max over every (watcher, event).

``--node-process`` runs the controllers and the pods' runtime in the local cluster's node process
(``LocalCluster(node_process=True)``); ``--compare`` runs every size both ways, one after the
other. With a node process, CPU, RSS and commit times are read from it too (``/proc``, and the
file it appends the resourceVersion and time of each Pod commit to).

    .venv/bin/python bench/fanout.py [--pods 100 1000 5000] [--dag-width 1000] [--watchers 200]
                                     [--parallelism N] [--sandbox auto] [--node-process | --compare]
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from kubernetes import client, config

from airflow_argo_eci.conventions import LABEL_COMPLETED
from airflow_argo_eci.local.api.resources import PODS
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.workflows import workflow_nodes

COMMAND = ["sh", "-c", "echo shard done"]
CONTAINER = {"image": "alpine:latest", "command": COMMAND, "resources": {"requests": {"cpu": "100m"}}}
BENCH = Path(__file__).resolve().parent


def _metadata() -> dict[str, Any]:
    return {
        "labels": {"alibabacloud.com/eci": "true"},
        "annotations": {
            "k8s.aliyun.com/eci-use-specs": "ecs.c6.large,ecs.c5.large,2-4Gi",
            "k8s.aliyun.com/eci-schedule-strategy": "VSwitchRandom",
            "k8s.aliyun.com/eci-fail-strategy": "fail-fast",
        },
    }


def workflow(pods: int, parallelism: int) -> dict[str, Any]:
    """The seed's ``parallelism-limit1`` fan-out of ``pods`` no-op pods."""
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "parallelism-limit1-"},
        "spec": {
            "entrypoint": "parallelism-limit1",
            "parallelism": parallelism,
            "podSpecPatch": '{"schedulerName": "eci-scheduler"}',
            "podMetadata": _metadata(),
            "templates": [
                {"name": "parallelism-limit1",
                 "steps": [[{"name": "sleep", "template": "sleep",
                             "withSequence": {"start": "1", "end": str(pods)}}]]},
                {"name": "sleep", "retryStrategy": {"limit": "3", "retryPolicy": "Always"},
                 "container": CONTAINER},
            ],
        },
    }


def dag_workflow(width: int, parallelism: int) -> dict[str, Any]:
    """A DAG ``root -> width tasks -> join`` (``width + 2`` pods, one layer ``width`` wide)."""
    layer = [{"name": f"w{i}", "template": "noop", "dependencies": ["root"]} for i in range(width)]
    tasks = [{"name": "root", "template": "noop"}, *layer,
             {"name": "join", "template": "noop", "dependencies": [t["name"] for t in layer]}]
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "wide-dag-"},
        "spec": {
            "entrypoint": "main",
            "parallelism": parallelism,
            "podMetadata": _metadata(),
            "templates": [{"name": "main", "dag": {"tasks": tasks}},
                          {"name": "noop", "container": CONTAINER}],
        },
    }


def _rss_kib(field: str, pid: int | str = "self") -> int:
    """``field`` (VmRSS, VmHWM) of process ``pid`` (default: this one) in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
        return True
    except OSError:
        return False


def _proc_cpu(pid: int) -> tuple[float, float]:
    """(CPU seconds of process ``pid``, of its waited-for children) from ``/proc/PID/stat``."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / tick, (int(fields[13]) + int(fields[14])) / tick


class Watchers:
    """``count`` pod WATCH streams in a subprocess, with the commit time of every pod event
    (recorded by a store listener here, or read from the node process's commit-times file)."""

    def __init__(self, cluster: LocalCluster, count: int, out: Path) -> None:
        self.committed: dict[int, float] = {}
        self.out = out
        self.commit_times = Path(cluster.commit_times) if cluster.commit_times else None
        assert cluster.store is not None
        cluster.store.add_listener(self._on_change, kinds=[PODS])
        rv = str(cluster.store.resource_version)
        self.proc = subprocess.Popen(
            [sys.executable, str(BENCH / "watchers.py"), "--port", str(cluster.port), "--token", cluster.token,
             "--ca", str(cluster.paths.tls_cert), "--count", str(count), "--rv", rv, "--out", str(out)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        first = self.proc.stdout.readline().strip()
        if first != "ready":
            raise RuntimeError(f"watchers did not start (exit {self.proc.poll()}): {first!r}")

    def _on_change(self, event_type: str, rt: Any, obj: dict[str, Any]) -> None:
        if rt.plural == "pods":
            self.committed[int(obj["metadata"]["resourceVersion"])] = time.monotonic()

    def finish(self) -> dict[str, Any]:
        """Stop the watchers; latency percentiles in ms and counts."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=120)
        result = json.loads(self.out.read_text())
        if self.commit_times is not None:
            for line in self.commit_times.read_text().splitlines():
                rv, at = line.split()
                self.committed[int(rv)] = float(at)
        latencies = sorted(arrived - self.committed[rv]
                           for per in result["arrivals"] for rv, arrived in per if rv in self.committed)
        expected = len(self.committed) * len(result["arrivals"])

        def pct(p: float) -> float:
            return latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000 if latencies else float("nan")

        return {"p50": pct(0.50), "p95": pct(0.95), "p99": pct(0.99), "max": pct(1.0) if latencies else float("nan"),
                "received": len(latencies), "expected": expected, "errors": result["errors"],
                "error_samples": result["error_samples"], "cpu_seconds": result["cpu_seconds"]}


def run_workflow(cluster: LocalCluster, body: dict[str, Any], timeout: float) -> tuple[float, dict[str, Any], int]:
    """(wall seconds, the finished workflow, bytes of its JSON as served).

    The end is seen by polling the database every 20 ms with SQLite's own text search for the
    ``completed`` label (sqlite3 releases the interpreter lock while it searches), not through the
    API or a store listener: parsing the running workflow (hundreds of KiB) in the API server's
    process, as either would, would delay the WATCH streams being measured."""
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
    objects = client.CustomObjectsApi(api)
    db = sqlite3.connect(f"file:{cluster.paths.db}?mode=ro", uri=True)
    started = time.perf_counter()
    created = objects.create_namespaced_custom_object("argoproj.io", "v1alpha1", "argo", "workflows", body)
    name = created["metadata"]["name"]
    try:
        while not db.execute(
            "SELECT 1 FROM objects WHERE plural='workflows' AND namespace='argo' AND name=? AND instr(body, ?) > 0",
            (name, f'"{LABEL_COMPLETED}":"true"'),
        ).fetchone():
            if time.perf_counter() - started > timeout:
                raise TimeoutError(f"workflow {name} still running after {timeout}s")
            time.sleep(0.02)
    finally:
        db.close()
    wall = time.perf_counter() - started
    raw = objects.get_namespaced_custom_object("argoproj.io", "v1alpha1", "argo", "workflows", name,
                                               _preload_content=False).data
    return wall, json.loads(raw), len(raw)


def run_plain(pods: int, parallelism: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=min(parallelism, 200)) as pool:
        codes = list(pool.map(lambda _: subprocess.run(COMMAND, capture_output=True).returncode, range(pods)))
    assert all(code == 0 for code in codes)
    return time.perf_counter() - started


def measure(label: str, body: dict[str, Any], pods: int, args: argparse.Namespace, node_process: bool) -> None:
    """Run one workflow on a fresh cluster and print its figures."""
    parallelism = body["spec"]["parallelism"]
    node: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as state:
        rss_before = _rss_kib("VmRSS")
        peak_reset = _reset_peak_rss()
        cluster = LocalCluster(state, capacity_vcpu=parallelism * 0.1 + 1, sandbox=args.sandbox,
                               node_process=node_process)
        if node_process:
            cluster.commit_times = str(Path(state) / "commit-times")
        with cluster:
            node_pid = json.loads(cluster.paths.server_info.read_text()).get("node_pid")
            watchers = Watchers(cluster, args.watchers, Path(state) / "arrivals.json") if args.watchers else None
            cpu_before = os.times()
            node_before = _proc_cpu(node_pid) if node_pid else (0.0, 0.0)
            wall, wf, size = run_workflow(cluster, body, args.timeout)
            cpu_after = os.times()
            if node_pid:
                node_after = _proc_cpu(node_pid)
                node = {"cpu": node_after[0] - node_before[0], "pods_cpu": node_after[1] - node_before[1],
                        "rss": _rss_kib("VmRSS", node_pid), "peak": _rss_kib("VmHWM", node_pid)}
            latency = watchers.finish() if watchers else None
            rss_after = _rss_kib("VmRSS")
            rss_peak = _rss_kib("VmHWM")
    status = wf["status"]
    pod_nodes = [n for n in workflow_nodes(status).values() if n.get("type") == "Pod"]
    plain = run_plain(pods, parallelism)
    print(f"{label}: {pods} pods, parallelism {parallelism}, sandbox={args.sandbox}"
          + (f", {args.watchers} watchers" if args.watchers else "")
          + (", node process" if node_process else ", one process"))
    print(f"  workflow phase            : {status['phase']} ({len(pod_nodes)} pod nodes)"
          + (f": {status.get('message')}" if status["phase"] != "Succeeded" else ""))
    print(f"  local cluster wall time   : {wall:8.2f} s  ({wall / pods * 1000:7.1f} ms per pod)")
    print(f"  plain subprocesses        : {plain:8.2f} s  ({plain / pods * 1000:7.1f} ms per pod)")
    print(f"  per-pod overhead          : {(wall - plain) / pods * 1000:8.1f} ms")
    print(f"  ratio local/plain         : {wall / plain:8.1f}x")
    own_cpu = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
    child_cpu = ((cpu_after.children_user - cpu_before.children_user)
                 + (cpu_after.children_system - cpu_before.children_system))
    if node:
        print(f"  CPU per pod               : {own_cpu / pods * 1000:8.1f} ms in the API server's process, "
              f"{node['cpu'] / pods * 1000:.1f} ms in the node process, "
              f"{node['pods_cpu'] / pods * 1000:.1f} ms in the pods' processes (sandbox and command)")
    else:
        print(f"  CPU per pod               : {own_cpu / pods * 1000:8.1f} ms in this process "
              f"(user {(cpu_after.user - cpu_before.user) / pods * 1000:.1f}, "
              f"system {(cpu_after.system - cpu_before.system) / pods * 1000:.1f}), "
              f"{child_cpu / pods * 1000:.1f} ms in the pods' processes (sandbox and command)")
    print(f"  process RSS               : {rss_before / 1024:.0f} MiB -> {rss_after / 1024:.0f} MiB "
          f"(+{(rss_after - rss_before) / 1024:.0f} MiB; peak {rss_peak / 1024:.0f} MiB"
          f"{'' if peak_reset else ', peak since process start'})"
          + (f"; node process {node['rss'] / 1024:.0f} MiB (peak {node['peak'] / 1024:.0f} MiB)" if node else ""))
    print(f"  workflow object as served : {size / 1024:8.1f} KiB, "
          + ("status.compressedNodes" if status.get("compressedNodes") else "status.nodes (not compressed)"))
    if latency:
        print(f"  watch event latency       : p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms, "
              f"p99 {latency['p99']:.1f} ms, max {latency['max']:.1f} ms "
              f"({latency['received']} of {latency['expected']} events received, {latency['errors']} errors; "
              f"the watchers' process used {latency['cpu_seconds']:.1f} s of CPU)")
        for sample in latency["error_samples"]:
            print(f"    watcher error: {sample}")
    sys.stdout.flush()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, nargs="*", default=[100], help="withSequence fan-out sizes to run")
    parser.add_argument("--dag-width", type=int, default=0, help="also run a DAG with a layer this wide")
    parser.add_argument("--parallelism", type=int, default=0, help="default: the fan-out's width")
    parser.add_argument("--watchers", type=int, default=0, help="concurrent pod WATCH streams during each run")
    parser.add_argument("--sandbox", default="auto", choices=["auto", "bwrap", "none"])
    parser.add_argument("--timeout", type=float, default=1800)
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--node-process", action="store_true",
                      help="controllers and runtime in the local cluster's node process")
    mode.add_argument("--compare", action="store_true", help="run every size in one process, then with a node process")
    args = parser.parse_args()
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cpus")
    modes = [False, True] if args.compare else [args.node_process]
    for pods in args.pods:
        for node_process in modes:
            measure("withSequence fan-out", workflow(pods, args.parallelism or pods), pods, args, node_process)
    if args.dag_width:
        width = args.dag_width
        for node_process in modes:
            measure("DAG root -> layer -> join", dag_workflow(width, args.parallelism or width), width + 2, args,
                    node_process)


if __name__ == "__main__":
    main()
