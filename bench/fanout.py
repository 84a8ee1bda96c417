"""Benchmark: a 100-pod ``withSequence`` fan-out on the local cluster.

The seed documents' ``parallelism-limit1`` example (ECI labels, multi-spec, VSwitchRandom,
fail-fast, retryStrategy) with the ``sleep 30`` removed, so what is measured is the executor's
own cost. Printed side by side in one run:

- wall time of the workflow (submit -> Succeeded, seen through the Kubernetes API),
- wall time of running the same 100 commands as plain subprocesses with the same concurrency,
- the per-pod overhead of the local cluster over a bare process, and the ratio of the two.

    .venv/bin/python bench/fanout.py [--pods 100] [--parallelism 100] [--sandbox auto]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kubernetes import client, config

from airflow_argo_eci.local.server import LocalCluster

COMMAND = ["sh", "-c", "echo shard done"]


def workflow(pods: int, parallelism: int) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "parallelism-limit1-"},
        "spec": {
            "entrypoint": "parallelism-limit1",
            "parallelism": parallelism,
            "podSpecPatch": '{"schedulerName": "eci-scheduler"}',
            "podMetadata": {
                "labels": {"alibabacloud.com/eci": "true"},
                "annotations": {
                    "k8s.aliyun.com/eci-use-specs": "ecs.c6.large,ecs.c5.large,2-4Gi",
                    "k8s.aliyun.com/eci-schedule-strategy": "VSwitchRandom",
                    "k8s.aliyun.com/eci-fail-strategy": "fail-fast",
                },
            },
            "templates": [
                {"name": "parallelism-limit1",
                 "steps": [[{"name": "sleep", "template": "sleep",
                             "withSequence": {"start": "1", "end": str(pods)}}]]},
                {"name": "sleep", "retryStrategy": {"limit": "3", "retryPolicy": "Always"},
                 "container": {"image": "alpine:latest", "command": COMMAND,
                               "resources": {"requests": {"cpu": "100m"}}}},
            ],
        },
    }


def run_workflow(cluster: LocalCluster, pods: int, parallelism: int, timeout: float) -> tuple[float, dict[str, Any]]:
    api = config.new_client_from_config(config_file=str(cluster.kubeconfig_path))
    objects = client.CustomObjectsApi(api)
    started = time.perf_counter()
    created = objects.create_namespaced_custom_object(
        "argoproj.io", "v1alpha1", "argo", "workflows", workflow(pods, parallelism))
    name = created["metadata"]["name"]
    while True:
        wf = objects.get_namespaced_custom_object("argoproj.io", "v1alpha1", "argo", "workflows", name)
        phase = (wf.get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed", "Error"):
            return time.perf_counter() - started, wf
        if time.perf_counter() - started > timeout:
            raise TimeoutError(f"workflow {name} still {phase} after {timeout}s")
        time.sleep(0.05)


def run_plain(pods: int, parallelism: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallelism) as pool:
        codes = list(pool.map(lambda _: subprocess.run(COMMAND, capture_output=True).returncode, range(pods)))
    assert all(code == 0 for code in codes)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pods", type=int, default=100)
    parser.add_argument("--parallelism", type=int, default=100)
    parser.add_argument("--sandbox", default="auto", choices=["auto", "bwrap", "none"])
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-fanout-") as state, \
            LocalCluster(state, capacity_vcpu=args.parallelism * 0.1 + 1, sandbox=args.sandbox) as cluster:
        wall, wf = run_workflow(cluster, args.pods, args.parallelism, args.timeout)
    status = wf["status"]
    pod_nodes = [n for n in status["nodes"].values() if n.get("type") == "Pod"]
    plain = run_plain(args.pods, args.parallelism)
    print(f"fan-out of {args.pods} pods, parallelism {args.parallelism}, sandbox={args.sandbox}")
    print(f"  workflow phase            : {status['phase']} ({len(pod_nodes)} pod nodes)")
    print(f"  local cluster wall time   : {wall:8.2f} s  ({wall / args.pods * 1000:7.1f} ms per pod)")
    print(f"  plain subprocesses        : {plain:8.2f} s  ({plain / args.pods * 1000:7.1f} ms per pod)")
    print(f"  per-pod overhead          : {(wall - plain) / args.pods * 1000:8.1f} ms")
    print(f"  ratio local/plain         : {wall / plain:8.1f}x")


if __name__ == "__main__":
    main()
