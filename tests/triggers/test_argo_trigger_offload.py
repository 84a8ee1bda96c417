"""Pod logs while deferred on a workflow whose nodes Argo offloaded (``status.offloadNodeStatusVersion``):
the trigger reads them from the connection's ``argo_server_url`` and follows the pods; without that
extra it says so once and still reports the outcome."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from airflow_argo_eci.local.argo.offload import OffloadRepository
from tests.triggers.cluster import NAMESPACE, InstrumentedCluster, eventually
from tests.triggers.conftest import CONN_ID
from tests.triggers.test_argo_trigger import collect, trigger_for
from tests.triggers.test_argo_trigger_logs import Controller, TaskLog, printed  # noqa: F401 - fixture


class OffloadingController(Controller):
    """Plays Argo's controller with node status offloading on: every status write saves the nodes
    to the offload repository and leaves only ``offloadNodeStatusVersion`` in the object."""

    def __init__(self, cluster: InstrumentedCluster, name: str) -> None:
        super().__init__(cluster, name)
        self.repository = OffloadRepository(cluster.paths.db)
        write = cluster.set_status

        def offloading_write(wf_name: str, status: dict[str, Any]) -> dict[str, Any]:
            if "nodes" in status:
                version = self.repository.save(self.workflow["metadata"]["uid"], NAMESPACE, status["nodes"])
                status = {**status, "nodes": None, "offloadNodeStatusVersion": version}
            return write(wf_name, status)

        cluster.set_status = offloading_write  # type: ignore[method-assign]


def use_connection(cluster: InstrumentedCluster, monkeypatch: pytest.MonkeyPatch, **extra: Any) -> None:
    conn = {"conn_type": "argo_workflows",
            "extra": {"kube_config_path": str(cluster.kubeconfig), "namespace": NAMESPACE, "max_retries": 2,
                      "retry_backoff": 0.05, **extra}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{CONN_ID.upper()}", json.dumps(conn))


async def test_pods_of_an_offloaded_workflow_are_followed_through_the_argo_server(
    cluster: InstrumentedCluster, printed: TaskLog, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    use_connection(cluster, monkeypatch, argo_server_url=cluster.url, argo_server_token=cluster.token,
                   ca_cert_path=str(cluster.paths.tls_cert))
    wf = OffloadingController(cluster, "wf-offloaded")
    wf.set_pod("prepare", "Running")
    wf.write("prepare", "downloading reference")
    stored = cluster.get_workflow("wf-offloaded") or {}
    assert stored["status"].get("offloadNodeStatusVersion") and not stored["status"].get("nodes")
    task = asyncio.create_task(collect(trigger_for(wf.workflow, get_logs=True, log_interval=0)))
    await eventually(lambda: printed() == ["[prepare] downloading reference"], what="the offloaded pod's line")
    hydrations = [r for r in cluster.requests() if r.path == f"/api/v1/workflows/{NAMESPACE}/wf-offloaded"]
    assert hydrations and all(r.method == "GET" for r in hydrations)

    wf.write("prepare", "reference ready")
    wf.set_pod("prepare", "Succeeded")
    await eventually(lambda: len(printed()) == 2, what="the finished pod's last line")
    assert printed()[1] == "[prepare] reference ready"
    wf.finish()
    (event,) = await asyncio.wait_for(task, 10)
    assert event.payload["status"] == "success"


async def test_without_argo_server_url_the_trigger_says_so_once_and_reports_the_outcome(
    cluster: InstrumentedCluster, printed: TaskLog, monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
) -> None:
    use_connection(cluster, monkeypatch)
    wf = OffloadingController(cluster, "wf-offloaded-bare")
    wf.set_pod("prepare", "Running")
    wf.write("prepare", "downloading reference")
    with caplog.at_level(logging.WARNING):
        task = asyncio.create_task(collect(trigger_for(wf.workflow, get_logs=True, log_interval=0)))
        await eventually(lambda: "argo_server_url" in caplog.text, what="the warning naming the extra")
        wf.set_pod("prepare", "Succeeded")
        wf.finish()
        (event,) = await asyncio.wait_for(task, 10)
    assert event.payload["status"] == "success"
    assert printed() == []
    assert caplog.text.count("Not following the pod logs of workflow wf-offloaded-bare") == 1
