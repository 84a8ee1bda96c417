"""Resource templates on the local cluster, through the kubernetes client: create/apply/patch/delete/get,
conditions, owner references, jsonPath / jqFilter outputs, and bad input."""

from __future__ import annotations

import threading
import time

import pytest
from kubernetes import client

from airflow_argo_eci.conventions import ANNOTATION_NODE_ID
from tests.local.argo.clusterwf import NAMESPACE, get, leaf, run, submit, wait, wait_for_node


def _resource_wf(name: str, resource: str, outputs: str = "") -> str:
    return f"""
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {{generateName: {name}-}}
spec:
  entrypoint: main
  templates:
  - name: main
    resource:
{resource}
{outputs}
"""


def _indent(text: str, spaces: int) -> str:
    return "\n".join(" " * spaces + line for line in text.strip("\n").splitlines())


def test_create_with_owner_reference_and_outputs(kube_api_client: client.ApiClient) -> None:
    resource = _indent("""
action: create
setOwnerReference: true
manifest: |
  apiVersion: v1
  kind: ConfigMap
  metadata:
    generateName: made-by-wf-
    labels: {app: demo}
  data: {colour: blue, items: "3"}
""", 6)
    outputs = _indent("""
outputs:
  parameters:
  - name: cm-name
    valueFrom: {jsonPath: '{.metadata.name}'}
  - name: colour
    valueFrom: {jqFilter: '.data.colour'}
  - name: key-count
    valueFrom: {jqFilter: '.data | length'}
  - name: labels
    valueFrom: {jqFilter: '.metadata.labels'}
""", 4)
    wf = run(kube_api_client, _resource_wf("res-create", resource, outputs))
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    node = leaf(wf, "main")
    assert node["type"] == "Pod"
    params = {p["name"]: p["value"] for p in node["outputs"]["parameters"]}
    assert params["cm-name"].startswith("made-by-wf-")
    assert params["colour"] == "blue"
    assert params["key-count"] == "2"
    assert params["labels"] == '{"app":"demo"}'
    assert node["outputs"]["exitCode"] == "0"
    core = client.CoreV1Api(kube_api_client)
    cm = core.read_namespaced_config_map(params["cm-name"], NAMESPACE)
    owner = cm.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid) == ("Workflow", wf["metadata"]["name"], wf["metadata"]["uid"])
    # as in Argo, the node has a pod (the executor's record), Succeeded with the node
    selector = f"workflows.argoproj.io/workflow={wf['metadata']['name']}"
    pods = core.list_namespaced_pod(NAMESPACE, label_selector=selector)
    assert len(pods.items) == 1
    assert pods.items[0].status.phase == "Succeeded"
    assert pods.items[0].metadata.annotations[ANNOTATION_NODE_ID] == node["id"]


@pytest.mark.parametrize(("strategy", "manifest"), [
    ("merge", "metadata:\n  annotations:\n    foo: bar"),
    ("json", "- op: add\n  path: /metadata/annotations/foo\n  value: bar"),
    ("", "apiVersion: v1\nkind: Pod\nmetadata:\n  name: '{{pod.name}}'\n  annotations:\n    foo: bar"),
])
def test_patch_own_pod(kube_api_client: client.ApiClient, strategy: str, manifest: str) -> None:
    lines = ["action: patch"]
    if strategy:
        lines += [f"mergeStrategy: {strategy}", "flags: [pod, '{{pod.name}}']"]
    lines += ["manifest: |", _indent(manifest, 2)]
    wf = run(kube_api_client, _resource_wf("res-patch", _indent("\n".join(lines), 6)))
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    pods = client.CoreV1Api(kube_api_client).list_namespaced_pod(
        NAMESPACE, label_selector=f"workflows.argoproj.io/workflow={wf['metadata']['name']}")
    assert pods.items[0].metadata.annotations["foo"] == "bar"


def test_apply_get_and_delete(kube_api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api_client)
    core.create_namespaced_config_map(NAMESPACE, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name="res-apply"), data={"a": "1"}))
    wf = run(kube_api_client, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: res-apply-}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: apply, template: apply}
    - - {name: get, template: get}
    - - {name: delete, template: delete}
    - - {name: delete-again, template: delete}
  - name: apply
    resource:
      action: apply
      manifest: |
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: res-apply}
        data: {b: "2"}
  - name: get
    resource:
      action: get
      manifest: |
        apiVersion: v1
        kind: ConfigMap
        metadata: {name: res-apply}
    outputs:
      parameters:
      - name: data
        valueFrom: {jqFilter: '.data | keys'}
  - name: delete
    resource:
      action: delete
      flags: [configmap, res-apply]
""")
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    assert leaf(wf, "get")["outputs"]["parameters"][0]["value"] == '["a","b"]'
    with pytest.raises(client.ApiException) as err:
        core.read_namespaced_config_map("res-apply", NAMESPACE)
    assert err.value.status == 404


def test_delete_by_selector(kube_api_client: client.ApiClient) -> None:
    core = client.CoreV1Api(kube_api_client)
    for name, labels in (("sel-a", {"cleanup": "true"}), ("sel-b", {"cleanup": "true"}), ("sel-keep", {})):
        core.create_namespaced_config_map(NAMESPACE, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=name, labels=labels), data={"k": "v"}))
    resource = _indent("action: delete\nflags: [configmap, --selector, '{{workflow.parameters.selector}}']", 6)
    arguments = "  arguments: {parameters: [{name: selector, value: cleanup=true}]}\n"
    wf = _resource_wf("res-delsel", resource).replace("  entrypoint: main\n", "  entrypoint: main\n" + arguments)
    assert run(kube_api_client, wf)["status"]["phase"] == "Succeeded"
    left = {cm.metadata.name for cm in core.list_namespaced_config_map(NAMESPACE).items}
    assert "sel-keep" in left and not {"sel-a", "sel-b"} & left


@pytest.mark.parametrize(("value", "phase", "message"), [
    ("yes", "Succeeded", None),
    ("broken", "Failed", "failure condition 'data.state==broken' evaluated true"),
])
def test_conditions_are_polled(kube_api_client: client.ApiClient, value: str, phase: str,
                               message: str | None) -> None:
    cm_name = f"res-cond-{value}"
    resource = _indent(f"""
action: create
successCondition: data.ready == yes, data.count > 2
failureCondition: data.state == broken
manifest: |
  apiVersion: v1
  kind: ConfigMap
  metadata: {{name: {cm_name}}}
  data: {{ready: "no", count: "1"}}
""", 6)
    name = submit(kube_api_client, _resource_wf("res-cond", resource))
    wait_for_node(kube_api_client, name, "Running")
    time.sleep(1.5)  # several checks: the node waits
    assert get(kube_api_client, name)["status"]["phase"] == "Running"
    patch = {"data": {"ready": "yes", "count": "3"}} if value == "yes" else {"data": {"state": "broken"}}
    client.CoreV1Api(kube_api_client).patch_namespaced_config_map(cm_name, NAMESPACE, patch)
    wf = wait(kube_api_client, name)
    node = leaf(wf, "main")
    assert node["phase"] == phase
    if message:
        assert node["message"] == message


@pytest.mark.parametrize(("manifest", "message"), [
    ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}",
     'configmaps "Bad_Name" is invalid: metadata.name: Invalid value'),
    ("apiVersion: batch/v1\nkind: Job\nmetadata: {name: j}",
     'no matches for kind "Job" in version "batch/v1": the local cluster serves'),
    ("kind: ConfigMap\nmetadata: {name: x}", "resource.manifest: apiVersion and kind are required"),
])
def test_bad_manifest_fails_the_node_with_the_reason(kube_api_client: client.ApiClient, manifest: str,
                                                      message: str) -> None:
    resource = _indent("action: create\nmanifest: |\n" + _indent(manifest, 2), 6)
    wf = run(kube_api_client, _resource_wf("res-bad", resource))
    assert wf["status"]["phase"] == "Failed"
    node = leaf(wf, "main")
    assert node["phase"] == "Failed"
    assert message in node["message"], node["message"]


@pytest.mark.parametrize(("resource", "message"), [
    ("action: create\nmanifest: |\n  data: [1", "templates.main.resource.manifest must be a valid yaml"),
    ("action: launch\nmanifest: '{}'", "templates.main.resource.action must be one of: get, create, apply, delete, "
                                      "replace, patch"),
    ("action: create", "either templates.main.resource.manifest or templates.main.resource.manifestFrom must be "
                       "specified"),
])
def test_invalid_resource_spec_is_refused(kube_api_client: client.ApiClient, resource: str, message: str) -> None:
    wf = run(kube_api_client, _resource_wf("res-invalid", _indent(resource, 6)))
    assert wf["status"]["phase"] == "Error"
    assert wf["status"]["message"] == f"invalid spec: {message}"


def test_bad_conditions_flags_and_outputs(kube_api_client: client.ApiClient) -> None:
    cases = {
        "successCondition: data.count > many": "success condition 'data.count > many' failed to parse",
        "flags: [--output=json]": "resource.flags: --output is not supported by the local cluster",
        "flags: [--selector=app=x]": "resource.flags: --selector works with action delete and a kind alone",
    }
    for extra, message in cases.items():
        resource = _indent(f"action: get\n{extra}\nmanifest: |\n  apiVersion: v1\n  kind: Namespace\n"
                           "  metadata: {name: argo}", 6)
        node = leaf(run(kube_api_client, _resource_wf("res-badcond", resource)), "main")
        assert node["phase"] == "Failed" and message in node["message"], node
    resource = _indent("action: get\nmanifest: |\n  apiVersion: v1\n  kind: Namespace\n  metadata: {name: argo}", 6)
    outputs = _indent("outputs:\n  parameters:\n  - name: x\n    valueFrom: {jqFilter: '.items | map(.x)'}", 4)
    node = leaf(run(kube_api_client, _resource_wf("res-badjq", resource, outputs)), "main")
    assert node["phase"] == "Failed"
    assert "outputs.parameters.x: jqFilter '.items | map(.x)': 'map(.x)' is not supported" in node["message"]


def test_waiting_resource_does_not_block_other_workflows(kube_api_client: client.ApiClient) -> None:
    resource = _indent("action: get\nsuccessCondition: metadata.labels.never == set\nmanifest: |\n  apiVersion: v1\n"
                       "  kind: Namespace\n  metadata: {name: argo}", 6)
    waiting = submit(kube_api_client, _resource_wf("res-wait", resource))
    wait_for_node(kube_api_client, waiting, "Running")  # it waits before the other one is submitted
    done = threading.Event()
    result: dict[str, str] = {}

    def other() -> None:
        resource = _indent("action: get\nmanifest: |\n  apiVersion: v1\n  kind: Namespace\n  metadata: {name: argo}", 6)
        result["phase"] = run(kube_api_client, _resource_wf("res-other", resource))["status"]["phase"]
        done.set()

    threading.Thread(target=other, daemon=True).start()
    assert done.wait(30)
    assert result["phase"] == "Succeeded"
    assert get(kube_api_client, waiting)["status"]["phase"] == "Running"
    client.CustomObjectsApi(kube_api_client).patch_namespaced_custom_object(
        "argoproj.io", "v1alpha1", NAMESPACE, "workflows", waiting, {"spec": {"shutdown": "Terminate"}})
    wf = wait(kube_api_client, waiting)
    assert wf["status"]["phase"] == "Failed"


def test_manifest_from_artifacts(kube_api_client: client.ApiClient) -> None:
    wf = run(kube_api_client, """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: res-manifest-from-}
spec:
  entrypoint: main
  templates:
  - name: main
    steps:
    - - {name: gen, template: gen}
    - - name: from-step
        template: create
        arguments:
          artifacts: [{name: manifest, from: '{{steps.gen.outputs.artifacts.manifest}}'}]
      - name: from-raw
        template: create
        arguments:
          artifacts:
          - name: manifest
            raw: {data: "apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: res-from-raw}\\n"}
  - name: gen
    script:
      image: python:3
      command: [python]
      source: |
        open("/tmp/cm.yaml", "w").write("apiVersion: v1\\nkind: ConfigMap\\nmetadata: {name: res-from-step}\\n")
    outputs:
      artifacts: [{name: manifest, path: /tmp/cm.yaml}]
  - name: create
    inputs:
      artifacts: [{name: manifest, path: /tmp/manifest.yaml}]
    resource:
      action: create
      manifestFrom: {artifact: {name: manifest}}
    outputs:
      parameters: [{name: name, valueFrom: {jsonPath: '{.metadata.name}'}}]
""", timeout=90)
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    names = sorted(n["outputs"]["parameters"][0]["value"] for n in wf["status"]["nodes"].values()
                   if n.get("templateName") == "create")
    assert names == ["res-from-raw", "res-from-step"]


def test_manifest_from_an_unknown_artifact_fails(kube_api_client: client.ApiClient) -> None:
    resource = _indent("action: create\nmanifestFrom: {artifact: {name: nope}}", 6)
    node = leaf(run(kube_api_client, _resource_wf("res-from-nope", resource)), "main")
    assert node["phase"] == "Failed"
    assert node["message"] == "resource.manifestFrom.artifact: 'nope' is not an input artifact of the template"
