"""Init containers and sidecars on the local cluster, through the kubernetes client: order, shared
volumes and network, sidecars killed after main, per-container logs, and the failures."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
from kubernetes import client

from airflow_argo_eci.local.runtime.sandbox import probe_bwrap

NS = "argo"
pytestmark = pytest.mark.skipif(probe_bwrap() is not None, reason=f"bubblewrap unavailable: {probe_bwrap()}")

#: a sidecar serving HTTP on 127.0.0.1:8089 of the pod's network namespace
SERVER = {"name": "web", "image": "python:3.12", "command": ["python3", "-c", (
    "import http.server, socketserver\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    "    def do_GET(self):\n"
    "        self.send_response(200); self.end_headers(); self.wfile.write(b'from-sidecar')\n"
    "    def log_message(self, *a):\n"
    "        print('served', flush=True)\n"
    "socketserver.TCPServer(('127.0.0.1', 8089), H).serve_forever()\n")]}
#: main: fetch from the sidecar until it answers
CLIENT = ("import time, urllib.request\n"
          "for _ in range(200):\n"
          "    try:\n"
          "        print(urllib.request.urlopen('http://127.0.0.1:8089/').read().decode()); break\n"
          "    except OSError:\n"
          "        time.sleep(0.05)\n"
          "else:\n"
          "    raise SystemExit(3)\n")


def _run(api: Any, spec: dict[str, Any], prefix: str, timeout: float = 60) -> dict[str, Any]:
    name = f"{prefix}-{uuid.uuid4().hex[:6]}"
    objects = client.CustomObjectsApi(api)
    objects.create_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "workflows", {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": name}, "spec": spec})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        wf = objects.get_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "workflows", name)
        if (wf.get("status") or {}).get("phase") in ("Succeeded", "Failed", "Error"):
            return dict(wf)
        time.sleep(0.2)
    raise AssertionError(f"workflow {name} did not finish in {timeout}s")


def _log(api: Any, wf: dict[str, Any], container: str) -> str:
    pod = client.CoreV1Api(api).list_namespaced_pod(
        NS, label_selector=f"workflows.argoproj.io/workflow={wf['metadata']['name']}").items[0]
    response = client.CoreV1Api(api).read_namespaced_pod_log(pod.metadata.name, NS, container=container,
                                                             _preload_content=False)
    return str(response.data.decode())


def test_init_containers_run_in_order_before_main_and_share_volumes(kube_api_client: Any) -> None:
    mount = [{"name": "work", "mountPath": "/work"}]
    wf = _run(kube_api_client, {"entrypoint": "main", "volumes": [{"name": "work", "emptyDir": {}}], "templates": [{
        "name": "main",
        "initContainers": [
            {"name": "first", "image": "alpine:3.23", "command": ["sh", "-c", "echo one > /work/f; echo init-1"],
             "volumeMounts": mount},
            {"name": "second", "image": "alpine:3.23", "command": ["sh", "-c", "echo two >> /work/f; echo init-2"],
             "mirrorVolumeMounts": True},
        ],
        "container": {"image": "alpine:3.23", "command": ["cat", "/work/f"], "volumeMounts": mount}}]}, "init")
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    name = wf["metadata"]["name"]
    assert wf["status"]["nodes"][name]["outputs"]["result"] == "one\ntwo"
    assert _log(kube_api_client, wf, "first").strip() == "init-1"
    assert _log(kube_api_client, wf, "second").strip() == "init-2"
    assert _log(kube_api_client, wf, "main").split() == ["one", "two"]
    pod = client.CoreV1Api(kube_api_client).list_namespaced_pod(
        NS, label_selector=f"workflows.argoproj.io/workflow={name}").items[0]
    assert [c.name for c in pod.spec.init_containers] == ["first", "second"]
    assert [m.mount_path for m in pod.spec.init_containers[1].volume_mounts] == ["/work"]


def test_failing_init_container_fails_the_pod_before_main(kube_api_client: Any) -> None:
    wf = _run(kube_api_client, {"entrypoint": "main", "templates": [{
        "name": "main",
        "initContainers": [{"name": "setup", "image": "alpine:3.23", "command": ["sh", "-c", "echo no; exit 4"]}],
        "container": {"image": "alpine:3.23", "command": ["sh", "-c", "echo main-ran"]}}]}, "initfail")
    assert wf["status"]["phase"] == "Failed"
    node = wf["status"]["nodes"][wf["metadata"]["name"]]
    assert node["message"] == 'init container "setup" failed: Error (exit code 4)'
    assert _log(kube_api_client, wf, "setup").strip() == "no"
    assert _log(kube_api_client, wf, "main") == ""


def test_sidecar_shares_the_network_and_is_killed_after_main(kube_api_client: Any) -> None:
    started = time.monotonic()
    wf = _run(kube_api_client, {"entrypoint": "main", "templates": [{
        "name": "main", "sidecars": [SERVER],
        "container": {"image": "python:3.12", "command": ["python3", "-c", CLIENT]}}]}, "sidecar")
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    assert time.monotonic() - started < 30  # the sidecar (serving forever) did not keep the pod alive
    assert wf["status"]["nodes"][wf["metadata"]["name"]]["outputs"]["result"] == "from-sidecar"
    assert "served" in _log(kube_api_client, wf, "web")
    assert _log(kube_api_client, wf, "main").strip() == "from-sidecar"


def test_pod_outcome_is_mains_even_when_a_sidecar_fails(kube_api_client: Any) -> None:
    wf = _run(kube_api_client, {"entrypoint": "main", "templates": [{
        "name": "main",
        "sidecars": [{"name": "broken", "image": "alpine:3.23", "command": ["sh", "-c", "exit 9"]}],
        "container": {"image": "alpine:3.23", "command": ["sh", "-c", "sleep 0.3; echo ok"]}}]}, "sidefail")
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")


@pytest.mark.parametrize("template,expected", [
    ({"sidecars": [{"name": "main", "image": "alpine:3.23", "command": ["true"]}]}, 'Duplicate value: "main"'),
    ({"sidecars": [{"image": "alpine:3.23", "command": ["true"]}]}, "sidecars[0].name is required"),
    ({"initContainers": [{"name": "x", "image": "alpine:3.23", "command": ["no-such-program-here"]}]},
     'failed to start container "x": exec: "no-such-program-here": executable file not found'),
])
def test_bad_containers_fail_with_a_message_naming_them(kube_api_client: Any, template: dict[str, Any],
                                                        expected: str) -> None:
    wf = _run(kube_api_client, {"entrypoint": "main", "templates": [{
        "name": "main", "container": {"image": "alpine:3.23", "command": ["true"]}, **template}]}, "badc")
    assert wf["status"]["phase"] in ("Error", "Failed")
    assert expected in wf["status"]["nodes"][wf["metadata"]["name"]]["message"]


@pytest.mark.parametrize("sandbox", ["auto", "none"])
def test_runtime_runs_init_containers_with_a_shared_volume_in_both_sandboxes(tmp_path: Any, sandbox: str) -> None:
    import threading
    import warnings

    from airflow_argo_eci.local.paths import StatePaths
    from airflow_argo_eci.local.runtime import PodRequest, PodResult, PodVolume, VolumeMount
    from airflow_argo_eci.local.runtime.runner import Runtime

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # sandbox="none" warns that pods run unisolated
        runtime = Runtime(StatePaths(tmp_path / "state"), sandbox=sandbox)
    done = threading.Event()
    results: list[PodResult] = []
    try:
        runtime.submit(PodRequest(
            "argo", "multi", {"image": "alpine:3.23", "command": ["cat", "/shared/f"]},
            volumes=[PodVolume("shared", "emptyDir")], volume_mounts=[VolumeMount("shared", "/shared")],
            init_containers=[{"name": "fill", "image": "alpine:3.23",
                              "command": ["sh", "-c", "echo filled > /shared/f; echo init-done"]}],
        ), lambda r: (results.append(r), done.set()))
        assert done.wait(30)
    finally:
        runtime.shutdown()
    assert (results[0].phase, results[0].stdout) == ("Succeeded", "filled"), results[0].message
    logs = tmp_path / "state" / "logs" / "argo" / "multi"
    assert logs.joinpath("fill.log").read_text().split(" ", 1)[1] == "init-done\n"
