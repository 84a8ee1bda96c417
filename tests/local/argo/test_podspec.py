"""Env ``fieldRef`` values of the local controller's pods (``podspec.field_ref_value`` and
``resolve_field_refs``): Kubernetes' whole set of env paths, the pod's own address, and the API
server's message for a path it refuses."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_argo_eci.local.argo.podspec import field_ref_value, resolve_field_refs
from airflow_argo_eci.local.argo.templates import SpecError

POD = {
    "metadata": {"name": "wf-main-1", "namespace": "argo", "uid": "0b8e-uid",
                 "labels": {"app": "demo", "example.io/tier": "batch"},
                 "annotations": {"workflows.argoproj.io/node-name": "wf"}},
    "spec": {"nodeName": "virtual-kubelet", "serviceAccountName": "runner"},
}


def _value(path: str, pod_ip: str = "127.0.0.1") -> str:
    return field_ref_value({"fieldPath": path}, "wf-main-1", "argo", pod_ip, pod_object=POD)


def test_every_env_path_of_kubernetes_has_its_value() -> None:
    assert _value("metadata.name") == "wf-main-1"
    assert _value("metadata.namespace") == "argo"
    assert _value("metadata.uid") == "0b8e-uid"
    assert _value("metadata.labels['app']") == "demo"
    assert _value("metadata.labels['example.io/tier']") == "batch"
    assert _value("metadata.labels['missing']") == ""
    assert _value("metadata.annotations['workflows.argoproj.io/node-name']") == "wf"
    assert _value("spec.nodeName") == "virtual-kubelet"
    assert _value("spec.host") == "virtual-kubelet"  # the old v1 name, still converted
    assert _value("spec.serviceAccountName") == "runner"
    assert _value("status.hostIP") == "127.0.0.1" and _value("status.hostIPs") == "127.0.0.1"


def test_the_pod_address_is_a_parameter() -> None:
    assert _value("status.podIP") == "127.0.0.1"  # the default
    assert _value("status.podIP", "127.4.0.9") == "127.4.0.9"
    assert _value("status.podIPs", "127.4.0.9") == "127.4.0.9"
    # the old three-argument call still works: the local node and the default service account
    assert field_ref_value({"fieldPath": "spec.nodeName"}, "p", "ns") == "local"
    assert field_ref_value({"fieldPath": "spec.serviceAccountName"}, "p", "ns") == "default"
    assert field_ref_value({"fieldPath": "metadata.uid"}, "p", "ns") == ""


@pytest.mark.parametrize(("ref", "message"), [
    ({"fieldPath": "status.phase"},
     'pods "p" is invalid: env[0].valueFrom.fieldRef.fieldPath: Unsupported value: "status.phase": supported '
     'values: "metadata.name", "metadata.namespace", "metadata.uid", "spec.nodeName", '
     '"spec.serviceAccountName", "status.hostIP", "status.hostIPs", "status.podIP", "status.podIPs"'),
    ({"fieldPath": "metadata.labels"}, 'Unsupported value: "metadata.labels"'),
    ({"fieldPath": "spec.containers"},
     'env[0].valueFrom.fieldRef.fieldPath: Invalid value: "spec.containers": error converting fieldPath: field '
     "label not supported: spec.containers"),
    ({"fieldPath": "metadata.name['x']"}, "field label does not support subscript: metadata.name['x']"),
    ({"fieldPath": "metadata.labels['bad key']"},
     'env[0].valueFrom.fieldRef: Invalid value: "bad key": name part must consist of alphanumeric'),
    ({"fieldPath": "metadata.name", "apiVersion": "v2"}, "error converting fieldPath: unsupported pod version: v2"),
    ({}, "env[0].valueFrom.fieldRef.fieldPath: Required value"),
])
def test_a_path_kubernetes_refuses_fails_with_its_message(ref: dict[str, str], message: str) -> None:
    with pytest.raises(SpecError) as caught:
        field_ref_value(ref, "p", "ns", field="env[0].valueFrom.fieldRef")
    assert message in str(caught.value)


def test_resolve_field_refs_replaces_only_field_refs() -> None:
    env = [{"name": "A", "value": "1"},
           {"name": "UID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.uid"}}},
           {"name": "IP", "valueFrom": {"fieldRef": {"apiVersion": "v1", "fieldPath": "status.podIP"}}},
           {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]
    out = resolve_field_refs(env, POD, "127.9.9.9")
    assert out == [{"name": "A", "value": "1"}, {"name": "UID", "value": "0b8e-uid"},
                   {"name": "IP", "value": "127.9.9.9"},
                   {"name": "CM", "valueFrom": {"configMapKeyRef": {"name": "c", "key": "k"}}}]
    with pytest.raises(SpecError, match=r'pods "wf-main-1" is invalid: spec\.containers\[0\]\.env\[0\]'):
        resolve_field_refs([{"name": "X", "valueFrom": {"fieldRef": {"fieldPath": "status.phase"}}}], POD,
                           field="spec.containers[0].env")


FIELD_REF_WF = """
apiVersion: argoproj.io/v1alpha1
kind: Workflow
metadata: {generateName: fieldref-}
spec:
  entrypoint: main
  templates:
  - name: main
    container:
      image: alpine:3.23
      command: [sh, -c]
      args: ["echo $POD/$NS/$SA/$IP"]
      env:
      - {name: POD, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
      - {name: NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
      - {name: SA, valueFrom: {fieldRef: {fieldPath: spec.serviceAccountName}}}
      - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}
"""


def test_a_workflow_reads_field_refs_and_a_refused_path_fails_its_node(kube_api_client: Any) -> None:
    from kubernetes import client

    from tests.local.argo.clusterwf import NAMESPACE, leaf, run

    wf = run(kube_api_client, FIELD_REF_WF)
    assert wf["status"]["phase"] == "Succeeded", wf["status"]
    pod = client.CoreV1Api(kube_api_client).list_namespaced_pod(
        NAMESPACE, label_selector=f"workflows.argoproj.io/workflow={wf['metadata']['name']}").items[0]
    log = client.CoreV1Api(kube_api_client).read_namespaced_pod_log(
        pod.metadata.name, NAMESPACE, container="main", _preload_content=False).data.decode().strip()
    name, namespace, account, address = log.split("/")
    assert (name, namespace, account) == (pod.metadata.name, NAMESPACE, "default")
    assert address.startswith("127.")
    bad = run(kube_api_client, FIELD_REF_WF.replace("status.podIP", "status.phase"))
    assert bad["status"]["phase"] in ("Error", "Failed")
    message = leaf(bad, "main")["message"]
    assert 'fieldPath: Unsupported value: "status.phase": supported values: "metadata.name"' in message
