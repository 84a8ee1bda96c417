"""Waking watch streams on the event loop (:mod:`airflow_argo_eci.local.api.watch_signal`): a
commit wakes the watchers of its kind only, after the shared cache has read it, and many
concurrent streams all get every event."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx

from airflow_argo_eci.local.api.resources import CONFIGMAPS, WORKFLOWS
from airflow_argo_eci.local.api.store import Store
from airflow_argo_eci.local.api.watch import WatchCache
from airflow_argo_eci.local.api.watch_signal import ChangeSignal
from tests.local.api.apiserver_helpers import ApiServer

CM_KIND = (CONFIGMAPS.group, CONFIGMAPS.plural)


def _cm(name: str) -> dict[str, Any]:
    return {"metadata": {"name": name}, "data": {"v": "1"}}


async def test_a_commit_wakes_the_watchers_of_its_kind_once_the_cache_has_it(tmp_path: Path) -> None:
    store = Store(tmp_path / "db.sqlite")
    try:
        cache = WatchCache(store)
        signal = ChangeSignal(store, cache)
        rv = store.resource_version
        waiter = asyncio.create_task(signal.wait(CM_KIND, rv, 10))
        await asyncio.sleep(0.05)
        await asyncio.to_thread(store.create, WORKFLOWS, "argo", {"metadata": {"name": "w"}, "spec": {}})
        await asyncio.sleep(0.3)
        assert not waiter.done()  # a workflow change does not wake a config map watcher
        assert cache.loaded > rv and cache.latest(*CM_KIND) == 0
        created = await asyncio.to_thread(store.create, CONFIGMAPS, "argo", _cm("a"))
        await asyncio.wait_for(waiter, 2)
        assert cache.latest(*CM_KIND) == int(created["metadata"]["resourceVersion"])
        # already newer: returns at once; nothing newer: returns after the timeout
        await asyncio.wait_for(signal.wait(CM_KIND, rv, 10), 0.5)
        started = asyncio.get_running_loop().time()
        await signal.wait(CM_KIND, cache.latest(*CM_KIND), 0.2)
        assert asyncio.get_running_loop().time() - started >= 0.19
    finally:
        store.close()


async def test_many_concurrent_watchers_each_get_every_event(api_server_factory: Any) -> None:
    srv: ApiServer = api_server_factory()
    rv = srv.store.resource_version
    watchers, changes = 60, 25

    async def watch(client: httpx.AsyncClient) -> list[str]:
        names: list[str] = []
        async with client.stream("GET", f"{srv.url}/api/v1/namespaces/argo/configmaps",
                                 params={"watch": "1", "resourceVersion": str(rv), "timeoutSeconds": "30"}) as resp:
            assert resp.status_code == 200
            async for line in resp.aiter_lines():
                if line:
                    names.append(json.loads(line)["object"]["metadata"]["name"])
                if len(names) == changes:
                    return names
        return names

    limits = httpx.Limits(max_connections=watchers + 5)
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {srv.token}"}, limits=limits,
                                 timeout=30) as client:
        tasks = [asyncio.create_task(watch(client)) for _ in range(watchers)]
        await asyncio.sleep(0.5)
        for i in range(changes):
            await asyncio.to_thread(srv.store.create, CONFIGMAPS, "argo", _cm(f"c{i}"))
            await asyncio.to_thread(srv.store.create, WORKFLOWS, "argo", {"metadata": {"name": f"w{i}"}, "spec": {}})
        results = await asyncio.wait_for(asyncio.gather(*tasks), 30)
    assert all(names == [f"c{i}" for i in range(changes)] for names in results)
