"""``ArgoWorkflowsHook.download_artifact`` against the local cluster: the argo_server transport
streams the artifact from the Argo Server's route; the kubernetes transport points to the OSS hook."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest

from airflow_argo_eci.errors import NotFoundError, WorkflowSpecError
from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook
from airflow_argo_eci.local.server import LocalCluster
from tests.hooks.conftest import NS, connection_env, phase_in, wait_for, workflow


def test_download_artifact_over_the_argo_server(
    local_cluster: LocalCluster, make_hook: Callable[..., ArgoWorkflowsHook], tmp_path: Path
) -> None:
    hook = make_hook(connection_env(local_cluster, "argo_server"))
    body = workflow("download", "echo hello > /tmp/out.txt")
    body["spec"]["templates"][0]["outputs"] = {"artifacts": [
        {"name": "out", "path": "/tmp/out.txt"},
        {"name": "raw", "path": "/tmp/out.txt", "archive": {"none": {}}},
    ]}
    name = hook.create_workflow(body)["metadata"]["name"]
    wf = wait_for(hook, name, phase_in("Succeeded", "Failed", "Error"), timeout=60)
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")

    raw = hook.download_artifact(name, name, "raw", tmp_path / "raw.txt", namespace=NS)
    assert raw.read_bytes() == b"hello\n"
    tgz = hook.download_artifact(name, name, "out", tmp_path / "deep" / "out.tgz")
    with tarfile.open(fileobj=io.BytesIO(tgz.read_bytes()), mode="r:gz") as tar:  # the archive as stored
        member = tar.extractfile("out.txt")
        assert member is not None and member.read() == b"hello\n"
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep", "out.tgz", "raw.txt"]

    with pytest.raises(NotFoundError, match=rf"HTTP 404.*artifact not found: nope, isInput=false \(node {name}"):
        hook.download_artifact(name, name, "nope", tmp_path / "nope")
    with pytest.raises(NotFoundError, match=r"workflows.argoproj.io \"no-such-workflow\" not found"):
        hook.download_artifact("no-such-workflow", name, "out", tmp_path / "nope")
    assert not (tmp_path / "nope").exists()


def test_download_artifact_over_kubernetes_names_the_oss_hook(
    local_cluster: LocalCluster, make_hook: Callable[..., ArgoWorkflowsHook], tmp_path: Path
) -> None:
    hook = make_hook(connection_env(local_cluster, "kubernetes"))
    with pytest.raises(WorkflowSpecError, match=r"OSSArtifactHook\(\.\.\.\)\.download_artifact\(workflow_artifacts"):
        hook.download_artifact("wf", "node", "out", tmp_path / "out")
