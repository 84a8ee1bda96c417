"""ArgoWorkflowsHook against the local cluster over real HTTPS, for both transports."""

from __future__ import annotations

import asyncio
import copy
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from airflow_argo_eci.errors import InvalidError, NotFoundError
from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook
from airflow_argo_eci.local.server import LocalCluster
from tests.hooks.conftest import NS, has_running_pod, phase_in, wait_for, workflow


def pod_uid(kube_api_client: Any, name: str) -> str:
    """The uid of Pod ``name`` as the cluster's Kubernetes API serves it."""
    from kubernetes import client

    return str(client.CoreV1Api(kube_api_client).read_namespaced_pod(name, NS).metadata.uid)


def test_create_get_list_by_label(hook: ArgoWorkflowsHook, local_cluster: LocalCluster) -> None:
    run = uuid.uuid4().hex[:10]
    body = workflow("hook-create", labels={"test-run": run})
    original = copy.deepcopy(body)
    created = hook.create_workflow(body)
    assert body == original  # the caller's dict is not modified
    name = created["metadata"]["name"]
    assert name.startswith("hook-create-") and created["metadata"]["namespace"] == NS
    assert hook.get_workflow(name)["metadata"]["uid"] == created["metadata"]["uid"]

    got = hook.get_workflow(name)
    assert got["metadata"]["uid"] == created["metadata"]["uid"]
    hook.create_workflow(workflow("hook-other", labels={"test-run": "other"}))
    listed = hook.list_workflows(label_selector=f"test-run={run}")
    assert [w["metadata"]["name"] for w in listed] == [name]
    assert hook.list_workflows(field_selector=f"metadata.name={name}")[0]["metadata"]["uid"] == got["metadata"]["uid"]
    done = wait_for(hook, name, phase_in("Succeeded"))
    assert done["status"]["phase"] == "Succeeded"
    assert hook.workflow_url(name) == f"https://argo.example.com/workflows/{NS}/{name}"


def test_get_missing_is_not_found(hook: ArgoWorkflowsHook) -> None:
    with pytest.raises(NotFoundError) as err:
        hook.get_workflow("no-such-workflow")
    assert err.value.status == 404 and not err.value.transient
    assert "no-such-workflow" in str(err.value)


def test_create_invalid_is_invalid_error(hook: ArgoWorkflowsHook) -> None:
    body = workflow("hook-invalid")
    body["spec"]["entrypoint"] = "missing"
    if hook.settings.transport == "argo_server":
        # the Argo Server validates the spec before storing it
        with pytest.raises(InvalidError, match="entrypoint"):
            hook.create_workflow(body)
    else:
        # the Kubernetes API stores any object; the controller fails it
        name = hook.create_workflow(body)["metadata"]["name"]
        wait_for(hook, name, phase_in("Failed", "Error"))


def test_stop_and_terminate(hook: ArgoWorkflowsHook, local_cluster: LocalCluster) -> None:
    stop_name = hook.create_workflow(workflow("hook-stop", "sleep 30"))["metadata"]["name"]
    term_name = hook.create_workflow(workflow("hook-term", "sleep 30"))["metadata"]["name"]
    wait_for(hook, stop_name, has_running_pod)
    wait_for(hook, term_name, has_running_pod)

    result = hook.stop_workflow(stop_name)
    assert result["spec"]["shutdown"] == "Stop"
    assert hook.get_workflow(stop_name)["spec"]["shutdown"] == "Stop"
    hook.terminate_workflow(term_name)
    assert hook.get_workflow(term_name)["spec"]["shutdown"] == "Terminate"

    assert wait_for(hook, stop_name, phase_in("Failed", "Error"))["status"]["phase"] in ("Failed", "Error")
    assert wait_for(hook, term_name, phase_in("Failed", "Error"))["status"]["phase"] in ("Failed", "Error")


def _suspend_workflow() -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "hook-suspend-"},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {"name": "main", "steps": [[{"name": "approve", "template": "approve"}],
                                           [{"name": "after", "template": "echo"}]]},
                {"name": "approve", "suspend": {}},
                {"name": "echo", "container": {"image": "alpine:3.19", "command": ["sh", "-c", "echo approved"]}},
            ],
        },
    }


def _suspend_nodes(wf: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in ((wf.get("status") or {}).get("nodes") or {}).values() if n.get("type") == "Suspend"]


def test_suspend_and_resume(hook: ArgoWorkflowsHook, local_cluster: LocalCluster) -> None:
    name = hook.create_workflow(_suspend_workflow())["metadata"]["name"]
    wait_for(hook, name, lambda wf: any(n["phase"] == "Running" for n in _suspend_nodes(wf)))

    hook.suspend_workflow(name)
    assert hook.get_workflow(name)["spec"]["suspend"] is True

    hook.resume_workflow(name)
    after = hook.get_workflow(name)
    assert "suspend" not in after["spec"]
    assert [n["phase"] for n in _suspend_nodes(after)] == ["Succeeded"]
    done = wait_for(hook, name, phase_in("Succeeded", "Failed", "Error"))
    assert done["status"]["phase"] == "Succeeded"


def test_retry_failed_workflow(hook: ArgoWorkflowsHook, local_cluster: LocalCluster, kube_api_client: Any) -> None:
    name = hook.create_workflow(workflow("hook-retry", "echo failing; exit 3"))["metadata"]["name"]
    failed = wait_for(hook, name, phase_in("Failed", "Error"))
    pod_node_id = next(i for i, n in failed["status"]["nodes"].items() if n["type"] == "Pod")
    pod_name = hook.pods_of(failed)[0][1]
    old_pod_uid = pod_uid(kube_api_client, pod_name)

    running = hook.create_workflow(workflow("hook-running", "sleep 30"))["metadata"]["name"]
    with pytest.raises(InvalidError, match="Failed/Error"):
        hook.retry_workflow(running)
    hook.terminate_workflow(running)

    retried = hook.retry_workflow(name)
    # what was written: Running again, the failed pod node removed, the completed label gone
    assert retried["metadata"]["name"] == name
    assert retried["status"]["phase"] == "Running"
    assert pod_node_id not in retried["status"]["nodes"]
    assert "workflows.argoproj.io/completed" not in retried["metadata"].get("labels", {})
    again = wait_for(hook, name, lambda wf: phase_in("Failed", "Error")(wf)
                     and wf["status"]["nodes"].get(pod_node_id, {}).get("startedAt", "")
                     >= failed["status"]["nodes"][pod_node_id]["startedAt"]
                     and pod_uid(kube_api_client, pod_name) != old_pod_uid)
    assert again["status"]["nodes"][pod_node_id]["phase"] in ("Failed", "Error")
    # the failed pod was deleted and ran again under the same name
    assert pod_uid(kube_api_client, pod_name) != old_pod_uid
    for wf in hook.list_workflows(field_selector="metadata.name=" + name):
        assert wf["metadata"]["uid"] == failed["metadata"]["uid"]


def test_resubmit(hook: ArgoWorkflowsHook, local_cluster: LocalCluster) -> None:
    name = hook.create_workflow(workflow("hook-resubmit", labels={"team": "data"}))["metadata"]["name"]
    wait_for(hook, name, phase_in("Succeeded"))
    new = hook.resubmit_workflow(name)
    new_name = new["metadata"]["name"]
    assert new_name != name and new_name.startswith("hook-resubmit-")
    saved = hook.get_workflow(new_name)
    assert saved["metadata"]["labels"]["workflows.argoproj.io/resubmitted-from-workflow"] == name
    assert saved["metadata"]["labels"]["team"] == "data"
    assert saved["spec"]["templates"] == hook.get_workflow(name)["spec"]["templates"]
    assert wait_for(hook, new_name, phase_in("Succeeded"))["status"]["phase"] == "Succeeded"


def test_delete(hook: ArgoWorkflowsHook, local_cluster: LocalCluster) -> None:
    name = hook.create_workflow(workflow("hook-delete"))["metadata"]["name"]
    hook.delete_workflow(name)
    with pytest.raises(NotFoundError):
        hook.get_workflow(name)
    assert hook.list_workflows(field_selector=f"metadata.name={name}") == []
    with pytest.raises(NotFoundError):
        hook.delete_workflow(name)


def test_logs_of_every_pod(hook: ArgoWorkflowsHook) -> None:
    body = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"generateName": "hook-logs-"},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {"name": "main", "steps": [[{"name": "first", "template": "say", "arguments": {"parameters": [
                    {"name": "word", "value": "one"}]}}],
                    [{"name": "second", "template": "say", "arguments": {"parameters": [
                        {"name": "word", "value": "two"}]}}]]},
                {"name": "say", "inputs": {"parameters": [{"name": "word"}]},
                 "container": {"image": "alpine:3.19", "command": ["sh", "-c",
                                                                  "echo {{inputs.parameters.word}}-a; "
                                                                  "printf 'multi\\nline\\n'"]}},
            ],
        },
    }
    name = hook.create_workflow(body)["metadata"]["name"]
    done = wait_for(hook, name, phase_in("Succeeded", "Failed", "Error"))
    assert done["status"]["phase"] == "Succeeded"
    pods = hook.pods_of(done)
    assert [display for display, _ in pods] == ["first", "second"]

    for (display, pod), word in zip(pods, ["one", "two"], strict=True):
        lines = hook.read_pod_log(pod, workflow=name)
        assert [line for _, line in lines] == [f"{word}-a", "multi", "line"], display
        assert all(stamp.endswith("Z") for stamp, _ in lines)
        # since_time is exclusive: continuing from the first line's stamp gives the rest only
        rest = hook.read_pod_log(pod, workflow=name, since_time=lines[0][0])
        assert [line for _, line in rest] == ["multi", "line"]
        assert hook.read_pod_log(pod, workflow=name, since_time=lines[-1][0]) == []


def test_templates(hook: ArgoWorkflowsHook, local_cluster: LocalCluster, kube_api_client: Any) -> None:
    from kubernetes import client

    custom = client.CustomObjectsApi(kube_api_client)
    suffix = uuid.uuid4().hex[:8]
    spec = workflow("x")["spec"]
    custom.create_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "workflowtemplates", {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate",
        "metadata": {"name": f"tmpl-{suffix}"}, "spec": spec})
    custom.create_cluster_custom_object("argoproj.io", "v1alpha1", "clusterworkflowtemplates", {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ClusterWorkflowTemplate",
        "metadata": {"name": f"ctmpl-{suffix}"}, "spec": spec})
    assert hook.get_workflow_template(f"tmpl-{suffix}")["spec"]["entrypoint"] == "main"
    assert hook.get_cluster_workflow_template(f"ctmpl-{suffix}")["metadata"]["name"] == f"ctmpl-{suffix}"
    with pytest.raises(NotFoundError):
        hook.get_workflow_template("missing-template")
    with pytest.raises(NotFoundError):
        hook.get_cluster_workflow_template("missing-template")


async def test_async_get_list_stop_terminate_delete(hook: ArgoWorkflowsHook, local_cluster: LocalCluster) -> None:
    run = uuid.uuid4().hex[:10]
    stop_name = (await asyncio.to_thread(hook.create_workflow, workflow("ahook", "sleep 30", labels={"run": run})))[
        "metadata"]["name"]
    term_name = (await asyncio.to_thread(hook.create_workflow, workflow("ahook", "sleep 30", labels={"run": run})))[
        "metadata"]["name"]
    got = await hook.aget_workflow(stop_name)
    assert got["metadata"]["name"] == stop_name
    listed = await hook.alist_workflows(label_selector=f"run={run}")
    items, rv = listed, listed.resource_version
    assert sorted(w["metadata"]["name"] for w in items) == sorted([stop_name, term_name])
    assert rv.isdigit()

    await hook.astop_workflow(stop_name)
    await hook.aterminate_workflow(term_name)
    assert (await hook.aget_workflow(stop_name))["spec"]["shutdown"] == "Stop"
    assert (await hook.aget_workflow(term_name))["spec"]["shutdown"] == "Terminate"
    for name in (stop_name, term_name):
        await hook.adelete_workflow(name)
        with pytest.raises(NotFoundError):
            await hook.aget_workflow(name)
    await hook.aclose()


def test_namespace_defaults(local_cluster: LocalCluster, make_hook: Callable[..., ArgoWorkflowsHook]) -> None:
    # kubernetes: the kubeconfig context's namespace ("argo" in the local kubeconfig)
    k8s = make_hook({"conn_type": "argo_workflows", "extra": {"kube_config_path": str(local_cluster.kubeconfig_path)}})
    name = k8s.create_workflow(workflow("hook-ns"))["metadata"]["name"]
    assert k8s.get_workflow(name, namespace="argo")["metadata"]["namespace"] == "argo"
    assert k8s.workflow_url(name) is None


def test_stop_and_resume_selected_suspend_nodes(hook: ArgoWorkflowsHook, local_cluster: LocalCluster) -> None:
    rejected = hook.create_workflow(_suspend_workflow())["metadata"]["name"]
    approved = hook.create_workflow(_suspend_workflow())["metadata"]["name"]
    for name in (rejected, approved):
        wait_for(hook, name, lambda wf: any(n["phase"] == "Running" for n in _suspend_nodes(wf)))

    with pytest.raises(InvalidError, match="no suspend nodes"):
        hook.resume_workflow(approved, node_field_selector="displayName=nope")
    hook.stop_workflow(rejected, message="rejected by reviewer", node_field_selector="displayName=approve")
    node = _suspend_nodes(hook.get_workflow(rejected))[0]
    assert (node["phase"], node["message"]) == ("Failed", "rejected by reviewer")
    assert "shutdown" not in hook.get_workflow(rejected)["spec"]

    hook.resume_workflow(approved, node_field_selector="displayName=approve")
    assert [n["phase"] for n in _suspend_nodes(hook.get_workflow(approved))] == ["Succeeded"]
    assert wait_for(hook, rejected, phase_in("Succeeded", "Failed", "Error"))["status"]["phase"] == "Failed"
    assert wait_for(hook, approved, phase_in("Succeeded", "Failed", "Error"))["status"]["phase"] == "Succeeded"
