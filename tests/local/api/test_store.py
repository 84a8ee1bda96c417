"""Unit tests of the SQLite object store: Kubernetes create/read/update/delete/watch semantics."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_argo_eci.local.api.errors import ApiError
from airflow_argo_eci.local.api.resources import (
    CLUSTER_WORKFLOW_TEMPLATES,
    CONFIGMAPS,
    NAMESPACES,
    PODS,
    WORKFLOWS,
    ResourceType,
)
from airflow_argo_eci.local.api.store import Store


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "cluster.db")
    yield s
    s.close()


def wf(name: str = "", labels: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": name} if name else {"generateName": "hello-"}
    if labels:
        meta["labels"] = labels
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": meta,
        "spec": {"entrypoint": "main"},
        **extra,
    }


def names(items: list[dict[str, Any]]) -> list[str]:
    return [i["metadata"]["name"] for i in items]


def test_initial_namespaces_exist(store: Store) -> None:
    items, rv, cont = store.list(NAMESPACES)
    assert names(items) == ["argo", "default"]
    assert rv == "2" and cont == ""
    ns = store.get(NAMESPACES, None, "argo")
    assert ns["status"] == {"phase": "Active"}
    assert ns["metadata"]["labels"] == {"kubernetes.io/metadata.name": "argo"}
    assert "namespace" not in ns["metadata"]


def test_create_fills_metadata(store: Store) -> None:
    obj = store.create(WORKFLOWS, "argo", wf())
    meta = obj["metadata"]
    assert re.fullmatch(r"hello-[a-z0-9]{5}", meta["name"])
    assert meta["namespace"] == "argo"
    assert re.fullmatch(r"[0-9a-f-]{36}", meta["uid"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["creationTimestamp"])
    assert meta["generation"] == 1
    assert meta["resourceVersion"] == "3"
    assert obj["kind"] == "Workflow" and obj["apiVersion"] == "argoproj.io/v1alpha1"
    assert store.resource_version == 3
    assert store.get(WORKFLOWS, "argo", meta["name"]) == obj


def test_create_errors(store: Store) -> None:
    store.create(WORKFLOWS, "argo", wf("a"))
    with pytest.raises(ApiError) as e:
        store.create(WORKFLOWS, "argo", wf("a"))
    assert (e.value.code, e.value.reason) == (409, "AlreadyExists")
    assert e.value.message == 'workflows.argoproj.io "a" already exists'

    with pytest.raises(ApiError) as e:
        store.create(WORKFLOWS, "argo", {"metadata": {}})
    assert (e.value.code, e.value.reason) == (422, "Invalid")
    assert e.value.causes[0]["field"] == "metadata.name"

    with pytest.raises(ApiError) as e:
        store.create(WORKFLOWS, "nope", wf("a"))
    assert (e.value.code, e.value.message) == (404, 'namespaces "nope" not found')

    with pytest.raises(ApiError) as e:
        store.create(WORKFLOWS, "argo", {"kind": "Pod", "metadata": {"name": "b"}})
    assert e.value.code == 422 and e.value.causes[0]["field"] == "kind"

    with pytest.raises(ApiError) as e:
        store.create(WORKFLOWS, "argo", wf("Bad_Name"))
    assert e.value.code == 422 and e.value.causes[0]["field"] == "metadata.name"

    with pytest.raises(ApiError) as e:
        store.create(WORKFLOWS, "argo", {"metadata": {"name": "c", "namespace": "default"}})
    assert e.value.code == 400 and "does not match the namespace" in e.value.message

    with pytest.raises(ApiError) as e:
        store.create(WORKFLOWS, "argo", {"metadata": {"name": "d", "labels": {"a": 1}}})
    assert e.value.code == 422 and e.value.causes[0]["field"] == "metadata.labels"
    # nothing of the failed creates was written
    assert store.resource_version == 3


def test_cluster_scoped(store: Store) -> None:
    obj = store.create(CLUSTER_WORKFLOW_TEMPLATES, None, {"metadata": {"name": "t", "namespace": "x"}})
    assert "namespace" not in obj["metadata"]
    assert store.get(CLUSTER_WORKFLOW_TEMPLATES, "ignored", "t")["metadata"]["name"] == "t"


def test_pod_defaults_to_pending(store: Store) -> None:
    pod = store.create(PODS, "argo", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main"}]}})
    assert pod["status"] == {"phase": "Pending"}


def test_get_not_found(store: Store) -> None:
    with pytest.raises(ApiError) as e:
        store.get(CONFIGMAPS, "argo", "missing")
    assert e.value.status() == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'configmaps "missing" not found',
        "reason": "NotFound",
        "code": 404,
        "details": {"name": "missing", "group": "", "kind": "configmaps"},
    }


def test_list_selectors_and_paging(store: Store) -> None:
    store.create(WORKFLOWS, "argo", wf("a", {"app": "x", "tier": "1"}))
    store.create(WORKFLOWS, "argo", wf("b", {"app": "y"}))
    store.create(WORKFLOWS, "argo", wf("c", {"app": "x", "tier": "2"}))
    store.create(WORKFLOWS, "default", wf("d", {"app": "z"}))

    def sel(label: str = "", field: str = "", ns: str | None = None) -> list[str]:
        return names(store.list(WORKFLOWS, ns, label_selector=label, field_selector=field)[0])

    assert sel() == ["a", "b", "c", "d"]
    assert sel(ns="argo") == ["a", "b", "c"]
    assert sel("app=x") == ["a", "c"]
    assert sel("app==x") == ["a", "c"]
    assert sel("app!=x") == ["b", "d"]
    assert sel("app in (y, z)") == ["b", "d"]
    assert sel("app notin (x,y)") == ["d"]
    assert sel("tier") == ["a", "c"]
    assert sel("!tier") == ["b", "d"]
    assert sel("tier!=1") == ["b", "c", "d"]
    assert sel("app=x,tier=2") == ["c"]
    assert sel(field="metadata.name=b") == ["b"]
    assert sel(field="metadata.name!=b,metadata.namespace==argo") == ["a", "c"]
    assert sel("app=x", "metadata.name==a") == ["a"]

    page1, rv, cont = store.list(WORKFLOWS, limit=2)
    assert names(page1) == ["a", "b"] and cont and rv == str(store.resource_version)
    page2, _, cont2 = store.list(WORKFLOWS, limit=2, continue_token=cont)
    assert names(page2) == ["c", "d"] and cont2 == ""
    page, _, cont = store.list(WORKFLOWS, limit=1, label_selector="app=x")
    assert names(page) == ["a"]
    page, _, cont = store.list(WORKFLOWS, limit=1, label_selector="app=x", continue_token=cont)
    assert names(page) == ["c"] and cont == ""

    for bad in ("app in (x", "a b", "app=(x)", "=x"):
        with pytest.raises(ApiError) as e:
            store.list(WORKFLOWS, label_selector=bad)
        assert e.value.code == 400, bad
    with pytest.raises(ApiError) as e:
        store.list(WORKFLOWS, field_selector="spec.entrypoint=main")
    assert e.value.code == 400 and "spec.entrypoint" in e.value.message
    with pytest.raises(ApiError) as e:
        store.list(WORKFLOWS, continue_token="!!notatoken")
    assert e.value.code == 400 and "continue" in e.value.message


def test_pod_field_selector_status_phase(store: Store) -> None:
    store.create(PODS, "argo", {"metadata": {"name": "p1"}})
    store.create(PODS, "argo", {"metadata": {"name": "p2"}, "status": {"phase": "Running"}})
    assert names(store.list(PODS, "argo", field_selector="status.phase=Running")[0]) == ["p2"]


def test_replace_conflict_and_status_handling(store: Store) -> None:
    created = store.create(WORKFLOWS, "argo", wf("a", status={"phase": "Running"}))
    body = dict(created, spec={"entrypoint": "other"}, status={"phase": "Hacked"})
    updated = store.replace(WORKFLOWS, "argo", "a", body)
    assert updated["spec"] == {"entrypoint": "other"}
    assert updated["status"] == {"phase": "Running"}  # main resource PUT keeps status
    assert updated["metadata"]["generation"] == 2
    assert int(updated["metadata"]["resourceVersion"]) > int(created["metadata"]["resourceVersion"])

    with pytest.raises(ApiError) as e:
        store.replace(WORKFLOWS, "argo", "a", body)  # stale resourceVersion
    assert (e.value.code, e.value.reason) == (409, "Conflict")

    status_body = dict(updated, spec={"entrypoint": "ignored"}, status={"phase": "Succeeded"})
    st = store.replace(WORKFLOWS, "argo", "a", status_body, subresource="status")
    assert st["status"] == {"phase": "Succeeded"} and st["spec"] == {"entrypoint": "other"}
    assert st["metadata"]["generation"] == 2  # status changes do not bump generation

    with pytest.raises(ApiError) as e:
        store.replace(WORKFLOWS, "argo", "a", {"metadata": {"name": "zzz"}})
    assert e.value.code == 422 and e.value.causes[0]["field"] == "metadata.name"
    with pytest.raises(ApiError) as e:
        store.replace(CONFIGMAPS, "argo", "a", {"metadata": {"name": "a"}}, subresource="status")
    assert e.value.code == 404


def test_noop_replace_keeps_resource_version(store: Store) -> None:
    created = store.create(CONFIGMAPS, "argo", {"metadata": {"name": "cm"}, "data": {"k": "v"}})
    again = store.replace(CONFIGMAPS, "argo", "cm", created)
    assert again == created and store.resource_version == 3


def test_merge_and_json_patch(store: Store) -> None:
    store.create(CONFIGMAPS, "argo", {"metadata": {"name": "cm", "labels": {"a": "1"}}, "data": {"k": "v"}})
    out = store.patch(
        CONFIGMAPS,
        "argo",
        "cm",
        {"metadata": {"labels": {"a": None, "b": "2"}}, "data": {"x": "y"}},
        "application/merge-patch+json",
    )
    assert out["metadata"]["labels"] == {"b": "2"} and out["data"] == {"k": "v", "x": "y"}
    out = store.patch(
        CONFIGMAPS, "argo", "cm", {"data": {"k": None}}, "application/strategic-merge-patch+json"
    )
    assert out["data"] == {"x": "y"}
    out = store.patch(
        CONFIGMAPS,
        "argo",
        "cm",
        [
            {"op": "test", "path": "/data/x", "value": "y"},
            {"op": "add", "path": "/data/z", "value": "1"},
            {"op": "move", "from": "/data/x", "path": "/data/w"},
            {"op": "remove", "path": "/metadata/labels"},
        ],
        "application/json-patch+json",
    )
    assert out["data"] == {"z": "1", "w": "y"} and "labels" not in out["metadata"]

    with pytest.raises(ApiError) as e:
        store.patch(
            CONFIGMAPS,
            "argo",
            "cm",
            [{"op": "test", "path": "/data/z", "value": "2"}],
            "application/json-patch+json",
        )
    assert e.value.code == 422 and e.value.causes[0]["field"] == "patch"
    assert "test operation 0 failed" in e.value.causes[0]["message"]
    with pytest.raises(ApiError) as e:
        store.patch(CONFIGMAPS, "argo", "cm", {"a": 1}, "application/apply-patch+yaml")
    assert e.value.code == 415
    with pytest.raises(ApiError) as e:
        store.patch(
            CONFIGMAPS, "argo", "cm", {"metadata": {"resourceVersion": "1"}}, "application/merge-patch+json"
        )
    assert e.value.code == 409
    with pytest.raises(ApiError) as e:
        store.patch(CONFIGMAPS, "argo", "cm", {"metadata": {"name": "other"}}, "application/merge-patch+json")
    assert e.value.code == 422 and e.value.causes[0]["field"] == "metadata.name"


def test_status_patch(store: Store) -> None:
    store.create(WORKFLOWS, "argo", wf("a"))
    out = store.patch(
        WORKFLOWS,
        "argo",
        "a",
        {"status": {"phase": "Running"}, "spec": {"x": 1}},
        "application/merge-patch+json",
        subresource="status",
    )
    assert out["status"] == {"phase": "Running"} and out["spec"] == {"entrypoint": "main"}
    out = store.patch(
        WORKFLOWS,
        "argo",
        "a",
        {"status": {"phase": "Failed"}, "spec": {"x": 1}},
        "application/merge-patch+json",
    )
    assert out["status"] == {"phase": "Running"} and out["spec"] == {"entrypoint": "main", "x": 1}


def test_update_internal(store: Store) -> None:
    store.create(WORKFLOWS, "argo", wf("a"))
    rv = store.resource_version

    def set_phase(o: dict[str, Any]) -> None:
        o["status"] = {"phase": "Running"}

    out = store.update(WORKFLOWS, "argo", "a", set_phase)
    assert out["status"] == {"phase": "Running"} and store.resource_version == rv + 1
    same = store.update(WORKFLOWS, "argo", "a", set_phase)
    assert same == out and store.resource_version == rv + 1
    replaced = store.update(
        WORKFLOWS, "argo", "a", lambda o: {**o, "metadata": {**o["metadata"], "uid": "x"}}
    )
    assert replaced["metadata"]["uid"] == out["metadata"]["uid"]  # identity is kept


def test_delete_and_namespace_cascade(store: Store) -> None:
    store.create(NAMESPACES, None, {"metadata": {"name": "team"}})
    store.create(WORKFLOWS, "team", wf("a"))
    store.create(CONFIGMAPS, "team", {"metadata": {"name": "c"}})
    store.create(WORKFLOWS, "argo", wf("a"))
    deleted = store.delete(WORKFLOWS, "argo", "a")
    assert deleted["metadata"]["name"] == "a" and deleted["metadata"]["resourceVersion"] == "7"
    with pytest.raises(ApiError) as e:
        store.delete(WORKFLOWS, "argo", "a")
    assert e.value.code == 404
    store.delete(NAMESPACES, None, "team")
    assert store.list(WORKFLOWS)[0] == [] and store.list(CONFIGMAPS)[0] == []
    events = store.events_since(CONFIGMAPS, None, 7)
    assert [(t, o["metadata"]["name"]) for t, o, _ in events] == [("DELETED", "c")]
    with pytest.raises(ApiError) as e:
        store.create(CONFIGMAPS, "team", {"metadata": {"name": "c"}})
    assert e.value.code == 404
    with pytest.raises(ApiError) as e:
        store.delete(NAMESPACES, None, "default")
    assert e.value.code == 403


def test_events_since_and_gone(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", event_window=3)
    try:
        store.create(WORKFLOWS, "argo", wf("a", {"x": "1"}))  # rv 3
        store.create(CONFIGMAPS, "argo", {"metadata": {"name": "c"}})  # rv 4
        store.update(WORKFLOWS, "argo", "a", lambda o: {**o, "metadata": {**o["metadata"], "labels": {}}})
        store.delete(WORKFLOWS, "argo", "a")  # rv 6
        got = store.events_since(WORKFLOWS, "argo", 3)
        assert [(t, rv) for t, _, rv in got] == [("MODIFIED", 5), ("DELETED", 6)]
        # label selector: the object stopped matching at rv 5 -> DELETED, then nothing
        got = store.events_since(WORKFLOWS, None, 3, label_selector="x=1")
        assert [(t, rv) for t, _, rv in got] == [("DELETED", 5)]
        assert store.events_since(WORKFLOWS, "default", 3) == []
        with pytest.raises(ApiError) as e:
            store.events_since(WORKFLOWS, "argo", 2)
        assert (e.value.code, e.value.reason) == (410, "Expired")
        assert e.value.message == "too old resource version: 2 (4)"
    finally:
        store.close()


def test_persistence_across_reopen(tmp_path: Path) -> None:
    s1 = Store(tmp_path / "db")
    s1.create(WORKFLOWS, "argo", wf("a"))
    s1.close()
    s2 = Store(tmp_path / "db")
    try:
        assert s2.resource_version == 3
        assert names(s2.list(WORKFLOWS)[0]) == ["a"]
        assert s2.create(WORKFLOWS, "argo", wf("b"))["metadata"]["resourceVersion"] == "4"
    finally:
        s2.close()


def test_wait_for_change_and_listeners(store: Store) -> None:
    seen: list[tuple[str, str, str]] = []
    store.add_listener(lambda t, rt, o: seen.append((t, rt.kind, o["metadata"]["name"])))
    rv = store.resource_version
    assert store.wait_for_change(rv, 0.01) is False
    t = threading.Timer(0.05, lambda: store.create(CONFIGMAPS, "argo", {"metadata": {"name": "c"}}))
    t.start()
    start = time.monotonic()
    assert store.wait_for_change(rv, 5) is True
    assert time.monotonic() - start < 2
    t.join()
    assert seen == [("ADDED", "ConfigMap", "c")]


def test_registered_later_type(store: Store) -> None:
    rt = ResourceType("data.fluid.io", "v1alpha1", "datasets", "Dataset", True)
    obj = store.create(rt, "argo", {"metadata": {"name": "d"}})
    assert obj["apiVersion"] == "data.fluid.io/v1alpha1" and obj["kind"] == "Dataset"


def test_concurrent_writers(store: Store) -> None:
    def worker(i: int) -> None:
        for j in range(20):
            store.create(CONFIGMAPS, "argo", {"metadata": {"name": f"c-{i}-{j}"}})

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    items, rv, _ = store.list(CONFIGMAPS, "argo")
    assert len(items) == 80 and rv == "82"
    assert sorted(int(i["metadata"]["resourceVersion"]) for i in items) == list(range(3, 83))
