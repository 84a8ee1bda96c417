"""Templates under Airflow's own context machinery: runs with and without a logical date.

The context comes from Airflow's task runner (``RuntimeTaskInstance.get_template_context``) fed
with the run the API server would send: a REST API / UI trigger without a logical date, or a
scheduled run with one. The example DAGs must render for both, and a template that does not
render must name the field, the key inside it and the likely cause.
"""

from __future__ import annotations

import importlib.util
import uuid
from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG, BaseOperator, XComArg
from airflow.sdk.api.datamodels._generated import DagRun, DagRunState, DagRunType, TIRunContext
from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

from airflow_argo_eci.eci import EciProfile
from airflow_argo_eci.operators.argo import ArgoWorkflowOperator
from airflow_argo_eci.templating import TemplateRenderError, protect_argo_expressions
from tests.conftest import REPO

QUEUED_AT = pendulum.datetime(2026, 11, 29, 10, 30, tz="UTC")
LOGICAL = pendulum.datetime(2026, 11, 23, tz="UTC")
WORKFLOW: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "t-"},
    "spec": {"entrypoint": "main", "templates": [{"name": "main", "container": {"image": "alpine:3.20"}}]}}


def load_dag(path: Path) -> DAG:
    spec = importlib.util.spec_from_file_location(f"example_{path.stem}", path)
    assert spec is not None and spec.loader is not None
    module: ModuleType = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def runtime_ti(task: Any, *, logical_date: pendulum.DateTime | None,
               conf: Mapping[str, Any] | None = None) -> RuntimeTaskInstance:
    """The task instance the task runner builds from the API server's answer for such a run."""
    interval = (logical_date, logical_date.add(days=1)) if logical_date else (None, None)
    run = DagRun(dag_id=task.dag_id, run_id=f"manual__{QUEUED_AT.isoformat()}", logical_date=logical_date,
                 data_interval_start=interval[0], data_interval_end=interval[1], run_after=QUEUED_AT,
                 start_date=QUEUED_AT, end_date=None, run_type=DagRunType.MANUAL, state=DagRunState.RUNNING,
                 conf=dict(conf or {}), consumed_asset_events=[], partition_key=None)
    return RuntimeTaskInstance.model_construct(
        id=uuid.uuid4(), task_id=task.task_id, dag_id=task.dag_id, run_id=run.run_id, try_number=1,
        map_index=-1, dag_version_id=uuid.uuid4(), task=task, start_date=QUEUED_AT,
        _ti_context_from_server=TIRunContext(dag_run=run, max_tries=task.retries or 0))


def render(task: Any, *, logical_date: pendulum.DateTime | None,
           conf: Mapping[str, Any] | None = None) -> BaseOperator:
    ti = runtime_ti(task, logical_date=logical_date, conf=conf)
    ti.render_templates()
    return ti.task


EXAMPLE_DAGS = sorted((REPO / "dags").glob("*.py"))


@pytest.mark.parametrize("logical_date", [None, LOGICAL], ids=["no-logical-date", "logical-date"])
@pytest.mark.parametrize("path", EXAMPLE_DAGS, ids=[p.stem for p in EXAMPLE_DAGS])
def test_example_dags_render_for_every_kind_of_run(path: Path, logical_date: pendulum.DateTime | None) -> None:
    """Every Jinja template of every task, rendered as the task runner does (an upstream's XCom
    needs the task supervisor: those fields are left out)."""
    dag = load_dag(path)
    for task in dag.tasks:
        for field in task.template_fields:
            if pulls_xcom(getattr(task, field)):
                setattr(task, field, None)  # Airflow skips empty fields
        render(task, logical_date=logical_date)  # raises on any template that does not render


def pulls_xcom(value: Any) -> bool:
    if isinstance(value, XComArg):
        return True
    if isinstance(value, str):  # "{{ ti.xcom_pull(...) }}"
        return "xcom_pull" in value
    if isinstance(value, EciProfile):  # its templated image_cache_id
        return pulls_xcom(value.templated_values())
    if isinstance(value, Mapping):
        return any(pulls_xcom(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(pulls_xcom(v) for v in value)
    return False


def test_flagship_batch_is_the_logical_date_else_the_time_it_was_queued_for() -> None:
    dag = load_dag(REPO / "dags" / "argo_eci_fanout.py")
    for task_id in ("fanout_sync", "fanout_deferred"):
        without = render(dag.get_task(task_id), logical_date=None)
        assert isinstance(without, ArgoWorkflowOperator)
        assert without.parameters == {"shards": "20", "batch": "2026-11-29"}
        with_date = render(load_dag(REPO / "dags" / "argo_eci_fanout.py").get_task(task_id), logical_date=LOGICAL,
                           conf={"shards": 3})
        assert isinstance(with_date, ArgoWorkflowOperator)
        assert with_date.parameters == {"shards": "3", "batch": "2026-11-23"}


def test_example_argo_tasks_carry_a_quick_retry() -> None:
    """The mitigation of apache/airflow#72716 / #71580: a retry that reattaches (see tests/dags)."""
    dag = load_dag(REPO / "dags" / "argo_eci_fanout.py")
    for task in dag.tasks:
        assert (task.retries or 0) >= 1, task.task_id
        assert task.retry_delay.total_seconds() <= 30, task.task_id


def operator(dag_id: str, **kwargs: Any) -> ArgoWorkflowOperator:
    with DAG(dag_id, schedule=None, start_date=LOGICAL, params={"shards": 4}):
        return ArgoWorkflowOperator(task_id="run", workflow=kwargs.pop("workflow", WORKFLOW), **kwargs)


def render_error(task: BaseOperator, *, logical_date: pendulum.DateTime | None = None) -> TemplateRenderError:
    with pytest.raises(TemplateRenderError) as info:
        render(task, logical_date=logical_date)
    return info.value


def test_ds_without_a_logical_date_names_the_field_the_key_and_the_fix() -> None:
    error = render_error(operator("no_ds", parameters={"shards": "{{ params.shards }}", "batch": "{{ ds }}"}))
    assert error.field == "parameters['batch']"
    message = str(error)
    assert message.startswith("task run: template of parameters['batch'] did not render: 'ds' is undefined")
    assert "no logical date" in message and "dag_run.run_after" in message
    assert isinstance(error, ValueError)  # a WorkflowSpecError: bad user input


def test_the_same_template_renders_when_the_run_has_a_logical_date() -> None:
    task = render(operator("with_ds", parameters={"batch": "{{ ds }}"}), logical_date=LOGICAL)
    assert isinstance(task, ArgoWorkflowOperator) and task.parameters == {"batch": "2026-11-23"}


def test_error_deep_inside_the_workflow_names_the_path() -> None:
    workflow = {**WORKFLOW, "spec": {**WORKFLOW["spec"], "arguments": {"parameters": [
        {"name": "a", "value": "{{ params.shards }}"}, {"name": "b", "value": "{{ ts_nodash }}"}]}}}
    error = render_error(operator("deep", workflow=workflow))
    assert error.field == "workflow['spec']['arguments']['parameters'][1]['value']"
    assert "'ts_nodash' is undefined" in str(error) and "no logical date" in str(error)


def test_unknown_name_with_a_logical_date_is_not_blamed_on_the_run() -> None:
    error = render_error(operator("typo", labels={"batch": "{{ dss }}"}), logical_date=LOGICAL)
    assert error.field == "labels['batch']"
    assert "'dss' is undefined" in str(error) and "not in Airflow's template context" in str(error)
    assert "no logical date" not in str(error)


def test_missing_param_names_the_param() -> None:
    error = render_error(operator("param", parameters={"x": "{{ params.nope }}"}))
    assert error.field == "parameters['x']"
    assert "'nope'" in str(error) and "params=" in str(error)


def test_syntax_error_names_the_field_and_line() -> None:
    error = render_error(operator("syntax", name="wf-{{ ds "), logical_date=LOGICAL)
    assert error.field == "name"
    assert "Jinja syntax error on line 1" in str(error)


def test_argo_expressions_are_left_for_argo_while_airflow_renders() -> None:
    workflow = {**WORKFLOW, "spec": {**WORKFLOW["spec"], "arguments": {"parameters": [
        {"name": "a", "value": "{{ inputs.parameters.x }}-{{ dag_run.run_after | ds }}"}]}}}
    task = render(operator("mixed", workflow=workflow), logical_date=None)
    assert isinstance(task, ArgoWorkflowOperator)
    assert task.workflow["spec"]["arguments"]["parameters"][0]["value"] == "{{ inputs.parameters.x }}-2026-11-29"
    assert protect_argo_expressions("{{ ds }}") == "{{ ds }}"


def test_every_operator_and_sensor_of_the_provider_names_the_failed_field() -> None:
    from airflow_argo_eci.operators.oss import OSSUploadOperator
    from airflow_argo_eci.sensors.argo import ArgoWorkflowSensor
    from airflow_argo_eci.sensors.oss import OSSObjectSensor

    with DAG("others", schedule=None, start_date=LOGICAL):
        upload = OSSUploadOperator(task_id="up", source="/tmp", key_or_prefix="inputs/{{ ds }}/")
        sensor = ArgoWorkflowSensor(task_id="wait", label_selector="batch={{ ds_nodash }}")
        landed = OSSObjectSensor(task_id="landed", key="out/{{ ts }}.json")
    for task, field in ((upload, "key_or_prefix"), (sensor, "label_selector"), (landed, "key")):
        error = render_error(task)
        assert error.field == field and "no logical date" in str(error), str(error)
