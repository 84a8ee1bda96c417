"""Workflow-level lifecycle ``hooks`` on the local cluster through the ``kubernetes`` client: a hook
runs once, as ``<workflow>.hooks.<name>``, when its expression holds; ``hooks.exit`` is the exit
handler; a bad hook is refused naming the field."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_argo_eci.conventions import GROUP, VERSION
from tests.local.argo import clusterwf

NS = "default"


def echo(name: str, text: str) -> dict[str, Any]:
    return {"name": name, "container": {"image": "alpine:3.23", "command": ["sh", "-c"], "args": [f"echo {text}"]}}


def run(api_client: Any, hooks: dict[str, Any], main_script: str = "sleep 1") -> dict[str, Any]:

    doc = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow", "metadata": {"generateName": "hooks-"},
           "spec": {"entrypoint": "main", "hooks": hooks, "templates": [
               {"name": "main", "container": {"image": "alpine:3.23", "command": ["sh", "-c"],
                                              "args": [main_script]}},
               echo("notify", "{{workflow.status}}"), echo("bye", "bye {{workflow.status}}"),
               {"name": "fail", "container": {"image": "alpine:3.23", "command": ["sh", "-c"], "args": ["exit 4"]}}]}}
    return clusterwf.run(api_client, doc, namespace=NS)


def by_name(wf: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in wf["status"]["nodes"].values()}


def test_a_running_hook_and_an_exit_hook(kube_api_client: Any) -> None:
    wf = run(kube_api_client, {"running": {"expression": 'workflow.status == "Running"', "template": "notify"},
                               "never": {"expression": 'workflow.status == "Pending"', "template": "notify"},
                               "exit": {"template": "bye"}})
    name = wf["metadata"]["name"]
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    nodes = by_name(wf)
    assert nodes[f"{name}.hooks.running"]["phase"] == "Succeeded"
    assert nodes[f"{name}.hooks.running"]["templateName"] == "notify"
    assert f"{name}.hooks.never" not in nodes
    assert nodes[f"{name}.onExit"]["phase"] == "Succeeded"
    assert nodes[f"{name}.onExit"]["templateName"] == "bye"


def test_a_failing_hook_leaves_the_outcome_alone(kube_api_client: Any) -> None:
    """Argo: a lifecycle hook that ends Failed is ignored; the workflow still waits for it."""
    wf = run(kube_api_client, {"running": {"expression": 'workflow.status == "Running"', "template": "fail"}})
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    hook = by_name(wf)[f"{wf['metadata']['name']}.hooks.running"]
    assert hook["phase"] == "Failed"
    assert hook["finishedAt"] <= wf["status"]["finishedAt"]


@pytest.mark.parametrize(("hooks", "message"), [
    ({"running": {"template": "notify"}}, "spec.hooks.running.expression is required"),
    ({"running": {"expression": "true"}}, "spec.hooks.running needs a template"),
    ({"running": {"expression": "workflow.status ==", "template": "notify"}}, "spec.hooks.running.expression:"),
])
def test_a_bad_hook_ends_the_workflow_in_error(kube_api_client: Any, hooks: dict[str, Any], message: str) -> None:
    wf = run(kube_api_client, hooks)
    assert wf["status"]["phase"] == "Error"
    assert message in wf["status"]["message"], wf["status"]["message"]
