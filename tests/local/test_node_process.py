"""The node process (``local/node_process.py``, ``local/node_link.py``): the controllers and pods
in a process of their own on the API server's database. The session's ``local_cluster`` runs this
way, so every test that takes it runs against this layout; here are its own properties."""

from __future__ import annotations

import json
import logging
import os
import signal
import time
from pathlib import Path

import pytest
from kubernetes import client, config

from airflow_argo_eci.local.node_process import NODE_NICE
from airflow_argo_eci.local.processes import process_running
from airflow_argo_eci.local.server import LocalCluster
from tests.local.argo.clusterwf import run

SCRIPT = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: node-process-}
spec:
  entrypoint: main
  templates:
  - name: main
    script:
      image: python:3.12-alpine
      command: [python]
      source: |
        for i in range(3):
            print("line", i)
        open("/tmp/out", "w").write("forty-two")
    outputs:
      parameters:
      - {name: answer, valueFrom: {path: /tmp/out}}
"""


def _nice(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def test_the_node_process_runs_pods_and_the_api_serves_them(local_cluster: LocalCluster,
                                                            kube_api_client: client.ApiClient) -> None:
    assert local_cluster.node_process and local_cluster.controller is None and local_cluster.runtime is None
    info = json.loads(local_cluster.paths.server_info.read_text())
    node_pid = info["node_pid"]
    assert node_pid != os.getpid() and process_running(node_pid)
    assert b"airflow_argo_eci.local.node_process" in Path(f"/proc/{node_pid}/cmdline").read_bytes()
    assert _nice(node_pid) - _nice(os.getpid()) == min(NODE_NICE, 19 - _nice(os.getpid()))
    assert info["sandbox"] == local_cluster.sandbox_report and info["sandbox"]["mode"] in ("bwrap", "none")
    assert info["limits"] == local_cluster.limits_method != ""

    wf = run(kube_api_client, SCRIPT)
    assert wf["status"]["phase"] == "Succeeded", wf["status"].get("message")
    pod = next(n for n in wf["status"]["nodes"].values() if n["type"] == "Pod")
    assert pod["outputs"]["parameters"] == [{"name": "answer", "value": "forty-two",
                                             "valueFrom": {"path": "/tmp/out"}}]
    core = client.CoreV1Api(kube_api_client)
    pods = core.list_namespaced_pod("argo", label_selector=f"workflows.argoproj.io/workflow={wf['metadata']['name']}")
    log = core.read_namespaced_pod_log(pods.items[0].metadata.name, "argo", container="main",
                                       _preload_content=False).data.decode()
    assert log.splitlines() == ["line 0", "line 1", "line 2"]


def test_stopping_the_cluster_stops_the_node_process(tmp_path: Path) -> None:
    cluster = LocalCluster(tmp_path / "state", node_process=True).start()
    node_pid = json.loads(cluster.paths.server_info.read_text())["node_pid"]
    assert process_running(node_pid)
    cluster.stop()
    assert not process_running(node_pid)
    assert not cluster.paths.server_info.exists()


def test_a_node_process_that_dies_is_reported_and_stop_returns(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    cluster = LocalCluster(tmp_path / "state", node_process=True).start()
    try:
        node_pid = json.loads(cluster.paths.server_info.read_text())["node_pid"]
        with caplog.at_level(logging.ERROR, logger="airflow_argo_eci.local.node_link"):
            os.kill(node_pid, signal.SIGKILL)
            deadline = time.monotonic() + 10
            while "node process" not in caplog.text:
                assert time.monotonic() < deadline, "the node process's end was not reported"
                time.sleep(0.05)
        assert "exited with code -9" in caplog.text and "restart the local cluster" in caplog.text
        api = client.CoreV1Api(config.new_client_from_config(config_file=str(cluster.kubeconfig_path)))
        assert api.list_namespace().items  # the API server still answers
    finally:
        began = time.monotonic()
        cluster.stop()
    assert time.monotonic() - began < 15


def test_the_node_process_needs_the_controllers(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"node_process=True .* run_controller=True"):
        LocalCluster(tmp_path, node_process=True, run_controller=False)
