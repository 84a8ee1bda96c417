"""awatch_workflows (kubernetes transport): events, BOOKMARKs, resuming from a resourceVersion, 410 Gone."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_argo_eci.errors import ArgoEciError, GoneError
from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook
from airflow_argo_eci.local.server import LocalCluster
from tests.hooks.conftest import NS, connection_env, workflow
from tests.local.api.apiserver_helpers import ApiServer, start_api_server


def _k8s(kubeconfig: Path) -> dict[str, Any]:
    return {"conn_type": "argo_workflows", "extra": {"kube_config_path": str(kubeconfig), "namespace": NS}}


async def _collect(hook: ArgoWorkflowsHook, rv: str, until: Callable[[list[tuple[str, dict[str, Any]]]], bool],
                   **kwargs: Any) -> list[tuple[str, dict[str, Any]]]:
    seen: list[tuple[str, dict[str, Any]]] = []
    async for event in hook.awatch_workflows(resource_version=rv, timeout_seconds=5, **kwargs):
        seen.append(event)
        if until(seen):
            break
    return seen


async def test_watch_and_resume_from_resource_version(
    local_cluster: LocalCluster, make_hook: Callable[..., ArgoWorkflowsHook]
) -> None:
    hook = make_hook(connection_env(local_cluster, "kubernetes"))
    assert hook.supports_watch
    listed = await hook.alist_workflows()
    rv = listed.resource_version
    created = await asyncio.to_thread(hook.create_workflow, workflow("hook-watch"))
    name = created["metadata"]["name"]

    def added(events: list[tuple[str, dict[str, Any]]]) -> bool:
        return any(t == "ADDED" and o["metadata"]["name"] == name for t, o in events)

    events = await _collect(hook, rv, added)
    added_rv = next(o for t, o in events if t == "ADDED" and o["metadata"]["name"] == name)["metadata"][
        "resourceVersion"]

    # resume after the ADDED event: the creation is not repeated, later changes arrive
    await hook.astop_workflow(name)

    def stopped(events: list[tuple[str, dict[str, Any]]]) -> bool:
        return any(o["metadata"].get("name") == name and o.get("spec", {}).get("shutdown") == "Stop"
                   for _, o in events)

    resumed = await _collect(hook, added_rv, stopped, field_selector=f"metadata.name={name}")
    assert all(t != "ADDED" for t, _ in resumed)
    assert resumed[-1][0] == "MODIFIED"
    await hook.adelete_workflow(name)
    await hook.aclose()


@pytest.fixture
def small_server(tmp_path: Path) -> Iterator[ApiServer]:
    """An API server with a 3-event window and 0.2 s bookmarks (over TLS)."""
    srv = start_api_server(tmp_path / "srv", event_window=3, bookmark_interval=0.2, tls=True)
    yield srv
    srv.stop()


async def test_watch_bookmarks(small_server: ApiServer, make_hook: Callable[..., ArgoWorkflowsHook]) -> None:
    hook = make_hook(_k8s(small_server.kubeconfig))
    listed = await hook.alist_workflows()
    rv = listed.resource_version
    events = await _collect(hook, rv, lambda seen: len(seen) >= 2)
    assert [t for t, _ in events] == ["BOOKMARK", "BOOKMARK"]
    assert events[0][1]["metadata"]["resourceVersion"] == rv
    await hook.aclose()


async def test_watch_gone_on_compacted_resource_version(
    small_server: ApiServer, make_hook: Callable[..., ArgoWorkflowsHook]
) -> None:
    hook = make_hook(_k8s(small_server.kubeconfig))
    listed = await hook.alist_workflows()
    start_rv = listed.resource_version
    for i in range(5):
        await asyncio.to_thread(hook.create_workflow, {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow",
                                                       "metadata": {"name": f"gone-{i}"}, "spec": {"entrypoint": "m"}})
    with pytest.raises(GoneError) as err:
        await _collect(hook, start_rv, lambda seen: False)
    assert err.value.status == 410 and err.value.transient
    assert "too old resource version" in str(err.value)
    # relisting gives a fresh resourceVersion from which watching works again
    listed = await hook.alist_workflows()
    items, rv = listed, listed.resource_version
    assert len(items) == 5
    events = await _collect(hook, rv, lambda seen: True)
    assert events[0][0] == "BOOKMARK"
    await hook.aclose()


async def test_argo_server_cannot_watch(local_cluster: LocalCluster,
                                        make_hook: Callable[..., ArgoWorkflowsHook]) -> None:
    hook = make_hook(connection_env(local_cluster, "argo_server"))
    assert not hook.supports_watch
    with pytest.raises(ArgoEciError, match="cannot watch"):
        await _collect(hook, "", lambda seen: True)
