"""The "Argo Workflow" extra link: the Argo UI with ``ui_url``, else the Argo view in the Airflow
UI; empty, without any lookup that could log an error, when the task created no workflow."""

from __future__ import annotations

import logging
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG
from airflow.sdk.execution_time.xcom import XCom
from airflow.sdk.types import TaskInstanceKey

from airflow_argo_eci.links.argo import XCOM_WORKFLOW_URL, ArgoWorkflowLink, airflow_view_url
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.operators.argo import XCOM_NAME, ArgoWorkflowOperator
from tests.conftest import kube_connection

KEY = TaskInstanceKey(dag_id="dag_link", task_id="link", run_id="manual__2026-01-01T00:00:00+00:00",
                      try_number=1, map_index=-1)
WORKFLOW = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "link-"},
            "spec": {"entrypoint": "m", "templates": [{"name": "m", "container": {
                "image": "alpine:3.20", "command": ["true"]}}]}}


class RecordingTI:
    try_number, map_index = 1, -1

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def submitted(conn_id: str) -> tuple[ArgoWorkflowOperator, RecordingTI]:
    with DAG("dag_link", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        op = ArgoWorkflowOperator(task_id="link", argo_conn_id=conn_id, wait_for_completion=False, workflow=WORKFLOW)
    ti = RecordingTI()
    op.execute({"ti": ti, "run_id": KEY.run_id})  # type: ignore[arg-type]
    return op, ti


@pytest.fixture
def no_xcom_lookups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any XCom read by the link fails the test: a missing XCom is what logged the errors."""
    def forbidden(**kwargs: Any) -> Any:
        raise AssertionError(f"the link looked up an XCom: {kwargs}")

    monkeypatch.setattr(XCom, "get_value", forbidden)
    monkeypatch.setattr(XCom, "get_one", forbidden)


def test_with_ui_url_the_link_is_the_argo_ui(local_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch,
                                             no_xcom_lookups: None) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ARGO_UI", kube_connection(local_cluster, ui_url="https://argo.example.test/"))
    op, ti = submitted("argo_ui")
    expected = f"https://argo.example.test/workflows/argo/{ti.xcom[XCOM_NAME]}"
    assert ti.xcom[XCOM_WORKFLOW_URL] == expected  # pushed as soon as the workflow exists
    assert ArgoWorkflowLink().get_link(op, ti_key=KEY) == expected


def test_without_ui_url_the_link_is_the_airflow_view(local_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch,
                                                     no_xcom_lookups: None, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ARGO_PLAIN", kube_connection(local_cluster))
    op, ti = submitted("argo_plain")
    assert XCOM_WORKFLOW_URL not in ti.xcom
    with caplog.at_level(logging.DEBUG):
        link = ArgoWorkflowLink().get_link(op, ti_key=KEY)
    assert link == ("/dags/dag_link/runs/manual__2026-01-01T00%3A00%3A00%2B00%3A00/tasks/link"
                    "/plugin/argo-workflow")
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.test/")
    assert ArgoWorkflowLink().get_link(op, ti_key=KEY).startswith("https://airflow.example.test/dags/dag_link/")


def test_no_workflow_no_link_and_nothing_logged(no_xcom_lookups: None, caplog: pytest.LogCaptureFixture) -> None:
    with DAG("dag_link", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        op = ArgoWorkflowOperator(task_id="link", argo_conn_id="does_not_exist", workflow=WORKFLOW)
    with caplog.at_level(logging.DEBUG):
        assert ArgoWorkflowLink().get_link(op, ti_key=KEY) == ""
        assert ArgoWorkflowLink().get_link(None, ti_key=KEY) == ""  # not even an operator
    assert not caplog.records


def test_a_broken_connection_falls_back_to_the_airflow_view(local_cluster: LocalCluster,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           no_xcom_lookups: None) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ARGO_GONE", kube_connection(local_cluster))
    op, _ = submitted("argo_gone")
    fresh = ArgoWorkflowOperator(task_id="link", argo_conn_id="argo_not_defined", workflow=WORKFLOW)
    fresh._ref = op._ref  # the resumed task knows its workflow but the connection has gone
    assert ArgoWorkflowLink().get_link(fresh, ti_key=KEY).endswith("/tasks/link/plugin/argo-workflow")


def test_mapped_task_instances_link_to_their_index() -> None:
    key = TaskInstanceKey(dag_id="d", task_id="t", run_id="r", try_number=1, map_index=3)
    assert airflow_view_url(key) == "/dags/d/runs/r/tasks/t/mapped/3/plugin/argo-workflow"
