"""Argo's artifact-GC finalizer on the local cluster, through the ``kubernetes`` client: deleting a
workflow with ``OnWorkflowDeletion`` artifacts collects them first; a failed collection keeps the
workflow (finalizer, ``ArtifactGCError`` condition) until the finalizer is removed."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from airflow_argo_eci.conventions import FINALIZER_ARTIFACT_GC
from airflow_argo_eci.local.api.resources import SECRETS
from airflow_argo_eci.local.server import LocalCluster
from tests.local.argo.test_artifacts import artifacts, bucket_of, node

G, V, NS = "argoproj.io", "v1alpha1", "argo"


def _until(check: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"condition not met in {timeout}s")


def _finished(custom: client.CustomObjectsApi, name: str) -> dict[str, Any]:
    def done() -> dict[str, Any] | None:
        wf: dict[str, Any] = custom.get_namespaced_custom_object(G, V, NS, "workflows", name)
        return wf if (wf.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error") else None
    result: dict[str, Any] = _until(done)
    return result


def _gone(custom: client.CustomObjectsApi, name: str) -> bool:
    try:
        custom.get_namespaced_custom_object(G, V, NS, "workflows", name)
    except ApiException as exc:
        return exc.status == 404
    return False


def _submit(custom: client.CustomObjectsApi, text: str) -> str:
    created = custom.create_namespaced_custom_object(G, V, NS, "workflows", yaml.safe_load(text))
    return str(created["metadata"]["name"])


ON_DELETION = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: gc-fin-}
spec:
  entrypoint: main
  templates:
  - name: main
    container: {image: alpine:3.23, command: [sh, -c], args: ["echo d > /tmp/d && echo k > /tmp/k"]}
    outputs:
      artifacts:
      - {name: on-deletion, path: /tmp/d, artifactGC: {strategy: OnWorkflowDeletion}}
      - {name: kept, path: /tmp/k}
"""


def test_delete_collects_before_the_workflow_goes(local_cluster: LocalCluster, kube_api_client: Any) -> None:
    custom = client.CustomObjectsApi(kube_api_client)
    name = _submit(custom, ON_DELETION)
    wf = _finished(custom, name)
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    assert wf["metadata"]["finalizers"] == [FINALIZER_ARTIFACT_GC]
    keys = {k: a["oss"]["key"] for k, a in artifacts(node(wf, name)).items()}
    bucket = bucket_of(local_cluster)
    assert bucket.object_exists(keys["on-deletion"])

    custom.delete_namespaced_custom_object(G, V, NS, "workflows", name)
    _until(lambda: _gone(custom, name))
    assert not bucket.object_exists(keys["on-deletion"])
    assert bucket.object_exists(keys["kept"])


def test_a_workflow_without_deletion_gc_has_no_finalizer(kube_api_client: Any) -> None:
    custom = client.CustomObjectsApi(kube_api_client)
    name = _submit(custom, ON_DELETION.replace("OnWorkflowDeletion", "OnWorkflowCompletion"))
    wf = _finished(custom, name)
    assert not wf["metadata"].get("finalizers")
    custom.delete_namespaced_custom_object(G, V, NS, "workflows", name)
    _until(lambda: _gone(custom, name))


@pytest.mark.parametrize("force", [False, True])
def test_failed_collection_is_a_condition_and_keeps_the_finalizer(
    local_cluster: LocalCluster, kube_api_client: Any, force: bool
) -> None:
    assert local_cluster.store is not None and local_cluster.oss is not None
    custom = client.CustomObjectsApi(kube_api_client)
    secret_name = f"gc-fin-short-{str(force).lower()}"
    key_id, secret = next(iter(local_cluster.oss_credentials().items()))
    local_cluster.store.create(SECRETS, NS, {
        "metadata": {"name": secret_name}, "type": "Opaque",
        "data": {"accessKey": base64.b64encode(key_id.encode()).decode(),
                 "secretKey": base64.b64encode(secret.encode()).decode()}})
    name = _submit(custom, f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{generateName: gc-fin-fail-}}
spec:
  entrypoint: main
  artifactGC: {{strategy: OnWorkflowDeletion, forceFinalizerRemoval: {str(force).lower()}}}
  templates:
  - name: main
    container: {{image: alpine:3.23, command: [sh, -c], args: ["echo x > /tmp/x"]}}
    outputs:
      artifacts:
      - name: x
        path: /tmp/x
        oss:
          endpoint: {local_cluster.oss.endpoint}
          bucket: argo-artifacts
          accessKeySecret: {{name: {secret_name}, key: accessKey}}
          secretKeySecret: {{name: {secret_name}, key: secretKey}}
""")
    wf = _finished(custom, name)
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    local_cluster.store.delete(SECRETS, NS, secret_name)
    custom.delete_namespaced_custom_object(G, V, NS, "workflows", name)
    if force:
        _until(lambda: _gone(custom, name))
        return

    def failed() -> dict[str, Any] | None:
        current: dict[str, Any] = custom.get_namespaced_custom_object(G, V, NS, "workflows", name)
        return current if (current.get("status") or {}).get("conditions") else None

    held = _until(failed)
    assert held["metadata"]["deletionTimestamp"]
    assert held["metadata"]["finalizers"] == [FINALIZER_ARTIFACT_GC]
    (condition,) = held["status"]["conditions"]
    assert condition["type"] == "ArtifactGCError" and condition["status"] == "True"
    assert f"secret argo/{secret_name} not found" in condition["message"]
    custom.patch_namespaced_custom_object(G, V, NS, "workflows", name, {"metadata": {"finalizers": None}})
    _until(lambda: _gone(custom, name))
