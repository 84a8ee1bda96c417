"""ConfigMap references on the local cluster through the ``kubernetes`` client: parameters from
``valueFrom.configMapKeyRef`` (workflow and template level, Argo's messages for a missing ConfigMap
or key, ``optional``) and ``artifactRepositoryRef`` keys the ConfigMap does not hold yet."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from airflow_argo_eci.conventions import GROUP, VERSION
from airflow_argo_eci.local.conformance import ConformanceRunner
from tests.local.argo import clusterwf

NS = "default"
EXAMPLES = Path(__file__).resolve().parents[4] / "shared" / "conformance" / "argo-examples"


def submit_and_wait(api_client: Any, doc: dict[str, Any], timeout: float = 60.0) -> dict[str, Any]:
    return clusterwf.run(api_client, doc, timeout, namespace=NS)


def config_map(api_client: Any, data: dict[str, str]) -> str:
    from kubernetes import client

    name = f"params-{uuid.uuid4().hex[:8]}"
    client.CoreV1Api(api_client).create_namespaced_config_map(
        NS, {"metadata": {"name": name, "labels": {"workflows.argoproj.io/configmap-type": "Parameter"}},
             "data": data})
    return name


def param_workflow(cm: str, key: str, *, optional: bool = False, level: str = "workflow") -> dict[str, Any]:
    ref = {"name": cm, "key": key, **({"optional": True} if optional else {})}
    main: dict[str, Any] = {"name": "main", "inputs": {"parameters": [{"name": "msg"}]},
                            "container": {"image": "alpine:3.23", "command": ["sh", "-c"],
                                          "args": ["echo msg=[{{inputs.parameters.msg}}]"]}}
    spec: dict[str, Any] = {"entrypoint": "main", "templates": [main]}
    if level == "workflow":
        spec["arguments"] = {"parameters": [{"name": "msg", "valueFrom": {"configMapKeyRef": ref}}]}
        main["inputs"]["parameters"] = [{"name": "msg", "value": "{{workflow.parameters.msg}}"}]
    else:
        main["inputs"]["parameters"] = [{"name": "msg", "valueFrom": {"configMapKeyRef": ref}}]
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow",
            "metadata": {"generateName": "cm-param-"}, "spec": spec}


def messages(wf: dict[str, Any]) -> str:
    status = wf.get("status") or {}
    nodes = (status.get("nodes") or {}).values()
    return " | ".join([status.get("message", "")] + [n.get("message", "") for n in nodes])


@pytest.mark.parametrize("level", ["workflow", "template"])
def test_parameter_from_a_config_map_key(kube_api_client: Any, level: str) -> None:
    cm = config_map(kube_api_client, {"greeting": "hello from a configmap"})
    wf = submit_and_wait(kube_api_client, param_workflow(cm, "greeting", level=level))
    assert wf["status"]["phase"] == "Succeeded", messages(wf)
    root = wf["status"]["nodes"][wf["metadata"]["name"]]
    assert root["inputs"]["parameters"][0]["value"] == "hello from a configmap"


@pytest.mark.parametrize(("level", "field"), [("workflow", "spec.arguments.parameters.msg"),
                                              ("template", "inputs.parameters.msg")])
def test_a_missing_config_map_key_fails_with_argos_message_naming_the_field(
        kube_api_client: Any, level: str, field: str) -> None:
    cm = config_map(kube_api_client, {"greeting": "hi"})
    wf = submit_and_wait(kube_api_client, param_workflow(cm, "nope", level=level))
    assert wf["status"]["phase"] in ("Error", "Failed")
    text = messages(wf)
    assert f"{field}: ConfigMap '{cm}' does not have the key 'nope' (keys: greeting)" in text, text


def test_a_missing_config_map_fails_with_argos_message(kube_api_client: Any) -> None:
    wf = submit_and_wait(kube_api_client, param_workflow("no-such-params", "greeting"))
    assert wf["status"]["phase"] in ("Error", "Failed")
    text = messages(wf)
    assert ("spec.arguments.parameters.msg: ConfigMap 'no-such-params' does not exist in namespace default "
            "(create it, or set configMapKeyRef.optional: true)") in text, text


def test_an_optional_missing_key_gives_an_empty_value(kube_api_client: Any) -> None:
    cm = config_map(kube_api_client, {"greeting": "hi"})
    wf = submit_and_wait(kube_api_client, param_workflow(cm, "nope", optional=True, level="template"))
    assert wf["status"]["phase"] == "Succeeded", messages(wf)
    assert wf["status"]["nodes"][wf["metadata"]["name"]]["inputs"]["parameters"][0]["value"] == ""


@pytest.mark.skipif(not (EXAMPLES / "artifact-repository-ref.yaml").is_file(), reason="no conformance corpus")
def test_artifact_repository_ref_key_missing_then_added(kube_api_client: Any) -> None:
    """Argo's example names the user's ``my-key`` repository: without it the workflow ends in Error
    saying which key of which ConfigMap is missing; after the key is added (README: a copy of the
    default repository) the same example succeeds and records the ref in its status."""
    from kubernetes import client

    key = f"my-key-{uuid.uuid4().hex[:6]}"
    doc = yaml.safe_load((EXAMPLES / "artifact-repository-ref.yaml").read_text())
    doc["spec"]["artifactRepositoryRef"]["key"] = key
    wf = submit_and_wait(kube_api_client, doc)
    assert wf["status"]["phase"] == "Error"
    text = messages(wf)
    assert (f'config map missing key {key} for artifact repository ref "default/artifact-repositories#{key}" '
            f"(spec.artifactRepositoryRef.key); add the repository under key {key} to configmap "
            "default/artifact-repositories") in text, text

    runner = ConformanceRunner(kube_api_client, EXAMPLES, namespace=NS)
    assert runner.add_repository_key(key) is True
    assert runner.add_repository_key(key) is False  # already there: left as it is
    cm = client.CoreV1Api(kube_api_client).read_namespaced_config_map("artifact-repositories", NS)
    assert cm.data[key] == cm.data["default-v1"]
    wf = submit_and_wait(kube_api_client, doc)
    assert wf["status"]["phase"] == "Succeeded", messages(wf)
    ref = wf["status"]["artifactRepositoryRef"]
    assert (ref["configMap"], ref["key"], ref["namespace"]) == ("artifact-repositories", key, NS)
    outputs = wf["status"]["nodes"][wf["metadata"]["name"]]["outputs"]["artifacts"]
    assert [a["name"] for a in outputs] == ["hello_world"]


def test_adding_a_repository_key_needs_a_default_to_copy(kube_api_client: Any) -> None:
    from kubernetes import client

    name = f"repos-{uuid.uuid4().hex[:6]}"
    client.CoreV1Api(kube_api_client).create_namespaced_config_map(NS, {"metadata": {"name": name}, "data": {}})
    runner = ConformanceRunner(kube_api_client, EXAMPLES, namespace=NS)
    with pytest.raises(RuntimeError, match=f"configmap default/{name} has no default repository to copy"):
        runner.add_repository_key("k", config_map=name)
