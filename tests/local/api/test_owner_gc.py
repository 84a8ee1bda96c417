"""The garbage collector of the local API server through the real ``kubernetes`` client: deleting an
owner deletes the objects whose ``ownerReferences`` name it (background, recursively), orphans them
(``Orphan``), or deletes them first (``Foreground``); bad ``DeleteOptions`` are refused naming the field."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from airflow_argo_eci.local.api.resources import CONFIGMAPS, PODS, WORKFLOWS
from airflow_argo_eci.local.api.store import Store
from tests.local.api.apiserver_helpers import ApiServer

NS = "argo"
G, V = "argoproj.io", "v1alpha1"


@pytest.fixture(scope="module")
def kclient(api_server: ApiServer) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=str(api_server.kubeconfig))
    yield api
    api.close()


@pytest.fixture(scope="module")
def core(kclient: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(kclient)


def _ref(owner: Any, kind: str = "ConfigMap", api_version: str = "v1",
         block: bool | None = None) -> client.V1OwnerReference:
    meta = owner.metadata if hasattr(owner, "metadata") else client.V1ObjectMeta(**{
        "name": owner["metadata"]["name"], "uid": owner["metadata"]["uid"]})
    return client.V1OwnerReference(api_version=api_version, kind=kind, name=meta.name, uid=meta.uid,
                                   block_owner_deletion=block)


def _cm(core: client.CoreV1Api, name: str, *owners: client.V1OwnerReference,
        finalizers: list[str] | None = None) -> client.V1ConfigMap:
    meta = client.V1ObjectMeta(name=name, owner_references=list(owners) or None, finalizers=finalizers)
    return core.create_namespaced_config_map(NS, client.V1ConfigMap(metadata=meta))


def _exists(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespaced_config_map(name, NS)
    except ApiException as exc:
        assert exc.status == 404
        return False
    return True


def test_background_deletes_dependents_recursively(core: client.CoreV1Api) -> None:
    root = _cm(core, "gc-root")
    child = _cm(core, "gc-child", _ref(root))
    _cm(core, "gc-grandchild", _ref(child))
    other = _cm(core, "gc-other")
    shared = _cm(core, "gc-shared", _ref(root), _ref(other))
    rv = shared.metadata.resource_version
    core.delete_namespaced_config_map("gc-root", NS)
    assert not _exists(core, "gc-root") and not _exists(core, "gc-child") and not _exists(core, "gc-grandchild")
    # a dependent with another owner that still exists stays, without the reference to the gone one
    kept = core.read_namespaced_config_map("gc-shared", NS)
    assert [r.name for r in kept.metadata.owner_references] == ["gc-other"]
    assert int(kept.metadata.resource_version) > int(rv)
    core.delete_namespaced_config_map("gc-other", NS)
    assert not _exists(core, "gc-shared")


def test_a_reference_whose_uid_differs_is_not_followed(core: client.CoreV1Api) -> None:
    owner = _cm(core, "gc-uid-owner")
    stranger = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name="gc-uid-owner", uid="not-its-uid")
    _cm(core, "gc-uid-dependent", stranger)
    core.delete_namespaced_config_map("gc-uid-owner", NS)
    assert owner is not None and _exists(core, "gc-uid-dependent")
    core.delete_namespaced_config_map("gc-uid-dependent", NS)


def test_orphan_keeps_dependents_and_drops_their_reference(core: client.CoreV1Api) -> None:
    owner = _cm(core, "gc-orphan-owner")
    _cm(core, "gc-orphan-a", _ref(owner))
    core.delete_namespaced_config_map("gc-orphan-owner", NS, propagation_policy="Orphan")
    assert not _exists(core, "gc-orphan-owner")
    assert core.read_namespaced_config_map("gc-orphan-a", NS).metadata.owner_references is None
    owner = _cm(core, "gc-orphan-owner2")
    _cm(core, "gc-orphan-b", _ref(owner))
    core.delete_namespaced_config_map("gc-orphan-owner2", NS, body=client.V1DeleteOptions(orphan_dependents=True))
    assert core.read_namespaced_config_map("gc-orphan-b", NS).metadata.owner_references is None


def test_foreground_waits_for_blocking_dependents(core: client.CoreV1Api) -> None:
    owner = _cm(core, "gc-fg-owner")
    rv = owner.metadata.resource_version
    _cm(core, "gc-fg-held", _ref(owner, block=True), finalizers=["example.com/hold"])
    _cm(core, "gc-fg-free", _ref(owner))
    core.delete_namespaced_config_map("gc-fg-owner", NS, propagation_policy="Foreground")
    held_owner = core.read_namespaced_config_map("gc-fg-owner", NS)
    assert held_owner.metadata.finalizers == ["foregroundDeletion"]
    assert held_owner.metadata.deletion_timestamp is not None
    assert not _exists(core, "gc-fg-free")
    assert core.read_namespaced_config_map("gc-fg-held", NS).metadata.deletion_timestamp is not None
    core.patch_namespaced_config_map("gc-fg-held", NS, {"metadata": {"finalizers": None}})
    assert not _exists(core, "gc-fg-held") and not _exists(core, "gc-fg-owner")
    events = [(e["type"], e["object"].metadata.name) for e in watch.Watch().stream(
        core.list_namespaced_config_map, NS, resource_version=rv, timeout_seconds=1)
        if e["object"].metadata.name.startswith("gc-fg-")]
    # the owner is marked first, its dependents go, and it goes last
    assert events[events.index(("MODIFIED", "gc-fg-owner")):] == [
        ("MODIFIED", "gc-fg-owner"), ("DELETED", "gc-fg-free"), ("MODIFIED", "gc-fg-held"),
        ("DELETED", "gc-fg-held"), ("DELETED", "gc-fg-owner")]


def test_foreground_without_blockers_deletes_at_once(core: client.CoreV1Api) -> None:
    owner = _cm(core, "gc-fg2-owner")
    child = _cm(core, "gc-fg2-child", _ref(owner, block=True))
    _cm(core, "gc-fg2-grandchild", _ref(child, block=True))
    core.delete_namespaced_config_map("gc-fg2-owner", NS, propagation_policy="Foreground")
    assert not any(_exists(core, n) for n in ("gc-fg2-owner", "gc-fg2-child", "gc-fg2-grandchild"))


def test_workflow_owned_objects_of_other_kinds_go_with_it(kclient: client.ApiClient, api_server: ApiServer) -> None:
    custom = client.CustomObjectsApi(kclient)
    wf = custom.create_namespaced_custom_object(G, V, NS, "workflows", {
        "apiVersion": f"{G}/{V}", "kind": "Workflow", "metadata": {"name": "gc-wf"}, "spec": {"entrypoint": "m"}})
    owner = _ref(wf, kind="Workflow", api_version=f"{G}/{V}", block=True)
    core = client.CoreV1Api(kclient)
    _cm(core, "gc-wf-cm", owner)
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="gc-wf-pod", owner_references=[owner]),
                       spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="alpine")]))
    core.create_namespaced_pod(NS, pod)
    custom.delete_namespaced_custom_object(G, V, NS, "workflows", "gc-wf")
    assert api_server.store.find(WORKFLOWS, NS, "gc-wf") is None
    assert api_server.store.find(CONFIGMAPS, NS, "gc-wf-cm") is None
    assert api_server.store.find(PODS, NS, "gc-wf-pod") is None


def test_a_running_dependent_pod_is_deleted_gracefully(core: client.CoreV1Api) -> None:
    owner = _cm(core, "gc-pod-owner")
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="gc-pod", owner_references=[_ref(owner, block=True)]),
                       spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="alpine")]))
    created = core.create_namespaced_pod(NS, pod)
    created.status.phase = "Running"
    core.replace_namespaced_pod_status("gc-pod", NS, created)
    core.delete_namespaced_config_map("gc-pod-owner", NS, propagation_policy="Foreground")
    waiting = core.read_namespaced_pod("gc-pod", NS)
    assert waiting.metadata.deletion_grace_period_seconds == 30
    assert core.read_namespaced_config_map("gc-pod-owner", NS).metadata.finalizers == ["foregroundDeletion"]
    waiting.status.phase = "Failed"  # the process ended
    core.replace_namespaced_pod_status("gc-pod", NS, waiting)
    assert not _exists(core, "gc-pod-owner")


def test_bad_delete_options_are_refused(core: client.CoreV1Api) -> None:
    _cm(core, "gc-bad")
    with pytest.raises(ApiException) as caught:
        core.delete_namespaced_config_map("gc-bad", NS, propagation_policy="Sideways")
    assert caught.value.status == 422
    status = json.loads(caught.value.body)
    assert status["details"]["causes"][0]["field"] == "propagationPolicy"
    assert status["message"] == ('DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: '
                                 '"Sideways": supported values: "Foreground", "Background", "Orphan", "nil"')
    with pytest.raises(ApiException) as caught:
        core.delete_namespaced_config_map("gc-bad", NS, body=client.V1DeleteOptions(
            orphan_dependents=True, propagation_policy="Background"))
    assert caught.value.status == 422 and "orphanDependents and deletionPropagation cannot be both set" in \
        caught.value.body
    for body in ({"propagationPolicy": 3}, {"orphanDependents": "yes"}):
        with pytest.raises(ApiException) as caught:
            core.delete_namespaced_config_map("gc-bad", NS, body=body)
        assert caught.value.status == 400 and next(iter(body)) in caught.value.body
    assert _exists(core, "gc-bad")
    core.delete_collection_namespaced_config_map(NS, field_selector="metadata.name=gc-bad",
                                                 propagation_policy="Orphan")
    assert not _exists(core, "gc-bad")


def test_an_older_database_gets_its_index_filled(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    owner = store.create(CONFIGMAPS, NS, {"metadata": {"name": "o"}})
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "o", "uid": owner["metadata"]["uid"]}
    store.create(CONFIGMAPS, NS, {"metadata": {"name": "d", "ownerReferences": [ref]}})
    store.close()
    with sqlite3.connect(tmp_path / "db.sqlite") as conn:  # as a database from before the index
        conn.execute("DROP TABLE owner_refs")
        conn.execute("DELETE FROM meta WHERE key='owner_refs_filled'")
    reopened = Store(tmp_path / "db.sqlite")
    try:
        reopened.delete(CONFIGMAPS, NS, "o")
        assert reopened.find(CONFIGMAPS, NS, "d") is None
    finally:
        reopened.close()


RESOURCE_WF = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: gc-owned-}
spec:
  entrypoint: main
  templates:
  - name: main
    resource:
      action: create
      setOwnerReference: true
      manifest: |
        apiVersion: v1
        kind: ConfigMap
        metadata: {generateName: gc-made-by-wf-}
        data: {colour: blue}
    outputs:
      parameters:
      - name: cm-name
        valueFrom: {jsonPath: '{.metadata.name}'}
"""


def test_a_resource_template_object_goes_with_its_workflow(kube_api_client: client.ApiClient) -> None:
    """``setOwnerReference: true`` objects are cleaned up with the workflow on the local cluster."""
    from tests.local.argo.clusterwf import NAMESPACE, leaf, run

    wf = run(kube_api_client, RESOURCE_WF)
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    made = {p["name"]: p["value"] for p in leaf(wf, "main")["outputs"]["parameters"]}["cm-name"]
    core = client.CoreV1Api(kube_api_client)
    assert core.read_namespaced_config_map(made, NAMESPACE).metadata.owner_references[0].uid == wf["metadata"]["uid"]
    client.CustomObjectsApi(kube_api_client).delete_namespaced_custom_object(
        G, V, NAMESPACE, "workflows", wf["metadata"]["name"])
    with pytest.raises(ApiException) as caught:
        core.read_namespaced_config_map(made, NAMESPACE)
    assert caught.value.status == 404


def test_a_dependent_reached_twice_is_deleted_once(tmp_path: Path) -> None:
    """``b`` depends on ``o`` and on ``a`` (itself a dependent of ``o``): collecting ``a`` takes ``b``,
    and ``o``'s collection then skips it, so a watch sees one DELETED per object."""
    store = Store(tmp_path / "db.sqlite")
    try:
        events: list[tuple[str, str]] = []
        store.add_listener(lambda event, rt, obj: events.append((event, obj["metadata"]["name"])))

        def ref(owner: dict[str, Any]) -> dict[str, Any]:
            return {"apiVersion": "v1", "kind": "ConfigMap", "name": owner["metadata"]["name"],
                    "uid": owner["metadata"]["uid"]}

        o = store.create(CONFIGMAPS, NS, {"metadata": {"name": "o"}})
        a = store.create(CONFIGMAPS, NS, {"metadata": {"name": "a", "ownerReferences": [ref(o)]}})
        store.create(CONFIGMAPS, NS, {"metadata": {"name": "b", "ownerReferences": [ref(o), ref(a)]}})
        events.clear()
        store.delete(CONFIGMAPS, NS, "o")
        assert sorted(events) == [("DELETED", "a"), ("DELETED", "b"), ("DELETED", "o")]
        assert events[0] == ("DELETED", "o")
    finally:
        store.close()
