"""Run the flagship ECI fan-out workflow end to end on a local cluster.

Starts a local cluster (unless one is already running for the state directory), submits the
example through the official ``kubernetes`` client exactly as against ACK, watches it to the end,
and prints the node tree, placement and the reduce step's log.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

GROUP, VERSION, PLURAL = "argoproj.io", "v1alpha1", "workflows"


def load_example(name: str = "eci-fanout.yaml") -> dict[str, Any]:
    text = resources.files("airflow_argo_eci.examples").joinpath(name).read_text()
    body: dict[str, Any] = yaml.safe_load(text)
    return body


def run(kubeconfig: Path, namespace: str, shards: int, timeout: float) -> int:
    from kubernetes import client, config, watch

    api_client = config.new_client_from_config(config_file=str(kubeconfig))
    objects = client.CustomObjectsApi(api_client)
    core = client.CoreV1Api(api_client)
    body = load_example()
    body["spec"]["arguments"]["parameters"][0]["value"] = str(shards)
    created = objects.create_namespaced_custom_object(GROUP, VERSION, namespace, PLURAL, body)
    name = created["metadata"]["name"]
    print(f"submitted workflow {namespace}/{name} ({shards} shards, parallelism {body['spec']['parallelism']})")
    started = time.monotonic()
    wf = created
    w = watch.Watch()
    last_progress = ""
    for event in w.stream(objects.list_namespaced_custom_object, GROUP, VERSION, namespace, PLURAL,
                          field_selector=f"metadata.name={name}", timeout_seconds=int(timeout)):
        wf = event["object"]
        status = wf.get("status") or {}
        progress = f"{status.get('phase', 'Pending')} {status.get('progress', '')}"
        if progress != last_progress:
            print(f"  [{time.monotonic() - started:6.1f}s] {progress}")
            last_progress = progress
        if status.get("phase") in ("Succeeded", "Failed", "Error"):
            w.stop()
    status = wf.get("status") or {}
    phase = status.get("phase")
    elapsed = time.monotonic() - started
    nodes = status.get("nodes", {})
    pods = [n for n in nodes.values() if n.get("type") == "Pod"]
    print(f"workflow {name}: {phase} in {elapsed:.1f}s, {len(pods)} pods; message: {status.get('message', '')}")
    listed = core.list_namespaced_pod(namespace, label_selector=f"workflows.argoproj.io/workflow={name}")
    placed = sorted({p.spec.node_name or "?" for p in listed.items})
    eci = sum(1 for p in listed.items if (p.metadata.labels or {}).get("alibabacloud.com/eci") == "true")
    print(f"pods on nodes {placed}; {eci}/{len(listed.items)} carry the ECI label")
    root = nodes.get(name) or {}
    outputs = (root.get("outputs") or {}).get("parameters") or []
    for node in nodes.values():
        if node.get("displayName") == "reduce" and node.get("type") == "Pod":
            pod_name = next((p.metadata.name for p in listed.items
                             if (p.metadata.annotations or {}).get("workflows.argoproj.io/node-id")
                             == node["id"]), None)
            if pod_name:
                # _preload_content=False: kubernetes 36 mangles text logs (kubernetes-client/python#2596)
                response = core.read_namespaced_pod_log(pod_name, namespace, container="main",
                                                        _preload_content=False)
                print(f"reduce log ({pod_name}): {response.data.decode().strip()}")
    for param in outputs:
        print(f"output {param.get('name')} = {param.get('value')}")
    api_client.close()
    return 0 if phase == "Succeeded" else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--shards", type=int, default=20)
    parser.add_argument("--timeout", type=float, default=300)
    parser.add_argument("--kubeconfig", type=Path, help="use this cluster instead of starting a local one")
    parser.add_argument("--namespace", default="argo")
    args = parser.parse_args(argv)
    if args.kubeconfig:
        return run(args.kubeconfig, args.namespace, args.shards, args.timeout)
    from airflow_argo_eci.local.server import LocalCluster

    with tempfile.TemporaryDirectory(prefix="argo-eci-demo-") as state, LocalCluster(state) as cluster:
        print(f"local cluster on {cluster.url} (state {state})")
        return run(cluster.kubeconfig_path, args.namespace, args.shards, args.timeout)


if __name__ == "__main__":
    sys.exit(main())
