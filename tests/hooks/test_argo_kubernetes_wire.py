"""Wire contract of the hook's ``kubernetes`` transport: the exact requests the API server receives.

Each test drives the hook against the session's local cluster and reads the server's request log
(``LocalCluster.request_log``), filtered by a workflow name unique to the test: method, path, query
parameters (labelSelector, fieldSelector, limit/continue, watch, resourceVersion, timeoutSeconds,
...), content type (``application/merge-patch+json`` for patches) and JSON body.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from airflow_argo_eci.conventions import LABEL_RESUBMITTED_FROM, LABEL_WORKFLOW
from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook
from airflow_argo_eci.local.api.request_log import RecordedRequest
from airflow_argo_eci.local.server import LocalCluster
from tests.hooks.conftest import NS, connection_env, phase_in, wait_for

API = "/apis/argoproj.io/v1alpha1"
WFS = f"{API}/namespaces/{NS}/workflows"
PODS = f"/api/v1/namespaces/{NS}/pods"
JSON = "application/json"
MERGE = "application/merge-patch+json"


@dataclass(frozen=True)
class Wire:
    """One request as the server received it (query sorted, body decoded)."""

    method: str
    path: str
    query: list[tuple[str, str]]
    content_type: str
    body: Any = None

    @classmethod
    def of(cls, entry: RecordedRequest) -> Wire:
        return cls(entry.method, entry.path, sorted(entry.query), entry.content_type, entry.json())


class Tape:
    """The requests that mention one text (a unique workflow name or label), read in portions."""

    def __init__(self, cluster: LocalCluster, text: str) -> None:
        self.cluster = cluster
        self.text = text
        self.after = cluster.request_log.last_seq

    def take(self) -> list[Wire]:
        """The matching requests since the last :meth:`take` (or since the tape was made)."""
        entries = self.cluster.request_log.matching(self.text, self.after)
        if entries:
            self.after = entries[-1].seq
        return [Wire.of(e) for e in entries]

    def skip(self) -> None:
        """Forget what was sent so far (e.g. the polling of a wait)."""
        self.after = self.cluster.request_log.last_seq


@pytest.fixture
def hook(local_cluster: LocalCluster, make_hook: Callable[[dict[str, Any]], ArgoWorkflowsHook]) -> ArgoWorkflowsHook:
    return make_hook(connection_env(local_cluster, "kubernetes"))


def _unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def _suspending(name: str, *steps: str) -> dict[str, Any]:
    """A pod-less workflow whose parallel steps are Suspend nodes named ``steps``."""
    templates: list[dict[str, Any]] = [{"name": "main", "steps": [[{"name": s, "template": s} for s in steps]]}]
    templates += [{"name": s, "suspend": {}} for s in steps]
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
            "metadata": {"name": name, "labels": {"wire": name}},
            "spec": {"entrypoint": "main", "templates": templates}}


def _suspended_nodes(wf: dict[str, Any]) -> dict[str, dict[str, Any]]:
    nodes = (wf.get("status") or {}).get("nodes") or {}
    return {i: n for i, n in nodes.items() if n.get("type") == "Suspend" and n.get("phase") == "Running"}


def _wait_suspended(hook: ArgoWorkflowsHook, name: str, count: int) -> dict[str, dict[str, Any]]:
    """The running Suspend nodes of ``name``, once there are ``count``."""
    return _suspended_nodes(wait_for(hook, name, lambda wf: len(_suspended_nodes(wf)) == count))


def test_create_get_list_suspend_resume_delete(hook: ArgoWorkflowsHook, local_cluster: LocalCluster) -> None:
    name = _unique("wire-k8s")
    tape = Tape(local_cluster, name)
    body = _suspending(name, "wait")
    created = hook.create_workflow(body)
    uid = created["metadata"]["uid"]
    hook.get_workflow(name)
    hook.list_workflows(label_selector=f"wire={name}", field_selector=f"metadata.name={name}")
    assert tape.take() == [
        Wire("POST", WFS, [], JSON, body),
        Wire("GET", f"{WFS}/{name}", [], JSON),
        Wire("GET", WFS, [("fieldSelector", f"metadata.name={name}"), ("labelSelector", f"wire={name}"),
                          ("limit", "500")], JSON),
    ]
    node_id = next(iter(_wait_suspended(hook, name, 1)))
    tape.skip()

    hook.suspend_workflow(name)
    assert tape.take() == [Wire("PATCH", f"{WFS}/{name}", [], MERGE, {"spec": {"suspend": True}})]

    hook.resume_workflow(name)
    got = tape.take()
    assert [(w.method, w.path, w.content_type) for w in got] == [
        ("GET", f"{WFS}/{name}", JSON), ("PATCH", f"{WFS}/{name}/status", MERGE), ("PATCH", f"{WFS}/{name}", MERGE)]
    assert list(got[1].body) == ["status"] and list(got[1].body["status"]) == ["nodes"]
    assert list(got[1].body["status"]["nodes"]) == [node_id]
    assert got[1].body["status"]["nodes"][node_id]["phase"] == "Succeeded"
    assert got[2].body == {"spec": {"suspend": None}}

    hook.delete_workflow(name, uid=uid)
    assert tape.take() == [Wire("DELETE", f"{WFS}/{name}", [], JSON, {"preconditions": {"uid": uid}})]


def test_node_selected_stop_and_resume_then_terminate_stop_delete(
    hook: ArgoWorkflowsHook, local_cluster: LocalCluster
) -> None:
    name = _unique("wire-nodes")
    tape = Tape(local_cluster, name)
    uid = hook.create_workflow(_suspending(name, "approve", "other"))["metadata"]["uid"]
    nodes = _wait_suspended(hook, name, 2)
    by_template = {n["templateName"]: i for i, n in nodes.items()}
    tape.skip()

    hook.stop_workflow(name, message="not approved", node_field_selector="templateName=approve")
    got = tape.take()
    assert [(w.method, w.path, w.content_type) for w in got] == [
        ("GET", f"{WFS}/{name}", JSON), ("PATCH", f"{WFS}/{name}/status", MERGE)]
    changed = got[1].body["status"]["nodes"]
    assert list(got[1].body) == ["status"] and list(changed) == [by_template["approve"]]
    assert changed[by_template["approve"]]["phase"] == "Failed"
    assert changed[by_template["approve"]]["message"] == "not approved"

    hook.resume_workflow(name, node_field_selector="templateName=other")
    got = tape.take()
    assert [(w.method, w.path, w.content_type) for w in got] == [
        ("GET", f"{WFS}/{name}", JSON), ("PATCH", f"{WFS}/{name}/status", MERGE)]
    assert list(got[1].body["status"]["nodes"]) == [by_template["other"]]
    assert got[1].body["status"]["nodes"][by_template["other"]]["phase"] == "Succeeded"

    hook.terminate_workflow(name, uid=uid)
    hook.stop_workflow(name)
    hook.delete_workflow(name)
    assert tape.take() == [
        Wire("PATCH", f"{WFS}/{name}", [], MERGE, {"spec": {"shutdown": "Terminate"}, "metadata": {"uid": uid}}),
        Wire("PATCH", f"{WFS}/{name}", [], MERGE, {"spec": {"shutdown": "Stop"}}),
        Wire("DELETE", f"{WFS}/{name}", [], JSON),
    ]


def test_list_follows_pages(hook: ArgoWorkflowsHook, local_cluster: LocalCluster,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    label = _unique("wire-pages")
    tape = Tape(local_cluster, label)
    for _ in range(2):
        body = _suspending(_unique("wire-page"), "wait")
        body["metadata"]["labels"] = {"wire-page": label}
        hook.create_workflow(body)
    tape.skip()
    # one item per page, so the second request carries the first page's continue token: the page
    # size is LIST_PAGE_SIZE in whichever hook modules import it
    hook.get_conn()
    patched = [m for n, m in list(sys.modules.items())
               if n.startswith("airflow_argo_eci.hooks") and hasattr(m, "LIST_PAGE_SIZE")]
    assert patched
    for module in patched:
        monkeypatch.setattr(module, "LIST_PAGE_SIZE", 1)
    items = hook.list_workflows(label_selector=f"wire-page={label}")
    assert len(items) == 2
    got = tape.take()
    first = [("fieldSelector", ""), ("labelSelector", f"wire-page={label}"), ("limit", "1")]
    assert [w.query for w in got[:1]] == [first]
    assert len(got) == 2 and got[1].method == "GET" and got[1].path == WFS
    token = dict(got[1].query).get("continue", "")
    assert token and sorted([*first, ("continue", token)]) == got[1].query
    for wf in items:
        hook.delete_workflow(wf["metadata"]["name"])


def test_pod_log_retry_resubmit(hook: ArgoWorkflowsHook, local_cluster: LocalCluster) -> None:
    name = _unique("wire-retry")
    tape = Tape(local_cluster, name)
    body = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name},
            "spec": {"entrypoint": "main", "templates": [
                {"name": "main", "container": {"image": "alpine:3.19", "command": ["sh", "-c", "echo wire; exit 1"]}}]}}
    hook.create_workflow(body)
    wf = wait_for(hook, name, phase_in("Failed", "Error"))
    (_, pod), = hook.pods_of(wf)
    tape.skip()

    lines = hook.read_pod_log(pod)
    assert [line for _, line in lines] == ["wire"]
    hook.read_pod_log(pod, container="main", since_time=lines[0][0])
    got = tape.take()
    # (the kubernetes client spells booleans as Python does)
    base = [("container", "main"), ("timestamps", "True")]
    assert got[0] == Wire("GET", f"{PODS}/{pod}/log", base, JSON)
    assert got[1].path == f"{PODS}/{pod}/log" and len(got) == 2
    since = dict(got[1].query).pop("sinceSeconds")
    assert int(since) >= 1 and got[1].query == sorted([*base, ("sinceSeconds", since)])

    hook.retry_workflow(name)
    got = tape.take()
    assert [(w.method, w.path, w.query) for w in got] == [
        ("GET", f"{WFS}/{name}", []),
        ("GET", PODS, [("labelSelector", f"{LABEL_WORKFLOW}={name}")]),
        ("DELETE", f"{PODS}/{pod}", []),
        ("PUT", f"{WFS}/{name}/status", []),
        ("PUT", f"{WFS}/{name}", []),
    ]
    for put in got[3:]:
        assert put.content_type == JSON
        assert put.body["metadata"]["name"] == name and put.body["status"]["phase"] == "Running"
    wait_for(hook, name, phase_in("Failed", "Error"))
    tape.skip()

    new = hook.resubmit_workflow(name)
    got = tape.take()
    assert [(w.method, w.path, w.content_type) for w in got] == [("GET", f"{WFS}/{name}", JSON), ("POST", WFS, JSON)]
    assert got[1].body["metadata"]["generateName"] == f"{name}-"
    assert got[1].body["metadata"]["labels"][LABEL_RESUBMITTED_FROM] == name
    assert got[1].body["spec"] == body["spec"]
    for done in (name, new["metadata"]["name"]):
        hook.delete_workflow(done)


def test_templates(hook: ArgoWorkflowsHook, local_cluster: LocalCluster, kube_api_client: Any) -> None:
    from kubernetes import client

    custom = client.CustomObjectsApi(kube_api_client)
    name = _unique("wire-tmpl")
    spec = {"entrypoint": "main", "templates": [{"name": "main", "suspend": {}}]}
    custom.create_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "workflowtemplates", {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate", "metadata": {"name": name}, "spec": spec})
    custom.create_cluster_custom_object("argoproj.io", "v1alpha1", "clusterworkflowtemplates", {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "ClusterWorkflowTemplate", "metadata": {"name": name},
        "spec": spec})
    try:
        tape = Tape(local_cluster, name)
        assert hook.get_workflow_template(name)["spec"] == spec
        assert hook.get_cluster_workflow_template(name)["spec"] == spec
        assert tape.take() == [
            Wire("GET", f"{API}/namespaces/{NS}/workflowtemplates/{name}", [], JSON),
            Wire("GET", f"{API}/clusterworkflowtemplates/{name}", [], JSON),
        ]
    finally:
        custom.delete_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "workflowtemplates", name)
        custom.delete_cluster_custom_object("argoproj.io", "v1alpha1", "clusterworkflowtemplates", name)


def test_connection_probe(
    local_cluster: LocalCluster, make_hook: Callable[[dict[str, Any]], ArgoWorkflowsHook]
) -> None:
    namespace = _unique("wire-probe")
    hook = make_hook(connection_env(local_cluster, "kubernetes", namespace=namespace))
    tape = Tape(local_cluster, namespace)
    ok, message = hook.test_connection()
    assert ok, message
    assert tape.take() == [Wire("GET", f"{API}/namespaces/{namespace}/workflows", [("limit", "1")], JSON)]


async def test_async_calls_and_watch(hook: ArgoWorkflowsHook, local_cluster: LocalCluster) -> None:
    name = _unique("wire-async")
    tape = Tape(local_cluster, name)
    uid = hook.create_workflow(_suspending(name, "wait"))["metadata"]["uid"]
    tape.skip()
    try:
        assert (await hook.aget_workflow(name))["metadata"]["uid"] == uid
        listed = await hook.alist_workflows(label_selector=f"wire={name}")
        items, version = listed, listed.resource_version
        assert [w["metadata"]["name"] for w in items] == [name] and version
        events = [kind async for kind, _ in hook.awatch_workflows(
            resource_version=version, label_selector=f"wire={name}", field_selector=f"metadata.name={name}",
            timeout_seconds=1)]
        assert all(kind in ("ADDED", "MODIFIED", "BOOKMARK") for kind in events)
        await hook.astop_workflow(name, uid=uid)
        await hook.aterminate_workflow(name)
        await hook.adelete_workflow(name, uid=uid)
    finally:
        await hook.aclose()
    got = tape.take()
    assert got[:2] == [
        Wire("GET", f"{WFS}/{name}", [], JSON),
        Wire("GET", WFS, [("fieldSelector", ""), ("labelSelector", f"wire={name}"), ("limit", "500")], JSON),
    ]
    watch = got[2]
    assert (watch.method, watch.path) == ("GET", WFS)
    assert watch.query == [("allowWatchBookmarks", "True"), ("fieldSelector", f"metadata.name={name}"),
                           ("labelSelector", f"wire={name}"), ("resourceVersion", version),
                           ("timeoutSeconds", "1"), ("watch", "True")]
    assert got[3:] == [
        Wire("PATCH", f"{WFS}/{name}", [], MERGE, {"spec": {"shutdown": "Stop"}, "metadata": {"uid": uid}}),
        Wire("PATCH", f"{WFS}/{name}", [], MERGE, {"spec": {"shutdown": "Terminate"}}),
        Wire("DELETE", f"{WFS}/{name}", [], JSON, {"preconditions": {"uid": uid}}),
    ]


def test_request_log_is_not_served(local_cluster: LocalCluster) -> None:
    """The log exists only in memory: no route serves it (such a path is the API's 404)."""
    import httpx

    headers = {"Authorization": f"Bearer {local_cluster.token}"}
    with httpx.Client(base_url=local_cluster.url, verify=str(local_cluster.paths.tls_cert), headers=headers) as http:
        for path in ("/request_log", "/requests", "/debug/requests", "/apis/request_log"):
            assert http.get(path).status_code == 404, path


def test_apply_workflow_template_creates_then_leaves_then_updates(
    hook: ArgoWorkflowsHook, local_cluster: LocalCluster
) -> None:
    name = _unique("wire-wt")
    tape = Tape(local_cluster, name)
    wts = f"{API}/namespaces/{NS}/workflowtemplates"
    body = {"metadata": {"name": name}, "spec": {"entrypoint": "main", "templates": [
        {"name": "main", "container": {"image": "busybox", "command": ["true"]}}]}}
    sent_body = {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate",
                 "metadata": {"name": name, "namespace": NS}, "spec": body["spec"]}
    created = hook.apply_workflow_template(body)
    assert tape.take() == [Wire("GET", f"{wts}/{name}", [], JSON), Wire("POST", wts, [], JSON, sent_body)]
    version = created["metadata"]["resourceVersion"]

    again = hook.apply_workflow_template(body)  # unchanged: read, nothing written
    assert tape.take() == [Wire("GET", f"{wts}/{name}", [], JSON)]
    assert again["metadata"]["resourceVersion"] == version

    changed = {**body, "spec": {**body["spec"], "entrypoint": "other"}}
    updated = hook.apply_workflow_template(changed)
    put_body = {**sent_body, "metadata": {**sent_body["metadata"], "resourceVersion": version},
                "spec": changed["spec"]}
    assert tape.take() == [Wire("GET", f"{wts}/{name}", [], JSON), Wire("PUT", f"{wts}/{name}", [], JSON, put_body)]
    assert updated["spec"]["entrypoint"] == "other"
    assert hook.get_workflow_template(name)["spec"]["entrypoint"] == "other"
