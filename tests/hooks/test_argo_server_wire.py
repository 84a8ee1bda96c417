"""Wire contract of the hook's ``argo_server`` transport: the exact requests it sends.

Every public hook call is made against a fake Argo Server (respx intercepts httpx); the test pins
the method, path, query parameters and JSON body sent, and checks each request against Argo's own
OpenAPI document (``argo_openapi.json``: an extract of ``api/openapi-spec/swagger.json`` of the
release in its ``source`` key): the path template and method exist, every query parameter is one
the operation declares, and every body key is a property of the operation's request schema.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from airflow_argo_eci.errors import ConflictError, WorkflowSpecError
from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook

SPEC: dict[str, Any] = json.loads((Path(__file__).parent / "argo_openapi.json").read_text(encoding="utf-8"))
BASE = "https://argo-server.wire.test:2746"
TOKEN = "wire-token"
NS = "argo"
WF = "/api/v1/workflows/argo"


@dataclass(frozen=True)
class Sent:
    """One request as it went over the wire."""

    method: str
    path: str
    query: list[tuple[str, str]]
    body: Any

    @classmethod
    def of(cls, request: httpx.Request) -> Sent:
        content = request.content
        body = json.loads(content) if content else None
        return cls(request.method, request.url.path, sorted(request.url.params.multi_items()), body)


def _template_regex(template: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")


def operation(method: str, path: str) -> dict[str, Any]:
    """The OpenAPI operation serving ``method path`` (literal segments beat templated ones)."""
    matches = [
        op for op in SPEC["operations"] if op["method"] == method and _template_regex(op["path"]).match(path)
    ]
    assert matches, f"{method} {path} is not an operation of Argo's API ({SPEC['source']['ref']})"
    return max(matches, key=lambda op: op["path"].count("/") - op["path"].count("{"))


def check_against_openapi(sent: Sent) -> str:
    """Assert ``sent`` is a request Argo's API declares; returns the operationId."""
    op = operation(sent.method, sent.path)
    unknown = {name for name, _ in sent.query} - set(op["query"])
    assert not unknown, f"{op['operationId']} has no query parameter(s) {sorted(unknown)}"
    if sent.body is None:
        return str(op["operationId"])
    assert "body" in op, f"{op['operationId']} takes no request body, got {sent.body}"
    extra = set(sent.body) - set(SPEC["bodySchemas"][op["body"]])
    assert not extra, f"{op['operationId']}: {op['body']} has no properties {sorted(extra)}"
    return str(op["operationId"])


@pytest.fixture
def server() -> Iterator[respx.MockRouter]:
    """The fake Argo Server; every request it saw must also be one Argo's OpenAPI declares."""
    with respx.mock(base_url=BASE, assert_all_called=True, assert_all_mocked=True) as router:
        yield router
        # (inside the block: respx forgets its calls when it exits)
        assert router.calls, "the test sent nothing"
        for call in router.calls:
            assert call.request.headers["Authorization"] == f"Bearer {TOKEN}"
            assert call.request.headers["Accept"] == "application/json"
            check_against_openapi(Sent.of(call.request))


def sent(router: respx.MockRouter) -> list[Sent]:
    """The requests ``router`` received, in order."""
    return [Sent.of(call.request) for call in router.calls]


@pytest.fixture
def hook(make_hook: Callable[[dict[str, Any]], ArgoWorkflowsHook]) -> ArgoWorkflowsHook:
    return make_hook({"conn_type": "argo_workflows", "host": BASE, "password": TOKEN,
                      "extra": {"transport": "argo_server", "namespace": NS, "max_retries": 0}})


def _wf(name: str = "wf1", uid: str = "uid-1") -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": NS, "uid": uid}, "status": {"phase": "Running"}}


BODY = {"metadata": {"generateName": "wire-"}, "spec": {"entrypoint": "main"}}


def test_spec_extract_names_its_source() -> None:
    source = SPEC["source"]
    assert source["repo"] == "argoproj/argo-workflows" and source["path"] == "api/openapi-spec/swagger.json"
    assert re.fullmatch(r"[0-9a-f]{40}", source["commit"])
    assert operation("GET", f"{WF}/wf1/log")["operationId"] == "WorkflowService_WorkflowLogs"
    with pytest.raises(AssertionError, match="not an operation"):
        operation("PATCH", f"{WF}/wf1")
    with pytest.raises(AssertionError, match="no query parameter"):
        check_against_openapi(Sent("GET", f"{WF}/wf1", [("labelSelector", "a")], None))
    with pytest.raises(AssertionError, match="has no properties"):
        check_against_openapi(Sent("PUT", f"{WF}/wf1/stop", [], {"name": "wf1", "reason": "x"}))


def test_create(hook: ArgoWorkflowsHook, server: respx.MockRouter) -> None:
    server.post(WF).respond(200, json=_wf("wire-abc"))
    assert hook.create_workflow(BODY)["metadata"]["name"] == "wire-abc"
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", **BODY}
    assert sent(server) == [Sent("POST", WF, [], {"namespace": NS, "workflow": workflow})]
    assert check_against_openapi(sent(server)[0]) == "WorkflowService_CreateWorkflow"


def test_get(hook: ArgoWorkflowsHook, server: respx.MockRouter) -> None:
    server.get(f"{WF}/wf1").respond(200, json=_wf())
    assert hook.get_workflow("wf1")["metadata"]["uid"] == "uid-1"
    assert sent(server) == [Sent("GET", f"{WF}/wf1", [], None)]


def test_get_in_another_namespace(hook: ArgoWorkflowsHook, server: respx.MockRouter) -> None:
    server.get("/api/v1/workflows/other/wf1").respond(200, json=_wf())
    hook.get_workflow("wf1", namespace="other")
    assert sent(server) == [Sent("GET", "/api/v1/workflows/other/wf1", [], None)]


def test_list_with_selectors_follows_pages(hook: ArgoWorkflowsHook, server: respx.MockRouter) -> None:
    server.get(WF).mock(side_effect=[
        httpx.Response(200, json={"metadata": {"continue": "page-2"}, "items": [_wf("a")]}),
        httpx.Response(200, json={"metadata": {"resourceVersion": "42"}, "items": [_wf("b")]}),
    ])
    items = hook.list_workflows(label_selector="app=x,tier!=db", field_selector="metadata.name=a")
    assert [w["metadata"]["name"] for w in items] == ["a", "b"]
    first = [("listOptions.fieldSelector", "metadata.name=a"), ("listOptions.labelSelector", "app=x,tier!=db"),
             ("listOptions.limit", "500")]
    assert sent(server) == [
        Sent("GET", WF, first, None),
        Sent("GET", WF, sorted([*first, ("listOptions.continue", "page-2")]), None),
    ]
    assert check_against_openapi(sent(server)[0]) == "WorkflowService_ListWorkflows"


def test_list_without_selectors(hook: ArgoWorkflowsHook, server: respx.MockRouter) -> None:
    server.get(WF).respond(200, json={"metadata": {}, "items": None})
    assert hook.list_workflows() == []
    assert sent(server) == [Sent("GET", WF, [("listOptions.limit", "500")], None)]


def test_stop(hook: ArgoWorkflowsHook, server: respx.MockRouter) -> None:
    server.put(f"{WF}/wf1/stop").respond(200, json=_wf())
    hook.stop_workflow("wf1")
    assert sent(server) == [Sent("PUT", f"{WF}/wf1/stop", [], {"name": "wf1", "namespace": NS})]
    assert check_against_openapi(sent(server)[0]) == "WorkflowService_StopWorkflow"


def test_stop_nodes_with_message(hook: ArgoWorkflowsHook, server: respx.MockRouter) -> None:
    server.put(f"{WF}/wf1/stop").respond(200, json=_wf())
    hook.stop_workflow("wf1", message="enough", node_field_selector="templateName=approve")
    assert sent(server) == [Sent("PUT", f"{WF}/wf1/stop", [], {
        "name": "wf1", "namespace": NS, "message": "enough", "nodeFieldSelector": "templateName=approve"})]


def test_stop_fenced_by_uid(hook: ArgoWorkflowsHook, server: respx.MockRouter) -> None:
    server.get(f"{WF}/wf1").respond(200, json=_wf(uid="uid-1"))
    server.put(f"{WF}/wf1/stop").respond(200, json=_wf())
    hook.stop_workflow("wf1", uid="uid-1")
    assert sent(server) == [
        Sent("GET", f"{WF}/wf1", [], None),
        Sent("PUT", f"{WF}/wf1/stop", [], {"name": "wf1", "namespace": NS}),
    ]


def test_stop_of_a_successor_sends_no_stop(hook: ArgoWorkflowsHook) -> None:
    with respx.mock(base_url=BASE, assert_all_mocked=True) as router:
        router.get(f"{WF}/wf1").respond(200, json=_wf(uid="uid-2"))
        with pytest.raises(ConflictError):
            hook.stop_workflow("wf1", uid="uid-1")
        assert sent(router) == [Sent("GET", f"{WF}/wf1", [], None)]


def test_terminate(hook: ArgoWorkflowsHook, server: respx.MockRouter) -> None:
    server.get(f"{WF}/wf1").respond(200, json=_wf(uid="uid-1"))
    server.put(f"{WF}/wf1/terminate").respond(200, json=_wf())
    hook.terminate_workflow("wf1")
    hook.terminate_workflow("wf1", uid="uid-1")
    terminate = Sent("PUT", f"{WF}/wf1/terminate", [], {"name": "wf1", "namespace": NS})
    assert sent(server) == [terminate, Sent("GET", f"{WF}/wf1", [], None), terminate]
    assert check_against_openapi(terminate) == "WorkflowService_TerminateWorkflow"


def test_delete(hook: ArgoWorkflowsHook, server: respx.MockRouter) -> None:
    server.delete(f"{WF}/wf1").respond(200, json={})
    hook.delete_workflow("wf1")
    hook.delete_workflow("wf1", uid="uid-1")
    assert sent(server) == [
        Sent("DELETE", f"{WF}/wf1", [], None),
        Sent("DELETE", f"{WF}/wf1", [("deleteOptions.preconditions.uid", "uid-1")], None),
    ]
    assert check_against_openapi(sent(server)[1]) == "WorkflowService_DeleteWorkflow"


def test_suspend_and_resume(hook: ArgoWorkflowsHook, server: respx.MockRouter) -> None:
    server.put(f"{WF}/wf1/suspend").respond(200, json=_wf())
    server.put(f"{WF}/wf1/resume").respond(200, json=_wf())
    hook.suspend_workflow("wf1")
    hook.resume_workflow("wf1")
    hook.resume_workflow("wf1", node_field_selector="displayName=approve")
    assert sent(server) == [
        Sent("PUT", f"{WF}/wf1/suspend", [], {"name": "wf1", "namespace": NS}),
        Sent("PUT", f"{WF}/wf1/resume", [], {"name": "wf1", "namespace": NS}),
        Sent("PUT", f"{WF}/wf1/resume", [], {"name": "wf1", "namespace": NS,
                                             "nodeFieldSelector": "displayName=approve"}),
    ]
    assert [check_against_openapi(s) for s in sent(server)[:2]] == [
        "WorkflowService_SuspendWorkflow", "WorkflowService_ResumeWorkflow"]


def test_retry(hook: ArgoWorkflowsHook, server: respx.MockRouter) -> None:
    server.put(f"{WF}/wf1/retry").respond(200, json=_wf())
    hook.retry_workflow("wf1")
    hook.retry_workflow("wf1", restart_successful=True, node_field_selector="id=wf1-1",
                        parameters={"message": "again", "n": 2})
    assert sent(server) == [
        Sent("PUT", f"{WF}/wf1/retry", [], {"name": "wf1", "namespace": NS, "restartSuccessful": False}),
        Sent("PUT", f"{WF}/wf1/retry", [], {"name": "wf1", "namespace": NS, "restartSuccessful": True,
                                            "nodeFieldSelector": "id=wf1-1", "parameters": ["message=again", "n=2"]}),
    ]
    assert check_against_openapi(sent(server)[1]) == "WorkflowService_RetryWorkflow"


def test_resubmit(hook: ArgoWorkflowsHook, server: respx.MockRouter) -> None:
    server.put(f"{WF}/wf1/resubmit").respond(200, json=_wf("wf1-x"))
    assert hook.resubmit_workflow("wf1")["metadata"]["name"] == "wf1-x"
    hook.resubmit_workflow("wf1", parameters={"message": "hi"})
    assert sent(server) == [
        Sent("PUT", f"{WF}/wf1/resubmit", [], {"name": "wf1", "namespace": NS, "memoized": False}),
        Sent("PUT", f"{WF}/wf1/resubmit", [], {"name": "wf1", "namespace": NS, "memoized": False,
                                               "parameters": ["message=hi"]}),
    ]
    assert check_against_openapi(sent(server)[1]) == "WorkflowService_ResubmitWorkflow"


def test_templates(hook: ArgoWorkflowsHook, server: respx.MockRouter) -> None:
    server.get("/api/v1/workflow-templates/argo/t1").respond(200, json={"metadata": {"name": "t1"}})
    server.get("/api/v1/cluster-workflow-templates/c1").respond(200, json={"metadata": {"name": "c1"}})
    assert hook.get_workflow_template("t1")["metadata"]["name"] == "t1"
    assert hook.get_cluster_workflow_template("c1")["metadata"]["name"] == "c1"
    assert sent(server) == [
        Sent("GET", "/api/v1/workflow-templates/argo/t1", [], None),
        Sent("GET", "/api/v1/cluster-workflow-templates/c1", [], None),
    ]
    assert [check_against_openapi(s) for s in sent(server)] == [
        "WorkflowTemplateService_GetWorkflowTemplate", "ClusterWorkflowTemplateService_GetClusterWorkflowTemplate"]


def _log_lines(*entries: tuple[str, str]) -> str:
    return "".join(json.dumps({"result": {"podName": pod, "content": content}}) + "\n" for pod, content in entries)


def test_read_pod_log(hook: ArgoWorkflowsHook, server: respx.MockRouter) -> None:
    server.get(f"{WF}/wf1/log").respond(200, text=_log_lines(
        ("wf1-main-1", "2024-05-01T10:00:00.5Z one"),
        ("wf1-other-2", "2024-05-01T10:00:01Z not this pod"),
        ("wf1-main-1", "2024-05-01T10:00:02Z two"),
    ))
    assert hook.read_pod_log("wf1-main-1", workflow="wf1") == [
        ("2024-05-01T10:00:00.5Z", "one"), ("2024-05-01T10:00:02Z", "two")]
    assert hook.read_pod_log("wf1-main-1", workflow="wf1", container="wait",
                             since_time="2024-05-01T10:00:00.5Z") == [("2024-05-01T10:00:02Z", "two")]
    base = [("logOptions.timestamps", "true"), ("podName", "wf1-main-1")]
    assert sent(server) == [
        Sent("GET", f"{WF}/wf1/log", sorted([*base, ("logOptions.container", "main")]), None),
        Sent("GET", f"{WF}/wf1/log", sorted([*base, ("logOptions.container", "wait"),
                                             ("logOptions.sinceTime.seconds", "1714557600")]), None),
    ]
    # never a follow: the hook reads what is there and returns
    assert all(name != "logOptions.follow" for s in sent(server) for name, _ in s.query)
    assert check_against_openapi(sent(server)[1]) == "WorkflowService_WorkflowLogs"


def test_read_pod_log_needs_the_workflow(hook: ArgoWorkflowsHook) -> None:
    with respx.mock(base_url=BASE, assert_all_mocked=True) as router:
        with pytest.raises(WorkflowSpecError, match="needs workflow="):
            hook.read_pod_log("wf1-main-1")
        assert sent(router) == []


def test_connection_probe(hook: ArgoWorkflowsHook, server: respx.MockRouter) -> None:
    server.get(WF).respond(200, json={"metadata": {}, "items": []})
    ok, message = hook.test_connection()
    assert ok, message
    assert message == f"Connected to Argo Server {BASE}: listed workflows in namespace 'argo'"
    assert sent(server) == [Sent("GET", WF, [("listOptions.limit", "1")], None)]


async def test_async_calls(hook: ArgoWorkflowsHook, server: respx.MockRouter) -> None:
    server.get(f"{WF}/wf1").respond(200, json=_wf(uid="uid-1"))
    server.get(WF).mock(side_effect=[
        httpx.Response(200, json={"metadata": {"continue": "c2"}, "items": [_wf("a")]}),
        httpx.Response(200, json={"metadata": {"resourceVersion": "77"}, "items": [_wf("b")]}),
    ])
    server.put(f"{WF}/wf1/stop").respond(200, json=_wf())
    server.put(f"{WF}/wf1/terminate").respond(200, json=_wf())
    server.delete(f"{WF}/wf1").respond(200, json={})
    try:
        assert (await hook.aget_workflow("wf1"))["metadata"]["uid"] == "uid-1"
        listed = await hook.alist_workflows(label_selector="app=x")
        items, version = listed, listed.resource_version
        assert [w["metadata"]["name"] for w in items] == ["a", "b"] and version == "77"
        await hook.astop_workflow("wf1")
        await hook.aterminate_workflow("wf1", uid="uid-1")
        await hook.adelete_workflow("wf1", uid="uid-1")
        await hook.adelete_workflow("wf1")
    finally:
        await hook.aclose()
    get = Sent("GET", f"{WF}/wf1", [], None)
    listing = [("listOptions.labelSelector", "app=x"), ("listOptions.limit", "500")]
    assert sent(server) == [
        get,
        Sent("GET", WF, listing, None),
        Sent("GET", WF, sorted([*listing, ("listOptions.continue", "c2")]), None),
        Sent("PUT", f"{WF}/wf1/stop", [], {"name": "wf1", "namespace": NS}),
        get,
        Sent("PUT", f"{WF}/wf1/terminate", [], {"name": "wf1", "namespace": NS}),
        Sent("DELETE", f"{WF}/wf1", [("deleteOptions.preconditions.uid", "uid-1")], None),
        Sent("DELETE", f"{WF}/wf1", [], None),
    ]


def test_apply_workflow_template(hook: ArgoWorkflowsHook, server: respx.MockRouter) -> None:
    wt = "/api/v1/workflow-templates/argo"
    spec = {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox"}}]}
    stored = {"apiVersion": "argoproj.io/v1alpha1", "kind": "WorkflowTemplate",
              "metadata": {"name": "job", "namespace": NS}, "spec": spec}
    server.get(f"{wt}/job").mock(side_effect=[
        httpx.Response(404, json={"code": 5, "message": "not found"}),
        httpx.Response(200, json={**stored, "metadata": {**stored["metadata"], "resourceVersion": "7"}}),
        httpx.Response(200, json={**stored, "metadata": {**stored["metadata"], "resourceVersion": "7"}}),
    ])
    server.post(wt).respond(200, json=stored)
    server.put(f"{wt}/job").respond(200, json=stored)
    body = {"metadata": {"name": "job"}, "spec": spec}
    hook.apply_workflow_template(body)  # absent: created
    hook.apply_workflow_template(body)  # the same: not written
    hook.apply_workflow_template({**body, "spec": {**spec, "entrypoint": "other"}})  # changed: updated
    get = Sent("GET", f"{wt}/job", [], None)
    changed = {**stored, "metadata": {**stored["metadata"], "resourceVersion": "7"},
               "spec": {**spec, "entrypoint": "other"}}
    assert sent(server) == [
        get,
        Sent("POST", wt, [], {"namespace": NS, "template": stored}),
        get,
        get,
        Sent("PUT", f"{wt}/job", [], {"name": "job", "namespace": NS, "template": changed}),
    ]
    assert [check_against_openapi(s) for s in sent(server)[:2]] == [
        "WorkflowTemplateService_GetWorkflowTemplate", "WorkflowTemplateService_CreateWorkflowTemplate"]
    assert check_against_openapi(sent(server)[-1]) == "WorkflowTemplateService_UpdateWorkflowTemplate"


def test_apply_workflow_template_refuses_another_namespace(hook: ArgoWorkflowsHook) -> None:
    with pytest.raises(WorkflowSpecError, match=r"metadata\.namespace 'other' differs from the namespace 'argo'"):
        hook.apply_workflow_template({"metadata": {"name": "job", "namespace": "other"}, "spec": {}}, namespace="argo")
