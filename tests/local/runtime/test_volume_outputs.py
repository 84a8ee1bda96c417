"""Outputs read back from inside a pod's volumes, through the kubernetes client: an output
parameter and an output artifact written below an emptyDir mount, and a link in a volume that
tries to lead the runtime out of it (read as a missing file, never the target)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from airflow_argo_eci.local.runtime.sandbox import probe_bwrap
from tests.local.argo import clusterwf

NS = "argo"
pytestmark = pytest.mark.skipif(probe_bwrap() is not None, reason=f"bubblewrap unavailable: {probe_bwrap()}")


def _run(api: Any, spec: dict[str, Any], timeout: float = 60) -> dict[str, Any]:
    body = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": f"volout-{uuid.uuid4().hex[:6]}"},
            "spec": spec}
    return clusterwf.run(api, body, timeout, namespace=NS)


def _writer(script: str, outputs: dict[str, Any]) -> dict[str, Any]:
    return {"name": "main", "outputs": outputs,
            "container": {"image": "alpine:3.23", "command": ["sh", "-c"], "args": [script],
                          "volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}]}}


def _main_node(wf: dict[str, Any]) -> dict[str, Any]:
    return next(n for n in wf["status"]["nodes"].values() if n["type"] == "Pod")


def test_output_parameter_and_artifact_written_in_an_empty_dir_are_read(kube_api_client: Any) -> None:
    wf = _run(kube_api_client, {
        "entrypoint": "main", "volumes": [{"name": "workspace", "emptyDir": {}}],
        "templates": [_writer("mkdir -p /workspace/dir && echo -n hello > /workspace/out && "
                              "echo data > /workspace/dir/a.txt", {
                                  "parameters": [{"name": "out", "valueFrom": {"path": "/workspace/out"}}],
                                  "artifacts": [{"name": "dir", "path": "/workspace/dir"}]})]})
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    outputs = _main_node(wf)["outputs"]
    assert outputs["parameters"][0]["value"] == "hello"
    assert [a["name"] for a in outputs["artifacts"] if a["name"] == "dir"] == ["dir"]


@pytest.mark.parametrize("target", ["/etc/hostname", "../../../../../../etc/hostname"])
def test_a_link_in_a_volume_never_leads_out_of_it(kube_api_client: Any, target: str) -> None:
    wf = _run(kube_api_client, {
        "entrypoint": "main", "volumes": [{"name": "workspace", "emptyDir": {}}],
        "templates": [_writer(f"ln -s {target} /workspace/out",
                              {"parameters": [{"name": "out", "valueFrom": {"path": "/workspace/out"}}]})]})
    assert wf["status"]["phase"] in ("Failed", "Error")
    node = _main_node(wf)
    assert node["phase"] in ("Failed", "Error")
    assert "open /workspace/out: no such file or directory" in node["message"], node["message"]
    assert "parameters" not in (node.get("outputs") or {}) or \
        all(p.get("value") is None for p in node["outputs"]["parameters"])
