"""The local cluster as a whole: restarts keep every object, lost pods end as Error and retry."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from airflow_argo_eci.local.server import LocalCluster

GVR = ("argoproj.io", "v1alpha1", "argo", "workflows")


def _objects(cluster: LocalCluster) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(config.new_client_from_config(config_file=str(cluster.kubeconfig_path)))


def _workflow(name: str, retry: bool) -> dict[str, Any]:
    template: dict[str, Any] = {
        "name": "main",
        "container": {
            "image": "alpine:3.19",
            "command": ["sh", "-c", "if [ {{retries}} = 0 ]; then sleep 60; fi; echo attempt {{retries}}"],
        },
    }
    if retry:
        # Always: a lost pod is an Error, which the default policy (OnFailure) does not retry
        template["retryStrategy"] = {"limit": "2", "retryPolicy": "Always"}
    else:  # {{retries}} only resolves in templates with a retryStrategy, as in Argo
        template["container"]["command"] = ["sh", "-c", "sleep 60"]
    return {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name},
            "spec": {"entrypoint": "main", "templates": [template]}}


def _wait(objects: client.CustomObjectsApi, name: str, predicate: Any, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        wf: dict[str, Any] = objects.get_namespaced_custom_object(*GVR, name)
        if predicate(wf):
            return wf
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} did not reach the expected state: {wf.get('status')}")
        time.sleep(0.1)


def _running_pods(wf: dict[str, Any]) -> list[dict[str, Any]]:
    nodes = (wf.get("status") or {}).get("nodes") or {}
    return [n for n in nodes.values() if n.get("type") == "Pod" and n.get("phase") == "Running"]


@pytest.mark.slow
@pytest.mark.parametrize("node_process", [False, True], ids=["one-process", "node-process"])
def test_restart_keeps_objects_and_lost_pods_retry(tmp_path: Path, node_process: bool) -> None:
    state = tmp_path / "state"
    with LocalCluster(state, node_process=node_process) as cluster:
        objects = _objects(cluster)
        objects.create_namespaced_custom_object(*GVR, _workflow("lost-retried", retry=True))
        objects.create_namespaced_custom_object(*GVR, _workflow("lost-failed", retry=False))
        for name in ("lost-retried", "lost-failed"):
            _wait(objects, name, lambda wf: len(_running_pods(wf)) == 1)
        uid = objects.get_namespaced_custom_object(*GVR, "lost-retried")["metadata"]["uid"]

    # a new server on the same state: same objects, and the pods that were running are lost
    with LocalCluster(state, node_process=node_process) as cluster:
        objects = _objects(cluster)
        retried = _wait(objects, "lost-retried", lambda wf: wf.get("status", {}).get("phase") == "Succeeded")
        assert retried["metadata"]["uid"] == uid
        pods = sorted((n for n in retried["status"]["nodes"].values() if n["type"] == "Pod"),
                      key=lambda n: n["name"])
        assert [p["phase"] for p in pods] == ["Error", "Succeeded"]
        assert "lost" in pods[0]["message"]
        assert pods[1]["outputs"]["result"] == "attempt 1"

        failed = _wait(objects, "lost-failed",
                       lambda wf: wf.get("status", {}).get("phase") in ("Failed", "Error"))
        pod = next(n for n in failed["status"]["nodes"].values() if n["type"] == "Pod")
        assert pod["phase"] == "Error" and "lost" in pod["message"]


def _listening_addresses(port: int) -> set[str]:
    """Local addresses with a socket LISTENing on ``port``, read from the kernel's socket tables."""
    found = set()
    for table, family in (("/proc/net/tcp", socket.AF_INET), ("/proc/net/tcp6", socket.AF_INET6)):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].split(":")
            if fields[3] != "0A" or int(port_hex, 16) != port:  # 0A = LISTEN
                continue
            raw = bytes.fromhex(address)
            # the kernel prints each 32-bit word in host (little-endian) order
            raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
            found.add(socket.inet_ntop(family, raw))
    return found


def test_binds_loopback_only(local_cluster: LocalCluster) -> None:
    """It executes commands: nothing but this machine's loopback may reach it (checked in the
    kernel's listening-socket table, without sending traffic anywhere)."""
    assert local_cluster.url.startswith("https://127.0.0.1:")
    if not Path("/proc/net/tcp").exists():
        pytest.skip("no /proc/net/tcp on this system to read listening sockets from")
    assert _listening_addresses(local_cluster.port) == {"127.0.0.1"}


def test_rejects_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="capacity_vcpu"):
        LocalCluster(tmp_path, capacity_vcpu=0)
    with pytest.raises(ValueError, match="sandbox"):
        LocalCluster(tmp_path, sandbox="docker")


def _pods_of(cluster: LocalCluster, name: str) -> list[Any]:
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig_path)))
    return list(core.list_namespaced_pod("argo", label_selector=f"workflows.argoproj.io/workflow={name}").items)


def test_deleting_a_workflow_kills_and_removes_its_pods(one_process_cluster: LocalCluster) -> None:
    local_cluster = one_process_cluster  # asks the runtime whether the pod still runs
    objects = _objects(local_cluster)
    wf = _workflow("deleted-while-running", retry=False)
    wf["spec"]["templates"][0]["container"]["command"] = ["sh", "-c", "sleep 120"]
    objects.create_namespaced_custom_object(*GVR, wf)
    running = _wait(objects, "deleted-while-running", lambda wf: len(_running_pods(wf)) == 1)
    pod_name = _pods_of(local_cluster, "deleted-while-running")[0].metadata.name
    assert running["status"]["phase"] == "Running"
    assert local_cluster.runtime is not None and local_cluster.runtime.is_running("argo", pod_name)

    objects.delete_namespaced_custom_object(*GVR, "deleted-while-running")
    deadline = time.monotonic() + 10
    while _pods_of(local_cluster, "deleted-while-running") or local_cluster.runtime.is_running("argo", pod_name):
        assert time.monotonic() < deadline, "the deleted workflow's pod is still there or still running"
        time.sleep(0.1)


def test_argo_server_retry_reruns_the_failed_pod(local_cluster: LocalCluster) -> None:
    import httpx

    objects = _objects(local_cluster)
    ready_at = int(time.time()) + 2
    wf = _workflow("retried-by-server", retry=False)
    # fails until ready_at, then succeeds: the first run fails, the retried one succeeds
    wf["spec"]["templates"][0]["container"]["command"] = [
        "sh", "-c", f'[ "$(date +%s)" -ge {ready_at} ] && echo second run || {{ echo too early; exit 3; }}']
    objects.create_namespaced_custom_object(*GVR, wf)
    failed = _wait(objects, "retried-by-server", lambda wf: wf.get("status", {}).get("phase") == "Failed")
    first_pod = next(n for n in failed["status"]["nodes"].values() if n["type"] == "Pod")
    assert first_pod["outputs"]["exitCode"] == "3"
    while time.time() <= ready_at:
        time.sleep(0.1)

    response = httpx.put(
        f"{local_cluster.url}/api/v1/workflows/argo/retried-by-server/retry", json={},
        headers={"Authorization": f"Bearer {local_cluster.token}"}, verify=str(local_cluster.paths.tls_cert))
    assert response.status_code == 200, response.text
    done = _wait(objects, "retried-by-server", lambda wf: wf.get("status", {}).get("phase") == "Succeeded")
    pod = next(n for n in done["status"]["nodes"].values() if n["type"] == "Pod")
    assert pod["id"] == first_pod["id"] and pod["outputs"]["result"] == "second run"
    pods = _pods_of(local_cluster, "retried-by-server")
    assert len(pods) == 1 and pods[0].status.phase == "Succeeded"


def test_serves_the_oss_store_with_kept_credentials(tmp_path: Path) -> None:
    import json
    import stat

    import oss2

    state = tmp_path / "oss-state"
    with LocalCluster(state) as cluster:
        assert cluster.oss is not None
        creds = json.loads(cluster.paths.oss_credentials.read_text())
        assert stat.S_IMODE(cluster.paths.oss_credentials.stat().st_mode) == 0o600
        auth = oss2.Auth(creds["access_key_id"], creds["access_key_secret"])
        oss2.Bucket(auth, cluster.oss.endpoint, "artifacts", session=cluster.oss.session()).create_bucket()
        oss2.Bucket(auth, cluster.oss.endpoint, "artifacts", session=cluster.oss.session()).put_object(
            "wf/out.txt", b"kept")
        info = json.loads(cluster.paths.server_info.read_text())
        assert info["oss_endpoint"] == cluster.oss.endpoint and info["oss_endpoint"].startswith("https://127.0.0.1:")

    # a restart keeps the objects and the credentials that clients were configured with
    with LocalCluster(state) as cluster:
        assert cluster.oss is not None
        assert json.loads(cluster.paths.oss_credentials.read_text()) == creds
        bucket = oss2.Bucket(auth, cluster.oss.endpoint, "artifacts", session=cluster.oss.session())
        assert bucket.get_object("wf/out.txt").read() == b"kept"
