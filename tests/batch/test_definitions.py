"""JobDefinition: every validation error names the field and the fix; the rendered templates; register."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

import pytest

from airflow_argo_eci.batch import JobDefinition
from airflow_argo_eci.eci import EciProfile
from airflow_argo_eci.eci_datasets import DatasetMount
from airflow_argo_eci.eci_retry import Backoff
from airflow_argo_eci.errors import WorkflowSpecError
from airflow_argo_eci.hooks.argo import ArgoWorkflowsHook
from airflow_argo_eci.local.server import LocalCluster
from tests.conftest import kube_connection, server_connection


def _define(**changes: Any) -> JobDefinition:
    fields: dict[str, Any] = {"name": "work", "image": "busybox"}
    fields.update(changes)
    return JobDefinition(**fields)


@pytest.mark.parametrize(("changes", "message"), [
    ({"name": "Work"}, r"JobDefinition.name: 'Work' is not a valid name: use lower-case letters"),
    ({"name": "x" * 58}, r"at most 57 characters"),
    ({"image": ""}, r"JobDefinition\('work'\).image is empty: set the container image"),
    ({"image": "   "}, r"image is empty"),
    ({"command": "echo hi"}, r"JobDefinition\('work'\).command must be a list of strings"),
    ({"args": [1]}, r"JobDefinition\('work'\).args must be a list of strings"),
    ({"env": {"1BAD": "x"}}, r"env: '1BAD' is not a valid environment variable name"),
    ({"env": {"A B": "x"}}, r"env: 'A B' is not a valid environment variable name"),
    ({"env": {"BATCH_JOB_ARRAY_INDEX": "1"}}, r"BATCH_JOB_ARRAY_INDEX is set by array jobs: choose another name"),
    ({"env": {"N": 1}}, r"env\[N\] must be a string, got 1: quote it"),
    ({"env": ["N"]}, r"env must be a mapping of name -> value"),
    ({"vcpu": 0}, r"JobDefinition.vcpu must be a number of vCPUs > 0"),
    ({"vcpu": -1}, r"JobDefinition.vcpu must be a number of vCPUs > 0"),
    ({"vcpu": True}, r"JobDefinition.vcpu must be a number of vCPUs > 0"),
    ({"vcpu": 0.0005}, r"finer than a millicore: round it to 3 decimals"),
    ({"vcpu": "two"}, r"JobDefinition.vcpu: 'two' is not a Kubernetes quantity: use e.g. '2'"),
    ({"vcpu": "0m"}, r"JobDefinition.vcpu: '0m' must be greater than zero"),
    ({"memory": "2GB"}, r"JobDefinition\('work'\).memory: '2GB' is not a Kubernetes quantity: use e.g. '2Gi'"),
    ({"memory": "2 Gi"}, r"memory: '2 Gi' is not a Kubernetes quantity"),
    ({"memory": "0"}, r"memory: '0' must be greater than zero"),
    ({"memory": None}, r"memory: None is not a Kubernetes quantity"),
    ({"ephemeral_storage": "lots"}, r"ephemeral_storage: 'lots' is not a Kubernetes quantity: use e.g. '20Gi'"),
    ({"parameters": "message"}, r"parameters must be a list of names or a mapping name -> default"),
    ({"parameters": ["bad name"]}, r"parameters: 'bad name' is not a valid Argo parameter name"),
    ({"parameters": ["job-index"]}, r"parameters: 'job-index' is given by array jobs: do not declare it"),
    ({"parameters": ["a", "a"]}, r"parameters: duplicate names"),
    ({"parameters": {"a": 1}}, r"parameters\[a\]: the default must be a string"),
    ({"outputs": {"o": "relative"}}, r"outputs\[o\]: 'relative' must be an absolute file path, e.g. '/tmp/o'"),
    ({"outputs": {"o.k": "/tmp/o"}}, r"outputs: 'o.k' is not a valid Argo parameter name"),
    ({"outputs": ["/tmp/o"]}, r"outputs must be a mapping of name -> file path"),
    ({"retries": -1}, r"retries must be an int >= 0 \(0 = no retry\), got -1"),
    ({"retries": 1.5}, r"retries must be an int >= 0"),
    ({"retry_policy": "Sometimes"}, r"retry_policy: 'Sometimes' is not one of Argo's policies: use Always, OnFailure"),
    ({"backoff": {"duration": "soon"}}, r"retry_strategy.backoff.duration: 'soon' is not a duration"),
    ({"backoff": 10}, r"backoff must be a Backoff or \{duration, factor, maxDuration\}"),
    ({"timeout": 0}, r"timeout must be a whole number of seconds > 0, got 0"),
    ({"timeout": 1.5}, r"timeout must be a whole number of seconds > 0"),
    ({"eci": {"use_specs": "nope"}}, r"use_specs"),
    ({"volumes": [{"name": "data"}]}, r"volumes: .* is neither a DatasetMount nor an input artifact"),
    ({"volumes": [{"name": "bad name", "path": "/data"}]}, r"volumes \(artifact name\): 'bad name' is not a valid"),
    ({"volumes": "data"}, r"volumes must be a list of DatasetMount or input artifacts"),
])
def test_invalid_values_name_the_field_and_the_fix(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(WorkflowSpecError, match=message):
        _define(**changes)


@pytest.mark.parametrize(("vcpu", "rendered"), [(2, "2"), (0.5, "500m"), (1.25, "1250m"), ("250m", "250m"),
                                                  (4.0, "4"), ("1.5", "1.5")])
def test_vcpu_rendering(vcpu: Any, rendered: str) -> None:
    tmpl = _define(vcpu=vcpu).template()
    assert tmpl["container"]["resources"]["requests"]["cpu"] == rendered
    assert tmpl["container"]["resources"]["limits"]["cpu"] == rendered


def test_template_of_a_full_definition() -> None:
    definition = JobDefinition(
        "train", image="python:3.12-slim", command=["python", "-c"], args=["print('{{inputs.parameters.lr}}')"],
        env={"MODE": "fast"}, vcpu=0.5, memory="1Gi", ephemeral_storage="20Gi",
        parameters={"lr": "0.1", "epochs": "3"}, outputs={"score": "/tmp/score"}, retries=2,
        retry_policy="Always", backoff=Backoff(duration="5s", factor=2), timeout=600,
        volumes=[{"name": "data", "path": "/in", "s3": {"key": "in/data"}},
                 DatasetMount("imagenet", "/datasets", templates=("unused",))])
    resources = {"cpu": "500m", "memory": "1Gi", "ephemeral-storage": "20Gi"}
    assert definition.template() == {
        "name": "train",
        "inputs": {"parameters": [{"name": "lr", "value": "0.1"}, {"name": "epochs", "value": "3"}],
                   "artifacts": [{"name": "data", "path": "/in", "s3": {"key": "in/data"}}]},
        "outputs": {"parameters": [{"name": "score", "valueFrom": {"path": "/tmp/score"}}]},
        "container": {"image": "python:3.12-slim", "command": ["python", "-c"],
                      "args": ["print('{{inputs.parameters.lr}}')"], "env": [{"name": "MODE", "value": "fast"}],
                      "resources": {"requests": resources, "limits": resources},
                      "volumeMounts": [{"name": "imagenet", "mountPath": "/datasets"}]},
        "retryStrategy": {"limit": 2, "retryPolicy": "Always", "backoff": {"duration": "5s", "factor": 2}},
        "activeDeadlineSeconds": 600,
        "volumes": [{"name": "imagenet", "persistentVolumeClaim": {"claimName": "imagenet"}}],
    }


def test_array_and_items_variants() -> None:
    definition = _define(parameters=["p"])
    array = definition.template("array")
    assert array["name"] == "work-array"
    assert array["inputs"]["parameters"] == [{"name": "job-index"}, {"name": "p"}]
    assert array["container"]["env"] == [
        {"name": "BATCH_JOB_ARRAY_INDEX", "value": "{{inputs.parameters.job-index}}"}]
    items = definition.template("items")
    assert items["name"] == "work-items"
    assert items["inputs"]["parameters"] == [{"name": "job-index"}, {"name": "item"}, {"name": "p"}]
    assert items["container"]["env"] == [
        {"name": "BATCH_JOB_ARRAY_INDEX", "value": "{{inputs.parameters.job-index}}"},
        {"name": "BATCH_JOB_ITEM", "value": "{{inputs.parameters.item}}"}]
    with pytest.raises(WorkflowSpecError, match="template variant 'other' is not one of job, array, items"):
        definition.template("other")


def test_eci_profile_is_applied_to_the_template() -> None:
    profile = EciProfile(use_specs=("ecs.c6.large",), labels={"team": "ml"})
    tmpl = _define(eci=profile).template()
    assert tmpl["metadata"]["labels"]["team"] == "ml"
    assert tmpl["metadata"]["labels"]["alibabacloud.com/eci"] == "true"
    assert "schedulerName" in tmpl["podSpecPatch"]
    assert _define(eci={"use_specs": ["ecs.c6.large"], "labels": {"team": "ml"}}).eci == profile


def test_definitions_are_values() -> None:
    assert _define(command=["a"]) == _define(command=("a",))
    assert _define().command == () and _define().env == {}


class _Store:
    """An in-memory WorkflowTemplate store with the hook's apply_workflow_template."""

    def __init__(self) -> None:
        self.calls: list[tuple[dict[str, Any], str | None]] = []

    def apply_workflow_template(self, body: Mapping[str, Any], namespace: str | None = None) -> dict[str, Any]:
        self.calls.append((dict(body), namespace))
        return dict(body)


def test_register_applies_a_workflow_template_of_every_variant() -> None:
    store = _Store()
    definition = _define(command=["true"])
    stored = definition.register(store, namespace="batch")
    body, namespace = store.calls[0]
    assert namespace == "batch" and stored == body
    assert body["apiVersion"] == "argoproj.io/v1alpha1" and body["kind"] == "WorkflowTemplate"
    assert body["metadata"] == {"name": "work", "namespace": "batch"}
    assert body["spec"]["entrypoint"] == "work"
    assert [t["name"] for t in body["spec"]["templates"]] == ["work", "work-array", "work-items"]
    assert body["spec"]["templates"][0] == definition.template()


@pytest.mark.parametrize("transport", ["kubernetes", "argo_server"])
def test_register_on_the_local_cluster_is_idempotent(
    transport: str, local_cluster: LocalCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    connection = kube_connection if transport == "kubernetes" else server_connection
    monkeypatch.setenv("AIRFLOW_CONN_BATCH_REGISTER", connection(local_cluster))
    hook = ArgoWorkflowsHook("batch_register")
    try:
        definition = _define(name=f"reg-{transport.replace('_', '-')}", command=["true"])
        created = definition.register(hook, "argo")
        again = definition.register(hook, "argo")
        assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]
        changed = dataclasses.replace(definition, memory="128Mi")
        updated = changed.register(hook, "argo")
        assert updated["metadata"]["resourceVersion"] != created["metadata"]["resourceVersion"]
        stored = hook.get_workflow_template(definition.name, "argo")
        assert stored["spec"] == changed.workflow_template()["spec"]
        assert stored["metadata"]["uid"] == created["metadata"]["uid"]
    finally:
        hook.close()
