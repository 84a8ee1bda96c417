"""The local cluster as a whole: restarts keep every object, lost pods end as Error and retry."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from airflow_argo_eci.local.server import LocalCluster

GVR = ("argoproj.io", "v1alpha1", "argo", "workflows")


def _objects(cluster: LocalCluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(config.new_client_from_config(config_file=str(cluster.kubeconfig_path)))


def _workflow(name: str, retry: bool) -> dict[str, Any]:
    template: dict[str, Any] = {
        "name": "main",
        "container": {
            "image": "alpine:3.19",
            "command": ["sh", "-c", "if [ {{retries}} = 0 ]; then sleep 60; fi; echo attempt {{retries}}"],
        },
    }
    if retry:
        template["retryStrategy"] = {"limit": "2"}
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name},
            "spec": {"entrypoint": "main", "templates": [template]}}


def _wait(objects: client.CustomObjectsApi, name: str, predicate: Any, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        wf: dict[str, Any] = objects.get_namespaced_custom_object(*GVR, name)
        if predicate(wf):
            return wf
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} did not reach the expected state: {wf.get('status')}")
        time.sleep(0.1)


def _running_pods(wf: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = (wf.get("status") or {}).get("nodes") or {}
    return [n for n in nodes.values() if n.get("type") == "Pod" and n.get("phase") == "Running"]


@pytest.mark.slow
def test_restart_keeps_objects_and_lost_pods_retry(tmp_path: Path) -> None:
    state = tmp_path / "state"
    with LocalCluster(state) as cluster:
        objects = _objects(cluster)
        objects.create_namespaced_custom_object(*GVR, _workflow("lost-retried", retry=True))
        objects.create_namespaced_custom_object(*GVR, _workflow("lost-failed", retry=False))
        for name in ("lost-retried", "lost-failed"):
            _wait(objects, name, lambda wf: len(_running_pods(wf)) == 1)
        uid = objects.get_namespaced_custom_object(*GVR, "lost-retried")["metadata"]["uid"]

    # a new server on the same state: same objects, and the pods that were running are lost
    with LocalCluster(state) as cluster:
        objects = _objects(cluster)
        retried = _wait(objects, "lost-retried", lambda wf: wf.get("status", {}).get("phase") == "Succeeded")
        assert retried["metadata"]["uid"] == uid
        pods = sorted((n for n in retried["status"]["nodes"].values() if n["type"] == "Pod"),
                      key=lambda n: n["name"])
        assert [p["phase"] for p in pods] == ["Error", "Succeeded"]
        assert "lost" in pods[0]["message"]
        assert pods[1]["outputs"]["result"] == "attempt 1"

        failed = _wait(objects, "lost-failed",
                       lambda wf: wf.get("status", {}).get("phase") in ("Failed", "Error"))
        pod = next(n for n in failed["status"]["nodes"].values() if n["type"] == "Pod")
        assert pod["phase"] == "Error" and "lost" in pod["message"]


def test_binds_loopback_only(local_cluster: LocalCluster) -> None:
    assert local_cluster.url.startswith("https://127.0.0.1:")
    addresses = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, socket.AF_INET)}
    outside = [a for a in addresses if not a.startswith("127.")]
    if not outside:
        pytest.skip("this machine has no non-loopback IPv4 address to probe")
    for address in outside:
        with socket.socket() as sock, pytest.raises(OSError):
            sock.settimeout(2)
            sock.connect((address, local_cluster.port))


def test_rejects_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="capacity_vcpu"):
        LocalCluster(tmp_path, capacity_vcpu=0)
    with pytest.raises(ValueError, match="sandbox"):
        LocalCluster(tmp_path, sandbox="docker")
