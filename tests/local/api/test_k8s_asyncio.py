"""The Kubernetes API of the local cluster, driven by the official ``kubernetes_asyncio`` client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from tests.local.api.apiserver_helpers import ApiServer

G, V, NS = "argoproj.io", "v1alpha1", "argo"


@pytest.fixture
async def aclient(api_server: ApiServer) -> AsyncIterator[client.ApiClient]:
    api = await config.new_client_from_config(config_file=str(api_server.kubeconfig))
    yield api
    await api.close()


def workflow(name: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{G}/{V}",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"entrypoint": "main"},
    }


async def test_crud_and_errors(aclient: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(aclient)
    created = await custom.create_namespaced_custom_object(G, V, NS, "workflows", workflow("async-a"))
    assert created["metadata"]["name"] == "async-a"
    got = await custom.get_namespaced_custom_object(G, V, NS, "workflows", "async-a")
    assert got["metadata"]["uid"] == created["metadata"]["uid"]
    with pytest.raises(ApiException) as e:
        await custom.create_namespaced_custom_object(G, V, NS, "workflows", workflow("async-a"))
    assert e.value.status == 409
    with pytest.raises(ApiException) as e:
        await custom.get_namespaced_custom_object(G, V, NS, "workflows", "async-missing")
    assert e.value.status == 404
    core = client.CoreV1Api(aclient)
    cm = await core.create_namespaced_config_map(
        NS, client.V1ConfigMap(metadata=client.V1ObjectMeta(generate_name="async-cm-"), data={"a": "1"})
    )
    assert cm.metadata.name.startswith("async-cm-")
    await core.delete_namespaced_config_map(cm.metadata.name, NS)


async def test_watch_events(aclient: client.ApiClient) -> None:
    core = client.CoreV1Api(aclient)
    await core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="awatch")))
    rv = (await core.list_namespaced_config_map("awatch")).metadata.resource_version

    async def changes() -> None:
        await asyncio.sleep(0.1)
        await core.create_namespaced_config_map(
            "awatch", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x"), data={"k": "1"})
        )
        await core.patch_namespaced_config_map("x", "awatch", {"data": {"k": "2"}})
        await core.delete_namespaced_config_map("x", "awatch")

    task = asyncio.create_task(changes())
    seen = []
    w = watch.Watch()
    async with w.stream(
        core.list_namespaced_config_map, "awatch", resource_version=rv, timeout_seconds=5
    ) as s:
        async for event in s:
            seen.append((event["type"], event["object"].data["k"]))
            if len(seen) == 3:
                w.stop()
    await task
    assert seen == [("ADDED", "1"), ("MODIFIED", "2"), ("DELETED", "2")]


async def test_watch_gone(api_server_factory: Any) -> None:
    srv: ApiServer = api_server_factory(event_window=1)
    api = await config.new_client_from_config(config_file=str(srv.kubeconfig))
    try:
        custom = client.CustomObjectsApi(api)
        for i in range(3):
            await custom.create_namespaced_custom_object(G, V, NS, "workflows", workflow(f"gone-{i}"))
        with pytest.raises(ApiException) as e:
            async with watch.Watch().stream(
                custom.list_namespaced_custom_object,
                G,
                V,
                NS,
                "workflows",
                resource_version="2",
                timeout_seconds=2,
            ) as s:
                async for _ in s:
                    pass
        assert e.value.status == 410
    finally:
        await api.close()
