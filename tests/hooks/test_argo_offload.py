"""Offloaded node status (Argo's ``nodeStatusOffLoad``) read the way Argo's clients read it: the
hydrating operation's requests and checks, the ``argo_server_url`` extra of a kubernetes-transport
connection, and the local cluster with always-offload end to end (the Kubernetes object stays
dehydrated, the Argo Server serves the nodes, the hook and the operator use them)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from typing import Any

import pendulum
import pytest
import respx
from airflow.sdk import DAG

from airflow_argo_eci.eci_conventions import ARGO_NAMESPACE, CONTROLLER_CONFIGMAP
from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook
from airflow_argo_eci.hooks.argo_connection import parse_connection
from airflow_argo_eci.hooks.argo_kubernetes_transport import KubernetesTransport
from airflow_argo_eci.hooks.argo_offload import (
    HYDRATE_ATTEMPTS,
    ArgoServerRequest,
    hydrate_workflow,
    hydrated_copy,
    hydration_request,
)
from airflow_argo_eci.hooks.argo_requests import ApiRequest, Operation
from airflow_argo_eci.local.api.resources import CONFIGMAPS, WORKFLOWS
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.workflows import OffloadedNodesError, workflow_nodes, workflow_pods
from tests.hooks.conftest import NS, connection_env, wait_for
from tests.hooks.test_argo_requests import drive_both
from tests.hooks.test_argo_server_wire import Sent, check_against_openapi

NODES = {"wf1": {"id": "wf1", "name": "wf1", "displayName": "wf1", "type": "Pod", "phase": "Succeeded",
                 "outputs": {"parameters": [{"name": "greeting", "value": "hi"}]}}}


def offloaded(rv: str = "10", uid: str = "uid-1", version: str = "fnv:1") -> dict[str, Any]:
    return {"metadata": {"name": "wf1", "namespace": NS, "uid": uid, "resourceVersion": rv},
            "status": {"phase": "Succeeded", "offloadNodeStatusVersion": version}}


def served(rv: str = "10", uid: str = "uid-1") -> dict[str, Any]:
    """What the Argo Server returns: hydrated, ``offloadNodeStatusVersion`` cleared."""
    return {"metadata": {"name": "wf1", "namespace": NS, "uid": uid, "resourceVersion": rv},
            "status": {"phase": "Succeeded", "nodes": NODES}}


def no_read(name: str, namespace: str) -> Operation[dict[str, Any]]:
    raise AssertionError("the workflow was read again")
    yield  # an operation


# ---------------------------------------------------------------------------- the operation


def test_hydration_is_one_argo_server_get_of_the_workflow_and_keeps_the_object() -> None:
    result, sent = drive_both(lambda: hydrate_workflow(offloaded(), no_read), lambda request: served())
    assert sent == [ArgoServerRequest("GET", "/api/v1/workflows/argo/wf1",
                                      "read the offloaded nodes of workflow argo/wf1 "
                                      "(status.offloadNodeStatusVersion=fnv:1) from the Argo Server")]
    assert isinstance(sent[0], ArgoServerRequest) and sent[0].idempotent and sent[0].query == ()
    assert result == {**offloaded(), "status": {"phase": "Succeeded", "nodes": NODES}}
    assert workflow_nodes(result["status"]) == NODES


def test_a_workflow_that_is_not_offloaded_is_returned_without_a_request() -> None:
    plain = {**offloaded(), "status": {"phase": "Running", "nodes": NODES, "offloadNodeStatusVersion": "fnv:1"}}
    result, sent = drive_both(lambda: hydrate_workflow(plain, no_read), lambda request: served())
    assert sent == [] and result == plain


def test_another_uid_from_the_server_is_refused() -> None:
    error, sent = drive_both(lambda: hydrate_workflow(offloaded(), no_read), lambda request: served(uid="uid-2"))
    assert isinstance(error, OffloadedNodesError) and len(sent) == 1
    assert "uid uid-2, not uid-1" in str(error)


def test_another_offload_version_of_the_same_object_is_refused() -> None:
    other = {**served(), "status": {"phase": "Succeeded", "nodes": NODES, "offloadNodeStatusVersion": "fnv:2"}}
    with pytest.raises(OffloadedNodesError, match="offload version fnv:2, not fnv:1"):
        hydrated_copy(offloaded(), other)
    same = {**served(), "status": {"phase": "Succeeded", "nodes": NODES, "offloadNodeStatusVersion": "fnv:1"}}
    assert (hydrated_copy(offloaded(), same) or {})["status"]["nodes"] == NODES


def test_a_server_that_does_not_hydrate_is_named() -> None:
    with pytest.raises(OffloadedNodesError, match=r"without its nodes.*nodeStatusOffLoad"):
        hydrated_copy(offloaded(), offloaded())


def test_a_workflow_that_changed_between_reads_is_read_again_then_refused() -> None:
    reads: list[str] = []

    def read(name: str, namespace: str) -> Operation[dict[str, Any]]:
        reads.append(f"{namespace}/{name}")
        response = yield ApiRequest("GET", f"/k8s/{namespace}/{name}", "get")
        return dict(response)

    def respond_later(request: ApiRequest) -> Any:
        # the Kubernetes read sees version 11 (offloaded again); the Argo Server has moved to 11 too
        return offloaded(rv="11", version="fnv:2") if request.path.startswith("/k8s/") else served(rv="11")

    result, sent = drive_both(lambda: hydrate_workflow(offloaded(), read), respond_later)
    assert [r.path for r in sent] == ["/api/v1/workflows/argo/wf1", "/k8s/argo/wf1", "/api/v1/workflows/argo/wf1"]
    assert result["metadata"]["resourceVersion"] == "11" and result["status"]["nodes"] == NODES

    counter = iter(range(100, 200))

    def keeps_changing(request: ApiRequest) -> Any:
        rv = str(next(counter))
        return offloaded(rv=rv) if request.path.startswith("/k8s/") else served(rv=rv)

    error, sent = drive_both(lambda: hydrate_workflow(offloaded(), read), keeps_changing)
    assert isinstance(error, OffloadedNodesError) and "changed each time" in str(error)
    assert len([r for r in sent if isinstance(r, ArgoServerRequest)]) == HYDRATE_ATTEMPTS

    def replaced(request: ApiRequest) -> Any:
        return offloaded(rv="12", uid="uid-9") if request.path.startswith("/k8s/") else served(rv="11")

    error, _ = drive_both(lambda: hydrate_workflow(offloaded(), read), replaced)
    assert isinstance(error, OffloadedNodesError) and "was replaced (uid uid-9, not uid-1)" in str(error)


# ---------------------------------------------------------------------------- the connection


def test_argo_server_url_and_token_are_kubernetes_extras_validated_and_masked(monkeypatch: pytest.MonkeyPatch,
                                                                              caplog: pytest.LogCaptureFixture
                                                                              ) -> None:
    masked: list[str] = []
    monkeypatch.setattr("airflow_argo_eci.hooks.argo_connection.mask", lambda value: masked.append(value))
    s = parse_connection("c", {"argo_server_url": "https://argo.example.com:2746/", "argo_server_token": "Bearer t0k"})
    assert (s.argo_server_url, s.argo_server_token) == ("https://argo.example.com:2746", "t0k")
    assert "t0k" in masked and "t0k" not in repr(s)
    with pytest.raises(WorkflowSpecError, match=r"extra 'argo_server_url' must be the Argo Server's http\(s\) URL"):
        parse_connection("c", {"argo_server_url": "argo:2746"})
    with pytest.raises(WorkflowSpecError, match=r"'argo_server_token' is set without 'argo_server_url'; set"):
        parse_connection("c", {"argo_server_token": "t0k"})
    with pytest.raises(WorkflowSpecError, match=r"unknown extra 'argo_server_url' for transport 'argo_server' "
                                                r"\(it is only valid with transport 'kubernetes'\)"):
        parse_connection("c", {"transport": "argo_server", "argo_server_url": "https://a"}, host="https://a")
    parse_connection("c", {"argo_server_url": "http://argo:2746", "argo_server_token": "t0k"})
    assert "sent over plain http" in caplog.text


BASE = "https://argo-server.offload.test:2746"


def test_the_kubernetes_transport_sends_it_to_argo_server_url_with_its_token_and_tls() -> None:
    settings = parse_connection("c", {"namespace": NS, "argo_server_url": BASE, "argo_server_token": "srv-token",
                                      "max_retries": 0})
    transport = KubernetesTransport(settings)
    try:
        with respx.mock(base_url=BASE, assert_all_called=True, assert_all_mocked=True) as router:
            router.get("/api/v1/workflows/argo/wf1").respond(200, json=served())
            assert transport.send(hydration_request(offloaded())) == served()
            assert asyncio.run(transport.asend(hydration_request(offloaded()))) == served()
            for call in router.calls:
                assert call.request.headers["Authorization"] == "Bearer srv-token"
                assert Sent.of(call.request) == Sent("GET", "/api/v1/workflows/argo/wf1", [], None)
                assert check_against_openapi(Sent.of(call.request)) == "WorkflowService_GetWorkflow"
        server = transport._argo_server
        assert server.settings.verify_ssl is True and server.settings.host == BASE
        assert server.settings.transport == "argo_server" and server.settings.token == "srv-token"
    finally:
        transport.close()


def test_without_argo_server_url_the_error_names_the_extra() -> None:
    transport = KubernetesTransport(parse_connection("kube-only", {"namespace": NS}))
    with pytest.raises(OffloadedNodesError) as raised:
        transport.send(hydration_request(offloaded()))
    text = str(raised.value)
    assert "status.offloadNodeStatusVersion=fnv:1" in text and "connection 'kube-only'" in text
    assert "set the connection's extra 'argo_server_url'" in text and "'argo_server_token'" in text
    with pytest.raises(OffloadedNodesError, match="argo_server_url"):
        asyncio.run(transport.asend(hydration_request(offloaded())))


# ---------------------------------------------------------------------------- the local cluster


@pytest.fixture
def offloading(one_process_cluster: LocalCluster) -> Iterator[LocalCluster]:
    """The local cluster with ``persistence.nodeStatusOffLoad: true`` and always-offload (Argo's
    ``ALWAYS_OFFLOAD_NODE_STATUS``) for this test (its controller in this process, to set that)."""
    local_cluster = one_process_cluster
    assert local_cluster.store is not None and local_cluster.controller is not None
    store, controller = local_cluster.store, local_cluster.controller
    before = dict(store.get(CONFIGMAPS, ARGO_NAMESPACE, CONTROLLER_CONFIGMAP).get("data") or {})

    def set_data(data: dict[str, str]) -> None:
        store.update(CONFIGMAPS, ARGO_NAMESPACE, CONTROLLER_CONFIGMAP, lambda obj: {**obj, "data": data})

    set_data({**before, "persistence": "nodeStatusOffLoad: true\n"})
    controller.offloading.always = True
    try:
        yield local_cluster
    finally:
        controller.offloading.always = False
        set_data(before)
    assert controller.offloading.enabled is False


def greeting_workflow() -> dict[str, Any]:
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "offload-"},
            "spec": {"entrypoint": "main", "templates": [{
                "name": "main",
                "container": {"image": "alpine:3.20", "command": ["sh", "-c", "echo -n hi > /tmp/greeting"]},
                "outputs": {"parameters": [{"name": "greeting", "valueFrom": {"path": "/tmp/greeting"}}]}}]}}


def with_server(cluster: LocalCluster) -> dict[str, Any]:
    return connection_env(cluster, "kubernetes", argo_server_url=cluster.url, argo_server_token=cluster.token,
                          ca_cert_path=str(cluster.paths.tls_cert))


def finished(wf: dict[str, Any]) -> bool:
    return (wf.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error")


def test_an_offloaded_workflow_is_read_through_the_argo_server(
        offloading: LocalCluster, make_hook: Callable[[dict[str, Any]], ArgoWorkflowsHook]) -> None:
    kube = make_hook(with_server(offloading))
    name = kube.create_workflow(greeting_workflow())["metadata"]["name"]
    stored = wait_for(kube, name, finished, timeout=60)
    # the Kubernetes API returns the object as stored: dehydrated
    status = stored["status"]
    assert status["phase"] == "Succeeded", status
    assert status["offloadNodeStatusVersion"].startswith("fnv:") and "nodes" not in status
    assert "compressedNodes" not in status
    # the Argo Server hydrates it (get and list), as Argo's workflowServer does
    server = make_hook(connection_env(offloading, "argo_server"))
    from_server = server.get_workflow(name)
    assert "offloadNodeStatusVersion" not in from_server["status"]
    assert workflow_pods(from_server) == [(name, name)]
    assert from_server["metadata"]["resourceVersion"] == stored["metadata"]["resourceVersion"]
    listed = [wf for wf in server.list_workflows() if wf["metadata"]["name"] == name]
    assert listed[0]["status"]["nodes"] == from_server["status"]["nodes"]
    # the kubernetes-transport hook hydrates from argo_server_url: one GET of the Argo Server's route
    log = offloading.request_log
    after = log.last_seq
    hydrated = kube.hydrate(stored)
    assert [(e.method, e.path, e.query) for e in log.entries(after)] == [
        ("GET", f"/api/v1/workflows/{NS}/{name}", [])]
    assert hydrated["status"]["nodes"] == from_server["status"]["nodes"]
    assert hydrated["metadata"] == stored["metadata"]
    node = hydrated["status"]["nodes"][name]
    assert node["outputs"]["parameters"][0] == {"name": "greeting", "value": "hi",
                                                "valueFrom": {"path": "/tmp/greeting"}}
    assert asyncio.run(kube.ahydrate(stored)) == hydrated
    # without the extra, the error names it
    bare = make_hook(connection_env(offloading, "kubernetes"))
    with pytest.raises(OffloadedNodesError, match="set the connection's extra 'argo_server_url'"):
        bare.hydrate(bare.get_workflow(name))
    # the offloaded rows go with the workflow
    repository = offloading.controller.offloading.repository  # type: ignore[union-attr]
    uid = stored["metadata"]["uid"]
    assert stored["status"]["offloadNodeStatusVersion"] in repository.versions(uid)
    kube.delete_workflow(name, uid=uid)
    wait_until(lambda: repository.versions(uid) == [])


def wait_until(predicate: Callable[[], bool], timeout: float = 10) -> None:
    import time

    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.05)


def test_the_operator_returns_the_outputs_of_an_offloaded_workflow(
        offloading: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_argo_eci.operators.argo import ArgoWorkflowOperator

    monkeypatch.setenv("AIRFLOW_CONN_ARGO_OFFLOAD", json.dumps(with_server(offloading)))
    monkeypatch.setenv("AIRFLOW_CONN_ARGO_NO_SERVER", json.dumps(connection_env(offloading, "kubernetes")))

    class TI:
        try_number, map_index = 1, -1

        def xcom_push(self, key: str, value: Any) -> None:
            pass

    def operator(task_id: str, conn_id: str) -> ArgoWorkflowOperator:
        with DAG(f"dag_{task_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
            return ArgoWorkflowOperator(task_id=task_id, argo_conn_id=conn_id, workflow=greeting_workflow(),
                                        poll_interval=0.2, get_logs=False)

    result = operator("offloaded_ok", "argo_offload").execute({"ti": TI(), "run_id": "run-offload"})
    assert result["phase"] == "Succeeded"
    assert list(result["node_outputs"].values()) == [{"greeting": "hi"}]
    # the sensor's result reads them the same way
    from airflow_argo_eci.sensors.argo import ArgoWorkflowSensor

    with DAG("dag_offloaded_sensor", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        sensor = ArgoWorkflowSensor(task_id="offloaded_sensor", name=result["name"], namespace=NS,
                                    argo_conn_id="argo_offload", deferrable=False)
    poked = sensor.poke({})
    assert poked.is_done and poked.xcom_value["node_outputs"] == result["node_outputs"]
    with pytest.raises(OffloadedNodesError, match="argo_server_url"):
        operator("offloaded_bare", "argo_no_server").execute({"ti": TI(), "run_id": "run-offload-bare"})


@pytest.mark.parametrize("transport", ["kubernetes", "argo_server"])
def test_retry_reads_the_offloaded_nodes(
        offloading: LocalCluster, make_hook: Callable[[dict[str, Any]], ArgoWorkflowsHook], transport: str) -> None:
    hook = make_hook(with_server(offloading) if transport == "kubernetes" else connection_env(offloading, transport))
    assert offloading.store is not None
    store = offloading.store
    body = greeting_workflow()
    body["spec"]["templates"][0]["container"]["command"] = ["sh", "-c", "exit 3"]
    name = hook.create_workflow(body)["metadata"]["name"]
    failed = wait_for(hook, name, finished, timeout=60)
    assert failed["status"]["phase"] == "Failed"
    assert store.get(WORKFLOWS, NS, name)["status"]["offloadNodeStatusVersion"]  # stored offloaded
    retried = hook.retry_workflow(name)
    assert retried["status"]["phase"] == "Running"
    assert name not in workflow_nodes(retried["status"])  # the failed pod node goes, to run again
    again = wait_for(hook, name, lambda wf: finished(wf) and wf["metadata"]["resourceVersion"] !=
                     retried["metadata"]["resourceVersion"], timeout=60)
    assert again["status"]["phase"] == "Failed"
    assert store.get(WORKFLOWS, NS, name)["status"]["offloadNodeStatusVersion"]  # offloaded again
    nodes = hook.hydrate(again)["status"]["nodes"]
    assert nodes[name]["phase"] == "Failed" and nodes[name]["outputs"]["exitCode"] == "3"
    hook.delete_workflow(name)


def test_an_argo_server_connection_gets_hydrated_workflows_from_the_local_server(
        offloading: LocalCluster, make_hook: Callable[[dict[str, Any]], ArgoWorkflowsHook]) -> None:
    server = make_hook(connection_env(offloading, "argo_server"))
    name = server.create_workflow(greeting_workflow())["metadata"]["name"]
    wf = wait_for(server, name, finished, timeout=60)
    assert wf["status"]["phase"] == "Succeeded" and workflow_pods(wf) == [(name, name)]
    assert server.hydrate(wf) is wf  # already hydrated: no request
    server.delete_workflow(name)




def test_artifacts_of_an_offloaded_workflow_download_through_the_argo_server(
        offloading: LocalCluster, make_hook: Callable[[dict[str, Any]], ArgoWorkflowsHook], tmp_path: Any) -> None:
    server = make_hook(connection_env(offloading, "argo_server"))
    body = greeting_workflow()
    template = body["spec"]["templates"][0]
    template["outputs"] = {"artifacts": [{"name": "report", "path": "/tmp/greeting", "archive": {"none": {}}}]}
    kube = make_hook(with_server(offloading))
    name = kube.create_workflow(body)["metadata"]["name"]
    stored = wait_for(kube, name, finished, timeout=60)
    assert stored["status"]["phase"] == "Succeeded" and stored["status"]["offloadNodeStatusVersion"]
    path = server.download_artifact(name, name, "report", tmp_path / "report.txt")
    assert path.read_text() == "hi"
    kube.delete_workflow(name)


def test_resume_over_kubernetes_writes_the_hydrated_nodes_back(
        offloading: LocalCluster, make_hook: Callable[[dict[str, Any]], ArgoWorkflowsHook]) -> None:
    kube = make_hook(with_server(offloading))
    body = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "offload-wait-"},
            "spec": {"entrypoint": "main", "templates": [
                {"name": "main", "steps": [[{"name": "approve", "template": "approve"}]]},
                {"name": "approve", "suspend": {}}]}}
    name = kube.create_workflow(body)["metadata"]["name"]

    def suspended(wf: dict[str, Any]) -> bool:
        nodes = kube.hydrate(wf)["status"].get("nodes") or {} if wf.get("status") else {}
        return any(n.get("type") == "Suspend" and n.get("phase") == "Running" for n in nodes.values())

    waiting = wait_for(kube, name, suspended, timeout=60)
    assert waiting["status"]["offloadNodeStatusVersion"] and "nodes" not in waiting["status"]
    kube.resume_workflow(name)
    done = wait_for(kube, name, finished, timeout=60)
    assert done["status"]["phase"] == "Succeeded" and done["status"]["offloadNodeStatusVersion"]
    approve = [n for n in kube.hydrate(done)["status"]["nodes"].values() if n.get("displayName") == "approve"]
    assert approve[0]["phase"] == "Succeeded"
    kube.delete_workflow(name)
