"""``synchronization`` on the local cluster through the ``kubernetes`` client: workflow-level
mutexes and ConfigMap semaphores with Argo's waiting message and ``status.synchronization``, a
mutex held by a deleted workflow released, priority among waiters, and bad lock specs."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from airflow_argo_eci.conventions import GROUP, TERMINAL_PHASES, VERSION, WORKFLOWS

NS = "default"


def objects(api_client: Any) -> Any:
    from kubernetes import client

    return client.CustomObjectsApi(api_client)


def workflow(sync: dict[str, Any], seconds: float = 0.0, priority: int | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "entrypoint": "main", "synchronization": sync,
        "templates": [{"name": "main", "container": {"image": "alpine:3.23", "command": ["sh", "-c"],
                                                     "args": [f"sleep {seconds}; echo done"]}}]}
    if priority is not None:
        spec["priority"] = priority
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow", "metadata": {"generateName": "sync-"},
            "spec": spec}


def submit(api_client: Any, doc: dict[str, Any]) -> str:
    created = objects(api_client).create_namespaced_custom_object(GROUP, VERSION, NS, WORKFLOWS, doc)
    return str(created["metadata"]["name"])


def get(api_client: Any, name: str) -> dict[str, Any]:
    wf: dict[str, Any] = objects(api_client).get_namespaced_custom_object(GROUP, VERSION, NS, WORKFLOWS, name)
    return wf


def wait_for(api_client: Any, name: str, check: Callable[[dict[str, Any]], bool], timeout: float = 30.0
             ) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    wf = get(api_client, name)
    while time.monotonic() < deadline:
        wf = get(api_client, name)
        if check(wf):
            return wf
        time.sleep(0.1)
    raise AssertionError(f"workflow {name} never got there: {wf.get('status')}")


def phase_is(*phases: str) -> Callable[[dict[str, Any]], bool]:
    return lambda wf: (wf.get("status") or {}).get("phase") in phases


def waiting(wf: dict[str, Any]) -> bool:
    return str((wf.get("status") or {}).get("message", "")).startswith("Waiting for ")


def test_a_workflow_mutex_lets_one_workflow_run_and_the_other_wait(kube_api_client: Any) -> None:
    mutex = f"m-{uuid.uuid4().hex[:6]}"
    key = f"{NS}/Mutex/{mutex}"
    first = submit(kube_api_client, workflow({"mutex": {"name": mutex}}, seconds=3))
    wait_for(kube_api_client, first, phase_is("Running"))
    second = submit(kube_api_client, workflow({"mutex": {"name": mutex}}))
    wf = wait_for(kube_api_client, second, waiting)
    assert wf["status"]["phase"] == "Pending"
    assert wf["status"]["message"] == f"Waiting for {key} lock. Lock status: 0/1"
    assert wf["status"]["synchronization"] == {"mutex": {"waiting": [{"mutex": key, "holder": f"{NS}/{first}"}]}}
    holder = get(kube_api_client, first)
    assert holder["status"]["synchronization"] == {"mutex": {"holding": [{"mutex": key, "holder": first}]}}
    done = wait_for(kube_api_client, second, phase_is(*TERMINAL_PHASES), timeout=60)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert "synchronization" not in done["status"]  # released at the end
    first_done = get(kube_api_client, first)
    assert first_done["status"]["phase"] == "Succeeded"
    assert "synchronization" not in first_done["status"]
    assert first_done["status"]["finishedAt"] <= done["status"]["startedAt"]


def test_a_mutex_held_by_a_deleted_workflow_is_released(kube_api_client: Any) -> None:
    mutex = f"m-{uuid.uuid4().hex[:6]}"
    holder = submit(kube_api_client, workflow({"mutex": {"name": mutex}}, seconds=300))
    wait_for(kube_api_client, holder, phase_is("Running"))
    waiter = submit(kube_api_client, workflow({"mutex": {"name": mutex}}))
    wait_for(kube_api_client, waiter, waiting)
    objects(kube_api_client).delete_namespaced_custom_object(GROUP, VERSION, NS, WORKFLOWS, holder)
    done = wait_for(kube_api_client, waiter, phase_is(*TERMINAL_PHASES), timeout=30)
    assert done["status"]["phase"] == "Succeeded", done["status"]


def test_a_configmap_semaphore_admits_its_limit(kube_api_client: Any) -> None:
    from kubernetes import client

    cm = f"sem-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(kube_api_client).create_namespaced_config_map(
        NS, {"metadata": {"name": cm}, "data": {"workflow": "2"}})
    sync = {"semaphore": {"configMapKeyRef": {"name": cm, "key": "workflow"}}}
    key = f"{NS}/ConfigMap/{cm}/workflow"
    running = [submit(kube_api_client, workflow(sync, seconds=3)) for _ in range(2)]
    for name in running:
        wait_for(kube_api_client, name, phase_is("Running"))
    third = submit(kube_api_client, workflow(sync))
    wf = wait_for(kube_api_client, third, waiting)
    assert wf["status"]["message"] == f"Waiting for {key} lock. Lock status: 0/2"
    entry = wf["status"]["synchronization"]["semaphore"]["waiting"][0]
    assert entry["semaphore"] == key and sorted(entry["holders"]) == sorted(f"{NS}/{n}" for n in running)
    assert get(kube_api_client, running[0])["status"]["synchronization"] == {
        "semaphore": {"holding": [{"semaphore": key, "holders": [running[0]]}]}}
    done = wait_for(kube_api_client, third, phase_is(*TERMINAL_PHASES), timeout=60)
    assert done["status"]["phase"] == "Succeeded", done["status"]


def test_waiters_take_a_freed_lock_by_priority(kube_api_client: Any) -> None:
    mutex = f"m-{uuid.uuid4().hex[:6]}"
    holder = submit(kube_api_client, workflow({"mutex": {"name": mutex}}, seconds=2))
    wait_for(kube_api_client, holder, phase_is("Running"))
    low = submit(kube_api_client, workflow({"mutex": {"name": mutex}}, seconds=1, priority=1))
    wait_for(kube_api_client, low, waiting)
    high = submit(kube_api_client, workflow({"mutex": {"name": mutex}}, seconds=1, priority=5))
    wait_for(kube_api_client, high, waiting)
    low_done = wait_for(kube_api_client, low, phase_is(*TERMINAL_PHASES), timeout=60)
    high_done = get(kube_api_client, high)
    assert high_done["status"]["phase"] == "Succeeded", "the higher priority ran first"
    assert high_done["status"]["finishedAt"] <= low_done["status"]["startedAt"]


@pytest.mark.parametrize(("sync", "message"), [
    ({"semaphore": {"configMapKeyRef": {"name": "no-such-limits", "key": "workflow"}}},
     "invalid spec: spec.synchronization.semaphore.configMapKeyRef: failed to get semaphore limit: "
     "ConfigMap 'no-such-limits' does not exist in namespace default"),
    ({"semaphore": {"configMapKeyRef": {"name": "kube-root-ca.crt", "key": "workflow"}}},
     "does not have the key 'workflow'"),
    ({"mutex": {"name": "db", "database": True}},
     "invalid spec: spec.synchronization.mutex.database: database-backed locks need Argo's synchronization "
     "database, which the local cluster does not have"),
    ({"mutex": {}}, "invalid spec: spec.synchronization.mutex.name is required"),
    ({}, "invalid spec: spec.synchronization names no lock"),
])
def test_bad_locks_end_the_workflow_in_error_naming_the_field(kube_api_client: Any, sync: dict[str, Any],
                                                              message: str) -> None:
    from kubernetes import client

    if "kube-root-ca.crt" in str(sync):
        name = f"lim-{uuid.uuid4().hex[:6]}"
        client.CoreV1Api(kube_api_client).create_namespaced_config_map(
            NS, {"metadata": {"name": name}, "data": {"template": "1"}})
        sync = {"semaphore": {"configMapKeyRef": {"name": name, "key": "workflow"}}}
    doc = workflow(sync)
    if not sync:
        doc["spec"]["synchronization"] = {"mutexes": []}
    wf = wait_for(kube_api_client, submit(kube_api_client, doc), phase_is(*TERMINAL_PHASES))
    assert wf["status"]["phase"] == "Error"
    assert message in wf["status"]["message"], wf["status"]["message"]


def test_a_semaphore_limit_must_be_an_integer(kube_api_client: Any) -> None:
    from kubernetes import client

    name = f"lim-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(kube_api_client).create_namespaced_config_map(
        NS, {"metadata": {"name": name}, "data": {"workflow": "two"}})
    doc = workflow({"semaphore": {"configMapKeyRef": {"name": name, "key": "workflow"}}})
    wf = wait_for(kube_api_client, submit(kube_api_client, doc), phase_is(*TERMINAL_PHASES))
    assert wf["status"]["phase"] == "Error"
    assert f"ConfigMap '{name}' key 'workflow' must hold the semaphore's limit as an integer, not 'two'" in \
        wf["status"]["message"]


def steps_workflow(sync: dict[str, Any], items: int, seconds: float) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow", "metadata": {"generateName": "sync-tmpl-"},
            "spec": {"entrypoint": "main", "templates": [
                {"name": "main", "steps": [[{"name": "work", "template": "locked",
                                             "withSequence": {"count": str(items)}}]]},
                {"name": "locked", "synchronization": sync,
                 "container": {"image": "alpine:3.23", "command": ["sh", "-c"], "args": [f"sleep {seconds}"]}}]}}


def pod_nodes(wf: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in (wf.get("status") or {}).get("nodes", {}).values() if n.get("type") == "Pod"]


def test_a_template_mutex_runs_its_nodes_one_at_a_time(kube_api_client: Any) -> None:
    mutex = f"m-{uuid.uuid4().hex[:6]}"
    key = f"{NS}/Mutex/{mutex}"
    name = submit(kube_api_client, steps_workflow({"mutex": {"name": mutex}}, items=3, seconds=1))

    def one_waits(wf: dict[str, Any]) -> bool:
        return bool(((wf.get("status") or {}).get("synchronization") or {}).get("mutex", {}).get("waiting"))

    wf = wait_for(kube_api_client, name, one_waits)
    mutex_status = wf["status"]["synchronization"]["mutex"]
    assert len(mutex_status["holding"]) == 1 and mutex_status["holding"][0]["mutex"] == key
    holder = mutex_status["holding"][0]["holder"]
    assert holder in wf["status"]["nodes"]  # a node id
    assert mutex_status["waiting"] == [{"mutex": key, "holder": f"{NS}/{name}/{holder}"}]
    # a waiting pod template has no pod (nor node) yet: only the holder runs
    assert [n["id"] for n in pod_nodes(wf) if n["phase"] in ("Pending", "Running")] == [holder]
    done = wait_for(kube_api_client, name, phase_is(*TERMINAL_PHASES), timeout=60)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert "synchronization" not in done["status"]
    spans = sorted((n["startedAt"], n["finishedAt"]) for n in pod_nodes(done))
    assert len(spans) == 3
    assert all(spans[i][1] <= spans[i + 1][0] for i in range(2)), f"nodes overlapped: {spans}"


def test_a_template_semaphore_bounds_concurrent_nodes(kube_api_client: Any) -> None:
    from kubernetes import client

    cm = f"sem-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(kube_api_client).create_namespaced_config_map(
        NS, {"metadata": {"name": cm}, "data": {"template": "2"}})
    sync = {"semaphore": {"configMapKeyRef": {"name": cm, "key": "template"}}}
    name = submit(kube_api_client, steps_workflow(sync, items=4, seconds=1))
    peak = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        wf = get(kube_api_client, name)
        peak = max(peak, sum(1 for n in pod_nodes(wf) if n["phase"] == "Running"))
        if wf.get("status", {}).get("phase") in TERMINAL_PHASES:
            break
        time.sleep(0.05)
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    assert 1 <= peak <= 2
    spans = sorted((n["startedAt"], n["finishedAt"]) for n in pod_nodes(wf))
    for i, (start, _) in enumerate(spans):
        assert sum(1 for s, f in spans if s <= start < f) <= 2, f"more than 2 at once at {start}: {spans}"
        del i


def test_a_bad_template_lock_fails_its_node_naming_the_field(kube_api_client: Any) -> None:
    name = submit(kube_api_client, steps_workflow({"semaphore": {"configMapKeyRef": {"name": "nope"}}},
                                                  items=1, seconds=0))
    wf = wait_for(kube_api_client, name, phase_is(*TERMINAL_PHASES))
    assert wf["status"]["phase"] in ("Failed", "Error")
    messages = [n.get("message", "") for n in wf["status"]["nodes"].values()]
    assert any("templates.locked.synchronization.semaphore.configMapKeyRef with name and key is required" in m
               for m in messages), messages
