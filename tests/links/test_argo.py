"""The "Argo Workflow" extra link: the UI URL reaches XCom at submit time, and a link that
cannot be built is an empty string, never an error."""

from __future__ import annotations

from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG
from airflow.sdk.execution_time.xcom import XCom
from airflow.sdk.types import TaskInstanceKey

from airflow_argo_eci.links.argo import XCOM_WORKFLOW_URL, ArgoWorkflowLink
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.operators.argo import XCOM_NAME, ArgoWorkflowOperator
from tests.conftest import kube_connection

KEY = TaskInstanceKey(dag_id="d", task_id="t", run_id="r", try_number=1, map_index=-1)


class RecordingTI:
    try_number, map_index = 1, -1

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def test_ui_url_is_pushed_as_soon_as_the_workflow_exists(local_cluster: LocalCluster,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_ARGO_UI", kube_connection(local_cluster, ui_url="https://argo.example.test/"))
    with DAG("dag_link", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        op = ArgoWorkflowOperator(task_id="link", argo_conn_id="argo_ui", wait_for_completion=False, workflow={
            "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "link-"},
            "spec": {"entrypoint": "m", "templates": [{"name": "m", "container": {
                "image": "alpine:3.20", "command": ["true"]}}]}})
    ti = RecordingTI()
    op.execute({"ti": ti, "run_id": "run-link"})  # type: ignore[arg-type]
    assert ti.xcom[XCOM_WORKFLOW_URL] == f"https://argo.example.test/workflows/argo/{ti.xcom[XCOM_NAME]}"


def test_link_reads_the_url_from_xcom(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: dict[str, Any] = {}

    def get_value(*, ti_key: TaskInstanceKey, key: str) -> Any:
        seen.update(ti_key=ti_key, key=key)
        return "https://argo.example.test/workflows/argo/wf-1"

    monkeypatch.setattr(XCom, "get_value", get_value)
    assert ArgoWorkflowLink().get_link(None, ti_key=KEY) == "https://argo.example.test/workflows/argo/wf-1"
    assert seen == {"ti_key": KEY, "key": XCOM_WORKFLOW_URL}


@pytest.mark.parametrize("stored", [None, "", "javascript:alert(1)", 42])
def test_missing_or_unsafe_values_give_no_link(monkeypatch: pytest.MonkeyPatch, stored: Any) -> None:
    monkeypatch.setattr(XCom, "get_value", lambda *, ti_key, key: stored)
    assert ArgoWorkflowLink().get_link(None, ti_key=KEY) == ""


def test_a_failing_lookup_never_breaks_the_page(monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*, ti_key: TaskInstanceKey, key: str) -> Any:
        raise RuntimeError("metadata database unreachable")

    monkeypatch.setattr(XCom, "get_value", broken)
    assert ArgoWorkflowLink().get_link(None, ti_key=KEY) == ""
