"""The Argo Server REST subset, driven by Hera's real ``WorkflowsService`` over HTTP."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from hera.exceptions import BadRequest, NotFound, Unauthorized
from hera.workflows import Container, Steps, Workflow, WorkflowsService, WorkflowTemplate
from hera.workflows.models import ClusterWorkflowTemplate as ClusterWorkflowTemplateModel
from hera.workflows.models import (
    ClusterWorkflowTemplateCreateRequest,
    ClusterWorkflowTemplateUpdateRequest,
    SubmitOpts,
    WorkflowResubmitRequest,
    WorkflowResumeRequest,
    WorkflowRetryRequest,
    WorkflowStopRequest,
    WorkflowSubmitRequest,
    WorkflowSuspendRequest,
    WorkflowTemplateUpdateRequest,
    WorkflowTerminateRequest,
)

from airflow_argo_eci.conventions import ANNOTATION_SCHEDULED_TIME, ARGO_VERSION
from airflow_argo_eci.local.api.app import create_app
from airflow_argo_eci.local.api.argo_server import build_argo_server_router
from airflow_argo_eci.local.api.resources import CRON_WORKFLOWS, PODS, WORKFLOWS
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.paths import StatePaths

TOKEN = "argo-server-test-token"
NS = "argo"


@dataclass
class Server:
    url: str
    store: Store
    paths: StatePaths

    def svc(self, token: str = TOKEN) -> WorkflowsService:
        return WorkflowsService(host=self.url, token=token, verify_ssl=False, namespace=NS)

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("argo-server")
    paths = StatePaths(root)
    store = Store(paths.db)
    app = create_app(store, token=TOKEN, paths=paths)
    app.include_router(build_argo_server_router(store, paths))
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    uv = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=uv.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not uv.started:
        assert time.monotonic() < deadline and thread.is_alive(), "server did not start"
        time.sleep(0.01)
    yield Server(f"http://127.0.0.1:{port}", store, paths)
    uv.should_exit = True
    thread.join(10)
    store.close()


def hello(name: str, svc: WorkflowsService, **kwargs: Any) -> Workflow:
    with Workflow(generate_name=f"{name}-", entrypoint="main", namespace=NS, workflows_service=svc,
                  **kwargs) as w:
        Container(name="main", image="busybox", command=["echo"], args=["hello"])
    return w


def d(model: Any) -> dict[str, Any]:
    """A Hera model as the JSON the server sent (plain dicts keep the assertions simple and typed)."""
    data: dict[str, Any] = json.loads(model.json(by_alias=True, exclude_none=True))
    return data


def create(w: Workflow) -> str:
    """Create ``w`` through Hera and return the generated name."""
    name = d(w.create())["metadata"]["name"]
    assert isinstance(name, str)
    return name


def set_status(server: Server, name: str, status: dict[str, Any], labels: dict[str, str] | None = None) -> None:
    def mutate(wf: dict[str, Any]) -> None:
        wf["status"] = status
        wf["metadata"].setdefault("labels", {}).update(labels or {})

    server.store.update(WORKFLOWS, NS, name, mutate)


def add_pod(server: Server, wf: str, pod: str, node_id: str, phase: str = "Running") -> None:
    server.store.create(PODS, NS, {
        "metadata": {"name": pod, "labels": {"workflows.argoproj.io/workflow": wf},
                     "annotations": {"workflows.argoproj.io/node-id": node_id}},
        "spec": {"containers": [{"name": "main", "image": "busybox"}]},
        "status": {"phase": phase},
    })


def write_log(server: Server, pod: str, lines: list[tuple[str, str]]) -> None:
    path = server.paths.log_file(NS, pod, "main")
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as handle:
        for stamp, text in lines:
            handle.write(f"{stamp} {text}\n")


def read_ndjson(response: httpx.Response) -> list[dict[str, str]]:
    return [json.loads(line)["result"] for line in response.text.splitlines() if line]


# ---------------------------------------------------------------------------- basics


def test_version_and_info(server: Server) -> None:
    svc = server.svc()
    assert d(svc.get_version())["version"] == ARGO_VERSION
    assert d(svc.get_info()).get("links", []) == []


def test_create_get_list(server: Server) -> None:
    svc = server.svc()
    created = d(hello("basic", svc, labels={"team": "data"}).create())
    name = created["metadata"]["name"]
    assert name.startswith("basic-") and created["metadata"]["namespace"] == NS
    got = d(svc.get_workflow(name))
    assert got["metadata"]["uid"] == created["metadata"]["uid"]
    assert got["spec"]["entrypoint"] == "main"
    listed = d(svc.list_workflows(label_selector="team=data"))
    assert [w["metadata"]["name"] for w in listed["items"]] == [name]
    assert d(svc.list_workflows(label_selector="team=none")).get("items", []) == []
    by_field = d(svc.list_workflows(field_selector=f"metadata.name={name}"))
    assert [w["metadata"]["name"] for w in by_field["items"]] == [name]


def test_list_paginates(server: Server) -> None:
    svc = server.svc()
    names = {create(hello("page", svc, labels={"page": "yes"})) for _ in range(3)}
    first = d(svc.list_workflows(label_selector="page=yes", limit="2"))
    assert len(first["items"]) == 2 and first["metadata"]["continue"]
    rest = d(svc.list_workflows(label_selector="page=yes", limit="2", continue_=first["metadata"]["continue"]))
    assert {w["metadata"]["name"] for w in first["items"] + rest["items"]} == names


def test_errors_are_grpc_json(server: Server) -> None:
    svc = server.svc()
    with pytest.raises(NotFound, match='"missing" not found'):
        svc.get_workflow("missing")
    with server.http() as http:
        response = http.get(f"/api/v1/workflows/{NS}/missing")
        assert response.status_code == 404
        assert response.json()["code"] == 5
        bad = http.post(f"/api/v1/workflows/{NS}", json={"workflow": {"metadata": {"generateName": "x-"},
                                                                       "spec": {"templates": []}}})
        assert bad.status_code == 400 and bad.json()["code"] == 3
        assert "spec.templates" in bad.json()["message"]
        no_entry = http.post(f"/api/v1/workflows/{NS}", json={"workflow": {
            "metadata": {"generateName": "x-"}, "spec": {"entrypoint": "nope", "templates": [{"name": "a"}]}}})
        assert no_entry.status_code == 400 and "entrypoint template 'nope'" in no_entry.json()["message"]
        fixed = {"metadata": {"name": "dup-name"}, "spec": {"entrypoint": "a", "templates": [{"name": "a"}]}}
        assert http.post(f"/api/v1/workflows/{NS}", json={"workflow": fixed}).status_code == 200
        dup = http.post(f"/api/v1/workflows/{NS}", json={"workflow": fixed})
        assert dup.status_code == 409 and dup.json()["code"] == 6
        dry = http.post(f"/api/v1/workflows/{NS}", json={"workflow": {**fixed, "metadata": {"name": "dry"}},
                                                        "serverDryRun": True})
        assert dry.status_code == 200 and dry.json()["metadata"]["name"] == "dry"
    with pytest.raises(NotFound):
        svc.get_workflow("dry")
    with pytest.raises(Unauthorized):
        server.svc(token="wrong").get_workflow("dup-name")


# ---------------------------------------------------------------------------- actions


def test_stop_terminate_suspend(server: Server) -> None:
    svc = server.svc()
    a = create(hello("stop", svc))
    stopped = svc.stop_workflow(a, WorkflowStopRequest(message="enough"))
    assert d(stopped)["spec"]["shutdown"] == "Stop"
    assert server.store.get(WORKFLOWS, NS, a)["spec"]["shutdown"] == "Stop"
    b = create(hello("term", svc))
    assert d(svc.terminate_workflow(b, WorkflowTerminateRequest()))["spec"]["shutdown"] == "Terminate"
    c = create(hello("susp", svc))
    assert d(svc.suspend_workflow(c, WorkflowSuspendRequest()))["spec"]["suspend"] is True
    assert server.store.get(WORKFLOWS, NS, c)["spec"]["suspend"] is True
    set_status(server, b, {"phase": "Succeeded"}, {"workflows.argoproj.io/completed": "true"})
    with pytest.raises(BadRequest, match="cannot shutdown a completed workflow"):
        svc.stop_workflow(b, WorkflowStopRequest())
    with pytest.raises(BadRequest, match="cannot suspend completed workflows"):
        svc.suspend_workflow(b, WorkflowSuspendRequest())
    with pytest.raises(NotFound):
        svc.terminate_workflow("missing", WorkflowTerminateRequest())


def test_resume_marks_suspend_nodes_succeeded(server: Server) -> None:
    svc = server.svc()
    name = create(hello("resume", svc))
    svc.suspend_workflow(name, WorkflowSuspendRequest())
    set_status(server, name, {"phase": "Running", "nodes": {
        "n1": {"id": "n1", "name": f"{name}.approve", "displayName": "approve", "type": "Suspend",
               "phase": "Running",
               "outputs": {"parameters": [{"name": "ok", "valueFrom": {"supplied": {}, "default": "yes"}}]}},
        "n2": {"id": "n2", "name": f"{name}.done", "displayName": "done", "type": "Suspend", "phase": "Succeeded"},
    }})
    with pytest.raises(BadRequest, match="no suspend nodes matching"):
        svc.resume_workflow(name, WorkflowResumeRequest(node_field_selector="displayName=nothing"))
    resumed = svc.resume_workflow(name, WorkflowResumeRequest())
    assert "suspend" not in d(resumed)["spec"]
    stored = server.store.get(WORKFLOWS, NS, name)
    node = stored["status"]["nodes"]["n1"]
    assert node["phase"] == "Succeeded" and node["finishedAt"]
    assert node["outputs"]["parameters"] == [{"name": "ok", "value": "yes"}]
    assert "finishedAt" not in stored["status"]["nodes"]["n2"]


def test_stop_with_node_field_selector_fails_the_suspend_node(server: Server) -> None:
    svc = server.svc()
    name = create(hello("stopnode", svc))
    set_status(server, name, {"phase": "Running", "nodes": {
        "s": {"id": "s", "name": f"{name}.gate", "displayName": "gate", "type": "Suspend", "phase": "Running"},
    }})
    result = svc.stop_workflow(name, WorkflowStopRequest(node_field_selector="displayName=gate", message="no"))
    assert "shutdown" not in d(result)["spec"]
    node = server.store.get(WORKFLOWS, NS, name)["status"]["nodes"]["s"]
    assert (node["phase"], node["message"]) == ("Failed", "no")


def _failed_tree(name: str) -> dict[str, Any]:
    return {
        "phase": "Failed", "finishedAt": "2024-01-01T00:00:10Z", "message": "child failed",
        "nodes": {
            "root": {"id": "root", "name": name, "type": "Steps", "phase": "Failed", "children": ["g0"],
                     "finishedAt": "2024-01-01T00:00:10Z"},
            "g0": {"id": "g0", "name": f"{name}[0]", "type": "StepGroup", "phase": "Failed",
                   "children": ["ok", "bad"], "finishedAt": "2024-01-01T00:00:10Z"},
            "ok": {"id": "ok", "name": f"{name}[0].ok", "displayName": "ok", "type": "Pod", "phase": "Succeeded"},
            "bad": {"id": "bad", "name": f"{name}[0].bad", "displayName": "bad", "type": "Pod", "phase": "Failed",
                    "message": "Error (exit code 1)"},
        },
    }


def test_retry_resets_failed_nodes(server: Server) -> None:
    svc = server.svc()
    name = create(hello("retry", svc))
    with pytest.raises(BadRequest, match="must be Failed/Error to retry"):
        svc.retry_workflow(name, WorkflowRetryRequest())
    set_status(server, name, _failed_tree(name), {"workflows.argoproj.io/completed": "true"})
    add_pod(server, name, f"{name}-ok", "ok", "Succeeded")
    add_pod(server, name, f"{name}-bad", "bad", "Failed")
    retried = svc.retry_workflow(name, WorkflowRetryRequest())
    assert d(retried)["status"]["phase"] == "Running"
    stored = server.store.get(WORKFLOWS, NS, name)
    status = stored["status"]
    assert "finishedAt" not in status and "message" not in status
    assert "workflows.argoproj.io/completed" not in stored["metadata"]["labels"]
    assert set(status["nodes"]) == {"root", "g0", "ok"}
    assert status["nodes"]["root"]["phase"] == status["nodes"]["g0"]["phase"] == "Running"
    assert "finishedAt" not in status["nodes"]["g0"]
    assert status["nodes"]["g0"]["children"] == ["ok"]
    assert status["nodes"]["ok"]["phase"] == "Succeeded"
    pods = {p["metadata"]["name"] for p in server.store.list(PODS, NS)[0]}
    assert f"{name}-ok" in pods and f"{name}-bad" not in pods


def test_retry_restart_successful_with_selector(server: Server) -> None:
    svc = server.svc()
    name = create(hello("retrysel", svc))
    set_status(server, name, _failed_tree(name))
    svc.retry_workflow(name, WorkflowRetryRequest(restart_successful=True, node_field_selector="displayName=ok",
                                                  parameters=["p=1"]))
    stored = server.store.get(WORKFLOWS, NS, name)
    assert set(stored["status"]["nodes"]) == {"root", "g0"}
    assert stored["spec"]["arguments"]["parameters"] == [{"name": "p", "value": "1"}]


def test_resubmit_creates_a_new_workflow(server: Server) -> None:
    svc = server.svc()
    old = create(hello("resub", svc, labels={"keep": "me"}))
    new = d(svc.resubmit_workflow(old, WorkflowResubmitRequest(parameters=["x=2"])))
    assert new["metadata"]["name"] != old and new["metadata"]["name"].startswith("resub-")
    assert new["metadata"]["labels"]["workflows.argoproj.io/resubmitted-from-workflow"] == old
    assert new["metadata"]["labels"]["keep"] == "me"
    assert new["spec"]["entrypoint"] == "main"
    assert new["spec"]["arguments"]["parameters"] == [{"name": "x", "value": "2"}]


def test_delete_removes_workflow_and_pods(server: Server) -> None:
    svc = server.svc()
    name = create(hello("del", svc))
    add_pod(server, name, f"{name}-p", "p")
    svc.delete_workflow(name)
    with pytest.raises(NotFound):
        svc.get_workflow(name)
    assert f"{name}-p" not in {p["metadata"]["name"] for p in server.store.list(PODS, NS)[0]}


# ---------------------------------------------------------------------------- templates


def test_workflow_template_crud_and_submit(server: Server) -> None:
    svc = server.svc()
    with WorkflowTemplate(name="greeter", entrypoint="main", namespace=NS, workflows_service=svc,
                          arguments={"msg": "default"}) as wt:
        with Steps(name="main"):
            Container(name="say", image="busybox", command=["echo"], args=["{{workflow.parameters.msg}}"])()
    wt.create()
    assert d(svc.get_workflow_template("greeter"))["spec"]["entrypoint"] == "main"
    assert [t["metadata"]["name"] for t in d(svc.list_workflow_templates())["items"]] == ["greeter"]
    submitted = d(svc.submit_workflow(WorkflowSubmitRequest(
        resource_kind="WorkflowTemplate", resource_name="greeter",
        submit_options=SubmitOpts(parameters=["msg=hi"], labels="a=b"))))
    assert submitted["metadata"]["name"].startswith("greeter-")
    assert submitted["spec"]["workflowTemplateRef"] == {"name": "greeter"}
    assert submitted["metadata"]["labels"]["a"] == "b"
    assert submitted["metadata"]["labels"]["workflows.argoproj.io/workflow-template"] == "greeter"
    assert submitted["spec"]["arguments"]["parameters"] == [{"name": "msg", "value": "hi"}]
    with pytest.raises(NotFound):
        svc.submit_workflow(WorkflowSubmitRequest(resource_kind="WorkflowTemplate", resource_name="nope"))
    with pytest.raises(BadRequest, match="resourceKind"):
        svc.submit_workflow(WorkflowSubmitRequest(resource_kind="Pod", resource_name="greeter"))

    current = d(svc.get_workflow_template("greeter"))
    current["spec"]["entrypoint"] = "other"
    current["spec"]["templates"].append({**current["spec"]["templates"][0], "name": "other"})
    request = WorkflowTemplateUpdateRequest.parse_obj({"template": current})
    updated = d(svc.update_workflow_template("greeter", request))
    assert updated["spec"]["entrypoint"] == "other"
    assert updated["metadata"]["resourceVersion"] != current["metadata"]["resourceVersion"]
    svc.delete_workflow_template("greeter")
    with pytest.raises(NotFound):
        svc.get_workflow_template("greeter")


def test_cluster_workflow_template_crud(server: Server) -> None:
    svc = server.svc()
    body = ClusterWorkflowTemplateModel.parse_obj({
        "metadata": {"name": "cluster-hello"},
        "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "busybox"}}]},
    })
    created = d(svc.create_cluster_workflow_template(ClusterWorkflowTemplateCreateRequest(template=body)))
    assert created["metadata"]["name"] == "cluster-hello" and "namespace" not in created["metadata"]
    listed = d(svc.list_cluster_workflow_templates())
    assert "cluster-hello" in [t["metadata"]["name"] for t in listed["items"]]
    current = d(svc.get_cluster_workflow_template("cluster-hello"))
    current["metadata"]["labels"] = {"v": "2"}
    updated = d(svc.update_cluster_workflow_template(
        "cluster-hello", ClusterWorkflowTemplateUpdateRequest.parse_obj({"template": current})))
    assert updated["metadata"]["labels"] == {"v": "2"}
    wf = d(svc.submit_workflow(WorkflowSubmitRequest(resource_kind="ClusterWorkflowTemplate",
                                                     resource_name="cluster-hello")))
    assert wf["spec"]["workflowTemplateRef"] == {"name": "cluster-hello", "clusterScope": True}
    svc.delete_cluster_workflow_template("cluster-hello")
    with pytest.raises(NotFound):
        svc.get_cluster_workflow_template("cluster-hello")


def test_submit_from_cron_workflow_stamps_the_scheduled_time_and_its_owner(server: Server) -> None:
    """As Argo's ``ConvertCronWorkflowToWorkflow``: the ``scheduled-time`` annotation (workflowMetadata
    annotations win) and the CronWorkflow as controlling owner, so deleting it deletes its runs."""
    cron = server.store.create(CRON_WORKFLOWS, NS, {
        "metadata": {"name": "nightly"},
        "spec": {"schedule": "0 0 * * *", "workflowMetadata": {"annotations": {"team": "data"}},
                 "workflowSpec": {"entrypoint": "main", "templates": [
                     {"name": "main", "container": {"image": "busybox", "command": ["date"]}}]}}})
    before = datetime.now(timezone.utc).replace(microsecond=0)
    wf = d(server.svc().submit_workflow(WorkflowSubmitRequest(resource_kind="CronWorkflow",
                                                              resource_name="nightly")))
    stamp = datetime.strptime(wf["metadata"]["annotations"][ANNOTATION_SCHEDULED_TIME], "%Y-%m-%dT%H:%M:%SZ")
    assert before <= stamp.replace(tzinfo=timezone.utc) <= datetime.now(timezone.utc)
    assert wf["metadata"]["annotations"]["team"] == "data"
    assert wf["metadata"]["labels"]["workflows.argoproj.io/cron-workflow"] == "nightly"
    assert wf["metadata"]["ownerReferences"] == [{
        "apiVersion": "argoproj.io/v1alpha1", "kind": "CronWorkflow", "name": "nightly",
        "uid": cron["metadata"]["uid"], "controller": True, "blockOwnerDeletion": True}]
    with server.http() as http:
        assert http.delete(f"/apis/argoproj.io/v1alpha1/namespaces/{NS}/cronworkflows/nightly").status_code == 200
    with pytest.raises(NotFound):
        server.svc().get_workflow(wf["metadata"]["name"])


# ---------------------------------------------------------------------------- logs


def test_workflow_logs(server: Server) -> None:
    svc = server.svc()
    name = create(hello("logs", svc))
    add_pod(server, name, f"{name}-a", "a", "Succeeded")
    add_pod(server, name, f"{name}-b", "b", "Succeeded")
    write_log(server, f"{name}-a", [("2024-01-01T00:00:01.000000001Z", "a1"), ("2024-01-01T00:00:03Z", "a2")])
    write_log(server, f"{name}-b", [("2024-01-01T00:00:02.5Z", "b1"), ("2024-01-01T00:00:04Z", "b2 error")])
    with server.http() as http:
        base = f"/api/v1/workflows/{NS}/{name}"
        everything = read_ndjson(http.get(f"{base}/log", params={"logOptions.container": "main"}))
        assert [e["content"] for e in everything] == ["a1", "b1", "a2", "b2 error"]
        assert everything[0]["podName"] == f"{name}-a"
        one = read_ndjson(http.get(f"{base}/log", params={"podName": f"{name}-b"}))
        assert [e["content"] for e in one] == ["b1", "b2 error"]
        same = read_ndjson(http.get(f"{base}/{name}-b/log"))
        assert same == one
        assert [e["content"] for e in read_ndjson(http.get(f"{base}/log", params={"grep": "err"}))] == ["b2 error"]
        tail = read_ndjson(http.get(f"{base}/log", params={"logOptions.tailLines": "1"}))
        assert [e["content"] for e in tail] == ["a2", "b2 error"]
        stamped = read_ndjson(http.get(f"{base}/log", params={"logOptions.timestamps": "true", "podName":
                                                              f"{name}-a"}))
        assert stamped[0]["content"] == "2024-01-01T00:00:01.000000001Z a1"
        missing = http.get(f"{base}/nope/log")
        assert missing.status_code == 404 and missing.json()["code"] == 5
        assert http.get(f"{base}/log", params={"grep": "("}).status_code == 400


def test_workflow_logs_follow(server: Server) -> None:
    svc = server.svc()
    name = create(hello("follow", svc))
    pod = f"{name}-main"
    add_pod(server, name, pod, "main", "Running")
    write_log(server, pod, [("2024-01-01T00:00:01Z", "early")])
    received: list[str] = []

    def follow() -> None:
        with server.http() as http, http.stream("GET", f"/api/v1/workflows/{NS}/{name}/log",
                                                params={"logOptions.follow": "true"}) as response:
            for line in response.iter_lines():
                if line:
                    received.append(json.loads(line)["result"]["content"])

    reader = threading.Thread(target=follow)
    reader.start()
    deadline = time.monotonic() + 5
    while "early" not in received and time.monotonic() < deadline:
        time.sleep(0.02)
    assert received == ["early"]
    write_log(server, pod, [("2024-01-01T00:00:02Z", "late")])
    while "late" not in received and time.monotonic() < deadline:
        time.sleep(0.02)
    assert reader.is_alive(), "the stream must stay open while the workflow runs"
    server.store.update(PODS, NS, pod, lambda p: p["status"].update(phase="Succeeded"))
    set_status(server, name, {"phase": "Succeeded"}, {"workflows.argoproj.io/completed": "true"})
    reader.join(5)
    assert not reader.is_alive()
    assert received == ["early", "late"]


# ---------------------------------------------------------------------------- end to end


def test_end_to_end_on_the_local_cluster(tmp_path: Path) -> None:
    from airflow_argo_eci.local.server import LocalCluster

    with LocalCluster(tmp_path / "cluster", capacity_vcpu=4) as cluster:
        # verify_ssl takes a CA bundle path (requests' verify): the cluster's pinned certificate
        svc = WorkflowsService(host=cluster.url, token=cluster.token, verify_ssl=str(cluster.paths.tls_cert),
                               namespace=NS)
        name = create(hello("e2e", svc))
        deadline = time.monotonic() + 30
        phase = None
        while time.monotonic() < deadline:
            phase = d(svc.get_workflow(name)).get("status", {}).get("phase")
            if phase in ("Succeeded", "Failed", "Error"):
                break
            time.sleep(0.1)
        assert phase == "Succeeded"
        with httpx.Client(base_url=cluster.url, headers={"Authorization": f"Bearer {cluster.token}"},
                          verify=str(cluster.paths.tls_cert)) as http:
            logs = read_ndjson(http.get(f"/api/v1/workflows/{NS}/{name}/log"))
        assert [e["content"] for e in logs] == ["hello"]
