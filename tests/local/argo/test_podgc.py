"""``podGC`` on the local cluster through the ``kubernetes`` client: each strategy, the
``labelSelector``, ``deleteDelayDuration`` and a bad strategy."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_argo_eci.conventions import GROUP, LABEL_WORKFLOW, TERMINAL_PHASES, VERSION, WORKFLOWS

NS = "default"


def gc_workflow(pod_gc: dict[str, Any], steps: list[tuple[str, str, dict[str, str]]]) -> dict[str, Any]:
    """A steps workflow running ``steps`` (name, shell script, pod labels) one after the other;
    a failing step continues."""
    templates: list[dict[str, Any]] = [{"name": "main", "steps": [
        [{"name": name, "template": name, "continueOn": {"failed": True}}] for name, _, _ in steps]}]
    for name, script, labels in steps:
        templates.append({"name": name, "metadata": {"labels": labels},
                          "container": {"image": "alpine:3.23", "command": ["sh", "-c"], "args": [script]}})
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow", "metadata": {"generateName": "podgc-"},
            "spec": {"entrypoint": "main", "podGC": pod_gc, "templates": templates}}


def submit(api_client: Any, doc: dict[str, Any]) -> str:
    from kubernetes import client

    created = client.CustomObjectsApi(api_client).create_namespaced_custom_object(GROUP, VERSION, NS, WORKFLOWS, doc)
    return str(created["metadata"]["name"])


def get(api_client: Any, name: str) -> dict[str, Any]:
    from kubernetes import client

    wf: dict[str, Any] = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        GROUP, VERSION, NS, WORKFLOWS, name)
    return wf


def pods(api_client: Any, name: str) -> dict[str, str]:
    """The workflow's pods: step (display) name -> pod phase."""
    from kubernetes import client

    items = client.CoreV1Api(api_client).list_namespaced_pod(NS, label_selector=f"{LABEL_WORKFLOW}={name}").items
    return {p.metadata.annotations.get("workflows.argoproj.io/node-name", "").rsplit(".", 1)[-1]: p.status.phase
            for p in items}


def until(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError("condition not reached")


def finished(api_client: Any, name: str) -> dict[str, Any]:
    until(lambda: (get(api_client, name).get("status") or {}).get("phase") in TERMINAL_PHASES, 60)
    return get(api_client, name)


def test_on_pod_completion_deletes_each_pod_once_it_completes(kube_api_client: Any) -> None:
    name = submit(kube_api_client, gc_workflow({"strategy": "OnPodCompletion", "deleteDelayDuration": "0s"},
                                               [("first", "echo one", {}), ("second", "sleep 3", {})]))
    # while the second step still runs, the first one's pod is already gone
    until(lambda: pods(kube_api_client, name).get("second") == "Running")
    until(lambda: "first" not in pods(kube_api_client, name), 10)
    assert (get(kube_api_client, name).get("status") or {}).get("phase") == "Running"
    wf = finished(kube_api_client, name)
    assert wf["status"]["phase"] == "Succeeded"
    until(lambda: pods(kube_api_client, name) == {}, 10)


def test_on_pod_success_keeps_failed_pods(kube_api_client: Any) -> None:
    name = submit(kube_api_client, gc_workflow({"strategy": "OnPodSuccess", "deleteDelayDuration": "0s"},
                                               [("ok", "echo ok", {}), ("bad", "exit 3", {})]))
    finished(kube_api_client, name)
    until(lambda: "ok" not in pods(kube_api_client, name), 10)
    assert pods(kube_api_client, name) == {"bad": "Failed"}


def test_on_workflow_completion_with_a_label_selector(kube_api_client: Any) -> None:
    """As upstream's pod-gc-strategy-with-label-selector.yaml: only the matching pods go."""
    gc = {"strategy": "OnWorkflowCompletion", "deleteDelayDuration": "0s",
          "labelSelector": {"matchLabels": {"should-be-deleted": "true"}}}
    name = submit(kube_api_client, gc_workflow(gc, [("goes", "echo a", {"should-be-deleted": "true"}),
                                                    ("stays", "sleep 2", {"should-be-deleted": "false"})]))
    until(lambda: pods(kube_api_client, name).get("stays") == "Running")
    assert pods(kube_api_client, name)["goes"] == "Succeeded"  # nothing goes before the workflow completes
    finished(kube_api_client, name)
    until(lambda: "goes" not in pods(kube_api_client, name), 10)
    assert pods(kube_api_client, name) == {"stays": "Succeeded"}


def test_on_workflow_success_keeps_the_pods_of_a_failed_workflow(kube_api_client: Any) -> None:
    doc = gc_workflow({"strategy": "OnWorkflowSuccess", "deleteDelayDuration": "0s"}, [("bad", "exit 1", {})])
    doc["spec"]["templates"][0]["steps"][0][0].pop("continueOn")
    name = submit(kube_api_client, doc)
    assert finished(kube_api_client, name)["status"]["phase"] == "Failed"
    time.sleep(1.5)
    assert pods(kube_api_client, name) == {"bad": "Failed"}
    ok = submit(kube_api_client, gc_workflow({"strategy": "OnWorkflowSuccess", "deleteDelayDuration": "0s"},
                                             [("good", "echo fine", {})]))
    assert finished(kube_api_client, ok)["status"]["phase"] == "Succeeded"
    until(lambda: pods(kube_api_client, ok) == {}, 10)


def test_delete_delay_duration_postpones_the_deletion(kube_api_client: Any) -> None:
    name = submit(kube_api_client, gc_workflow({"strategy": "OnWorkflowCompletion", "deleteDelayDuration": "3s"},
                                               [("only", "echo x", {})]))
    finished(kube_api_client, name)
    done_at = time.monotonic()
    assert "only" in pods(kube_api_client, name)
    until(lambda: pods(kube_api_client, name) == {}, 15)
    assert time.monotonic() - done_at >= 2.0


@pytest.mark.parametrize(("pod_gc", "message"), [
    ({"strategy": "OnSundays"}, "invalid spec: spec.podGC.strategy: unknown strategy 'OnSundays'; use one of "
                                "OnPodCompletion, OnPodSuccess, OnWorkflowCompletion, OnWorkflowSuccess"),
    ({"strategy": "OnPodSuccess", "deleteDelayDuration": "later"}, "invalid spec: spec.podGC.deleteDelayDuration"),
    ({"strategy": "OnPodSuccess", "labelSelector": {"matchExpressions": [{"key": "a", "operator": "Near"}]}},
     "invalid spec: spec.podGC.labelSelector.matchExpressions[0].operator: 'Near' is not one of"),
])
def test_a_bad_pod_gc_ends_the_workflow_in_error(kube_api_client: Any, pod_gc: dict[str, Any], message: str) -> None:
    wf = finished(kube_api_client, submit(kube_api_client, gc_workflow(pod_gc, [("x", "echo x", {})])))
    assert wf["status"]["phase"] == "Error"
    assert message in wf["status"]["message"], wf["status"]["message"]
