"""Pure workflow helpers: loading, parameters, labels, phase outcome, failures and results."""

from __future__ import annotations

import copy
import json
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_argo_eci.errors import ArgoEciError, WorkflowSpecError
from airflow_argo_eci.workflows import (
    TERMINAL_PHASES,
    failed_nodes,
    failure_message,
    is_valid_label_value,
    load_workflow,
    merge_metadata,
    phase_outcome,
    reattach_selector,
    set_parameters,
    ti_labels,
    workflow_from_template_ref,
    workflow_result,
)

HELLO: dict[str, Any] = {
    "apiVersion": "argoproj.io/v1alpha1",
    "kind": "Workflow",
    "metadata": {"generateName": "hello-"},
    "spec": {"entrypoint": "main",
             "templates": [{"name": "main", "container": {"image": "alpine", "command": ["echo", "hi"]}}]},
}
HELLO_YAML = yaml.safe_dump(HELLO)


# --------------------------------------------------------------------------------------------
# load_workflow
# --------------------------------------------------------------------------------------------


def test_load_from_a_mapping_is_a_deep_copy() -> None:
    loaded = load_workflow(HELLO)
    assert loaded == HELLO
    loaded["spec"]["templates"][0]["name"] = "changed"
    assert HELLO["spec"]["templates"][0]["name"] == "main"


def test_load_from_text_and_files(tmp_path: Path) -> None:
    assert load_workflow(HELLO_YAML) == HELLO
    assert load_workflow(json.dumps(HELLO, indent=2)) == HELLO
    assert load_workflow(HELLO_YAML.encode()) == HELLO
    for name, text in (("wf.yaml", HELLO_YAML), ("wf.yml", HELLO_YAML), ("wf.json", json.dumps(HELLO))):
        path = tmp_path / name
        path.write_text(text)
        assert load_workflow(path) == HELLO
        assert load_workflow(str(path)) == HELLO


def test_load_a_hera_workflow() -> None:
    from hera.workflows import Container, Steps, Workflow

    with Workflow(generate_name="hera-", entrypoint="main") as w:
        echo = Container(name="echo", image="alpine", command=["echo", "hi"])
        with Steps(name="main"):
            echo()
    loaded = load_workflow(w)
    assert loaded["kind"] == "Workflow" and loaded["metadata"] == {"generateName": "hera-"}
    assert [t["name"] for t in loaded["spec"]["templates"]] == ["echo", "main"]
    with pytest.raises(WorkflowSpecError, match="a Hera Container is not a Workflow"):
        load_workflow(Container(name="c", image="alpine"))


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nspec: [entrypoint: x\n",
         "workflow text: invalid YAML at line 4, column 1: expected ',' or ']'"),
        ('{"apiVersion": "argoproj.io/v1alpha1",\n "kind": }', "workflow text: invalid JSON at line 2, column 10"),
        (HELLO_YAML + "---\n" + HELLO_YAML, "expected exactly one YAML document with a Workflow, found 2"),
        ("   ", "workflow is empty"),
        ("dags/wf.txt", "workflow 'dags/wf.txt' is neither a Workflow nor a workflow file: a file path must end in "
                        ".yaml, .yml or .json"),
        ("- a\n- b\n", "workflow must be a mapping (a Workflow object), got list"),
        (42, "workflow must be a dict, YAML/JSON text, a .yaml/.yml/.json path or a Hera Workflow, got int"),
        ({**HELLO, "apiVersion": None}, "workflow.apiVersion is missing: set apiVersion: argoproj.io/v1alpha1"),
        ({**HELLO, "apiVersion": "v1"}, "workflow.apiVersion is 'v1': set apiVersion: argoproj.io/v1alpha1"),
        ({**HELLO, "kind": "WorkflowTemplate"},
         "workflow.kind is 'WorkflowTemplate': set kind: Workflow (to run a template, use workflow_template_ref"),
        ({**HELLO, "metadata": "x"}, "workflow.metadata must be a mapping"),
        ({**HELLO, "metadata": {"name": ""}}, "workflow.metadata.name must be a non-empty string"),
        ({k: v for k, v in HELLO.items() if k != "spec"}, "workflow.spec is missing"),
        ({**HELLO, "spec": {"templates": HELLO["spec"]["templates"]}},
         "workflow.spec.entrypoint is missing: set spec.entrypoint to the name of a template or use "
         "workflowTemplateRef"),
        ({**HELLO, "spec": {**HELLO["spec"], "entrypoint": "mian"}},
         "workflow.spec.entrypoint 'mian' names no template: templates are main"),
        ({**HELLO, "spec": {"entrypoint": "main"}}, "templates are none (spec.templates is empty)"),
        ({**HELLO, "spec": {"entrypoint": "main", "templates": [{"container": {}}]}},
         "workflow.spec.templates[0].name is missing"),
        ({**HELLO, "spec": {"entrypoint": "main", "templates": {"main": {}}}}, "spec.templates must be a list"),
        ({**HELLO, "spec": {"workflowTemplateRef": {"clusterScope": True}}},
         "workflow.spec.workflowTemplateRef.name is missing"),
    ],
)
def test_bad_workflows_name_the_field(source: Any, message: str) -> None:
    if isinstance(source, dict) and source.get("apiVersion", "") is None:
        source = {k: v for k, v in source.items() if k != "apiVersion"}
    with pytest.raises(WorkflowSpecError) as info:
        load_workflow(source)
    assert message in str(info.value)


def test_bad_files(tmp_path: Path) -> None:
    with pytest.raises(WorkflowSpecError, match=r"workflow file .*missing\.yaml does not exist: check the path"):
        load_workflow(str(tmp_path / "missing.yaml"))
    text_file = tmp_path / "wf.txt"
    text_file.write_text(HELLO_YAML)
    with pytest.raises(WorkflowSpecError, match=r"unsupported extension '\.txt': use \.yaml, \.yml or \.json"):
        load_workflow(text_file)
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: argoproj.io/v1alpha1\nkind: Workflow\nspec:\n  entrypoint: [\n")
    with pytest.raises(WorkflowSpecError, match=rf"{bad}: invalid YAML at line 5, column 1"):
        load_workflow(bad)
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("apiVersion: x\n")  # YAML in a .json file is a JSON error
    with pytest.raises(WorkflowSpecError, match=r"bad\.json: invalid JSON at line 1, column 1"):
        load_workflow(bad_json)


def test_template_ref_workflows() -> None:
    assert workflow_from_template_ref("etl") == {
        "apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"generateName": "etl-"},
        "spec": {"workflowTemplateRef": {"name": "etl"}},
    }
    cluster = workflow_from_template_ref("etl", cluster_scope=True, generate_name="nightly-")
    assert cluster["spec"]["workflowTemplateRef"] == {"name": "etl", "clusterScope": True}
    assert cluster["metadata"] == {"generateName": "nightly-"}
    assert load_workflow(cluster) == cluster
    with pytest.raises(WorkflowSpecError, match="workflow template name 'ETL_job' is not a valid Kubernetes name"):
        workflow_from_template_ref("ETL_job")
    with pytest.raises(WorkflowSpecError, match="generate_name 'Nightly' is not a valid name prefix"):
        workflow_from_template_ref("etl", generate_name="Nightly")


def test_set_parameters() -> None:
    workflow = load_workflow({**HELLO, "spec": {**HELLO["spec"], "arguments": {"parameters": [
        {"name": "mode", "value": "fast", "enum": ["fast", "slow"]}, {"name": "n", "valueFrom": {"default": "1"}}]}}})
    before = copy.deepcopy(workflow)
    result = set_parameters(workflow, {"mode": "slow", "n": 3, "on": True, "cfg": {"a": [1]}, "ratio": 0.5})
    assert workflow == before
    assert result["spec"]["arguments"]["parameters"] == [
        {"name": "mode", "value": "slow", "enum": ["fast", "slow"]},
        {"name": "n", "value": "3"},
        {"name": "on", "value": "true"},
        {"name": "cfg", "value": '{"a": [1]}'},
        {"name": "ratio", "value": "0.5"},
    ]
    assert set_parameters(HELLO, {}) == HELLO
    assert set_parameters(HELLO, {"x": ""})["spec"]["arguments"] == {"parameters": [{"name": "x", "value": ""}]}
    with pytest.raises(WorkflowSpecError, match="parameter 'x' is None"):
        set_parameters(HELLO, {"x": None})
    with pytest.raises(WorkflowSpecError, match="parameter names must be non-empty strings"):
        set_parameters(HELLO, {"": "v"})


def test_merge_metadata_never_clobbers() -> None:
    workflow = load_workflow({**HELLO, "metadata": {"name": "a", "labels": {"team": "x"}}})
    merged = merge_metadata(workflow, {"team": "x", "app": "etl"}, {"example.com/note": "hello world"})
    assert merged["metadata"] == {"name": "a", "labels": {"team": "x", "app": "etl"},
                                  "annotations": {"example.com/note": "hello world"}}
    assert workflow["metadata"] == {"name": "a", "labels": {"team": "x"}}
    with pytest.raises(WorkflowSpecError, match=r"workflow.metadata.labels.team is already set to 'x', which "
                                                r"conflicts with 'y'"):
        merge_metadata(workflow, {"team": "y"}, {})
    with pytest.raises(WorkflowSpecError, match=r"workflow.metadata.labels.app: 'a b' is not a valid label value"):
        merge_metadata(workflow, {"app": "a b"}, {})
    with pytest.raises(WorkflowSpecError, match=r"workflow.metadata.annotations: 'no good' is not a valid"):
        merge_metadata(workflow, {}, {"no good": "x"})


# --------------------------------------------------------------------------------------------
# labels
# --------------------------------------------------------------------------------------------


def test_ti_labels_plain_values_are_kept() -> None:
    assert ti_labels("etl", "load_rows", "scheduled_42", 3, 2) == {
        "airflow.apache.org/dag-id": "etl",
        "airflow.apache.org/task-id": "load_rows",
        "airflow.apache.org/run-id": "scheduled_42",
        "airflow.apache.org/map-index": "3",
        "airflow.apache.org/try-number": "2",
    }
    assert "airflow.apache.org/map-index" not in ti_labels("etl", "t", "r", -1, 1)


def test_ti_labels_hash_invalid_and_long_values_deterministically() -> None:
    run_id = "manual__2024-05-01T10:00:00.123456+00:00"
    long_dag = "d" * 40 + ".group_" + "x" * 60
    labels = ti_labels(long_dag, "group.task", run_id, 0, 1)
    assert labels == ti_labels(long_dag, "group.task", run_id, 0, 1)
    run_label = labels["airflow.apache.org/run-id"]
    assert run_label.startswith("manual__2024-05-01T10-00-00.123456-00-00-")
    assert run_label != ti_labels(long_dag, "group.task", run_id.replace("10:", "11:"), 0, 1)[
        "airflow.apache.org/run-id"]
    assert labels["airflow.apache.org/dag-id"].startswith("d" * 40)
    assert labels["airflow.apache.org/task-id"] == "group.task"
    for value in labels.values():
        assert len(value) <= 63 and is_valid_label_value(value), value
    for odd in ("-leading", "trailing.", "__", "日本語", "a" * 64):
        value = ti_labels(odd, "t", "r", 0, 1)["airflow.apache.org/dag-id"]
        assert len(value) <= 63 and is_valid_label_value(value) and value != odd, value


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("", "t", "r", 0, 1), "dag_id must be a non-empty string"),
        (("d", None, "r", 0, 1), "task_id must be a non-empty string"),
        (("d", "t", "r", -2, 1), "map_index must be an int >= -1"),
        (("d", "t", "r", True, 1), "map_index must be an int >= -1"),
        (("d", "t", "r", 0, -1), "try_number must be an int >= 0"),
    ],
)
def test_ti_labels_validation(args: tuple[Any, ...], message: str) -> None:
    with pytest.raises(WorkflowSpecError, match=message):
        ti_labels(*args)


def test_reattach_selector() -> None:
    mapped = reattach_selector(ti_labels("etl", "load", "manual__2024-01-01T00:00:00+00:00", 2, 5))
    assert "try-number" not in mapped
    assert mapped.startswith("airflow.apache.org/dag-id=etl,airflow.apache.org/map-index=2,")
    assert reattach_selector(ti_labels("etl", "load", "r1", -1, 1)) == (
        "airflow.apache.org/dag-id=etl,airflow.apache.org/run-id=r1,airflow.apache.org/task-id=load,"
        "!airflow.apache.org/map-index")
    with pytest.raises(WorkflowSpecError, match=r"missing: airflow\.apache\.org/run-id"):
        reattach_selector({"airflow.apache.org/dag-id": "d", "airflow.apache.org/task-id": "t"})


def test_reattach_selector_finds_every_try_and_nothing_else_on_the_cluster(
        local_cluster: Any, kube_api_client: Any) -> None:
    from kubernetes import client

    objects = client.CustomObjectsApi(kube_api_client)
    run_id = "manual__2024-01-01T00:00:00+00:00"
    submitted = {
        "reattach-try1": ti_labels("reattach_dag", "task", run_id, -1, 1),
        "reattach-try2": ti_labels("reattach_dag", "task", run_id, -1, 2),
        "reattach-mapped": ti_labels("reattach_dag", "task", run_id, 0, 1),
        "reattach-other-run": ti_labels("reattach_dag", "task", run_id + "x", -1, 1),
    }
    for name, labels in submitted.items():
        body = merge_metadata({**load_workflow(HELLO), "metadata": {"name": name}}, labels, {})
        objects.create_namespaced_custom_object("argoproj.io", "v1alpha1", "argo", "workflows", body)
    found = objects.list_namespaced_custom_object(
        "argoproj.io", "v1alpha1", "argo", "workflows", label_selector=reattach_selector(submitted["reattach-try2"]))
    assert sorted(item["metadata"]["name"] for item in found["items"]) == ["reattach-try1", "reattach-try2"]


# --------------------------------------------------------------------------------------------
# phases, failures, results
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("phase", "outcome"),
    [(None, "wait"), ("", "wait"), ("Pending", "wait"), ("Running", "wait"), ("Succeeded", "success"),
     ("Failed", "failure"), ("Error", "failure")],
)
def test_phase_outcome(phase: str | None, outcome: str) -> None:
    assert phase_outcome(phase) == outcome


def test_terminal_phases_never_wait_and_unknown_phases_raise() -> None:
    assert all(phase_outcome(p) != "wait" for p in TERMINAL_PHASES)
    with pytest.raises(ArgoEciError, match="unknown workflow phase 'Stopped'"):
        phase_outcome("Stopped")


def _node(display: str, type_: str, phase: str, started: str, **extra: Any) -> dict[str, Any]:
    return {"displayName": display, "type": type_, "phase": phase, "startedAt": started, **extra}


FAILED_WF: dict[str, Any] = {
    "metadata": {"name": "etl-x7k", "namespace": "argo", "uid": "u-1"},
    "status": {
        "phase": "Failed",
        "message": "child 'etl-x7k-3' failed",
        "startedAt": "2024-01-01T00:00:00Z",
        "finishedAt": "2024-01-01T00:05:00Z",
        "resourcesDuration": {"cpu": 12, "memory": 40},
        "outputs": {"parameters": [{"name": "count", "value": "7"}]},
        "nodes": {
            "etl-x7k": _node("etl-x7k", "Steps", "Failed", "00", message="child 'etl-x7k-3' failed",
                             children=["etl-x7k-1"]),
            "etl-x7k-1": _node("[0]", "StepGroup", "Failed", "01", children=["etl-x7k-2", "etl-x7k-3", "etl-x7k-6"]),
            "etl-x7k-2": _node("extract", "Pod", "Succeeded", "02", templateName="extract", outputs={
                "parameters": [{"name": "rows", "value": "10"}],
                "artifacts": [{"name": "data", "path": "/tmp/d", "oss": {"key": "etl-x7k/data.tgz",
                                                                         "bucket": "my-bucket",
                                                                         "accessKeySecret": {"name": "s", "key": "k"}}},
                              {"name": "main-logs", "s3": {"key": "etl-x7k/etl-x7k-2/main.log"},
                               "archive": {"none": {}}},
                              {"name": "inline", "raw": {"data": "x"}},
                              {"name": "nowhere", "path": "/tmp/x"}]}),
            "etl-x7k-3": _node("transform", "Retry", "Failed", "03", message="No more retries left",
                               children=["etl-x7k-4", "etl-x7k-5"], outputs={"exitCode": "3"}),
            "etl-x7k-4": _node("transform(0)", "Pod", "Failed", "04", message="Error (exit code 3)",
                               templateName="transform", outputs={"exitCode": "3"}),
            "etl-x7k-5": _node("transform(1)", "Pod", "Failed", "05", message="Error (exit code 3)",
                               templateName="transform", outputs={"exitCode": "3"}),
            "etl-x7k-6": _node("load", "DAG", "Error", "06", message="invalid dependency 'missing'", children=[]),
            "etl-x7k-7": _node("cleanup", "Pod", "Error", "07", message="pod deleted", templateName="cleanup"),
        },
    },
}


def test_failed_nodes_are_the_failed_leaves_in_order() -> None:
    assert failed_nodes(FAILED_WF) == [
        {"id": "etl-x7k-5", "display_name": "transform(1)", "type": "Pod", "phase": "Failed",
         "message": "Error (exit code 3)", "template_name": "transform", "exit_code": "3"},
        {"id": "etl-x7k-6", "display_name": "load", "type": "DAG", "phase": "Error",
         "message": "invalid dependency 'missing'", "template_name": "", "exit_code": None},
        {"id": "etl-x7k-7", "display_name": "cleanup", "type": "Pod", "phase": "Error",
         "message": "pod deleted", "template_name": "cleanup", "exit_code": None},
    ]
    assert failed_nodes({"status": {"phase": "Failed"}}) == []
    assert failed_nodes({}) == []


def test_failure_message() -> None:
    assert failure_message(FAILED_WF) == (
        "Workflow etl-x7k Failed: child 'etl-x7k-3' failed; failed nodes: transform(1) (Failed: Error (exit code 3)), "
        "load (Error: invalid dependency 'missing'), cleanup (Error: pod deleted)")
    assert failure_message({"metadata": {"name": "w"}, "status": {"phase": "Error"}}) == "Workflow w Error"
    many = {"metadata": {"name": "w"}, "status": {"phase": "Failed", "nodes": {
        f"n{i:02}": _node(f"s{i:02}", "Pod", "Failed", f"{i:02}", message="x" * 600) for i in range(12)}}}
    text = failure_message(many)
    assert text.count("s0") + text.count("s1") == 10 and text.endswith("and 2 more")
    assert "x" * 497 + "..." in text and "x" * 498 not in text


def test_workflow_result() -> None:
    result = workflow_result(FAILED_WF)
    assert json.loads(json.dumps(result)) == result
    assert result == {
        "name": "etl-x7k", "namespace": "argo", "uid": "u-1", "phase": "Failed",
        "message": "child 'etl-x7k-3' failed",
        "started_at": "2024-01-01T00:00:00Z", "finished_at": "2024-01-01T00:05:00Z", "progress": None,
        "resources_duration": {"cpu": 12, "memory": 40},
        "parameters": {"count": "7"},
        "node_outputs": {"extract": {"rows": "10"}},
        "artifacts": [
            {"node": "extract", "name": "data", "type": "oss", "key": "etl-x7k/data.tgz", "bucket": "my-bucket",
             "location": "oss://my-bucket/etl-x7k/data.tgz", "archive": "tar"},
            {"node": "extract", "name": "main-logs", "type": "s3", "key": "etl-x7k/etl-x7k-2/main.log",
             "archive": "none"},
            {"node": "extract", "name": "inline", "type": "raw", "archive": "tar"},
        ],
    }


def _run(objects: Any, body: dict[str, Any], timeout: float = 30) -> dict[str, Any]:
    name = body["metadata"]["name"]
    objects.create_namespaced_custom_object("argoproj.io", "v1alpha1", "argo", "workflows", body)
    deadline = time.monotonic() + timeout
    while True:
        wf: dict[str, Any] = objects.get_namespaced_custom_object("argoproj.io", "v1alpha1", "argo", "workflows", name)
        if phase_outcome((wf.get("status") or {}).get("phase")) != "wait":
            return wf
        assert time.monotonic() < deadline, f"{name} did not finish: {wf.get('status')}"
        time.sleep(0.1)


def test_failure_and_result_of_a_real_run(local_cluster: Any, kube_api_client: Any) -> None:
    """The local cluster's status shape: the retried failing step is named once, with its message."""
    from kubernetes import client

    objects = client.CustomObjectsApi(kube_api_client)
    body = load_workflow("""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {name: result-shape}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: count, template: count}
    - - {name: broken, template: broken}
  - name: count
    container:
      image: alpine:3.19
      command: [sh, -c, "echo 42 > /tmp/n"]
    outputs:
      parameters:
      - name: n
        globalName: total
        valueFrom: {path: /tmp/n}
  - name: broken
    retryStrategy: {limit: "1", retryPolicy: Always}
    container:
      image: alpine:3.19
      command: [sh, -c, "echo no; exit 3"]
""")
    wf = _run(objects, body)
    assert phase_outcome(wf["status"]["phase"]) == "failure"
    nodes = failed_nodes(wf)
    assert [(n["display_name"], n["type"], n["exit_code"]) for n in nodes] == [("broken(1)", "Pod", "3")]
    message = failure_message(wf)
    assert message.startswith("Workflow result-shape Failed") and "failed nodes: broken(1) (" in message
    result = workflow_result(wf)
    assert result["uid"] == wf["metadata"]["uid"] and result["phase"] == "Failed"
    assert result["parameters"] == {"total": "42"}
    assert result["node_outputs"]["count"] == {"n": "42"}
    assert set(result["resources_duration"]) == {"cpu", "memory"}
