"""Deleting a running pod on the local cluster: its processes are killed when the deletion starts;
the object stays (``deletionTimestamp``) until the finalizer that holds it is removed, or, without
finalizers, until its process has ended (graceful deletion)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from airflow_argo_eci.conventions import LABEL_WORKFLOW

G, V, NS = "argoproj.io", "v1alpha1", "argo"

SLEEPER = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: pod-fin-}
spec:
  entrypoint: main
  templates:
  - name: main
    container: {image: alpine:3.23, command: [sh, -c], args: ["sleep 60"]}
"""


def _until(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met in {timeout}s")


def test_pod_with_finalizer_is_killed_then_deleted_when_released(kube_api_client: Any) -> None:
    custom = client.CustomObjectsApi(kube_api_client)
    core = client.CoreV1Api(kube_api_client)
    name = custom.create_namespaced_custom_object(G, V, NS, "workflows", yaml.safe_load(SLEEPER))["metadata"]["name"]

    def running_pod() -> Any:
        pods = core.list_namespaced_pod(NS, label_selector=f"{LABEL_WORKFLOW}={name}").items
        return pods[0] if pods and pods[0].status.phase == "Running" else None

    pod = _until(running_pod)
    pod_name = pod.metadata.name
    core.patch_namespaced_pod(pod_name, NS, {"metadata": {"finalizers": ["example.com/keep"]}})
    started = time.monotonic()
    core.delete_namespaced_pod(pod_name, NS)

    def stopped() -> Any:
        current = core.read_namespaced_pod(pod_name, NS)
        return current if current.status.phase in ("Failed", "Succeeded") else None

    held = _until(stopped, timeout=30)
    assert time.monotonic() - started < 30  # killed, not slept out
    assert held.metadata.deletion_timestamp is not None
    assert held.metadata.finalizers == ["example.com/keep"]
    core.patch_namespaced_pod(pod_name, NS, [{"op": "remove", "path": "/metadata/finalizers"}])

    def gone() -> bool:
        try:
            core.read_namespaced_pod(pod_name, NS)
        except ApiException as exc:
            return exc.status == 404
        return False

    _until(gone)
    custom.delete_namespaced_custom_object(G, V, NS, "workflows", name)


def test_running_pod_is_deleted_gracefully_and_killed(kube_api_client: Any) -> None:
    """Without finalizers a running pod is marked (``deletionTimestamp`` at the end of its grace
    period), its process is killed at once, and the pod goes when the process has ended; the
    workflow's node fails."""
    custom = client.CustomObjectsApi(kube_api_client)
    core = client.CoreV1Api(kube_api_client)
    name = custom.create_namespaced_custom_object(G, V, NS, "workflows", yaml.safe_load(SLEEPER))["metadata"]["name"]

    def running_pod() -> Any:
        pods = core.list_namespaced_pod(NS, label_selector=f"{LABEL_WORKFLOW}={name}").items
        return pods[0] if pods and pods[0].status.phase == "Running" else None

    pod_name = _until(running_pod).metadata.name
    started = time.monotonic()
    marked = core.delete_namespaced_pod(pod_name, NS)
    assert marked.metadata.deletion_grace_period_seconds == 30
    assert marked.metadata.deletion_timestamp is not None

    def gone() -> bool:
        try:
            core.read_namespaced_pod(pod_name, NS)
        except ApiException as exc:
            return exc.status == 404
        return False

    _until(gone, timeout=25)
    assert time.monotonic() - started < 25  # the process was killed, the grace period not slept out

    def failed() -> Any:
        wf = custom.get_namespaced_custom_object(G, V, NS, "workflows", name)
        return wf if (wf.get("status") or {}).get("phase") in ("Failed", "Error") else None

    wf = _until(failed, timeout=30)
    assert wf["status"]["phase"] in ("Failed", "Error")
    custom.delete_namespaced_custom_object(G, V, NS, "workflows", name)
