"""Step / task lifecycle ``hooks`` on the local cluster through the ``kubernetes`` client: a hook runs
once, as ``<step node>.hooks.<name>``, when its expression holds; one ending Failed is ignored, one
ending Error (e.g. a bad hook) fails the template, naming the field."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from airflow_argo_eci.conventions import GROUP, TERMINAL_PHASES, VERSION, WORKFLOWS
from tests.local.argo import clusterwf

NS = "default"
EXAMPLES = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "argo-examples"


def container(name: str, script: str) -> dict[str, Any]:
    return {"name": name, "container": {"image": "alpine:3.23", "command": ["sh", "-c"], "args": [script]}}


TEMPLATES = [container("work", "sleep 2"), container("notify", "echo hook"), container("fail", "exit 4")]


def run(api_client: Any, main: dict[str, Any]) -> dict[str, Any]:

    doc = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow", "metadata": {"generateName": "step-hooks-"},
           "spec": {"entrypoint": "main", "templates": [{"name": "main", **main}, *TEMPLATES]}}
    return clusterwf.run(api_client, doc, namespace=NS)


def by_name(wf: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in wf["status"]["nodes"].values()}


def steps_with(hooks: dict[str, Any]) -> dict[str, Any]:
    return {"steps": [[{"name": "step-1", "template": "work", "hooks": hooks}]]}


def test_step_hooks_run_when_their_expression_holds(kube_api_client: Any) -> None:
    wf = run(kube_api_client, steps_with({
        "running": {"expression": 'steps["step-1"].status == "Running"', "template": "notify"},
        "success": {"expression": 'steps["step-1"].status == "Succeeded"', "template": "notify"},
        "failure": {"expression": 'steps["step-1"].status == "Failed"', "template": "notify"}}))
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    nodes = by_name(wf)
    step = f"{wf['metadata']['name']}[0].step-1"
    for hook in ("running", "success"):
        node = nodes[f"{step}.hooks.{hook}"]
        assert node["phase"] == "Succeeded"
        assert node["templateName"] == "notify"
        assert node["displayName"] == f"step-1.hooks.{hook}"
        assert node["id"] in nodes[step]["children"]
    assert f"{step}.hooks.failure" not in nodes
    # the success hook started only once the step had finished
    assert nodes[f"{step}.hooks.success"]["startedAt"] >= nodes[step]["finishedAt"]


def test_dag_task_hooks_run(kube_api_client: Any) -> None:
    wf = run(kube_api_client, {"dag": {"tasks": [
        {"name": "a", "template": "work",
         "hooks": {"done": {"expression": 'tasks.a.status == "Succeeded"', "template": "notify"}}},
        {"name": "b", "template": "notify", "dependencies": ["a"]}]}})
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    nodes = by_name(wf)
    name = wf["metadata"]["name"]
    hook = nodes[f"{name}.a.hooks.done"]
    assert hook["phase"] == "Succeeded"
    assert hook["finishedAt"] <= nodes[f"{name}.b"]["startedAt"]


def test_an_expanded_dag_task_runs_its_hooks_for_each_child(kube_api_client: Any) -> None:
    wf = run(kube_api_client, {"dag": {"tasks": [
        {"name": "a", "template": "work", "withItems": [1, 2],
         "hooks": {"done": {"expression": 'tasks.a.status == "Succeeded"', "template": "notify"}}},
        {"name": "b", "template": "notify", "depends": "a"}]}})
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    nodes = by_name(wf)
    name = wf["metadata"]["name"]
    hooks = sorted(n for n in nodes if ".hooks." in n)
    assert hooks == [f"{name}.a(0:1).hooks.done", f"{name}.a(1:2).hooks.done"]
    for hook in hooks:
        assert nodes[hook]["phase"] == "Succeeded"
        assert nodes[hook]["id"] in nodes[hook.rsplit(".hooks.", 1)[0]]["children"]
        assert nodes[hook]["finishedAt"] <= nodes[f"{name}.b"]["startedAt"]


def test_a_bad_hook_on_an_expanded_task_errors_the_task(kube_api_client: Any) -> None:
    wf = run(kube_api_client, {"dag": {"tasks": [
        {"name": "a", "template": "notify", "withItems": [1],
         "hooks": {"done": {"expression": "tasks.a.status ==", "template": "notify"}}}]}})
    assert wf["status"]["phase"] in ("Failed", "Error")
    group = by_name(wf)[f"{wf['metadata']['name']}.a"]
    assert group["phase"] == "Error"
    assert "errored: tasks.a.hooks.done.expression: unexpected None in expression" in group["message"]


def test_a_hook_ending_failed_is_ignored(kube_api_client: Any) -> None:
    wf = run(kube_api_client, steps_with({
        "success": {"expression": 'steps["step-1"].status == "Succeeded"', "template": "fail"}}))
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    assert by_name(wf)[f"{wf['metadata']['name']}[0].step-1.hooks.success"]["phase"] == "Failed"


@pytest.mark.parametrize(("hooks", "message"), [
    ({"running": {"template": "notify"}}, "steps.step-1.hooks.running.expression is required"),
    ({"running": {"expression": "true"}}, "steps.step-1.hooks.running needs a template"),
    ({"running": {"expression": "steps ==", "template": "notify"}}, "steps.step-1.hooks.running.expression:"),
])
def test_a_bad_hook_errors_and_fails_the_steps(kube_api_client: Any, hooks: dict[str, Any], message: str) -> None:
    wf = run(kube_api_client, steps_with(hooks))
    assert wf["status"]["phase"] in ("Failed", "Error"), wf["status"]
    hook = by_name(wf)[f"{wf['metadata']['name']}[0].step-1.hooks.running"]
    assert hook["phase"] == "Error"
    assert message in hook["message"], hook["message"]


@pytest.mark.skipif(not (EXAMPLES / "life-cycle-hooks-tmpl-level.yaml").is_file(), reason=f"no corpus at {EXAMPLES}")
def test_the_template_level_hooks_example(kube_api_client: Any) -> None:
    """``life-cycle-hooks-tmpl-level.yaml`` of the corpus: both steps get their running / success
    hooks (http templates; without internet they end Failed, which Argo ignores)."""
    import yaml
    from kubernetes import client

    doc = yaml.safe_load((EXAMPLES / "life-cycle-hooks-tmpl-level.yaml").read_text())
    objects = client.CustomObjectsApi(kube_api_client)
    name = objects.create_namespaced_custom_object(GROUP, VERSION, NS, WORKFLOWS, doc)["metadata"]["name"]
    deadline = time.monotonic() + 90
    wf: dict[str, Any] = {}
    while time.monotonic() < deadline:
        wf = objects.get_namespaced_custom_object(GROUP, VERSION, NS, WORKFLOWS, name)
        if (wf.get("status") or {}).get("phase") in TERMINAL_PHASES:
            break
        time.sleep(0.2)
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    nodes = by_name(wf)
    for step in (f"{name}[0].step-1", f"{name}[1].step2"):
        hook = nodes[f"{step}.hooks.success"]
        assert hook["templateName"] == "http"
        assert hook["phase"] in ("Succeeded", "Failed")
        assert hook["id"] in nodes[step]["children"]
