"""Table responses, the OpenAPI documents and strategic merge patches, through the ``kubernetes``
client's HTTP layer and on the pure functions."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from airflow_argo_eci.local.api.openapi import V2_PROTOBUF
from airflow_argo_eci.local.api.patch import PatchError, strategic_merge_patch
from airflow_argo_eci.local.api.resources import PODS, WORKFLOWS
from airflow_argo_eci.local.api.tables import build_table, human_duration, wants_table
from tests.local.api.apiserver_helpers import ApiServer

TABLE = ("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,"
         "application/json")


@pytest.fixture(scope="module")
def kclient(api_server: ApiServer) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(api_server.kubeconfig))
    yield api
    api.close()


def _get(api: client.ApiClient, path: str, accept: str = "application/json", **query: str) -> Any:
    response = api.call_api(path, "GET", query_params=list(query.items()), header_params={"Accept": accept},
                            auth_settings=["BearerToken"], _preload_content=False)
    return json.loads(response.data)


def test_table_of_workflows(kclient: client.ApiClient, api_server: ApiServer) -> None:
    api_server.store.create(WORKFLOWS, "argo", {"metadata": {"name": "t-wf", "labels": {"a": "b"}}, "spec": {},
                                                "status": {"phase": "Failed", "message": "boom",
                                                           "startedAt": "2020-01-01T00:00:00Z"}})
    table = _get(kclient, "/apis/argoproj.io/v1alpha1/namespaces/argo/workflows", TABLE)
    assert table["kind"] == "Table" and table["apiVersion"] == "meta.k8s.io/v1"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Status", "Age", "Message"]
    assert table["metadata"]["resourceVersion"]
    row = next(r for r in table["rows"] if r["cells"][0] == "t-wf")
    assert row["cells"][1] == "Failed" and row["cells"][3] == "boom"
    assert re.fullmatch(r"[0-9]+y([0-9]+d)?", row["cells"][2]), row["cells"]
    assert row["object"]["kind"] == "PartialObjectMetadata"
    assert row["object"]["metadata"]["labels"] == {"a": "b"}
    full = _get(kclient, "/apis/argoproj.io/v1alpha1/namespaces/argo/workflows/t-wf", TABLE, includeObject="Object")
    assert full["rows"][0]["object"]["status"]["phase"] == "Failed"
    bare = _get(kclient, "/apis/argoproj.io/v1alpha1/namespaces/argo/workflows/t-wf", TABLE, includeObject="None")
    assert "object" not in bare["rows"][0]
    # without the Table media type the object comes back as before
    assert _get(kclient, "/apis/argoproj.io/v1alpha1/namespaces/argo/workflows/t-wf")["kind"] == "Workflow"


def test_table_bad_include_object(kclient: client.ApiClient) -> None:
    with pytest.raises(ApiException) as err:
        kclient.call_api("/api/v1/namespaces/argo/pods", "GET", query_params=[("includeObject", "All")],
                         header_params={"Accept": TABLE}, auth_settings=["BearerToken"], _preload_content=False)
    assert err.value.status == 400 and "includeObject" in err.value.body


def test_pod_status_column() -> None:
    base: dict[str, Any] = {"metadata": {"name": "p", "creationTimestamp": "2020-01-01T00:00:00Z"},
                            "spec": {"containers": [{"name": "main"}], "initContainers": [{"name": "init"}]}}
    waiting = {**base, "status": {"phase": "Pending", "initContainerStatuses": [
        {"name": "init", "state": {"waiting": {"reason": "PodInitializing"}}}]}}
    done = {**base, "status": {"phase": "Succeeded", "initContainerStatuses": [
        {"name": "init", "state": {"terminated": {"exitCode": 0}}}], "containerStatuses": [
        {"name": "main", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}}
    going = {**done, "metadata": {**base["metadata"], "deletionTimestamp": "2020-01-01T00:00:00Z"}}
    table = build_table("", PODS.plural, [waiting, done, going], now=1577836800.0 + 45)
    assert [r["cells"][2] for r in table["rows"]] == ["Init:0/1", "Completed", "Terminating"]
    assert [r["cells"][4] for r in table["rows"]] == ["45s", "45s", "45s"]


def test_human_duration_and_accept() -> None:
    assert [human_duration(s) for s in (0, 119, 150, 600, 3 * 3600 + 60, 30 * 3600, 3 * 86400 + 7200,
                                        100 * 86400, 3 * 365 * 86400)] == \
        ["0s", "119s", "2m30s", "10m", "3h1m", "30h", "3d2h", "100d", "3y"]
    assert human_duration(-5) == "<invalid>"
    assert wants_table(TABLE)
    assert not wants_table("application/json")
    assert not wants_table("application/json;as=Table;v=v1beta1;g=meta.k8s.io")


def test_openapi_documents(kclient: client.ApiClient) -> None:
    index = _get(kclient, "/openapi/v3")
    assert set(index["paths"]) >= {"api/v1", "apis/argoproj.io/v1alpha1"}
    url = index["paths"]["apis/argoproj.io/v1alpha1"]["serverRelativeURL"]
    assert url.startswith("/openapi/v3/apis/argoproj.io/v1alpha1?hash=")
    doc = _get(kclient, url.split("?")[0])
    assert doc["openapi"].startswith("3.")
    item = doc["paths"]["/apis/argoproj.io/v1alpha1/namespaces/{namespace}/workflows/{name}"]
    assert item["patch"]["x-kubernetes-group-version-kind"] == {"group": "argoproj.io", "kind": "Workflow",
                                                                "version": "v1alpha1"}
    assert {"name": "fieldValidation", "in": "query"}.items() <= next(
        p for p in item["patch"]["parameters"] if p["name"] == "fieldValidation").items()
    schema = doc["components"]["schemas"]["io.argoproj.workflow.v1alpha1.Workflow"]
    assert schema["x-kubernetes-preserve-unknown-fields"] is True
    core = _get(kclient, "/openapi/v3/api/v1")
    assert "io.k8s.api.core.v1.Pod" in core["components"]["schemas"]
    assert "/api/v1/namespaces/{namespace}/pods" in core["paths"]
    v2 = _get(kclient, "/openapi/v2")
    assert v2["swagger"] == "2.0" and "io.k8s.api.core.v1.ConfigMap" in v2["definitions"]
    assert "x-kubernetes-group-version-kind" not in v2["definitions"]["io.k8s.api.core.v1.ConfigMap"]
    proto = kclient.call_api("/openapi/v2", "GET", header_params={"Accept": V2_PROTOBUF},
                             auth_settings=["BearerToken"], _preload_content=False)
    assert proto.headers["Content-Type"] == "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
    assert proto.data.startswith(b"\x0a\x032.0")  # field 1 (swagger), length 3, "2.0"
    assert b"io.argoproj.workflow.v1alpha1.Workflow" in proto.data
    with pytest.raises(ApiException) as err:
        kclient.call_api("/openapi/v3/apis/nope.example/v1", "GET", auth_settings=["BearerToken"],
                         _preload_content=False)
    assert err.value.status == 404


def test_strategic_merge_patch_of_a_pod_spec(kclient: client.ApiClient) -> None:
    core = client.CoreV1Api(kclient)
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="smp-pod", labels={"a": "1"}),
                       spec=client.V1PodSpec(containers=[
                           client.V1Container(name="main", image="alpine", env=[client.V1EnvVar(name="A", value="1")]),
                           client.V1Container(name="side", image="busybox")]))
    core.create_namespaced_pod("argo", pod)
    # the python client sends a strategic merge patch for a dict body
    patched = core.patch_namespaced_pod("smp-pod", "argo", {"spec": {"containers": [
        {"name": "main", "env": [{"name": "B", "value": "2"}]}]}, "metadata": {"labels": {"b": "2"}}})
    containers = {c.name: c for c in patched.spec.containers}
    assert set(containers) == {"main", "side"}
    assert [(e.name, e.value) for e in containers["main"].env] == [("A", "1"), ("B", "2")]
    assert patched.metadata.labels == {"a": "1", "b": "2"}


def test_strategic_merge_patch_directives() -> None:
    doc = {"spec": {"containers": [{"name": "a", "image": "x"}, {"name": "b", "image": "y"}],
                    "args": ["1", "2"]}, "metadata": {"finalizers": ["f1"]}}
    out = strategic_merge_patch(doc, {
        "spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}],
                 "containers": [{"name": "c", "image": "z"}, {"name": "b", "$patch": "delete"}],
                 "args": ["3"]},
        "metadata": {"finalizers": ["f2"]},
    })
    assert out["spec"]["containers"] == [{"name": "c", "image": "z"}, {"name": "a", "image": "x"}]
    assert out["spec"]["args"] == ["3"]
    assert out["metadata"]["finalizers"] == ["f1", "f2"]
    out = strategic_merge_patch(doc, {"metadata": {"$deleteFromPrimitiveList/finalizers": ["f1"]},
                                      "spec": {"$patch": "replace", "args": []}})
    assert out == {"spec": {"args": []}, "metadata": {"finalizers": []}}
    out = strategic_merge_patch({"s": {"a": 1, "b": 2}}, {"s": {"$retainKeys": ["a", "c"], "c": 3}})
    assert out == {"s": {"a": 1, "c": 3}}
    assert doc["spec"]["containers"][1] == {"name": "b", "image": "y"}  # inputs untouched
    with pytest.raises(PatchError, match="unknown strategic merge patch directive"):
        strategic_merge_patch(doc, {"$patch": "explode"})
