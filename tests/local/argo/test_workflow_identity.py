"""What a workflow says about itself reaches its pods (through the ``kubernetes`` client):
``serviceAccountName`` (workflow and template level) recorded on the pod, ``priority`` and the
service account as workflow variables."""

from __future__ import annotations

import json
from typing import Any

from airflow_argo_eci.conventions import GROUP, LABEL_WORKFLOW, VERSION
from tests.local.argo import clusterwf

NS = "default"


def test_service_account_and_priority_are_recorded(kube_api_client: Any) -> None:
    from kubernetes import client

    doc = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow", "metadata": {"generateName": "identity-"},
           "spec": {"entrypoint": "main", "serviceAccountName": "wf-sa", "priority": 3, "templates": [
               {"name": "main", "steps": [[{"name": "a", "template": "a"}, {"name": "b", "template": "b"}]]},
               {"name": "a", "container": {"image": "alpine:3.23", "command": ["sh", "-c"],
                                           "args": ["echo {{workflow.serviceAccountName}}/{{workflow.priority}}"]}},
               {"name": "b", "serviceAccountName": "tmpl-sa",
                "container": {"image": "alpine:3.23", "command": ["sh", "-c"], "args": ["echo b"]}}]}}
    wf = clusterwf.run(kube_api_client, doc, namespace=NS)
    name = wf["metadata"]["name"]
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    core = client.CoreV1Api(kube_api_client)
    pods = core.list_namespaced_pod(NS, label_selector=f"{LABEL_WORKFLOW}={name}").items
    by_template = {p.metadata.name.rsplit("-", 2)[-2]: p for p in pods}
    assert by_template["a"].spec.service_account_name == "wf-sa"
    assert by_template["b"].spec.service_account_name == "tmpl-sa"
    log = core.read_namespaced_pod_log(by_template["a"].metadata.name, NS, container="main",
                                       _preload_content=False).data.decode()
    assert log.strip() == "wf-sa/3"


def test_a_template_sees_the_name_of_the_step_or_task_that_runs_it(kube_api_client: Any) -> None:
    """Argo's ``{{steps.name}}`` / ``{{tasks.name}}`` inside the template a step or task runs."""
    from kubernetes import client

    echo = {"name": "echo", "container": {"image": "alpine:3.23", "command": ["sh", "-c"],
                                          "args": ["echo {{steps.name}}"]}}
    echo_task = {"name": "echo-task", "container": {"image": "alpine:3.23", "command": ["sh", "-c"],
                                                    "args": ["echo {{tasks.name}}"]}}
    doc = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow", "metadata": {"generateName": "names-"},
           "spec": {"entrypoint": "main", "templates": [
               {"name": "main", "steps": [[{"name": "first-step", "template": "echo"},
                                           {"name": "graph", "template": "graph"}]]},
               {"name": "graph", "dag": {"tasks": [{"name": "a-task", "template": "echo-task"}]}},
               echo, echo_task]}}
    wf = clusterwf.run(kube_api_client, doc, namespace=NS)
    name = wf["metadata"]["name"]
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    core = client.CoreV1Api(kube_api_client)
    logs = {}
    for pod in core.list_namespaced_pod(NS, label_selector=f"{LABEL_WORKFLOW}={name}").items:
        logs[pod.metadata.name.rsplit("-", 1)[0].split(f"{name}-", 1)[1]] = core.read_namespaced_pod_log(
            pod.metadata.name, NS, container="main", _preload_content=False).data.decode().strip()
    assert logs == {"echo": "first-step", "echo-task": "a-task"}


def test_workflow_metadata_variables(kube_api_client: Any) -> None:
    """``workflow.scheduledTime`` (from the CronWorkflow annotation), ``workflow.labels`` /
    ``workflow.annotations`` (bare and ``.json``: the JSON object) and ``workflow.status`` while it
    runs."""
    from kubernetes import client

    script = ("echo '{{workflow.scheduledTime}}|{{workflow.labels.json}}|{{workflow.labels}}|"
              "{{workflow.annotations.example.io/owner}}|{{workflow.status}}'")
    doc = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow",
           "metadata": {"generateName": "meta-", "labels": {"app": "demo"},
                        "annotations": {"workflows.argoproj.io/scheduled-time": "2026-04-29T00:00:00Z",
                                        "example.io/owner": "team-a"}},
           "spec": {"entrypoint": "main", "templates": [
               {"name": "main", "container": {"image": "alpine:3.23", "command": ["sh", "-c"], "args": [script]}}]}}
    wf = clusterwf.run(kube_api_client, doc, namespace=NS)
    name = wf["metadata"]["name"]
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    core = client.CoreV1Api(kube_api_client)
    pod = core.list_namespaced_pod(NS, label_selector=f"{LABEL_WORKFLOW}={name}").items[0]
    log = core.read_namespaced_pod_log(pod.metadata.name, NS, container="main",
                                       _preload_content=False).data.decode().strip()
    scheduled, labels_json, labels, owner, status = log.split("|")
    assert scheduled == "2026-04-29T00:00:00Z"
    assert json.loads(labels_json)["app"] == "demo" and json.loads(labels) == json.loads(labels_json)
    assert owner == "team-a"
    assert status == "Running"
