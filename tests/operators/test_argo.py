"""ArgoWorkflowOperator against the local cluster over real HTTPS: sync and deferred paths,
reattach, on_kill, timeouts, outputs, logs and bad input."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pendulum
import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import TaskDeferred

from airflow_argo_eci.errors import NotFoundError, WorkflowFailedError, WorkflowSpecError
from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook
from airflow_argo_eci.local.server import LocalCluster
from airflow_argo_eci.operators.argo import XCOM_NAME, XCOM_UID, ArgoWorkflowOperator
from airflow_argo_eci.workflows import reattach_selector, ti_labels
from tests.triggers.running import first_event

pytestmark = pytest.mark.usefixtures("argo_default")


class RecordingTI:
    """The slice of a TaskInstance the operator uses: identity and XCom pushes."""

    def __init__(self, try_number: int = 1, map_index: int = -1) -> None:
        self.try_number = try_number
        self.map_index = map_index
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def context(run_id: str, ti: RecordingTI) -> dict[str, Any]:
    return {"ti": ti, "run_id": run_id}


def hello(command: str = "echo hello from {{workflow.name}}", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "op-"},
        "spec": {"entrypoint": "main", **spec,
                 "templates": [{"name": "main", "container": {"image": "alpine:3.20",
                                                               "command": ["sh", "-c", command]}}]},
    }


def make(task_id: str, **kwargs: Any) -> ArgoWorkflowOperator:
    with DAG(f"dag_{task_id}", schedule=None, start_date=pendulum.datetime(2026, 1, 1)):
        return ArgoWorkflowOperator(task_id=task_id, poll_interval=0.2, **kwargs)


def listed(selector: str) -> list[dict[str, Any]]:
    """The workflows matching ``selector`` in ``argo``, read through the hook (``argo_default``)."""
    hook = ArgoWorkflowsHook()
    try:
        return hook.list_workflows(namespace="argo", label_selector=selector)
    finally:
        hook.close()


def read_workflow(name: str) -> dict[str, Any]:
    """Workflow ``name`` in ``argo``, read through the hook (``argo_default``)."""
    hook = ArgoWorkflowsHook()
    try:
        return hook.get_workflow(name, namespace="argo")
    finally:
        hook.close()


def test_sync_submit_wait_returns_outputs_and_pushes_identity(argo_default: LocalCluster,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    op = make("sync_ok", workflow=hello(), labels={"team": "data"})
    ti = RecordingTI()
    result = op.execute(context("run-sync-ok", ti))
    assert result["phase"] == "Succeeded"
    name = ti.xcom[XCOM_NAME]
    assert result["name"] == name and result["uid"] == ti.xcom[XCOM_UID]
    wf = read_workflow(name)
    labels = wf["metadata"]["labels"]
    assert labels["team"] == "data"
    assert labels.items() >= ti_labels("dag_sync_ok", "sync_ok", "run-sync-ok", -1, 1).items()
    task_log = capsys.readouterr().out
    assert task_log.count(f"[{name}] hello from {name}") == 1  # the pod's line, prefixed by its node, once


def test_failed_workflow_fails_the_task_naming_the_node(argo_default: LocalCluster) -> None:
    op = make("sync_fail", workflow=hello("echo 'no such table' >&2; exit 3"))
    with pytest.raises(WorkflowFailedError) as failure:
        op.execute(context("run-sync-fail", RecordingTI()))
    assert failure.value.phase == "Failed"
    assert "exit code 3" in str(failure.value)
    assert failure.value.failed_nodes and failure.value.failed_nodes[0]["phase"] == "Failed"


def test_reattach_after_a_crash_between_create_and_wait(argo_default: LocalCluster) -> None:
    """Try 1 created the workflow and the worker died; try 2 reattaches: exactly one exists."""
    op = make("reattach", workflow=hello("sleep 1; echo once"))
    labels = ti_labels("dag_reattach", "reattach", "run-reattach", -1, 1)
    first = op.hook.create_workflow(op.build_workflow(labels), namespace="argo")  # what try 1 got to do
    ti = RecordingTI(try_number=2)
    result = op.execute(context("run-reattach", ti))
    matching = listed(reattach_selector(labels))
    assert [w["metadata"]["uid"] for w in matching] == [first["metadata"]["uid"]]
    assert result["uid"] == first["metadata"]["uid"] and result["phase"] == "Succeeded"


def test_reattach_off_submits_anew(argo_default: LocalCluster) -> None:
    op = make("no_reattach", workflow=hello(), reattach=False)
    labels = ti_labels("dag_no_reattach", "no_reattach", "run-no-reattach", -1, 1)
    op.hook.create_workflow(op.build_workflow(labels), namespace="argo")
    op.execute(context("run-no-reattach", RecordingTI(try_number=2)))
    assert len(listed(reattach_selector(labels))) == 2


def test_retry_after_a_failed_try_submits_a_new_workflow(argo_default: LocalCluster) -> None:
    op = make("retry_new", workflow=hello("exit 1"))
    with pytest.raises(WorkflowFailedError):
        op.execute(context("run-retry-new", RecordingTI(try_number=1)))
    with pytest.raises(WorkflowFailedError):
        op.execute(context("run-retry-new", RecordingTI(try_number=2)))
    labels = ti_labels("dag_retry_new", "retry_new", "run-retry-new", -1, 1)
    assert len(listed(reattach_selector(labels))) == 2


def test_deferrable_defers_then_one_event_completes(argo_default: LocalCluster) -> None:
    op = make("deferred_ok", workflow=hello("sleep 1; echo deferred"), deferrable=True)
    ti = RecordingTI()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context("run-deferred", ti))
    trigger = deferred.value.trigger
    classpath, kwargs = trigger.serialize()
    assert classpath == "airflow_argo_eci.triggers.argo.ArgoWorkflowTrigger"
    assert kwargs["name"] == ti.xcom[XCOM_NAME] and kwargs["uid"] == ti.xcom[XCOM_UID]

    event = asyncio.run(first_event(trigger))
    assert event["status"] == "success" and event["ids"]["name"] == ti.xcom[XCOM_NAME]
    result = op.execute_complete(context("run-deferred", ti), event)
    assert result["phase"] == "Succeeded"


def test_execute_complete_rejects_malformed_events() -> None:
    op = make("bad_event", workflow=hello())
    with pytest.raises(WorkflowSpecError, match="unexpected trigger event"):
        op.execute_complete(context("r", RecordingTI()), {"phase": "Succeeded"})


@pytest.mark.parametrize(("action", "shutdown"), [("stop", "Stop"), ("terminate", "Terminate")])
def test_on_kill_in_sync_mode_stops_the_workflow(argo_default: LocalCluster, action: str, shutdown: str) -> None:
    op = make(f"kill_{action}", workflow=hello("sleep 60"), on_kill_action=action)
    ti = RecordingTI()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            op.execute(context(f"run-kill-{action}", ti))
        except BaseException as exc:  # the workflow ends Failed once stopped
            errors.append(exc)

    worker = threading.Thread(target=run)
    worker.start()
    deadline = time.monotonic() + 20
    while XCOM_NAME not in ti.xcom:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    op.on_kill()
    worker.join(timeout=30)
    wf = read_workflow(ti.xcom[XCOM_NAME])
    assert wf["spec"]["shutdown"] == shutdown
    assert wf["status"]["phase"] in ("Failed", "Error")
    assert f"Stopped with strategy '{shutdown}'" in wf["status"]["message"]
    assert errors and isinstance(errors[0], WorkflowFailedError)


def test_on_kill_while_deferred_stops_the_workflow(argo_default: LocalCluster) -> None:
    op = make("kill_deferred", workflow=hello("sleep 60"), deferrable=True, on_kill_action="terminate")
    ti = RecordingTI()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context("run-kill-deferred", ti))
    asyncio.run(deferred.value.trigger.on_kill())
    name = ti.xcom[XCOM_NAME]
    deadline = time.monotonic() + 20
    while (read_workflow(name).get("status") or {}).get("phase") not in (
            "Failed", "Error"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert read_workflow(name)["spec"]["shutdown"] == "Terminate"


def test_timeout_applies_the_kill_action(argo_default: LocalCluster) -> None:
    op = make("timeout", workflow=hello("sleep 60"), timeout=1, on_kill_action="stop")
    ti = RecordingTI()
    with pytest.raises(TimeoutError):
        op.execute(context("run-timeout", ti))
    wf = read_workflow(ti.xcom[XCOM_NAME])
    assert wf["spec"]["shutdown"] == "Stop"


def test_on_finish_delete_succeeded(argo_default: LocalCluster) -> None:
    op = make("finish_delete", workflow=hello(), on_finish_action="delete_succeeded")
    ti = RecordingTI()
    op.execute(context("run-finish-delete", ti))
    with pytest.raises(NotFoundError):
        op.hook.get_workflow(ti.xcom[XCOM_NAME], namespace="argo")


def test_bad_inputs_fail_before_anything_is_sent(argo_default: LocalCluster) -> None:
    before = len(listed(""))
    with pytest.raises(WorkflowSpecError, match="exactly one of"):
        make("two_sources", workflow=hello(), workflow_template_ref="t")
    with pytest.raises(WorkflowSpecError, match="on_kill_action"):
        make("bad_action", workflow=hello(), on_kill_action="explode")
    bad_yaml = make("bad_yaml", workflow="apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nspec: [oops\n")
    with pytest.raises(WorkflowSpecError):
        bad_yaml.execute(context("run-bad-yaml", RecordingTI()))
    bad_eci = make("bad_eci", workflow=hello(), eci={"use_specs": ["2-4G"]})
    with pytest.raises(WorkflowSpecError, match="use_specs"):
        bad_eci.execute(context("run-bad-eci", RecordingTI()))
    missing_ref = make("missing_ref", workflow_template_ref="no-such-template")
    with pytest.raises(WorkflowSpecError, match="no-such-template"):
        missing_ref.execute(context("run-missing-ref", RecordingTI()))
    assert len(listed("")) == before


def test_jinja_renders_airflow_and_leaves_argo_expressions() -> None:
    op = make("jinja", workflow=hello("echo {{ params.greeting }} {{inputs.parameters.x}} {{=sprig.upper('a')}}"),
              parameters={"day": "{{ ds }}"})
    op.render_template_fields({"params": {"greeting": "hi"}, "ds": "2026-11-23"})  # type: ignore[arg-type]
    command = op.workflow["spec"]["templates"][0]["container"]["command"][2]
    assert command == "echo hi {{inputs.parameters.x}} {{=sprig.upper('a')}}"
    assert op.parameters == {"day": "2026-11-23"}



def test_strings_inside_the_workflow_that_look_like_file_names_are_text() -> None:
    """Only a whole field may name a template file: an argument ``out.json`` or a path ``/tmp/x.yaml``
    inside the workflow stays text (Airflow's own walk would look them up as templates and fail)."""
    workflow = hello("cat /etc/app/{{ params.name }}.json > /tmp/out.json")
    workflow["spec"]["templates"][0]["container"]["args"] = ["--config", "settings.yaml", "{{ ds }}.json"]
    op = make("file_like", workflow=workflow, labels={"config": "values.yml"})
    op.render_template_fields({"params": {"name": "app"}, "ds": "2026-11-23"})  # type: ignore[arg-type]
    container = op.workflow["spec"]["templates"][0]["container"]
    assert container["command"][2] == "cat /etc/app/app.json > /tmp/out.json"
    assert container["args"] == ["--config", "settings.yaml", "2026-11-23.json"]
    assert op.labels == {"config": "values.yml"}

def test_sync_and_deferred_over_the_argo_server_transport(local_cluster: LocalCluster,
                                                          monkeypatch: pytest.MonkeyPatch,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """The same operator over the Argo Server REST API: logs, outputs, and the trigger's polling."""
    from tests.conftest import server_connection

    monkeypatch.setenv("AIRFLOW_CONN_ARGO_SERVER_LOCAL", server_connection(local_cluster))
    op = make("server_sync", workflow=hello(), argo_conn_id="argo_server_local")
    ti = RecordingTI()
    assert op.execute(context("run-server-sync", ti))["phase"] == "Succeeded"
    name = ti.xcom[XCOM_NAME]
    assert capsys.readouterr().out.count(f"[{name}] hello from {name}") == 1

    op = make("server_deferred", workflow=hello("sleep 1; echo later"), argo_conn_id="argo_server_local",
              deferrable=True)
    ti = RecordingTI()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context("run-server-deferred", ti))

    event = asyncio.run(first_event(deferred.value.trigger))
    assert event["status"] == "success"
    assert op.execute_complete(context("run-server-deferred", ti), event)["phase"] == "Succeeded"


def test_hera_workflow_and_template_ref_inputs(argo_default: LocalCluster) -> None:
    from hera.workflows import Container, Workflow, WorkflowTemplate

    with Workflow(generate_name="hera-", entrypoint="main") as hera_wf:
        Container(name="main", image="alpine:3.20", command=["sh", "-c", "echo from hera"])
    ti = RecordingTI()
    assert make("hera", workflow=hera_wf).execute(context("run-hera", ti))["phase"] == "Succeeded"

    with WorkflowTemplate(name="op-greeter", entrypoint="main",
                          arguments={"who": "nobody"}) as template:
        Container(name="main", image="alpine:3.20", command=["sh", "-c", "echo hello {{workflow.parameters.who}}"])
    from kubernetes import client, config

    api = client.CustomObjectsApi(config.new_client_from_config(config_file=str(argo_default.kubeconfig_path)))
    api.create_namespaced_custom_object("argoproj.io", "v1alpha1", "argo", "workflowtemplates", template.to_dict())
    ti = RecordingTI()
    result = make("from_template", workflow_template_ref="op-greeter", parameters={"who": "airflow"}).execute(
        context("run-template", ti))
    assert result["phase"] == "Succeeded"
    wf = read_workflow(ti.xcom[XCOM_NAME])
    assert wf["spec"]["workflowTemplateRef"] == {"name": "op-greeter"}
    assert wf["spec"]["arguments"]["parameters"] == [{"name": "who", "value": "airflow"}]


def test_deferred_logs_come_from_the_trigger_and_the_resumed_task_prints_no_line_twice(
        argo_default: LocalCluster, capsys: pytest.CaptureFixture[str]) -> None:
    """While deferred the trigger prints the lines of the pods it saw change; the event's cursor
    makes the resumed task print only the rest."""
    two_steps = {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "op-logs-"},
        "spec": {"entrypoint": "main", "templates": [
            {"name": "main", "steps": [[{"name": "first", "template": "first"}],
                                       [{"name": "second", "template": "second"}]]},
            {"name": "first", "container": {"image": "alpine:3.20", "command": ["sh", "-c", "echo one; echo two"]}},
            {"name": "second", "container": {"image": "alpine:3.20",
                                             "command": ["sh", "-c", "sleep 3; echo three"]}},
        ]},
    }
    op = make("deferred_logs", workflow=two_steps, deferrable=True)
    ti = RecordingTI()
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context("run-deferred-logs", ti))
    trigger = deferred.value.trigger
    assert trigger.serialize()[1]["get_logs"] is True
    capsys.readouterr()

    event = asyncio.run(first_event(trigger))
    while_deferred = capsys.readouterr().out
    assert event["status"] == "success"
    assert while_deferred.count("[first] one") == 1 and while_deferred.count("[first] two") == 1
    assert any("-first-" in pod for pod in event["log_cursor"])  # the cursor comes back in the event
    assert op.execute_complete(context("run-deferred-logs", ti), event)["phase"] == "Succeeded"
    resumed = capsys.readouterr().out
    assert "[first]" not in resumed  # printed while deferred: not again
    combined = while_deferred + resumed
    for line in ("[first] one", "[first] two", "[second] three"):
        assert combined.count(line) == 1, line
