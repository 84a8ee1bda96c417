"""Two stores on one database tied by a :class:`PeerLink` (the API server's and the node process's,
``local/node_process.py``): each store here has its own SQLite connection, lock and follower
thread, as in two processes; ``tests/local/test_node_process.py`` runs the real second process."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from airflow_argo_eci.local.api.resources import CONFIGMAPS, PODS
from airflow_argo_eci.local.api.store import PeerLink, Store


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Store, Store]]:
    a_to_b = os.pipe()
    b_to_a = os.pipe()
    db = tmp_path / "cluster.db"
    a = Store(db, peer=PeerLink(wake_fd=b_to_a[0], notify_fd=a_to_b[1]))
    b = Store(db, peer=PeerLink(wake_fd=a_to_b[0], notify_fd=b_to_a[1]))
    yield a, b
    a.close()
    b.close()
    for fd in (*a_to_b, *b_to_a):
        os.close(fd)


def cm(name: str, **meta: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, **meta}, "data": {"k": name}}


def eventually(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the timeout"
        time.sleep(0.01)


def test_peer_commits_reach_listeners_once_and_in_order(pair: tuple[Store, Store]) -> None:
    a, b = pair
    seen: list[tuple[str, str, int]] = []
    b.add_listener(lambda t, rt, o: seen.append((t, o["metadata"]["name"], int(o["metadata"]["resourceVersion"]))),
                   kinds=[CONFIGMAPS])
    made = [a.create(CONFIGMAPS, "argo", cm(f"a-{i}")) for i in range(3)]
    a.update(CONFIGMAPS, "argo", "a-0", lambda o: {**o, "data": {"k": "changed"}})
    b.create(CONFIGMAPS, "argo", cm("b-own"))
    a.delete(CONFIGMAPS, "argo", "a-1")
    eventually(lambda: len(seen) == 6)
    time.sleep(0.1)  # nothing arrives twice
    # b's own commit reaches its listeners from the writer at once, the peer's from the follower
    # in the peer's order (as listeners of one process see writers of different threads)
    assert [(t, n) for t, n, _ in seen if n != "b-own"] == [
        ("ADDED", "a-0"), ("ADDED", "a-1"), ("ADDED", "a-2"), ("MODIFIED", "a-0"), ("DELETED", "a-1")]
    assert [t for t, n, _ in seen if n == "b-own"] == ["ADDED"]
    rvs = [rv for _, n, rv in seen if n != "b-own"]
    assert rvs == sorted(rvs) and len({rv for _, _, rv in seen}) == 6
    assert rvs[:3] == [int(m["metadata"]["resourceVersion"]) for m in made]


def test_resource_versions_are_one_sequence_across_both(pair: tuple[Store, Store]) -> None:
    a, b = pair
    rvs = []
    for i in range(10):
        store = a if i % 2 else b
        rvs.append(int(store.create(CONFIGMAPS, "argo", cm(f"x-{i}"))["metadata"]["resourceVersion"]))
    assert rvs == sorted(rvs) and len(set(rvs)) == 10
    assert a.resource_version == b.resource_version == rvs[-1]
    items, list_rv, _ = b.list(CONFIGMAPS, "argo")
    assert int(list_rv) == rvs[-1] and {f"x-{i}" for i in range(10)} <= {i["metadata"]["name"] for i in items}


def test_an_update_reads_what_the_peer_wrote(pair: tuple[Store, Store]) -> None:
    a, b = pair
    a.create(CONFIGMAPS, "argo", cm("shared"))
    b.update(CONFIGMAPS, "argo", "shared", lambda o: {**o, "data": {"k": o["data"]["k"] + "+b"}})
    a.update(CONFIGMAPS, "argo", "shared", lambda o: {**o, "data": {"k": o["data"]["k"] + "+a"}})
    assert b.get(CONFIGMAPS, "argo", "shared")["data"] == {"k": "shared+b+a"}


def test_wait_for_change_wakes_on_a_peer_commit(pair: tuple[Store, Store]) -> None:
    a, b = pair
    start = b.resource_version
    woke: list[float] = []

    def wait() -> None:
        began = time.monotonic()
        if b.wait_for_change(start, 10.0):
            woke.append(time.monotonic() - began)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.1)
    a.create(CONFIGMAPS, "argo", cm("wake"))
    waiter.join(5)
    assert woke and woke[0] < 2.0


def test_commit_hooks_and_kind_filters(pair: tuple[Store, Store]) -> None:
    a, b = pair
    hooks: list[int] = []
    pods: list[str] = []
    b.add_commit_hook(lambda: hooks.append(1))
    b.add_listener(lambda t, rt, o: pods.append(o["metadata"]["name"]), kinds=[PODS])
    a.create(CONFIGMAPS, "argo", cm("not-a-pod"))
    eventually(lambda: len(hooks) >= 1)
    a.create(PODS, "argo", {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main", "image": "x"}]}})
    eventually(lambda: pods == ["p"])
    count = len(hooks)
    b.create(CONFIGMAPS, "argo", cm("own"))
    assert len(hooks) == count + 1  # its own commit: called by the writer, at once


def test_owner_deleted_by_one_takes_dependents_made_by_the_other(pair: tuple[Store, Store]) -> None:
    a, b = pair
    owner = a.create(CONFIGMAPS, "argo", cm("owner"))
    ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "owner", "uid": owner["metadata"]["uid"]}
    b.create(CONFIGMAPS, "argo", cm("dependent", ownerReferences=[ref]))
    a.delete(CONFIGMAPS, "argo", "owner")
    eventually(lambda: b.find(CONFIGMAPS, "argo", "dependent") is None)


def test_a_store_whose_peer_is_gone_goes_on(tmp_path: Path) -> None:
    a_to_b = os.pipe()
    b_to_a = os.pipe()
    db = tmp_path / "cluster.db"
    a = Store(db, peer=PeerLink(wake_fd=b_to_a[0], notify_fd=a_to_b[1]))
    b = Store(db, peer=PeerLink(wake_fd=a_to_b[0], notify_fd=b_to_a[1]))
    try:
        b.close()
        os.close(b_to_a[1])  # the peer's end of its pipe: a's follower reads EOF and stops
        os.close(a_to_b[0])  # nobody reads a's notifications any more
        made = a.create(CONFIGMAPS, "argo", cm("alone"))
        assert a.get(CONFIGMAPS, "argo", "alone")["metadata"]["uid"] == made["metadata"]["uid"]
    finally:
        a.close()
        os.close(a_to_b[1])
        os.close(b_to_a[0])
