"""WATCH through the shared event cache: one serialization per change for every watcher, selector
transitions, and a watcher that falls behind the cache is dropped with 410 instead of buffered."""

from __future__ import annotations

import json
import socket
import threading
import time
from typing import Any

import httpx

from airflow_argo_eci.local.api.resources import CONFIGMAPS
from airflow_argo_eci.local.api.selectors import parse_field_selector, parse_label_selector
from airflow_argo_eci.local.api.watch import Behind, WatchCache
from tests.local.api.apiserver_helpers import ApiServer

CM = "/api/v1/namespaces/argo/configmaps"


def _cm(name: str, size: int = 10, **labels: str) -> dict[str, Any]:
    return {"metadata": {"name": name, "labels": labels}, "data": {"v": "x" * size}}


def _watch_lines(srv: ApiServer, query: str, count: int, timeout: float = 20.0) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with httpx.stream("GET", f"{srv.url}{CM}?watch=true&{query}", timeout=timeout,
                      headers={"Authorization": f"Bearer {srv.token}"}) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line:
                out.append(json.loads(line))
            if len(out) >= count:
                break
    return out


def test_every_watcher_gets_the_same_events_from_one_cached_copy(api_server_factory: Any) -> None:
    srv: ApiServer = api_server_factory()
    rv = srv.store.resource_version
    results: list[list[dict[str, Any]]] = []

    def watcher() -> None:
        results.append(_watch_lines(srv, f"resourceVersion={rv}", 3))

    threads = [threading.Thread(target=watcher) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.3)
    srv.store.create(CONFIGMAPS, "argo", _cm("shared", 200_000))
    srv.store.update(CONFIGMAPS, "argo", "shared", lambda o: o["data"].update(w="1"))
    srv.store.delete(CONFIGMAPS, "argo", "shared")
    for t in threads:
        t.join(30)
    assert len(results) == 8
    assert all([e["type"] for e in r] == ["ADDED", "MODIFIED", "DELETED"] for r in results)
    assert all(r == results[0] for r in results)


def test_selector_transitions_are_added_and_deleted(api_server_factory: Any) -> None:
    srv: ApiServer = api_server_factory()
    rv = srv.store.resource_version
    got: list[list[dict[str, Any]]] = []
    query = f"resourceVersion={rv}&labelSelector=team%3Da"
    t = threading.Thread(target=lambda: got.append(_watch_lines(srv, query, 3)))
    t.start()
    time.sleep(0.3)
    srv.store.create(CONFIGMAPS, "argo", _cm("moves", team="b"))
    srv.store.update(CONFIGMAPS, "argo", "moves", lambda o: o["metadata"]["labels"].update(team="a"))
    srv.store.update(CONFIGMAPS, "argo", "moves", lambda o: o["data"].update(w="1"))
    srv.store.update(CONFIGMAPS, "argo", "moves", lambda o: o["metadata"]["labels"].update(team="c"))
    t.join(30)
    assert [e["type"] for e in got[0]] == ["ADDED", "MODIFIED", "DELETED"]


def test_cache_holds_one_copy_and_reports_fallen_behind_watchers(api_server_factory: Any) -> None:
    srv: ApiServer = api_server_factory()
    cache = WatchCache(srv.store, max_bytes=300_000)
    start = srv.store.resource_version
    everything = (parse_label_selector(""), parse_field_selector(""))
    for i in range(5):
        srv.store.create(CONFIGMAPS, "argo", _cm(f"big-{i}", 100_000))
    now = srv.store.resource_version
    lines, reached = cache.events_after(CONFIGMAPS, "argo", now, *everything, catching_up=False)
    assert lines == [] and reached == now
    assert 0 < cache.size_bytes <= 300_000 and cache.floor > start
    # a watch that had reached the cache and then fell behind it is dropped...
    try:
        cache.events_after(CONFIGMAPS, "argo", start, *everything, catching_up=False)
        raise AssertionError("a watcher behind the cache must get 410")
    except Behind as exc:
        assert exc.code == 410 and "too old resource version" in exc.message
    # ...while a new watch from an older resourceVersion catches up from the store
    caught, upto = cache.events_after(CONFIGMAPS, "argo", start, *everything, catching_up=True)
    assert len(caught) == 5 and upto == reached


def test_slow_watcher_gets_410_and_its_stream_ends(api_server_factory: Any) -> None:
    srv: ApiServer = api_server_factory(watch_cache_bytes=1024 * 1024)
    host, port = srv.url.removeprefix("http://").split(":")
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((host, int(port)))
    rv = srv.store.resource_version
    sock.sendall(f"GET {CM}?watch=true&resourceVersion={rv} HTTP/1.1\r\nHost: x\r\n"
                 f"Authorization: Bearer {srv.token}\r\n\r\n".encode())
    time.sleep(0.3)
    for i in range(60):  # 60 x 300 KB through a client that does not read
        srv.store.create(CONFIGMAPS, "argo", _cm(f"flood-{i}", 300_000))
    time.sleep(0.5)
    sock.settimeout(20)
    data = bytearray()
    while True:
        chunk = sock.recv(1 << 20)
        if not chunk or data.endswith(b"0\r\n\r\n"):
            break
        data += chunk
        if b'"code":410' in data and data.rstrip().endswith(b"0"):
            break
    sock.close()
    assert b'"type":"ERROR"' in data and b'"code":410' in data
    assert data.count(b'"type":"ADDED"') < 60
