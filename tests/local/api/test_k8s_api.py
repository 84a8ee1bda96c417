"""The Kubernetes API of the local cluster, driven by the official ``kubernetes`` client."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

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


def workflow(name: str = "", **labels: str) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name} if name else {"generateName": "wf-"}
    if labels:
        meta["labels"] = labels
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Workflow",
        "metadata": meta,
        "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "alpine"}}]},
    }


def cm(name: str, ns: str = NS, **labels: str) -> client.V1ConfigMap:
    return client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=name, namespace=ns, labels=labels or None), data={"k": name}
    )


def test_workflow_crud(custom: client.CustomObjectsApi) -> None:
    created = custom.create_namespaced_custom_object(G, V, NS, "workflows", workflow())
    name = created["metadata"]["name"]
    assert name.startswith("wf-") and len(name) == 8
    assert created["metadata"]["namespace"] == NS and created["metadata"]["uid"]

    got = custom.get_namespaced_custom_object(G, V, NS, "workflows", name)
    assert got == created

    listed = custom.list_namespaced_custom_object(G, V, NS, "workflows")
    assert listed["kind"] == "WorkflowList" and listed["apiVersion"] == f"{G}/{V}"
    assert name in [i["metadata"]["name"] for i in listed["items"]]
    assert int(listed["metadata"]["resourceVersion"]) >= int(created["metadata"]["resourceVersion"])

    got["spec"]["entrypoint"] = "other"
    replaced = custom.replace_namespaced_custom_object(G, V, NS, "workflows", name, got)
    assert replaced["spec"]["entrypoint"] == "other" and replaced["metadata"]["generation"] == 2

    merged = custom.patch_namespaced_custom_object(
        G, V, NS, "workflows", name, {"metadata": {"labels": {"team": "a"}}}
    )
    assert merged["metadata"]["labels"] == {"team": "a"}
    jsonp = custom.patch_namespaced_custom_object(
        G,
        V,
        NS,
        "workflows",
        name,
        [{"op": "replace", "path": "/spec/entrypoint", "value": "third"}],
        _content_type="application/json-patch+json",
    )
    assert jsonp["spec"]["entrypoint"] == "third" and jsonp["metadata"]["labels"] == {"team": "a"}

    status = custom.patch_namespaced_custom_object_status(
        G, V, NS, "workflows", name, {"status": {"phase": "Running"}}
    )
    assert status["status"] == {"phase": "Running"}
    assert custom.get_namespaced_custom_object_status(G, V, NS, "workflows", name)["status"] == {
        "phase": "Running"
    }

    everywhere = custom.list_cluster_custom_object(G, V, "workflows")
    assert name in [i["metadata"]["name"] for i in everywhere["items"]]

    deleted = custom.delete_namespaced_custom_object(G, V, NS, "workflows", name)
    assert deleted["metadata"]["name"] == name
    with pytest.raises(ApiException) as e:
        custom.get_namespaced_custom_object(G, V, NS, "workflows", name)
    assert e.value.status == 404
    assert json.loads(e.value.body) == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": f'workflows.argoproj.io "{name}" not found',
        "reason": "NotFound",
        "code": 404,
        "details": {"name": name, "group": G, "kind": "workflows"},
    }


def test_conflicts(custom: client.CustomObjectsApi) -> None:
    first = custom.create_namespaced_custom_object(G, V, NS, "workflows", workflow("dup"))
    with pytest.raises(ApiException) as e:
        custom.create_namespaced_custom_object(G, V, NS, "workflows", workflow("dup"))
    assert e.value.status == 409 and json.loads(e.value.body)["reason"] == "AlreadyExists"
    custom.patch_namespaced_custom_object(G, V, NS, "workflows", "dup", {"spec": {"x": 1}})
    with pytest.raises(ApiException) as e:
        custom.replace_namespaced_custom_object(G, V, NS, "workflows", "dup", first)  # stale rv
    assert e.value.status == 409 and json.loads(e.value.body)["reason"] == "Conflict"


def test_invalid_bodies(api_server: ApiServer) -> None:
    headers = {"Authorization": f"Bearer {api_server.token}"}
    base = f"{api_server.url}/apis/{G}/{V}/namespaces/{NS}/workflows"
    with httpx.Client(headers=headers) as http:
        r = http.post(base, json={"kind": "Pod", "metadata": {"name": "x"}})
        assert r.status_code == 422
        body = r.json()
        assert body["reason"] == "Invalid" and body["details"]["causes"][0]["field"] == "kind"
        r = http.post(base, json={"metadata": {}})
        assert r.status_code == 422 and r.json()["details"]["causes"][0]["field"] == "metadata.name"
        r = http.post(base, content=b"{not json", headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and r.json()["reason"] == "BadRequest"
        http.post(base, json=workflow("named"))
        r = http.put(f"{base}/named", json=workflow("other-name"))
        assert r.status_code == 422 and r.json()["details"]["causes"][0]["field"] == "metadata.name"
        r = http.patch(
            f"{base}/named", json={"a": 1}, headers={"Content-Type": "application/apply-patch+yaml"}
        )
        assert r.status_code == 415 and "server-side apply" in r.json()["message"]
        r = http.post(f"{base}/named", json={})
        assert r.status_code == 405 and r.json()["reason"] == "MethodNotAllowed"
        r = http.get(f"{api_server.url}/apis/{G}/{V}/workflows", params={"labelSelector": "a in (b"})
        assert r.status_code == 400 and "unable to parse" in r.json()["message"]
        r = http.get(f"{api_server.url}/apis/{G}/{V}/nonexistent")
        assert r.status_code == 404 and r.json()["kind"] == "Status"


def test_unauthorized(api_server: ApiServer) -> None:
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": api_server.token}):
        r = httpx.get(f"{api_server.url}/api/v1/namespaces", headers=headers)
        assert r.status_code == 401
        assert r.json() == {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": "Unauthorized",
            "reason": "Unauthorized",
            "code": 401,
        }
    cfg = client.Configuration()
    cfg.host = api_server.url
    cfg.api_key = {"authorization": "wrong-token"}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    with client.ApiClient(cfg) as bad, pytest.raises(ApiException) as e:
        client.CoreV1Api(bad).list_namespace()
    assert e.value.status == 401
    r = httpx.get(
        f"{api_server.url}/api/v1/namespaces", headers={"Authorization": f"bearer {api_server.token}"}
    )
    assert r.status_code == 200


def test_configmaps_selectors_and_paging(core: client.CoreV1Api) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="sel")))
    core.create_namespaced_config_map("sel", cm("a", "sel", app="x", tier="1"))
    core.create_namespaced_config_map("sel", cm("b", "sel", app="y"))
    core.create_namespaced_config_map("sel", cm("c", "sel", app="x", tier="2"))
    core.create_namespaced_config_map("sel", cm("d", "sel"))

    def names(label: str = "", field: str = "") -> list[str]:
        res = core.list_namespaced_config_map("sel", label_selector=label, field_selector=field)
        return [i.metadata.name for i in res.items]

    assert names() == ["a", "b", "c", "d"]
    assert names("app=x") == ["a", "c"]
    assert names("app==y") == ["b"]
    assert names("app!=x") == ["b", "d"]
    assert names("app in (x,y)") == ["a", "b", "c"]
    assert names("app notin (x)") == ["b", "d"]
    assert names("tier") == ["a", "c"]
    assert names("!app") == ["d"]
    assert names("app=x,tier=2") == ["a", "c"][1:]
    assert names(field="metadata.name=b") == ["b"]
    assert names(field="metadata.name!=b") == ["a", "c", "d"]
    assert names(field="metadata.namespace=sel") == ["a", "b", "c", "d"]

    page = core.list_namespaced_config_map("sel", limit=3)
    assert [i.metadata.name for i in page.items] == ["a", "b", "c"] and page.metadata._continue
    rest = core.list_namespaced_config_map("sel", limit=3, _continue=page.metadata._continue)
    assert [i.metadata.name for i in rest.items] == ["d"] and rest.metadata._continue is None

    updated = core.patch_namespaced_config_map("a", "sel", {"data": {"extra": "1"}})  # strategic merge
    assert updated.data == {"k": "a", "extra": "1"}
    updated = core.patch_namespaced_config_map("a", "sel", [{"op": "remove", "path": "/data/k"}])
    assert updated.data == {"extra": "1"}

    core.delete_namespace("sel")
    with pytest.raises(ApiException) as e:
        core.read_namespaced_config_map("a", "sel")
    assert e.value.status == 404


def test_pods_and_status_subresource(core: client.CoreV1Api) -> None:
    pod = client.V1Pod(
        metadata=client.V1ObjectMeta(name="p1"),
        spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="alpine")]),
    )
    created = core.create_namespaced_pod(NS, pod)
    assert created.status.phase == "Pending"
    created.status.phase = "Running"
    running = core.replace_namespaced_pod_status("p1", NS, created)
    assert running.status.phase == "Running"
    ignored = core.patch_namespaced_pod(
        "p1", NS, {"status": {"phase": "Failed"}, "metadata": {"labels": {"a": "b"}}}
    )
    assert ignored.status.phase == "Running" and ignored.metadata.labels == {"a": "b"}
    listed = core.list_namespaced_pod(NS, field_selector="status.phase=Running")
    assert [p.metadata.name for p in listed.items] == ["p1"]
    assert core.list_pod_for_all_namespaces().items[0].metadata.name == "p1"
    deleted = core.delete_namespaced_pod("p1", NS)
    assert deleted.metadata.name == "p1"


def test_delete_preconditions(core: client.CoreV1Api) -> None:
    created = core.create_namespaced_config_map(NS, cm("pre"))
    with pytest.raises(ApiException) as e:
        core.delete_namespaced_config_map(
            "pre", NS, body=client.V1DeleteOptions(preconditions=client.V1Preconditions(resource_version="1"))
        )
    assert e.value.status == 409
    core.delete_namespaced_config_map(
        "pre",
        NS,
        body=client.V1DeleteOptions(
            preconditions=client.V1Preconditions(resource_version=created.metadata.resource_version)
        ),
    )


def test_watch_replay_and_follow(core: client.CoreV1Api) -> None:
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="watch1")))
    start_rv = core.list_namespaced_config_map("watch1").metadata.resource_version
    core.create_namespaced_config_map("watch1", cm("w", "watch1"))
    core.patch_namespaced_config_map("w", "watch1", {"data": {"k": "changed"}})
    core.delete_namespaced_config_map("w", "watch1")

    w = watch.Watch()
    seen = []
    for event in w.stream(
        core.list_namespaced_config_map, "watch1", resource_version=start_rv, timeout_seconds=5
    ):
        seen.append((event["type"], event["object"].metadata.name, (event["object"].data or {}).get("k")))
        if len(seen) == 3:
            w.stop()
    assert seen == [("ADDED", "w", "w"), ("MODIFIED", "w", "changed"), ("DELETED", "w", "changed")]

    # live: events arrive while the watch is open; no resourceVersion -> initial ADDED first
    core.create_namespaced_config_map("watch1", cm("pre-existing", "watch1"))
    live: list[tuple[str, str]] = []

    def changes() -> None:
        time.sleep(0.2)
        core.create_namespaced_config_map("watch1", cm("live", "watch1"))
        core.delete_namespaced_config_map("live", "watch1")

    t = threading.Thread(target=changes)
    t.start()
    w = watch.Watch()
    started = time.monotonic()
    for event in w.stream(core.list_namespaced_config_map, "watch1", timeout_seconds=5):
        live.append((event["type"], event["object"].metadata.name))
        if len(live) == 3:
            w.stop()
    t.join()
    assert live == [("ADDED", "pre-existing"), ("ADDED", "live"), ("DELETED", "live")]
    assert time.monotonic() - started < 3


def test_watch_label_selector_transitions(custom: client.CustomObjectsApi) -> None:
    rv = custom.list_namespaced_custom_object(G, V, NS, "workflows")["metadata"]["resourceVersion"]
    custom.create_namespaced_custom_object(G, V, NS, "workflows", workflow("sel-w", phase="a"))
    custom.patch_namespaced_custom_object(
        G, V, NS, "workflows", "sel-w", {"metadata": {"labels": {"phase": "b"}}}
    )
    w = watch.Watch()
    seen = []
    for e in w.stream(
        custom.list_namespaced_custom_object,
        G,
        V,
        NS,
        "workflows",
        label_selector="phase=a",
        resource_version=rv,
        timeout_seconds=5,
    ):
        seen.append((e["type"], e["object"]["metadata"]["labels"]["phase"]))
        if len(seen) == 2:
            w.stop()
    assert seen == [("ADDED", "a"), ("DELETED", "b")]


def test_watch_timeout_and_bookmarks(core: client.CoreV1Api) -> None:
    rv = core.list_namespaced_config_map(NS).metadata.resource_version
    w = watch.Watch()
    started = time.monotonic()
    types = [
        e["type"]
        for e in w.stream(
            core.list_namespaced_config_map,
            NS,
            resource_version=rv,
            allow_watch_bookmarks=True,
            timeout_seconds=1,
        )
    ]
    elapsed = time.monotonic() - started
    assert 0.9 < elapsed < 2.5
    assert types and set(types) == {"BOOKMARK"}
    assert w.resource_version == rv


def test_watch_gone(api_server_factory: Any) -> None:
    srv: ApiServer = api_server_factory(event_window=2)
    with config.new_client_from_config(config_file=str(srv.kubeconfig)) as api:
        core = client.CoreV1Api(api)
        for i in range(4):
            core.create_namespaced_config_map(NS, cm(f"g{i}"))
        with pytest.raises(ApiException) as e:
            for _ in watch.Watch().stream(
                core.list_namespaced_config_map, NS, resource_version="3", timeout_seconds=2
            ):
                pass
        assert e.value.status == 410
        assert "too old resource version: 3 (5)" in str(e.value.reason)
        # a plain LIST with an old resourceVersion is served from the current state
        assert len(core.list_namespaced_config_map(NS, resource_version="3").items) == 4


def test_discovery(api_server: ApiServer, kclient: client.ApiClient) -> None:
    version = client.VersionApi(kclient).get_code()
    assert version.git_version == "v1.30.0-argo-eci-local" and version.major == "1"
    groups = client.ApisApi(kclient).get_api_versions()
    argo = next(g for g in groups.groups if g.name == G)
    assert argo.preferred_version.group_version == f"{G}/{V}"
    res = client.CustomObjectsApi(kclient).get_api_resources(G, V)
    wf = next(r for r in res.resources if r.name == "workflows")
    assert wf.kind == "Workflow" and wf.namespaced and wf.short_names == ["wf"] and "watch" in wf.verbs
    assert "workflows/status" in [r.name for r in res.resources]
    core_res = client.CoreV1Api(kclient).get_api_resources()
    names = [r.name for r in core_res.resources]
    assert {"pods", "pods/log", "pods/status", "configmaps", "namespaces"} <= set(names)
    assert client.CoreApi(kclient).get_api_versions().versions == ["v1"]
    headers = {"Authorization": f"Bearer {api_server.token}"}
    for probe in ("/healthz", "/readyz", "/livez"):
        r = httpx.get(api_server.url + probe, headers=headers)
        assert (r.status_code, r.text) == (200, "ok")
    r = httpx.get(f"{api_server.url}/apis/{G}", headers=headers)
    assert r.json()["kind"] == "APIGroup" and r.json()["name"] == G
