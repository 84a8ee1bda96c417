"""containerSet templates on the local cluster, through the kubernetes client: the containers'
graph in one pod, the shared workspace, outputs from ``main``, Argo's Container nodes, each
container's log, a failing container, ``containerSet.retryStrategy`` and refused sets."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from kubernetes import client

from airflow_argo_eci.local.runtime.sandbox import probe_bwrap
from tests.local.argo import clusterwf

NS = "argo"
pytestmark = pytest.mark.skipif(probe_bwrap() is not None, reason=f"bubblewrap unavailable: {probe_bwrap()}")


def _run(api: Any, templates: list[dict[str, Any]], timeout: float = 60) -> dict[str, Any]:
    body = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": f"cset-{uuid.uuid4().hex[:6]}"},
            "spec": {"entrypoint": "main", "templates": templates}}
    return clusterwf.run(api, body, timeout, namespace=NS)


def _sh(name: str, script: str, deps: list[str] | None = None) -> dict[str, Any]:
    container: dict[str, Any] = {"name": name, "image": "alpine:3.23", "command": ["sh", "-c"], "args": [script]}
    if deps:
        container["dependencies"] = deps
    return container


def _set(containers: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {"name": "main", "volumes": [{"name": "workspace", "emptyDir": {}}],
            "containerSet": {"volumeMounts": [{"name": "workspace", "mountPath": "/workspace"}],
                             "containers": containers, **extra.pop("set_fields", {})}, **extra}


def _nodes(wf: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in wf["status"]["nodes"].values()}


def _logs(api: Any, wf: dict[str, Any]) -> dict[str, str]:
    core = client.CoreV1Api(api)
    pod = next(p for p in core.list_namespaced_pod(NS).items
               if (p.metadata.labels or {}).get("workflows.argoproj.io/workflow") == wf["metadata"]["name"])
    out = {}
    for container in pod.spec.containers:
        response = core.read_namespaced_pod_log(pod.metadata.name, NS, container=container.name,
                                                _preload_content=False)
        out[container.name] = response.data.decode()
    return out


def test_a_container_set_runs_its_graph_in_one_pod_with_a_shared_workspace(kube_api_client: Any) -> None:
    wf = _run(kube_api_client, [_set([
        _sh("a", "echo a >> /workspace/order; echo from-a"),
        _sh("b", "sleep 0.2; echo b >> /workspace/order", ["a"]),
        _sh("c", "echo c >> /workspace/order", ["a"]),
        _sh("main", "echo main >> /workspace/order; cat /workspace/order | tr '\\n' ' '", ["b", "c"]),
    ], outputs={"parameters": [{"name": "order", "valueFrom": {"path": "/workspace/order"}}]})])
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    name = wf["metadata"]["name"]
    nodes = _nodes(wf)
    pod_node = nodes[name]
    assert pod_node["type"] == "Pod"
    order = pod_node["outputs"]["parameters"][0]["value"].split()
    assert order[0] == "a" and order[-1] == "main" and sorted(order[1:3]) == ["b", "c"]
    assert pod_node["outputs"]["result"] == " ".join(order) + " "  # main's stdout (tr left the last space)
    for container in ("a", "b", "c", "main"):
        child = nodes[f"{name}.{container}"]
        assert child["type"] == "Container" and child["phase"] == "Succeeded"
        assert child["displayName"] == container and child["id"] in pod_node["children"]
    logs = _logs(kube_api_client, wf)
    assert logs["a"].strip() == "from-a"
    assert logs["main"].split() == order


def test_a_failing_container_fails_the_pod_and_its_dependents_never_start(kube_api_client: Any) -> None:
    wf = _run(kube_api_client, [_set([
        _sh("a", "exit 3"),
        _sh("b", "echo independent > /workspace/b"),
        _sh("main", "echo never", ["a"]),
    ])])
    assert wf["status"]["phase"] == "Failed"
    name = wf["metadata"]["name"]
    nodes = _nodes(wf)
    assert nodes[name]["phase"] == "Failed"
    assert nodes[f"{name}.a"]["phase"] == "Failed" and nodes[f"{name}.a"]["message"] == "Error (exit code 3)"
    assert nodes[f"{name}.b"]["phase"] == "Succeeded"
    assert nodes[f"{name}.main"]["phase"] == "Failed"
    assert "depends on failed" in nodes[f"{name}.main"]["message"]
    assert _logs(kube_api_client, wf)["main"] == ""


def test_container_set_retry_strategy_restarts_a_failed_container(kube_api_client: Any) -> None:
    wf = _run(kube_api_client, [_set([
        _sh("main", "echo x >> /workspace/tries; test $(wc -l < /workspace/tries) -ge 3 && wc -l < /workspace/tries"),
    ], set_fields={"retryStrategy": {"retries": 2}})])
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    assert _nodes(wf)[wf["metadata"]["name"]]["outputs"]["result"].strip() == "3"


@pytest.mark.parametrize(("containers", "needle"), [
    ([_sh("main", "true", ["ghost"])],
     'templates.main.containerSet.containers.main.dependencies: container "ghost" not found'),
    ([_sh("a", "true", ["main"]), _sh("main", "true", ["a"])],
     "templates.main.containerSet.containers: dependency cycle"),
    ([_sh("a", "true"), _sh("a", "true")], 'containerSet.containers[1].name: Duplicate value: "a"'),
    ([], "templates.main.containerSet.containers must hold at least one container"),
])
def test_a_bad_container_set_is_refused_naming_the_field(kube_api_client: Any, containers: list[dict[str, Any]],
                                                         needle: str) -> None:
    wf = _run(kube_api_client, [_set(containers)])
    assert wf["status"]["phase"] in ("Error", "Failed")
    assert needle in wf["status"]["message"], wf["status"]["message"]
    assert not [n for n in wf["status"].get("nodes", {}).values() if n["type"] == "Container"]


def test_outputs_need_a_main_container(kube_api_client: Any) -> None:
    wf = _run(kube_api_client, [_set([_sh("a", "echo hi > /workspace/x")],
                                     outputs={"parameters": [{"name": "x", "valueFrom": {"path": "/workspace/x"}}]})])
    assert wf["status"]["phase"] in ("Error", "Failed")
    assert 'a container named "main" is required' in wf["status"]["message"]
