"""Workflows at the scale users run them: a 5,000-node status packed the way Argo packs it and read
back by the provider, offloaded nodes named clearly, and a DAG join over a thousand dependencies."""

from __future__ import annotations

import pytest

from airflow_argo_eci.local.argo.budget import MAX_WORKFLOW_SIZE
from airflow_argo_eci.local.argo.depends import evaluate_depends
from airflow_argo_eci.local.argo.expressions import evaluate
from airflow_argo_eci.local.argo.packing import pack_status, workflow_size
from airflow_argo_eci.workflows import OffloadedNodesError, failed_nodes, failure_message, workflow_nodes, workflow_pods


def _fan_out_status(width: int) -> tuple[dict, dict]:
    wf = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
          "metadata": {"name": "fan", "namespace": "argo", "annotations": {}},
          "spec": {"entrypoint": "main"}}
    children = [f"fan-{1000000 + i}" for i in range(width)]
    nodes = {"fan": {"id": "fan", "name": "fan", "displayName": "fan", "type": "Steps", "phase": "Failed",
                     "templateName": "main", "children": children}}
    for i, node_id in enumerate(children):
        nodes[node_id] = {
            "id": node_id, "name": f"fan[0].sleep({i}:{i + 1})", "displayName": f"sleep({i}:{i + 1})",
            "type": "Pod", "templateName": "sleep", "phase": "Failed" if i == width - 1 else "Succeeded",
            "boundaryID": "fan", "startedAt": f"2026-01-01T00:{i // 3600 % 60:02d}:{i % 60:02d}Z",
            "finishedAt": "2026-01-01T02:00:00Z", "hostNodeName": "local", "progress": "1/1",
            "resourcesDuration": {"cpu": 1, "memory": 1},
            "outputs": {"exitCode": "2" if i == width - 1 else "0", "result": f"shard {i} done"},
            "message": "Error (exit code 2)" if i == width - 1 else "",
        }
    return wf, {"phase": "Failed", "startedAt": "2026-01-01T00:00:00Z", "nodes": nodes}


def test_a_5000_node_status_is_compressed_under_the_limit_and_read_back_by_the_provider() -> None:
    wf, status = _fan_out_status(5000)
    assert workflow_size(wf, status) > MAX_WORKFLOW_SIZE  # a real 5,000-pod status does not fit as is
    packed, message = pack_status(wf, status)
    assert message == ""
    assert "nodes" not in packed and packed["compressedNodes"]
    assert workflow_size(wf, packed) <= MAX_WORKFLOW_SIZE
    served = {**wf, "status": packed}
    assert workflow_nodes(packed) == status["nodes"]
    pods = workflow_pods(served)
    assert len(pods) == 5000 and pods[0][0] == "sleep(0:1)"
    failed = failed_nodes(served)
    assert [(f["display_name"], f["exit_code"]) for f in failed] == [("sleep(4999:5000)", "2")]


def test_offloaded_nodes_are_named_with_the_way_to_read_them() -> None:
    status = {"phase": "Succeeded", "offloadNodeStatusVersion": "fnv-123456"}
    with pytest.raises(OffloadedNodesError, match=r"offloadNodeStatusVersion=fnv-123456.*argo_server"):
        workflow_nodes(status)
    # what the Argo Server returns: the same workflow with its nodes hydrated
    hydrated = {**status, "nodes": {"a": {"id": "a", "type": "Pod", "phase": "Succeeded"}}}
    assert workflow_nodes(hydrated) == hydrated["nodes"]
    # messages built from nodes still work (no nodes to name) rather than failing the caller
    wf = {"metadata": {"name": "w"}, "status": {**status, "phase": "Failed", "message": "boom"}}
    assert failed_nodes(wf) == [] and "boom" in failure_message(wf)


def test_a_dag_join_over_a_thousand_dependencies_evaluates() -> None:
    names = [f"w{i}" for i in range(3000)]
    done = {"_default": True}
    assert evaluate_depends(" && ".join(names), dict.fromkeys(names, done)) is True
    states = dict.fromkeys(names, done) | {"w1500": {"_default": False}}
    assert evaluate_depends(" && ".join(names), states) is False
    assert evaluate_depends(" || ".join(names), {name: {"_default": False} for name in names}) is False
    assert evaluate(" || ".join(["false"] * 2999 + ["true"]), {}) is True
    assert evaluate("false || true && false", {}) is False  # && still binds tighter
