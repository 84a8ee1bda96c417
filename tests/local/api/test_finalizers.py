"""Finalizers and graceful deletion through the ``kubernetes`` client: a DELETE of an object with
``metadata.finalizers`` sets ``deletionTimestamp`` and keeps it until its finalizers are removed."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from airflow_argo_eci.conventions import FINALIZER_ARTIFACT_GC
from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import CONFIGMAPS, NAMESPACES, PODS, WORKFLOWS
from tests.local.api.apiserver_helpers import ApiServer

G, V, NS = "argoproj.io", "v1alpha1", "argo"


@pytest.fixture(scope="module")
def kclient(api_server: ApiServer) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(api_server.kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="module")
def custom(kclient: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(kclient)


@pytest.fixture(scope="module")
def core(kclient: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kclient)


def _workflow(name: str, finalizers: list[str]) -> dict[str, Any]:
    return {"apiVersion": f"{G}/{V}", "kind": "Workflow",
            "metadata": {"name": name, "finalizers": finalizers}, "spec": {"entrypoint": "main"}}


def _gone(api_server: ApiServer, rt: Any, ns: str | None, name: str) -> bool:
    try:
        api_server.store.get(rt, ns, name)
    except ApiError as exc:
        return exc.code == 404
    return False


def test_delete_waits_for_finalizers_removed_by_merge_patch(
    custom: client.CustomObjectsApi, api_server: ApiServer
) -> None:
    custom.create_namespaced_custom_object(G, V, NS, "workflows", _workflow("fin-a", [FINALIZER_ARTIFACT_GC]))
    marked = custom.delete_namespaced_custom_object(G, V, NS, "workflows", "fin-a")
    assert marked["metadata"]["deletionTimestamp"]
    assert marked["metadata"]["deletionGracePeriodSeconds"] == 0
    held = custom.get_namespaced_custom_object(G, V, NS, "workflows", "fin-a")
    assert held["metadata"]["finalizers"] == [FINALIZER_ARTIFACT_GC]
    stamp = held["metadata"]["deletionTimestamp"]
    # deleting again changes nothing
    again = custom.delete_namespaced_custom_object(G, V, NS, "workflows", "fin-a")
    assert again["metadata"]["deletionTimestamp"] == stamp
    assert again["metadata"]["resourceVersion"] == held["metadata"]["resourceVersion"]
    # a write cannot clear the deletion mark
    meta_patch = {"metadata": {"deletionTimestamp": None, "labels": {"x": "y"}}}
    patched = custom.patch_namespaced_custom_object(G, V, NS, "workflows", "fin-a", meta_patch)
    assert patched["metadata"]["deletionTimestamp"] == stamp
    custom.patch_namespaced_custom_object(G, V, NS, "workflows", "fin-a", {"metadata": {"finalizers": None}})
    assert _gone(api_server, WORKFLOWS, NS, "fin-a")


def test_put_and_internal_update_complete_the_delete(core: client.CoreV1Api, api_server: ApiServer) -> None:
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="fin-b", finalizers=["a.example/x", "b.example/y"]))
    core.create_namespaced_config_map(NS, body)
    core.delete_namespaced_config_map("fin-b", NS)
    current = core.read_namespaced_config_map("fin-b", NS)
    current.metadata.finalizers = ["b.example/y"]
    after = core.replace_namespaced_config_map("fin-b", NS, current)
    assert after.metadata.deletion_timestamp is not None and after.metadata.finalizers == ["b.example/y"]
    # the controller's own read-modify-write completes it too
    def drop_finalizers(cm: dict[str, Any]) -> None:
        del cm["metadata"]["finalizers"]

    api_server.store.update(CONFIGMAPS, NS, "fin-b", drop_finalizers)
    assert _gone(api_server, CONFIGMAPS, NS, "fin-b")


def test_no_new_finalizer_on_an_object_being_deleted(core: client.CoreV1Api) -> None:
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="fin-c", finalizers=["a.example/x"]))
    core.create_namespaced_config_map(NS, body)
    core.delete_namespaced_config_map("fin-c", NS)
    with pytest.raises(ApiException) as err:
        core.patch_namespaced_config_map("fin-c", NS, {"metadata": {"finalizers": ["a.example/x", "new.example/z"]}})
    assert err.value.status == 422
    assert "metadata.finalizers" in err.value.body and "no new finalizers" in err.value.body
    core.patch_namespaced_config_map("fin-c", NS, [{"op": "remove", "path": "/metadata/finalizers"}])


def test_watch_sees_modified_then_deleted(core: client.CoreV1Api, api_server: ApiServer) -> None:
    body = client.V1ConfigMap(metadata=client.V1ObjectMeta(name="fin-d", finalizers=["a.example/x"]))
    rv = core.create_namespaced_config_map(NS, body).metadata.resource_version
    core.delete_namespaced_config_map("fin-d", NS)
    core.patch_namespaced_config_map("fin-d", NS, {"metadata": {"finalizers": None}})
    events = []
    for event in watch.Watch().stream(core.list_namespaced_config_map, NS, resource_version=rv,
                                      field_selector="metadata.name=fin-d", timeout_seconds=2):
        events.append((event["type"], event["object"].metadata.deletion_timestamp is not None))
        if event["type"] == "DELETED":
            break
    assert events == [("MODIFIED", True), ("DELETED", True)]


def test_namespace_terminates_until_its_finalized_objects_are_gone(
    core: client.CoreV1Api, api_server: ApiServer
) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="fin-ns")))
    core.create_namespaced_config_map("fin-ns", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="plain")))
    core.create_namespaced_config_map(
        "fin-ns", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="held", finalizers=["a.example/x"]))
    )
    core.delete_namespace("fin-ns")
    ns = core.read_namespace("fin-ns")
    assert ns.status.phase == "Terminating" and ns.metadata.deletion_timestamp is not None
    assert _gone(api_server, CONFIGMAPS, "fin-ns", "plain")
    assert core.read_namespaced_config_map("held", "fin-ns").metadata.deletion_timestamp is not None
    with pytest.raises(ApiException) as err:
        core.create_namespaced_config_map("fin-ns", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="late")))
    assert err.value.status == 403 and "being terminated" in err.value.body
    core.patch_namespaced_config_map("held", "fin-ns", {"metadata": {"finalizers": None}})
    assert _gone(api_server, CONFIGMAPS, "fin-ns", "held")
    assert _gone(api_server, NAMESPACES, None, "fin-ns")


def test_pod_delete_records_the_grace_period(core: client.CoreV1Api, api_server: ApiServer) -> None:
    seen: list[dict[str, Any]] = []
    api_server.store.add_listener(
        lambda event, rt, obj: seen.append(obj) if event == "DELETED" and rt is PODS else None
    )
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="fin-pod"),
                       spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="alpine")]))
    core.create_namespaced_pod(NS, pod)
    core.delete_namespaced_pod("fin-pod", NS, grace_period_seconds=5)
    assert _gone(api_server, PODS, NS, "fin-pod")
    gone = [obj for obj in seen if obj["metadata"]["name"] == "fin-pod"]
    assert gone and gone[0]["metadata"]["deletionGracePeriodSeconds"] == 5
    assert gone[0]["metadata"]["deletionTimestamp"]


def test_bad_grace_period_is_refused(core: client.CoreV1Api) -> None:
    core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="fin-e")))
    with pytest.raises(ApiException) as err:
        core.delete_namespaced_config_map("fin-e", NS, body={"gracePeriodSeconds": -3})
    assert err.value.status == 400 and "gracePeriodSeconds" in err.value.body
