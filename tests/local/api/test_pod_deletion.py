"""Graceful deletion of pods through the real ``kubernetes`` client (API server only, no runtime): a
Running pod gets ``deletionTimestamp`` and ``deletionGracePeriodSeconds`` and stays until a final
phase is written or its grace period passes; other pods, and ``gracePeriodSeconds=0``, go at once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from typing import Any

import pytest
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from airflow_argo_eci.local.api.resources import CONFIGMAPS, PODS
from airflow_argo_eci.local.api.store import Store
from tests.local.api.apiserver_helpers import ApiServer

NS = "argo"


@pytest.fixture(scope="module")
def core(api_server: ApiServer) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(config_file=str(api_server.kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


def _running_pod(core: client.CoreV1Api, name: str, grace: int | None = None) -> client.V1Pod:
    spec = client.V1PodSpec(containers=[client.V1Container(name="main", image="alpine")],
                            termination_grace_period_seconds=grace)
    created = core.create_namespaced_pod(NS, client.V1Pod(metadata=client.V1ObjectMeta(name=name), spec=spec))
    created.status.phase = "Running"
    return core.replace_namespaced_pod_status(name, NS, created)


def _exists(core: client.CoreV1Api, name: str) -> bool:
    try:
        core.read_namespaced_pod(name, NS)
    except ApiException as exc:
        assert exc.status == 404
        return False
    return True


def _until(check: Callable[[], Any], timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"condition not met in {timeout}s")


def _stamp(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc).timestamp()


def test_running_pod_waits_until_its_final_status_is_written(core: client.CoreV1Api) -> None:
    rv = _running_pod(core, "grace-a").metadata.resource_version
    before = time.time()
    marked = core.delete_namespaced_pod("grace-a", NS)
    assert marked.metadata.deletion_grace_period_seconds == 30  # the default
    ends = marked.metadata.deletion_timestamp.timestamp()
    assert before + 29 <= ends <= time.time() + 31  # when the grace period ends, as in Kubernetes
    held = core.read_namespaced_pod("grace-a", NS)
    assert held.metadata.deletion_timestamp is not None and held.status.phase == "Running"
    # deleting again with no (or a longer) grace period changes nothing
    again = core.delete_namespaced_pod("grace-a", NS, grace_period_seconds=60)
    assert again.metadata.resource_version == held.metadata.resource_version
    # the kubelet's part: the process ended, the final status is written, then the pod goes
    held.status.phase = "Failed"
    core.replace_namespaced_pod_status("grace-a", NS, held)
    assert not _exists(core, "grace-a")
    events = [(e["type"], e["object"].status.phase, e["object"].metadata.deletion_grace_period_seconds)
              for e in watch.Watch().stream(core.list_namespaced_pod, NS, resource_version=rv,
                                            field_selector="metadata.name=grace-a", timeout_seconds=1)]
    assert events == [("MODIFIED", "Running", 30), ("MODIFIED", "Failed", 30), ("DELETED", "Failed", 0)]


def test_grace_period_from_spec_query_and_body(core: client.CoreV1Api) -> None:
    _running_pod(core, "grace-spec", grace=45)
    assert core.delete_namespaced_pod("grace-spec", NS).metadata.deletion_grace_period_seconds == 45
    _running_pod(core, "grace-query")
    # the query-parameter form, as kubectl --grace-period sends it
    resp = core.api_client.call_api(f"/api/v1/namespaces/{NS}/pods/grace-query", "DELETE",
                                    query_params=[("gracePeriodSeconds", "20")], auth_settings=["BearerToken"],
                                    _preload_content=False)
    assert json.loads(resp.data)["metadata"]["deletionGracePeriodSeconds"] == 20
    # a shorter period takes over; 0 removes the pod at once
    shorter = core.delete_namespaced_pod("grace-spec", NS, grace_period_seconds=10)
    assert shorter.metadata.deletion_grace_period_seconds == 10
    core.delete_namespaced_pod("grace-spec", NS, grace_period_seconds=0)
    assert not _exists(core, "grace-spec")
    core.delete_namespaced_pod("grace-query", NS, body=client.V1DeleteOptions(grace_period_seconds=0))
    assert not _exists(core, "grace-query")


def test_grace_period_zero_and_pods_without_a_process_go_at_once(core: client.CoreV1Api) -> None:
    _running_pod(core, "grace-zero")
    core.delete_namespaced_pod("grace-zero", NS, grace_period_seconds=0)
    assert not _exists(core, "grace-zero")
    pending = client.V1Pod(metadata=client.V1ObjectMeta(name="grace-pending"),
                           spec=client.V1PodSpec(containers=[client.V1Container(name="main", image="alpine")]))
    core.create_namespaced_pod(NS, pending)
    core.delete_namespaced_pod("grace-pending", NS)
    assert not _exists(core, "grace-pending")
    done = _running_pod(core, "grace-done")
    done.status.phase = "Succeeded"
    core.replace_namespaced_pod_status("grace-done", NS, done)
    core.delete_namespaced_pod("grace-done", NS)
    assert not _exists(core, "grace-done")


def test_the_pod_goes_when_its_grace_period_passes(core: client.CoreV1Api) -> None:
    _running_pod(core, "grace-timer")
    core.delete_namespaced_pod("grace-timer", NS, grace_period_seconds=1)
    assert _exists(core, "grace-timer")
    _until(lambda: not _exists(core, "grace-timer"), timeout=10)


def test_finalizers_keep_a_pod_after_its_process_ended(core: client.CoreV1Api) -> None:
    pod = _running_pod(core, "grace-fin")
    core.patch_namespaced_pod("grace-fin", NS, {"metadata": {"finalizers": ["example.com/keep"]}})
    marked = core.delete_namespaced_pod("grace-fin", NS)
    assert marked.metadata.deletion_grace_period_seconds == 0  # finalizers: as before, held by them
    pod = core.read_namespaced_pod("grace-fin", NS)
    pod.status.phase = "Failed"
    core.replace_namespaced_pod_status("grace-fin", NS, pod)
    assert _exists(core, "grace-fin")
    core.patch_namespaced_pod("grace-fin", NS, [{"op": "remove", "path": "/metadata/finalizers"}])
    assert not _exists(core, "grace-fin")


def test_bad_grace_periods_are_refused(core: client.CoreV1Api) -> None:
    _running_pod(core, "grace-bad")
    for body in ({"gracePeriodSeconds": "soon"}, {"gracePeriodSeconds": -1}, {"gracePeriodSeconds": True}):
        with pytest.raises(ApiException) as caught:
            core.delete_namespaced_pod("grace-bad", NS, body=body)
        assert caught.value.status == 400 and "gracePeriodSeconds" in caught.value.body
    with pytest.raises(ApiException) as caught:
        core.api_client.call_api(f"/api/v1/namespaces/{NS}/pods/grace-bad", "DELETE",
                                 query_params=[("gracePeriodSeconds", "abc")], auth_settings=["BearerToken"])
    assert caught.value.status == 400
    assert json.loads(caught.value.body)["message"].startswith('query parameter "gracePeriodSeconds" must be')
    assert core.read_namespaced_pod("grace-bad", NS).metadata.deletion_timestamp is None
    core.delete_namespaced_pod("grace-bad", NS, grace_period_seconds=0)


def test_a_reopened_store_ends_the_grace_periods_it_had(tmp_path: Any) -> None:
    store = Store(tmp_path / "db.sqlite")
    store.create(PODS, NS, {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "main", "image": "a"}]},
                            "status": {"phase": "Running"}})
    store.delete(PODS, NS, "p", grace_period_seconds=2)
    store.close()
    reopened = Store(tmp_path / "db.sqlite")
    try:
        assert reopened.find(PODS, NS, "p") is not None
        _until(lambda: reopened.find(PODS, NS, "p") is None, timeout=10)
    finally:
        reopened.close()


def test_kubectl_delete_with_grace_period_force_and_cascade(tmp_path: Any) -> None:
    """kubectl's own flags: ``--wait=false`` leaves the running pod marked, ``--grace-period=0
    --force`` removes it, ``--cascade=orphan|foreground`` send the propagation policy."""
    from tests.local.api.apiserver_helpers import start_api_server
    from tests.local.api.test_kubectl import KUBECTL, kubectl

    if KUBECTL is None:
        pytest.skip("kubectl is not installed")
    pytest.importorskip("cryptography")
    srv = start_api_server(tmp_path / "tls", tls=True)
    try:
        store = srv.store
        store.create(PODS, NS, {"metadata": {"name": "k-pod"},
                                "spec": {"containers": [{"name": "main", "image": "alpine"}]},
                                "status": {"phase": "Running"}})
        out = kubectl(srv, "delete", "pod", "k-pod", "-n", NS, "--wait=false")
        assert out.returncode == 0, out.stderr
        marked = store.find(PODS, NS, "k-pod")
        assert marked is not None and marked["metadata"]["deletionGracePeriodSeconds"] == 30
        out = kubectl(srv, "delete", "pod", "k-pod", "-n", NS, "--grace-period=0", "--force")
        assert out.returncode == 0, out.stderr
        assert store.find(PODS, NS, "k-pod") is None

        owner = store.create(CONFIGMAPS, NS, {"metadata": {"name": "k-owner"}})
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "k-owner", "uid": owner["metadata"]["uid"]}
        store.create(CONFIGMAPS, NS, {"metadata": {"name": "k-dep", "ownerReferences": [ref]}})
        out = kubectl(srv, "delete", "configmap", "k-owner", "-n", NS, "--cascade=orphan")
        assert out.returncode == 0, out.stderr
        orphan = store.find(CONFIGMAPS, NS, "k-dep")
        assert orphan is not None and "ownerReferences" not in orphan["metadata"]

        owner = store.create(CONFIGMAPS, NS, {"metadata": {"name": "k-owner2"}})
        ref = {"apiVersion": "v1", "kind": "ConfigMap", "name": "k-owner2", "uid": owner["metadata"]["uid"],
               "blockOwnerDeletion": True}
        store.create(CONFIGMAPS, NS, {"metadata": {"name": "k-dep2", "ownerReferences": [ref]}})
        out = kubectl(srv, "delete", "configmap", "k-owner2", "-n", NS, "--cascade=foreground")
        assert out.returncode == 0, out.stderr
        assert store.find(CONFIGMAPS, NS, "k-owner2") is None and store.find(CONFIGMAPS, NS, "k-dep2") is None
    finally:
        srv.stop()
