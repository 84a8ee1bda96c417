"""ArgoPreflightOperator against the session's local cluster: the report as XCom, failing (or only
warning) per ``fail_on``, and both transports of the connection."""

from __future__ import annotations

import json
from typing import Any

import pendulum
import pytest
from airflow.exceptions import AirflowException
from airflow.sdk import DAG

from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.operators.preflight import ArgoPreflightOperator
from tests.conftest import server_connection
from tests.operators.test_argo import RecordingTI, context
from tests.preflight_edits import CHECK_IDS, ECI_PROFILE, IMAGECACHE_CRD, edited, removed

pytestmark = pytest.mark.usefixtures("argo_default")


def make(task_id: str, **kwargs: Any) -> ArgoPreflightOperator:
    with DAG(f"dag_{task_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        return ArgoPreflightOperator(task_id=task_id, **kwargs)


def run(op: ArgoPreflightOperator) -> dict[str, Any]:
    result: dict[str, Any] = op.execute(context("manual__pf", RecordingTI()))
    return result


def test_healthy_cluster_returns_the_report(capsys: pytest.CaptureFixture[str]) -> None:
    report = run(make("pf_healthy", require=["imagecache", "fluid"]))
    json.dumps(report)  # XCom-serialisable
    assert report["namespace"] == "argo" and report["error"] == ""
    assert [c["id"] for c in report["checks"]] == list(CHECK_IDS)
    assert {c["status"] for c in report["checks"]} == {"pass"}
    assert report["summary"] == {"pass": len(CHECK_IDS), "warn": 0, "fail": 0, "unknown": 0}
    task_log = capsys.readouterr().out
    assert "PASS     argo.crds" in task_log and "11 pass, 0 warn, 0 fail, 0 unknown" in task_log


def test_warnings_pass_unless_fail_on_says_so(local_cluster: LocalCluster, kube_api_client: Any) -> None:
    def one_vswitch(obj: dict[str, Any]) -> None:
        obj["data"]["vSwitchIds"] = "vsw-local0zonea"

    with edited(kube_api_client, ECI_PROFILE, one_vswitch):
        report = run(make("pf_warn"))
        assert {c["id"]: c["status"] for c in report["checks"]}["eci.vswitches"] == "warn"
        with pytest.raises(AirflowException, match=r"eci.vswitches: warn \(kube-system/eci-profile"):
            run(make("pf_warn_strict", fail_on=["fail", "warn"]))


def test_a_failed_check_fails_the_task_unless_warn_only(local_cluster: LocalCluster, kube_api_client: Any,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    with removed(kube_api_client, IMAGECACHE_CRD):
        with pytest.raises(AirflowException, match=r"(?s)1 problem.*crds.imagecache: fail"):
            run(make("pf_fail", require="imagecache"))
        capsys.readouterr()
        report = run(make("pf_warn_only", require="imagecache", warn_only=True))
    assert {c["id"]: c["status"] for c in report["checks"]}["crds.imagecache"] == "fail"
    assert "preflight (warn_only): crds.imagecache: fail" in capsys.readouterr().out


def test_argo_server_connection_reads_the_version_only(local_cluster: LocalCluster,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ARGO_PF_SERVER", server_connection(local_cluster))
    report = run(make("pf_server", argo_conn_id="argo_pf_server"))
    statuses = {c["id"]: c["status"] for c in report["checks"]}
    assert statuses["argo.version"] == "pass" and statuses["rbac.workflows"] == "unknown"
    with pytest.raises(AirflowException, match=r"rbac\.workflows: unknown"):
        run(make("pf_server_strict", argo_conn_id="argo_pf_server", fail_on=("fail", "unknown")))


def test_unreachable_cluster_fails_the_task(monkeypatch: pytest.MonkeyPatch) -> None:
    conn = {"conn_type": "argo_workflows", "host": "https://127.0.0.1:1", "password": "x",
            "extra": {"transport": "argo_server", "namespace": "argo", "max_retries": 0}}
    monkeypatch.setenv("AIRFLOW_CONN_ARGO_PF_NOWHERE", json.dumps(conn))
    with pytest.raises(AirflowException, match="could not be reached"):
        run(make("pf_nowhere", argo_conn_id="argo_pf_nowhere"))


def test_fail_on_is_checked_at_construction() -> None:
    with pytest.raises(WorkflowSpecError, match="fail_on must be a list of pass, warn, fail, unknown"):
        make("pf_bad", fail_on=("broken",))
    with pytest.raises(WorkflowSpecError, match="fail_on"):
        make("pf_bad_str", fail_on="fail")
