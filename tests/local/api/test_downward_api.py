"""Env ``fieldRef`` paths through the real ``kubernetes`` client: the API server refuses a pod whose
env reads a path Kubernetes does not allow (422 naming the field) and accepts the others."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from airflow_argo_eci.local.api.downward_api import ENV_FIELD_PATHS
from tests.local.api.apiserver_helpers import ApiServer

NS = "argo"


@pytest.fixture(scope="module")
def core(api_server: ApiServer) -> Iterator[client.CoreV1Api]:
    api = config.new_client_from_config(config_file=str(api_server.kubeconfig))
    yield client.CoreV1Api(api)
    api.close()


def _pod(name: str, paths: list[str], *, init: bool = False) -> client.V1Pod:
    env = [client.V1EnvVar(name=f"V{i}", value_from=client.V1EnvVarSource(
        field_ref=client.V1ObjectFieldSelector(field_path=path))) for i, path in enumerate(paths)]
    container = client.V1Container(name="init" if init else "main", image="alpine", env=env)
    spec = client.V1PodSpec(containers=[client.V1Container(name="main", image="alpine")],
                            init_containers=[container]) if init else client.V1PodSpec(containers=[container])
    return client.V1Pod(metadata=client.V1ObjectMeta(name=name), spec=spec)


def _causes(err: ApiException) -> list[dict[str, str]]:
    causes: list[dict[str, str]] = json.loads(err.body)["details"]["causes"]
    return causes


def test_every_env_path_is_accepted(core: client.CoreV1Api) -> None:
    paths = [*ENV_FIELD_PATHS, "metadata.labels['app']", "metadata.annotations['example.io/Owner']"]
    created = core.create_namespaced_pod(NS, _pod("fieldref-ok", paths))
    assert [e.value_from.field_ref.field_path for e in created.spec.containers[0].env] == paths
    assert created.spec.containers[0].env[0].value_from.field_ref.api_version == "v1"


def test_a_pod_field_env_cannot_read_is_unsupported(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod(NS, _pod("fieldref-phase", ["metadata.name", "status.phase"]))
    assert caught.value.status == 422
    causes = _causes(caught.value)
    assert causes == [{
        "reason": "FieldValueNotSupported", "field": "spec.containers[0].env[1].valueFrom.fieldRef.fieldPath",
        "message": 'Unsupported value: "status.phase": supported values: "metadata.name", "metadata.namespace", '
                   '"metadata.uid", "spec.nodeName", "spec.serviceAccountName", "status.hostIP", "status.hostIPs", '
                   '"status.podIP", "status.podIPs"'}]
    assert 'pods "fieldref-phase" is invalid: spec.containers[0].env[1].valueFrom.fieldRef.fieldPath' in \
        json.loads(caught.value.body)["message"]


def test_unknown_paths_and_bad_keys_are_invalid(core: client.CoreV1Api) -> None:
    with pytest.raises(ApiException) as caught:
        core.create_namespaced_pod(NS, _pod("fieldref-bad", ["x", "metadata.labels['no spaces']"], init=True))
    assert caught.value.status == 422
    causes = _causes(caught.value)
    assert [c["field"] for c in causes] == ["spec.initContainers[0].env[0].valueFrom.fieldRef.fieldPath",
                                             "spec.initContainers[0].env[1].valueFrom.fieldRef"]
    assert causes[0]["message"] == 'Invalid value: "x": error converting fieldPath: field label not supported: x'
    assert causes[1]["message"].startswith('Invalid value: "no spaces": name part must consist of')
    with pytest.raises(ApiException):
        core.read_namespaced_pod("fieldref-bad", NS)


def test_a_patch_cannot_bring_in_a_bad_path(core: client.CoreV1Api) -> None:
    core.create_namespaced_pod(NS, _pod("fieldref-patched", ["metadata.name"]))
    with pytest.raises(ApiException) as caught:
        path = "/spec/containers/0/env/0/valueFrom/fieldRef/fieldPath"
        core.patch_namespaced_pod("fieldref-patched", NS, [{"op": "replace", "path": path, "value": "status.phase"}])
    assert caught.value.status == 422
    assert _causes(caught.value)[0]["field"] == "spec.containers[0].env[0].valueFrom.fieldRef.fieldPath"
