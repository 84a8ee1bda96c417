"""Attacks on resources: memory, disk and processes beyond the container's limits, through the real API.

On Kubernetes the first ends ``OOMKilled`` (exit 137), the second is evicted by the kubelet, the
third hits the node's pod pid limit; here the same, and the cluster keeps serving and running the
other workflows. Where the cluster cannot use cgroups (an unprivileged user without a delegated
cgroup v2 subtree) memory is an rlimit and the allocation fails instead (exit code 1,
``MemoryError``), which the test asserts instead.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from airflow_argo_eci.conventions import pod_name
from tests.local.adversarial.harness import (
    ClusterUnderTest,
    Responsiveness,
    ServedCluster,
    assert_nothing_leaked,
    harmless_workflow,
    pod_logs,
    run_workflow,
    script_workflow,
    serve_cluster,
)

PIDS_LIMIT = 128
EVICTED = 'Container main exceeded its local ephemeral storage limit "50Mi". '


@pytest.fixture(scope="module")
def hostile_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedCluster]:
    """The harness's served cluster, with a pod pid limit below the attack's 300 processes."""
    yield from serve_cluster(tmp_path_factory, "hostile-limits", "--pids-limit", str(PIDS_LIMIT))


def _memory_cgroup(cluster: ServedCluster) -> bool:
    """Whether the server enforces memory with a cgroup (``server.json``'s limits method), else rlimits."""
    method = str(cluster.info.get("limits") or "")
    return method.startswith("cgroup") and "memory" in method


def _pod(kube: Any, wf: dict[str, Any]) -> dict[str, Any]:
    from kubernetes import client

    (node,) = [n for n in wf["status"]["nodes"].values() if n.get("type") == "Pod"]
    name = pod_name(wf["metadata"]["name"], node["name"], node.get("templateName") or "")
    pod: dict[str, Any] = kube.sanitize_for_serialization(client.CoreV1Api(kube).read_namespaced_pod(name, "argo"))
    return pod


def _node(wf: dict[str, Any]) -> dict[str, Any]:
    (node,) = [n for n in wf["status"]["nodes"].values() if n.get("type") == "Pod"]
    return node


def _still_serving(cluster: ClusterUnderTest, kube: Any, responsiveness: Responsiveness) -> None:
    responsiveness.check()
    assert run_workflow(kube, harmless_workflow())["status"]["phase"] == "Succeeded"
    assert_nothing_leaked(cluster, kube)


def test_memory_over_the_limit_is_oom_killed(hostile_cluster: ClusterUnderTest, kube: Any,
                                             responsiveness: Responsiveness) -> None:
    source = "x = bytearray(200 * 1024 * 1024)\nprint('allocated', len(x))\n"
    manifest = script_workflow(source, image="python:3.12",
                               container_extra={"command": ["python"], "resources": {"limits": {"memory": "50Mi"}}})
    with responsiveness:
        wf = run_workflow(kube, manifest)
    assert wf["status"]["phase"] == "Failed", wf["status"]
    if _memory_cgroup(hostile_cluster):
        assert _node(wf)["message"] == "OOMKilled (exit code 137)"
        terminated = _pod(kube, wf)["status"]["containerStatuses"][0]["state"]["terminated"]
        assert (terminated["reason"], terminated["exitCode"]) == ("OOMKilled", 137)
    else:  # rlimits: the allocation fails
        assert _node(wf)["message"] == "Error (exit code 1)"
        assert "MemoryError" in pod_logs(kube, wf)
    assert "allocated" not in pod_logs(kube, wf)
    _still_serving(hostile_cluster, kube, responsiveness)


def test_disk_over_the_ephemeral_storage_limit_is_evicted(hostile_cluster: ClusterUnderTest, kube: Any,
                                                          responsiveness: Responsiveness) -> None:
    manifest = script_workflow("head -c 209715200 /dev/zero > /tmp/fill; echo size=$(wc -c < /tmp/fill)",
                               container_extra={"resources": {"limits": {"ephemeral-storage": "50Mi"}}})
    with responsiveness:
        wf = run_workflow(kube, manifest)
    assert wf["status"]["phase"] == "Failed", wf["status"]
    assert _node(wf)["message"] == EVICTED
    pod = _pod(kube, wf)
    assert (pod["status"]["phase"], pod["status"]["reason"], pod["status"]["message"]) == ("Failed", "Evicted", EVICTED)
    written = int(pod_logs(kube, wf).split("size=")[1].split()[0])
    assert written <= 51 * 1024 * 1024  # the disk never held the 200 MiB
    _still_serving(hostile_cluster, kube, responsiveness)


def test_processes_over_the_pid_limit_fail(hostile_cluster: ClusterUnderTest, kube: Any,
                                           responsiveness: Responsiveness) -> None:
    source = "i=0; while [ $i -lt 300 ]; do sleep 30 & i=$((i+1)); done; echo spawned $i"
    with responsiveness:
        wf = run_workflow(kube, script_workflow(source))
    assert wf["status"]["phase"] == "Failed", wf["status"]
    assert "spawned 300" not in pod_logs(kube, wf)
    _still_serving(hostile_cluster, kube, responsiveness)


def test_a_bad_quantity_fails_the_workflow_naming_the_field(hostile_cluster: ClusterUnderTest, kube: Any) -> None:
    wf = run_workflow(kube, script_workflow("echo hi", container_extra={"resources": {"limits": {"memory": "1 GB"}}}))
    assert wf["status"]["phase"] in ("Failed", "Error"), wf["status"]
    assert "resources.limits.memory: '1 GB' is not a quantity" in _node(wf)["message"]
    assert run_workflow(kube, harmless_workflow())["status"]["phase"] == "Succeeded"


def test_workflows_within_their_limits_succeed(hostile_cluster: ClusterUnderTest, kube: Any) -> None:
    source = ("head -c 10485760 /dev/zero > /tmp/f; i=0; while [ $i -lt 50 ]; do sleep 1 & i=$((i+1)); done; "
              "wait; echo done")
    limits = {"memory": "64Mi", "cpu": "500m", "ephemeral-storage": "50Mi"}
    wf = run_workflow(kube, script_workflow(source, container_extra={"resources": {"limits": limits}}))
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    assert "done" in pod_logs(kube, wf)
