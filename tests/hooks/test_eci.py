"""EciHook against the session's local cluster over real HTTPS: the exact requests it sends for
ImageCaches (cluster-scoped paths, query, bodies), sync and async twins, the watch, typed errors,
the uid fence, what it refuses before sending, and the argo_server connection refused."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from airflow_argo_eci.eci_conventions import API_VERSION, IMAGE_CACHE_KIND
from airflow_argo_eci.errors import ConflictError, InvalidError, NotFoundError, WorkflowSpecError
from airflow_argo_eci.hooks.eci import EciHook, ImageCacheSource
from airflow_argo_eci.local.server import LocalCluster
from tests.hooks.conftest import connection_env
from tests.hooks.test_argo_kubernetes_wire import JSON, Tape, Wire
from tests.hooks.watching import phases_until_deleted

PATH = "/apis/eci.alibabacloud.com/v1/imagecaches"
LIST_QUERY = [("fieldSelector", ""), ("limit", "500")]


@pytest.fixture
def hook(local_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> Iterator[EciHook]:
    monkeypatch.setenv("AIRFLOW_CONN_ECI_HOOK_TEST", json.dumps(connection_env(local_cluster, "kubernetes")))
    made = EciHook(argo_conn_id="eci_hook_test")
    yield made
    made.close()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def cache(name: str, *images: str, **spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": {"suite": name}},
            "spec": {"images": list(images) or [f"busybox:{name}"], **spec}}


def test_create_get_list_delete_on_the_wire(hook: EciHook, local_cluster: LocalCluster) -> None:
    name = unique("wire")
    tape = Tape(local_cluster, name)
    created = hook.create_image_cache(cache(name, imageCacheSize=40))
    assert created["apiVersion"] == API_VERSION and created["kind"] == IMAGE_CACHE_KIND
    assert "namespace" not in created["metadata"] and created["metadata"]["uid"]
    assert hook.get_image_cache(name)["metadata"]["uid"] == created["metadata"]["uid"]
    listed = hook.list_image_caches(label_selector=f"suite={name}")
    assert [obj["metadata"]["name"] for obj in listed] == [name] and listed.resource_version
    hook.delete_image_cache(name, uid=created["metadata"]["uid"])
    assert tape.take() == [
        Wire("POST", PATH, [], JSON, {
            "apiVersion": API_VERSION, "kind": IMAGE_CACHE_KIND,
            "metadata": {"name": name, "labels": {"suite": name}},
            "spec": {"images": [f"busybox:{name}"], "imageCacheSize": 40}}),
        Wire("GET", f"{PATH}/{name}", [], JSON, None),
        Wire("GET", PATH, sorted([("labelSelector", f"suite={name}"), *LIST_QUERY]), JSON, None),
        Wire("DELETE", f"{PATH}/{name}", [], JSON, {"preconditions": {"uid": created["metadata"]["uid"]}}),
    ]
    with pytest.raises(NotFoundError, match=f"get ImageCache {name}"):
        hook.get_image_cache(name)


def test_typed_errors_and_the_uid_fence(hook: EciHook) -> None:
    name = unique("typed")
    hook.create_image_cache(cache(name))
    with pytest.raises(ConflictError):
        hook.create_image_cache(cache(name))
    with pytest.raises(ConflictError):  # the uid fence refuses to delete a same-named successor
        hook.delete_image_cache(name, uid="not-the-uid")
    assert hook.get_image_cache(name)["metadata"]["name"] == name
    with pytest.raises(InvalidError):  # the API's own check: imageCacheSize is 20..32768
        hook.create_image_cache(cache(unique("too-small"), imageCacheSize=5))
    hook.delete_image_cache(name)
    with pytest.raises(NotFoundError) as info:
        hook.delete_image_cache(name)
    assert info.value.status == 404


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"kind": "Pod", "metadata": {"name": "x"}, "spec": {"images": ["a"]}}, "kind must be 'ImageCache'"),
        ({"apiVersion": "v1", "metadata": {"name": "x"}, "spec": {"images": ["a"]}}, "apiVersion must be"),
        ({"metadata": {}, "spec": {"images": ["a"]}}, "metadata.name or metadata.generateName is required"),
        ({"metadata": {"name": "x"}, "spec": {"images": []}}, "spec.images must list at least one image"),
        (["not", "a", "mapping"], "ImageCache body must be a mapping"),
    ],
)
def test_bad_bodies_are_refused_before_sending(hook: EciHook, local_cluster: LocalCluster, body: Any,
                                               message: str) -> None:
    hook.get_conn()  # the connection is read before the count
    before = local_cluster.request_log.last_seq
    with pytest.raises(WorkflowSpecError) as info:
        hook.create_image_cache(body)
    assert message in str(info.value)
    assert local_cluster.request_log.last_seq == before


def test_a_namespace_in_the_body_is_dropped(hook: EciHook) -> None:
    name = unique("ns")
    body = cache(name)
    body["metadata"]["namespace"] = "argo"
    created = hook.create_image_cache(body)
    assert "namespace" not in created["metadata"] and body["metadata"]["namespace"] == "argo"
    hook.delete_image_cache(name)


def test_argo_server_connections_are_refused(local_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ECI_HOOK_SERVER", json.dumps(connection_env(local_cluster, "argo_server")))
    with pytest.raises(WorkflowSpecError, match="ECI's ImageCaches are Kubernetes custom objects, reachable only "
                                                "through a connection with transport 'kubernetes'"):
        EciHook(argo_conn_id="eci_hook_server").get_image_cache("x")


def test_test_connection(hook: EciHook) -> None:
    ok, message = hook.test_connection()
    assert ok, message
    assert message.endswith("listed ImageCaches")


def test_async_twins_and_the_watch(hook: EciHook, local_cluster: LocalCluster) -> None:
    name = unique("async")
    listed_rv: list[str] = []

    async def scenario() -> list[tuple[str, str]]:
        listed = await hook.alist_image_caches(label_selector=f"suite={name}")
        assert listed == []
        listed_rv.append(listed.resource_version)
        seen: list[tuple[str, str]] = []

        watcher = asyncio.ensure_future(phases_until_deleted(hook.awatch_image_caches(
            resource_version=listed.resource_version, label_selector=f"suite={name}", timeout_seconds=10), seen))
        await asyncio.sleep(0.3)
        created = await hook.acreate_image_cache(cache(name))
        for _ in range(100):
            got = await hook.aget_image_cache(name)
            if (got.get("status") or {}).get("phase") == "Ready":
                break
            await asyncio.sleep(0.1)
        assert got["status"]["imageCacheId"].startswith("imc-")
        await hook.adelete_image_cache(name, uid=created["metadata"]["uid"])
        await asyncio.wait_for(watcher, 10)
        with pytest.raises(NotFoundError):
            await hook.aget_image_cache(name)
        await hook.aclose()
        return seen

    seen = asyncio.run(scenario())
    assert seen[0] == ("ADDED", "") and seen[-1] == ("DELETED", "Ready")
    assert ("MODIFIED", "Ready") in seen and ("MODIFIED", "Creating") in seen
    (watch,) = [Wire.of(e) for e in local_cluster.request_log.matching(f"suite={name}")
                if any(k == "watch" for k, _ in e.query)]
    assert (watch.method, watch.path) == ("GET", PATH)  # the collection: no namespace
    assert dict(watch.query) == {"allowWatchBookmarks": "True", "fieldSelector": "", "labelSelector": f"suite={name}",
                                 "resourceVersion": listed_rv[0], "timeoutSeconds": "10", "watch": "True"}


def test_source_is_the_hubs_view_of_image_caches(hook: EciHook) -> None:
    name = unique("source")
    source = ImageCacheSource(hook)

    async def scenario() -> tuple[str, int]:
        await hook.acreate_image_cache(cache(name))
        got = await source.aget_workflow(name, "ignored")
        listed = await source.alist_workflows("ignored", label_selector=f"suite={name}")
        await hook.adelete_image_cache(name)
        await source.aclose()
        return got["kind"], len(listed)

    assert asyncio.run(scenario()) == ("ImageCache", 1)
    assert source.supports_watch and hook.supports_watch
